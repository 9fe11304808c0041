//! Pulling from one queue, and `PullConsumer` (explicit queue and offset).

use std::sync::Arc;
use std::time::Duration;

use proto::net::rpc::RpcError;
use proto::remoting::body::MessageQueue;
use proto::remoting::codes::{request, response};
use proto::remoting::header::{pull_flag, PullMessageHeader};
use proto::remoting::RemotingCommand;

use crate::config::ClientConfig;
use crate::error::{ClientError, Result};
use crate::filter::TagFilter;
use crate::instance::{read_queues, ClientInstance};
use crate::message::MessageExt;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PullStatus {
    Found,
    /// Nothing new at this offset (after any long-poll wait).
    NoNewMsg,
    /// Messages exist past the offset but none matched the filter in this window.
    NoMatchedMsg,
    /// The offset is outside the queue; continue from `next_begin_offset`.
    OffsetIllegal,
}

#[derive(Clone, Debug)]
pub struct PullResult {
    pub status: PullStatus,
    pub next_begin_offset: u64,
    pub min_offset: u64,
    pub max_offset: u64,
    pub messages: Vec<MessageExt>,
}

/// What one pull asks for.
#[derive(Clone, Debug)]
pub struct PullRequest<'a> {
    pub group: &'a str,
    pub queue: &'a MessageQueue,
    pub filter: &'a TagFilter,
    pub offset: u64,
    pub max_nums: u32,
    /// Long polling: how long the broker may hold the pull when there is nothing new.
    pub suspend: Option<Duration>,
    /// A consumer offset for the broker to commit on the way (clustering mode).
    pub commit_offset: Option<u64>,
}

/// One pull from the queue's broker group: the master, else (it cannot be reached, or
/// there is none) a slave — RocketMQ's `slaveReadEnable`.
pub async fn pull(instance: &ClientInstance, req: PullRequest<'_>) -> Result<PullResult> {
    let mut addrs = instance.read_addrs(&req.queue.broker_name);
    if addrs.is_empty() {
        instance.refresh_route(&req.queue.topic).await?;
        addrs = instance.read_addrs(&req.queue.broker_name);
    }
    let mut last = ClientError::NoRoute(req.queue.topic.clone());
    for addr in addrs {
        match pull_from(instance, &req, addr).await {
            Err(e @ ClientError::Rpc(RpcError::Connect { .. } | RpcError::Closed(_))) => {
                last = e;
            }
            result => return result,
        }
    }
    Err(last)
}

/// Every message of `queue` that the broker at `addr` (one replica, master or slave)
/// holds, from offset 0 to its end, read by pulls of `group`: what a harness uses to
/// compare replicas. Positions the broker says moved or filtered out are read past; a
/// failed pull is tried again up to `retries` times.
pub async fn read_to_end(
    instance: &ClientInstance,
    group: &str,
    queue: &MessageQueue,
    addr: &str,
    retries: u32,
) -> Result<Vec<MessageExt>> {
    let filter = TagFilter::parse("*");
    let mut messages = Vec::new();
    let mut offset = 0;
    loop {
        let req = PullRequest {
            group,
            queue,
            filter: &filter,
            offset,
            max_nums: 256,
            suspend: None,
            commit_offset: None,
        };
        let mut tries = 0;
        let r = loop {
            match pull_from(instance, &req, addr.to_string()).await {
                Ok(r) => break r,
                Err(e) if tries < retries => {
                    tries += 1;
                    tracing::info!(%addr, error = %e, "read failed; retrying");
                }
                Err(e) => return Err(e),
            }
        };
        let moved = matches!(
            r.status,
            PullStatus::OffsetIllegal | PullStatus::NoMatchedMsg
        );
        if moved && r.next_begin_offset > offset {
            offset = r.next_begin_offset;
            continue;
        }
        if r.status != PullStatus::Found {
            return Ok(messages);
        }
        offset = r.next_begin_offset;
        messages.extend(r.messages);
    }
}

/// One pull from the broker at `addr` exactly, master or slave: what a harness uses to
/// read every replica of a group and compare them.
pub async fn pull_from(
    instance: &ClientInstance,
    req: &PullRequest<'_>,
    addr: String,
) -> Result<PullResult> {
    let mut sys_flag = pull_flag::SUBSCRIPTION;
    if req.suspend.is_some() {
        sys_flag |= pull_flag::SUSPEND;
    }
    if req.commit_offset.is_some() {
        sys_flag |= pull_flag::COMMIT_OFFSET;
    }
    let suspend = req.suspend.unwrap_or_default();
    let header = PullMessageHeader {
        consumer_group: req.group.to_string(),
        topic: req.queue.topic.clone(),
        queue_id: req.queue.queue_id,
        queue_offset: req.offset,
        max_msg_nums: req.max_nums,
        sys_flag,
        commit_offset: req.commit_offset.map_or(0, |o| o as i64),
        suspend_timeout_millis: suspend.as_millis() as u64,
        subscription: Some(req.filter.expression().to_string()),
        sub_version: 0,
        expression_type: Some("TAG".into()),
    };
    let timeout = instance.config.request_timeout + suspend;
    let response = instance
        .pool()
        .invoke(&addr, header.to_command(), timeout)
        .await?;
    let status = match response.code {
        response::SUCCESS => PullStatus::Found,
        response::PULL_NOT_FOUND => PullStatus::NoNewMsg,
        response::PULL_RETRY_IMMEDIATELY => PullStatus::NoMatchedMsg,
        response::PULL_OFFSET_MOVED => PullStatus::OffsetIllegal,
        code => {
            return Err(ClientError::Broker {
                addr,
                code,
                remark: response.remark.unwrap_or_default(),
            });
        }
    };
    let mut messages = if status == PullStatus::Found {
        MessageExt::decode_all(&response.body).map_err(|e| ClientError::Broker {
            addr: addr.clone(),
            code: response.code,
            remark: format!("undecodable pull body: {e}"),
        })?
    } else {
        Vec::new()
    };
    // The broker filtered by tag hash; hashes can collide, so check the tags themselves.
    messages.retain(|m| req.filter.matches(m.tags.as_deref()));
    for m in &mut messages {
        m.broker_name.clone_from(&req.queue.broker_name);
    }
    Ok(PullResult {
        status,
        next_begin_offset: response.ext_parse("nextBeginOffset")?,
        min_offset: response.ext_parse_opt("minOffset")?.unwrap_or(0),
        max_offset: response.ext_parse_opt("maxOffset")?.unwrap_or(0),
        messages,
    })
}

/// The committed offset of `group` on `queue`; `None` if the group never committed.
pub async fn fetch_consumer_offset(
    instance: &ClientInstance,
    group: &str,
    queue: &MessageQueue,
) -> Result<Option<u64>> {
    let addr = instance
        .master_addr(&queue.broker_name)
        .ok_or_else(|| ClientError::NoRoute(queue.topic.clone()))?;
    let request = RemotingCommand::request(request::QUERY_CONSUMER_OFFSET)
        .with_ext("consumerGroup", group)
        .with_ext("topic", &queue.topic)
        .with_ext("queueId", queue.queue_id);
    let response = instance.invoke(&addr, request).await?;
    match response.code {
        response::SUCCESS => Ok(Some(response.ext_parse("offset")?)),
        response::QUERY_NOT_FOUND => Ok(None),
        code => Err(ClientError::Broker {
            addr,
            code,
            remark: response.remark.unwrap_or_default(),
        }),
    }
}

/// Commits `offset` (the next offset to consume) for `group` on `queue`.
pub async fn commit_consumer_offset(
    instance: &ClientInstance,
    group: &str,
    queue: &MessageQueue,
    offset: u64,
) -> Result<()> {
    let addr = instance
        .master_addr(&queue.broker_name)
        .ok_or_else(|| ClientError::NoRoute(queue.topic.clone()))?;
    let request = RemotingCommand::request(request::UPDATE_CONSUMER_OFFSET)
        .with_ext("consumerGroup", group)
        .with_ext("topic", &queue.topic)
        .with_ext("queueId", queue.queue_id)
        .with_ext("commitOffset", offset);
    instance.invoke_ok(&addr, request).await.map(drop)
}

/// Pulls from queues the caller names, at offsets the caller keeps (RocketMQ
/// `DefaultMQPullConsumer`).
pub struct PullConsumer {
    group: String,
    instance: Arc<ClientInstance>,
}

impl PullConsumer {
    pub fn new(group: impl Into<String>, config: ClientConfig) -> Self {
        PullConsumer {
            group: group.into(),
            instance: ClientInstance::new(config, None),
        }
    }

    pub fn group(&self) -> &str {
        &self.group
    }

    /// The topic's readable queues.
    pub async fn fetch_queues(&self, topic: &str) -> Result<Vec<MessageQueue>> {
        let route = self.instance.refresh_route(topic).await?;
        Ok(read_queues(topic, &route))
    }

    /// Pulls up to `max_nums` messages matching `expression` from `offset`, without
    /// waiting when there is nothing new.
    pub async fn pull(
        &self,
        queue: &MessageQueue,
        expression: &str,
        offset: u64,
        max_nums: u32,
    ) -> Result<PullResult> {
        self.pull_blocking(queue, expression, offset, max_nums, None)
            .await
    }

    /// Like [`PullConsumer::pull`], letting the broker hold the request up to `suspend`
    /// until a message arrives.
    pub async fn pull_blocking(
        &self,
        queue: &MessageQueue,
        expression: &str,
        offset: u64,
        max_nums: u32,
        suspend: Option<Duration>,
    ) -> Result<PullResult> {
        self.instance.route(&queue.topic).await?;
        let filter = TagFilter::parse(expression);
        pull(
            &self.instance,
            PullRequest {
                group: &self.group,
                queue,
                filter: &filter,
                offset,
                max_nums,
                suspend,
                commit_offset: None,
            },
        )
        .await
    }

    pub async fn fetch_offset(&self, queue: &MessageQueue) -> Result<Option<u64>> {
        self.instance.route(&queue.topic).await?;
        fetch_consumer_offset(&self.instance, &self.group, queue).await
    }

    pub async fn commit_offset(&self, queue: &MessageQueue, offset: u64) -> Result<()> {
        self.instance.route(&queue.topic).await?;
        commit_consumer_offset(&self.instance, &self.group, queue, offset).await
    }
}
