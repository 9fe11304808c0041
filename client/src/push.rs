//! `PushConsumer` (RocketMQ `DefaultMQPushConsumer`): long-polling pulls under a callback.
//!
//! Clustering: the group's instances share the queues, allocated averagely and
//! re-allocated when the broker says the group changed (NOTIFY_CONSUMER_IDS_CHANGED) or
//! every `rebalance_interval`; offsets are committed to the broker every
//! `commit_interval`, with each pull, when a queue moves away, and on shutdown.
//! Broadcasting: every instance reads every queue and keeps its offsets locally.
//!
//! Each assigned queue has one task that pulls, calls the listener in queue order and
//! advances the offset only after the listener is done with a batch, so delivery is at
//! least once. A message consumed again in place shows one more reconsumption each
//! time, as in Java. A batch the listener answers `Later`:
//! - concurrent clustering: is sent back to the broker (CONSUMER_SEND_MSG_BACK, see
//!   [`crate::send_back`]) and the queue moves on; it returns through `%RETRY%group`,
//!   which such a consumer subscribes to, after 10 s, then 30 s, 1 min, ... and goes to
//!   `%DLQ%group` after the group's `retryMaxTimes` (16) or the consumer's
//!   `max_reconsume_times`. A message the broker would not take back goes to
//!   `%RETRY%group` through a producer instead, as Java's consumer sends it
//!   ([`crate::send_back::fallback_copy`]); if that fails too, it is consumed again
//!   after `retry_delay`.
//! - orderly: is consumed again after `retry_delay`, keeping the queue in order (Java's
//!   orderly consumer does the same up to its `maxReconsumeTimes`, unbounded by default).
//! - broadcasting: is consumed again after `retry_delay` (Java's drops it: a broadcast
//!   has no retry topic per instance).
//!
//! The orderly mode also holds the broker's lock on each queue (LOCK_BATCH_MQ) while
//! consuming it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use proto::remoting::body::{
    from_json, to_json, ConsumerData, ConsumerListBody, HeartbeatData, LockBatchBody,
    LockBatchResponseBody, MessageQueue, ProducerData, SubscriptionData,
};
use proto::remoting::codes::request;
use proto::remoting::RemotingCommand;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::config::ClientConfig;
use crate::error::{ClientError, Result};
use crate::filter::TagFilter;
use crate::instance::{read_queues, ClientInstance};
use crate::message::MessageExt;
use crate::producer::Producer;
use crate::pull::{commit_consumer_offset, fetch_consumer_offset, pull, PullRequest, PullStatus};
use crate::rebalance::allocate_averagely;
use crate::send_back::{fallback_copy, restore_retry_topic, retry_topic, send_back_request};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessageModel {
    Clustering,
    Broadcasting,
}

impl MessageModel {
    fn wire_name(self) -> &'static str {
        match self {
            MessageModel::Clustering => "CLUSTERING",
            MessageModel::Broadcasting => "BROADCASTING",
        }
    }
}

/// Where a queue without a committed offset starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConsumeFromWhere {
    FirstOffset,
    LastOffset,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConsumeResult {
    Success,
    /// Deliver these messages again later.
    Later,
}

pub type Listener = Arc<dyn Fn(&[MessageExt]) -> ConsumeResult + Send + Sync>;

pub struct PushConsumerBuilder {
    group: String,
    config: ClientConfig,
    model: MessageModel,
    from_where: ConsumeFromWhere,
    subscriptions: BTreeMap<String, TagFilter>,
    orderly: bool,
    pub pull_batch_size: u32,
    pub consume_batch_max: usize,
    pub long_poll: Duration,
    pub rebalance_interval: Duration,
    pub commit_interval: Duration,
    pub heartbeat_interval: Duration,
    pub retry_delay: Duration,
    /// Send-backs before a message goes to `%DLQ%group`; `None`: the group's
    /// `retryMaxTimes` on the broker (16 unless set with `raftmq group create`).
    pub max_reconsume_times: Option<i32>,
}

impl PushConsumerBuilder {
    pub fn new(group: impl Into<String>, config: ClientConfig) -> Self {
        PushConsumerBuilder {
            group: group.into(),
            config,
            model: MessageModel::Clustering,
            from_where: ConsumeFromWhere::LastOffset,
            subscriptions: BTreeMap::new(),
            orderly: false,
            pull_batch_size: 32,
            consume_batch_max: 1,
            long_poll: Duration::from_secs(15),
            rebalance_interval: Duration::from_secs(20),
            commit_interval: Duration::from_secs(5),
            heartbeat_interval: Duration::from_secs(30),
            retry_delay: Duration::from_secs(1),
            max_reconsume_times: None,
        }
    }

    /// Subscribes to `topic` with a tag expression (`*`, `TagA || TagB`).
    pub fn subscribe(mut self, topic: impl Into<String>, expression: &str) -> Self {
        self.subscriptions
            .insert(topic.into(), TagFilter::parse(expression));
        self
    }

    pub fn message_model(mut self, model: MessageModel) -> Self {
        self.model = model;
        self
    }

    pub fn consume_from(mut self, from_where: ConsumeFromWhere) -> Self {
        self.from_where = from_where;
        self
    }

    /// Messages of a queue are consumed in order, one batch at a time, under the
    /// broker's queue lock.
    pub fn orderly(mut self, orderly: bool) -> Self {
        self.orderly = orderly;
        self
    }

    pub fn consume_batch_max(mut self, n: usize) -> Self {
        self.consume_batch_max = n.max(1);
        self
    }

    /// Send-backs before a failed message goes to `%DLQ%group` (RocketMQ's
    /// `maxReconsumeTimes`); by default the group's `retryMaxTimes` on the broker.
    pub fn max_reconsume_times(mut self, n: i32) -> Self {
        self.max_reconsume_times = Some(n);
        self
    }

    /// How often the instance heartbeats to every broker (RocketMQ: 30 s).
    pub fn heartbeat_interval(mut self, interval: Duration) -> Self {
        self.heartbeat_interval = interval;
        self
    }

    pub fn intervals(mut self, rebalance: Duration, commit: Duration) -> Self {
        self.rebalance_interval = rebalance;
        self.commit_interval = commit;
        self
    }

    /// Starts consuming with `listener`.
    pub async fn start(
        mut self,
        listener: impl Fn(&[MessageExt]) -> ConsumeResult + Send + Sync + 'static,
    ) -> Result<PushConsumer> {
        if self.subscriptions.is_empty() {
            return Err(ClientError::Invalid(
                "subscribe to at least one topic before start".into(),
            ));
        }
        proto::names::validate_name("consumer group", &self.group).map_err(ClientError::Invalid)?;
        let user_topics: Vec<String> = self.subscriptions.keys().cloned().collect();
        if self.sends_back() {
            // Created by the broker on the group's first heartbeat: routed after it.
            self.subscriptions
                .insert(retry_topic(&self.group), TagFilter::parse("*"));
        }
        let rebalance_now = Arc::new(Notify::new());
        let notify = rebalance_now.clone();
        let on_request: proto::net::rpc::OnRequest =
            Arc::new(move |command: RemotingCommand, _broker: &str| {
                if command.code == request::NOTIFY_CONSUMER_IDS_CHANGED {
                    notify.notify_one();
                }
            });
        let instance = ClientInstance::new(self.config.clone(), Some(on_request));
        // Java's consumers send with the group "CLIENT_INNER_PRODUCER" too.
        let retry_producer = Producer::new("CLIENT_INNER_PRODUCER", self.config.clone());
        let inner = Arc::new(Inner {
            settings: self,
            instance,
            retry_producer,
            listener: Arc::new(listener),
            assigned: Mutex::default(),
            heartbeated: Mutex::default(),
            heartbeating: tokio::sync::Mutex::new(()),
            offsets: Mutex::default(),
            rebalance_now,
            stopped: AtomicBool::new(false),
        });
        for topic in &user_topics {
            inner.instance.refresh_route(topic).await?;
        }
        inner.heartbeat().await;
        inner.rebalance().await;
        let tasks = vec![
            tokio::spawn(inner.clone().run_rebalancer()),
            tokio::spawn(inner.clone().run_committer()),
            tokio::spawn(inner.clone().run_heartbeat()),
        ];
        Ok(PushConsumer { inner, tasks })
    }
}

impl PushConsumerBuilder {
    /// Concurrent clustering consumers send failed messages back (see the module doc).
    fn sends_back(&self) -> bool {
        self.model == MessageModel::Clustering && !self.orderly
    }
}

pub struct PushConsumer {
    inner: Arc<Inner>,
    tasks: Vec<JoinHandle<()>>,
}

impl PushConsumer {
    pub fn client_id(&self) -> &str {
        &self.inner.instance.client_id
    }

    /// The queues this instance consumes now: in concurrent clustering mode its share
    /// of `%RETRY%group` too.
    pub fn assigned_queues(&self) -> Vec<MessageQueue> {
        self.inner
            .assigned
            .lock()
            .expect("assigned poisoned")
            .keys()
            .cloned()
            .collect()
    }

    /// Stops pulling, commits every offset, and leaves the group (so the others take
    /// the queues over at once).
    pub async fn shutdown(self) {
        self.inner.stopped.store(true, Ordering::Release);
        // A heartbeat round in flight finishes first: one the broker handled after the
        // unregistration would register this instance again, a member that never leaves
        // until it expires (120 s), holding its share of the queues.
        let _round = self.inner.heartbeating.lock().await;
        for task in &self.tasks {
            task.abort();
        }
        let queues: Vec<(MessageQueue, JoinHandle<()>)> =
            std::mem::take(&mut *self.inner.assigned.lock().expect("assigned poisoned"))
                .into_iter()
                .collect();
        for (_, task) in &queues {
            task.abort();
        }
        for (_, task) in queues {
            let _ = task.await;
        }
        self.inner.commit_all().await;
        self.inner.unregister().await;
    }
}

struct Inner {
    settings: PushConsumerBuilder,
    instance: Arc<ClientInstance>,
    /// Sends a failed message to the retry topic when the broker refuses its send-back.
    retry_producer: Producer,
    listener: Listener,
    assigned: Mutex<BTreeMap<MessageQueue, JoinHandle<()>>>,
    /// Next offset to consume per queue; committed from here.
    offsets: Mutex<BTreeMap<MessageQueue, u64>>,
    rebalance_now: Arc<Notify>,
    stopped: AtomicBool,
    /// Every broker that accepted a heartbeat: where this instance must unregister.
    /// The route alone is not enough: a deposed master is missing from it until it
    /// re-registers as a slave, and would keep counting this instance in its group.
    heartbeated: Mutex<BTreeSet<String>>,
    /// Held for a heartbeat round; shutdown takes it to wait for the round in flight.
    heartbeating: tokio::sync::Mutex<()>,
}

impl Inner {
    fn clustering(&self) -> bool {
        self.settings.model == MessageModel::Clustering
    }

    fn heartbeat_body(&self) -> HeartbeatData {
        HeartbeatData {
            client_id: self.instance.client_id.clone(),
            producer_data_set: vec![ProducerData {
                group_name: "CLIENT_INNER_PRODUCER".into(),
            }],
            consumer_data_set: vec![ConsumerData {
                group_name: self.settings.group.clone(),
                consume_type: "CONSUME_PASSIVELY".into(),
                message_model: self.settings.model.wire_name().into(),
                consume_from_where: match self.settings.from_where {
                    ConsumeFromWhere::FirstOffset => "CONSUME_FROM_FIRST_OFFSET".into(),
                    ConsumeFromWhere::LastOffset => "CONSUME_FROM_LAST_OFFSET".into(),
                },
                subscription_data_set: self
                    .settings
                    .subscriptions
                    .iter()
                    .map(|(topic, filter)| SubscriptionData {
                        topic: topic.clone(),
                        sub_string: filter.expression().to_string(),
                        tags_set: filter.tags(),
                        code_set: filter.codes(),
                        sub_version: proto::clock::now_ms(),
                        class_filter_mode: false,
                        expression_type: Some("TAG".into()),
                    })
                    .collect(),
                unit_mode: false,
            }],
        }
    }

    /// Heartbeats go to every replica, not only masters: the group's membership lives in
    /// each broker's memory, and a slave elected master must already know who is alive.
    async fn heartbeat(&self) {
        let _round = self.heartbeating.lock().await;
        let body = to_json(&self.heartbeat_body());
        let beats = self.instance.all_broker_addrs().into_iter().map(|addr| {
            let request = RemotingCommand::request(request::HEART_BEAT).with_body(body.clone());
            async move {
                match self.instance.invoke_ok(&addr, request).await {
                    Ok(_) => {
                        let mut at = self.heartbeated.lock().expect("heartbeated poisoned");
                        at.insert(addr);
                    }
                    Err(e) => tracing::warn!(%addr, error = %e, "heartbeat failed"),
                }
            }
        });
        futures::future::join_all(beats).await;
    }

    /// Leaves the group on every replica (a master elected later must not count this
    /// instance in its rebalance until the member expires).
    async fn unregister(&self) {
        let mut addrs: BTreeSet<String> = self.instance.all_broker_addrs().into_iter().collect();
        addrs.extend(
            self.heartbeated
                .lock()
                .expect("heartbeated poisoned")
                .iter()
                .cloned(),
        );
        let leaves = addrs.into_iter().map(|addr| {
            let request = RemotingCommand::request(request::UNREGISTER_CLIENT)
                .with_ext("clientID", &self.instance.client_id)
                .with_ext("consumerGroup", &self.settings.group);
            async move {
                let _ = self.instance.invoke(&addr, request).await;
            }
        });
        futures::future::join_all(leaves).await;
    }

    async fn run_heartbeat(self: Arc<Self>) {
        loop {
            tokio::time::sleep(self.settings.heartbeat_interval).await;
            self.instance.refresh_all_routes().await;
            self.heartbeat().await;
        }
    }

    async fn run_rebalancer(self: Arc<Self>) {
        loop {
            let _ = tokio::time::timeout(
                self.settings.rebalance_interval,
                self.rebalance_now.notified(),
            )
            .await;
            self.rebalance().await;
        }
    }

    async fn run_committer(self: Arc<Self>) {
        loop {
            tokio::time::sleep(self.settings.commit_interval).await;
            self.commit_all().await;
        }
    }

    async fn commit_all(&self) {
        if !self.clustering() {
            return;
        }
        let offsets: Vec<(MessageQueue, u64)> = self
            .offsets
            .lock()
            .expect("offsets poisoned")
            .iter()
            .map(|(q, o)| (q.clone(), *o))
            .collect();
        for (queue, offset) in offsets {
            if let Err(e) =
                commit_consumer_offset(&self.instance, &self.settings.group, &queue, offset).await
            {
                tracing::warn!(?queue, error = %e, "offset commit failed");
            }
        }
    }

    async fn group_members(&self, topic: &str) -> Result<Vec<String>> {
        let master = |route: &proto::remoting::body::TopicRouteData| {
            let addr = route.broker_datas.iter().find_map(|b| b.master_addr());
            addr.map(str::to_string)
        };
        let mut addr = master(&self.instance.route(topic).await?);
        if addr.is_none() {
            // Cached during an election: ask the name servers again.
            addr = master(&self.instance.refresh_route(topic).await?);
        }
        let addr = addr.ok_or_else(|| ClientError::NoRoute(topic.to_string()))?;
        let request = RemotingCommand::request(request::GET_CONSUMER_LIST_BY_GROUP)
            .with_ext("consumerGroup", &self.settings.group);
        let response = self.instance.invoke_ok(&addr, request).await?;
        let mut ids = from_json::<ConsumerListBody>(&response.body)?.consumer_id_list;
        ids.sort();
        Ok(ids)
    }

    /// Recomputes this instance's queues and starts or stops their pull tasks.
    async fn rebalance(self: &Arc<Self>) {
        if self.stopped.load(Ordering::Acquire) {
            return;
        }
        let mut wanted = Vec::new();
        let mut unrouted = false;
        for topic in self.settings.subscriptions.keys() {
            let route = match self.instance.route(topic).await {
                Ok(route) => route,
                Err(e) => {
                    unrouted = true;
                    tracing::warn!(client = %self.instance.client_id, %topic, error = %e, "rebalance: no route; keeping the current queues");
                    let assigned = self.assigned.lock().expect("assigned poisoned");
                    wanted.extend(assigned.keys().filter(|q| &q.topic == topic).cloned());
                    continue;
                }
            };
            let queues = read_queues(topic, &route);
            if !self.clustering() {
                wanted.extend(queues);
                continue;
            }
            match self.group_members(topic).await {
                Ok(ids) => {
                    let mine = allocate_averagely(&queues, &ids, &self.instance.client_id);
                    tracing::debug!(client = %self.instance.client_id, ?ids, queues = ?mine.iter().map(|q| q.queue_id).collect::<Vec<_>>(), "rebalance");
                    wanted.extend(mine)
                }
                Err(e) => {
                    tracing::warn!(%topic, error = %e, "rebalance: cannot list the group; keeping the current queues");
                    let assigned = self.assigned.lock().expect("assigned poisoned");
                    wanted.extend(assigned.keys().filter(|q| &q.topic == topic).cloned());
                }
            }
        }
        if unrouted {
            // Maybe this group's retry topic, which a master creates on the group's
            // heartbeat: one sent with routes cached during an election reached no
            // master. Heartbeat again with fresh routes.
            self.instance.refresh_all_routes().await;
            self.heartbeat().await;
        }
        let removed: Vec<(MessageQueue, JoinHandle<()>)> = {
            let mut assigned = self.assigned.lock().expect("assigned poisoned");
            let gone: Vec<MessageQueue> = assigned
                .keys()
                .filter(|q| !wanted.contains(q))
                .cloned()
                .collect();
            gone.into_iter()
                .filter_map(|q| assigned.remove(&q).map(|t| (q, t)))
                .collect()
        };
        for (queue, task) in removed {
            task.abort();
            let _ = task.await;
            let offset = self
                .offsets
                .lock()
                .expect("offsets poisoned")
                .remove(&queue);
            if let (true, Some(offset)) = (self.clustering(), offset) {
                let _ =
                    commit_consumer_offset(&self.instance, &self.settings.group, &queue, offset)
                        .await;
            }
            if self.settings.orderly && self.clustering() {
                self.unlock(&queue).await;
            }
            tracing::info!(client = %self.instance.client_id, ?queue, "queue moved away in rebalance");
        }
        for queue in wanted {
            if self
                .assigned
                .lock()
                .expect("assigned poisoned")
                .contains_key(&queue)
            {
                continue;
            }
            let offset = match self.start_offset(&queue).await {
                Ok(offset) => offset,
                Err(e) => {
                    tracing::warn!(?queue, error = %e, "rebalance: no start offset; retrying later");
                    continue;
                }
            };
            tracing::info!(client = %self.instance.client_id, ?queue, offset, "queue assigned in rebalance");
            self.offsets
                .lock()
                .expect("offsets poisoned")
                .insert(queue.clone(), offset);
            let task = tokio::spawn(self.clone().run_queue(queue.clone()));
            self.assigned
                .lock()
                .expect("assigned poisoned")
                .insert(queue, task);
        }
    }

    async fn start_offset(&self, queue: &MessageQueue) -> Result<u64> {
        if self.clustering() {
            if let Some(offset) =
                fetch_consumer_offset(&self.instance, &self.settings.group, queue).await?
            {
                return Ok(offset);
            }
        }
        match self.settings.from_where {
            ConsumeFromWhere::FirstOffset => Ok(0),
            ConsumeFromWhere::LastOffset => {
                let addr = self
                    .instance
                    .any_addr(&queue.broker_name)
                    .ok_or_else(|| ClientError::NoRoute(queue.topic.clone()))?;
                let request = RemotingCommand::request(request::GET_MAX_OFFSET)
                    .with_ext("topic", &queue.topic)
                    .with_ext("queueId", queue.queue_id);
                let response = self.instance.invoke_ok(&addr, request).await?;
                Ok(response.ext_parse("offset")?)
            }
        }
    }

    /// A LOCK_BATCH_MQ or UNLOCK_BATCH_MQ request for one queue.
    fn lock_request(&self, code: i32, queue: &MessageQueue) -> RemotingCommand {
        let body = LockBatchBody {
            consumer_group: self.settings.group.clone(),
            client_id: self.instance.client_id.clone(),
            only_this_broker: true,
            mq_set: vec![queue.clone()],
        };
        RemotingCommand::request(code).with_body(to_json(&body))
    }

    async fn lock(&self, queue: &MessageQueue) -> bool {
        let Some(addr) = self.instance.master_addr(&queue.broker_name) else {
            return false;
        };
        let request = self.lock_request(request::LOCK_BATCH_MQ, queue);
        match self.instance.invoke_ok(&addr, request).await {
            Ok(response) => from_json::<LockBatchResponseBody>(&response.body)
                .is_ok_and(|r| r.lock_ok_mq_set.contains(queue)),
            Err(_) => false,
        }
    }

    async fn unlock(&self, queue: &MessageQueue) {
        let Some(addr) = self.instance.master_addr(&queue.broker_name) else {
            return;
        };
        let request = self.lock_request(request::UNLOCK_BATCH_MQ, queue);
        let _ = self.instance.invoke(&addr, request).await;
    }

    /// Pulls and consumes one queue until the task is aborted.
    async fn run_queue(self: Arc<Self>, queue: MessageQueue) {
        let filter = self.settings.subscriptions[&queue.topic].clone();
        let orderly = self.settings.orderly && self.clustering();
        let mut locked_until = tokio::time::Instant::now();
        loop {
            if orderly && tokio::time::Instant::now() >= locked_until {
                if !self.lock(&queue).await {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
                // The broker holds a lock for 60 s; renew well before.
                locked_until = tokio::time::Instant::now() + Duration::from_secs(20);
            }
            let Some(offset) = self
                .offsets
                .lock()
                .expect("offsets poisoned")
                .get(&queue)
                .copied()
            else {
                return;
            };
            let request = PullRequest {
                group: &self.settings.group,
                queue: &queue,
                filter: &filter,
                offset,
                max_nums: self.settings.pull_batch_size,
                suspend: Some(self.settings.long_poll),
                commit_offset: self.clustering().then_some(offset),
            };
            #[cfg_attr(not(feature = "fault-injection"), allow(unused_mut))]
            let mut result = match pull(&self.instance, request).await {
                Ok(result) => result,
                Err(e) => {
                    tracing::debug!(?queue, error = %e, "pull failed; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            if result.status == PullStatus::Found {
                #[cfg(feature = "fault-injection")]
                self.planted_bugs(&queue, &mut result).await;
                for m in &mut result.messages {
                    restore_retry_topic(m, &self.settings.group);
                }
                for batch in result.messages.chunks(self.settings.consume_batch_max) {
                    self.consume(&queue, batch).await;
                    let next = batch.last().expect("non-empty batch").queue_offset + 1;
                    self.advance(&queue, next);
                }
            }
            if result.status == PullStatus::OffsetIllegal {
                // The broker names where the queue really is (e.g. after retention).
                tracing::warn!(
                    ?queue,
                    offset,
                    next = result.next_begin_offset,
                    "offset moved"
                );
                self.offsets
                    .lock()
                    .expect("offsets poisoned")
                    .insert(queue.clone(), result.next_begin_offset);
            } else {
                self.advance(&queue, result.next_begin_offset);
            }
        }
    }

    /// Calls the listener until it is done with `batch`: it succeeded, or what it failed
    /// is back with the broker.
    async fn consume(&self, queue: &MessageQueue, batch: &[MessageExt]) {
        let mut pending = std::borrow::Cow::Borrowed(batch);
        while (self.listener)(&pending) == ConsumeResult::Later {
            if self.settings.sends_back() {
                let failed = self.send_back(queue, &pending).await;
                if failed.is_empty() {
                    return;
                }
                pending = std::borrow::Cow::Owned(failed);
            }
            // Consumed again here: counted as a reconsumption, as Java's consumer counts
            // a message it could not send back and an orderly one it suspends.
            for m in pending.to_mut() {
                m.reconsume_times += 1;
            }
            tokio::time::sleep(self.settings.retry_delay).await;
        }
    }

    /// Sends each message back to the master of the group it was pulled from; returns
    /// those it would not take.
    async fn send_back(&self, queue: &MessageQueue, messages: &[MessageExt]) -> Vec<MessageExt> {
        let mut failed = Vec::new();
        for m in messages {
            let group = &self.settings.group;
            let request = send_back_request(m, group, self.settings.max_reconsume_times);
            let sent = match self.instance.master_addr(&queue.broker_name) {
                Some(addr) => self.instance.invoke_ok(&addr, request).await.map(drop),
                None => Err(ClientError::NoMaster(queue.broker_name.clone())),
            };
            let Err(e) = sent else { continue };
            // As Java's consumer: the copy goes to the retry topic through a producer.
            let copy = fallback_copy(m, group, self.settings.max_reconsume_times);
            match self.retry_producer.send(copy).await {
                Ok(r) if r.status == crate::producer::SendStatus::Ok => {
                    tracing::info!(?queue, msg_id = %m.msg_id, error = %e, "send-back refused; sent to the retry topic instead");
                }
                outcome => {
                    let why = outcome.map_or_else(|e| e.to_string(), |r| format!("{:?}", r.status));
                    tracing::warn!(?queue, msg_id = %m.msg_id, error = %e, retry = why, "send-back failed; consuming it again");
                    failed.push(m.clone());
                }
            }
        }
        if !failed.is_empty() {
            // The master may have moved: ask the name servers before trying again.
            let _ = self.instance.refresh_route(&queue.topic).await;
        }
        failed
    }

    /// PLANTED BUGS (see `crate::plant`): commit before processing, or reverse the
    /// batch.
    #[cfg(feature = "fault-injection")]
    async fn planted_bugs(&self, queue: &MessageQueue, result: &mut crate::pull::PullResult) {
        if crate::plant::early_offset_commit() && self.clustering() {
            if let Some(last) = result.messages.last() {
                let next = last.queue_offset + 1;
                let group = &self.settings.group;
                let _ = commit_consumer_offset(&self.instance, group, queue, next).await;
                // "Processing" takes a while; a crash now loses the batch.
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        }
        if crate::plant::out_of_order_delivery() {
            result.messages.reverse();
        }
    }

    /// Moves the queue's offset forward (never back: a long poll's reply cannot undo
    /// consumption that happened meanwhile).
    fn advance(&self, queue: &MessageQueue, next: u64) {
        if let Some(offset) = self
            .offsets
            .lock()
            .expect("offsets poisoned")
            .get_mut(queue)
        {
            *offset = (*offset).max(next);
        }
    }
}
