//! `Producer` (RocketMQ `DefaultMQProducer`).
//!
//! Queue selection is round robin over the topic's writable queues, skipping broker
//! groups that failed in the last `broker_backoff` (RocketMQ's latency fault tolerance).
//! A sync send that fails fast (connection error, broker busy) is retried on another
//! group up to `retries` times; a timeout is not retried, since the first attempt may
//! have been stored. A send whose master was replaced while it waited is retried at
//! once at the new master (at least once: the first attempt may still be stored). Ordered sends pick their queue with a selector and never move.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use proto::remoting::batch::{self, BatchEntry};
use proto::remoting::body::MessageQueue;
use proto::remoting::codes::response;
use proto::remoting::header::SendMessageHeader;
use proto::remoting::RemotingCommand;

use crate::config::ClientConfig;
use crate::error::{ClientError, Result};
use crate::instance::{write_queues, ClientInstance, AUTO_CREATE_TOPIC};
use crate::message::Message;
use proto::net::rpc::RpcError;

/// The property that makes a send a transaction's half message.
pub(crate) const TRAN_MSG: &str = "TRAN_MSG";
/// `MessageSysFlag.TRANSACTION_PREPARED_TYPE`, set on a half message's send.
const TRANSACTION_PREPARED_TYPE: i32 = 0x4;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendStatus {
    Ok,
    /// Stored, but the broker's fsync did not finish in time: may not be durable.
    FlushDiskTimeout,
    /// Stored on the master, but a slave did not confirm in time.
    FlushSlaveTimeout,
    SlaveNotAvailable,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SendResult {
    pub status: SendStatus,
    /// The producer-assigned unique id (UNIQ_KEY); comma-separated for a batch.
    pub msg_id: String,
    /// Store host and CommitLog offset, as the broker assigned them.
    pub offset_msg_id: String,
    pub queue: MessageQueue,
    pub queue_offset: u64,
    /// A half message's transaction id, as the broker answered it.
    pub transaction_id: Option<String>,
}

pub struct Producer {
    group: String,
    instance: Arc<ClientInstance>,
    next_queue: AtomicUsize,
    unique: AtomicU64,
    /// The client id, hashed: the first part of every unique id.
    client_hash: u32,
    /// Broker group → when it last failed.
    failed: Mutex<BTreeMap<String, Instant>>,
    /// Sends that fail fast are retried this many times on another group.
    pub retries: usize,
    pub broker_backoff: Duration,
}

impl Producer {
    pub fn new(group: impl Into<String>, config: ClientConfig) -> Self {
        Producer::with_instance(group, ClientInstance::new(config, None))
    }

    pub fn with_instance(group: impl Into<String>, instance: Arc<ClientInstance>) -> Self {
        let client_hash = proto::hash::java_string_hash(&instance.client_id) as u32;
        Producer {
            group: group.into(),
            instance,
            next_queue: AtomicUsize::new(0),
            unique: AtomicU64::new(0),
            client_hash,
            failed: Mutex::default(),
            retries: 2,
            broker_backoff: Duration::from_secs(30),
        }
    }

    pub fn instance(&self) -> &Arc<ClientInstance> {
        &self.instance
    }

    pub fn group(&self) -> &str {
        &self.group
    }

    /// A unique message id: this producer, the time and a counter, as 32 hex digits
    /// (the shape of RocketMQ's `MessageClientIDSetter`). The first 8 digits hash the
    /// client id (its pid, instance name and instance number), the next 4 are the pid:
    /// two producers of one process, or the simulator's hosts (all in one process),
    /// never share ids. Brokers key transactions by this id.
    fn unique_id(&self) -> String {
        use std::fmt::Write;
        let n = self.unique.fetch_add(1, Ordering::Relaxed);
        // Simulated hosts share one OS process whose id changes from run to run.
        #[cfg(madsim)]
        let pid = 0u32;
        // Cached: `getpid` is a system call, and this runs once per message.
        #[cfg(not(madsim))]
        let pid = {
            static PID: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
            *PID.get_or_init(std::process::id)
        };
        let client = self.client_hash;
        let start = proto::clock::now_ms();
        let mut id = String::with_capacity(32);
        let _ = write!(
            id,
            "{client:08X}{:04X}{:012X}{:08X}",
            pid & 0xFFFF,
            start as u64 & 0xFFFF_FFFF_FFFF,
            n as u32
        );
        id
    }

    /// The topic's writable queues, falling back to the auto-create topic's route.
    /// A cached route without a master (one is being elected) is fetched again.
    async fn queues(&self, topic: &str) -> Result<Arc<Vec<MessageQueue>>> {
        match self.instance.cached_write_queues(topic).await {
            Ok(queues) if queues.is_empty() => {
                self.instance.refresh_route(topic).await?;
                self.instance.cached_write_queues(topic).await
            }
            Ok(queues) => Ok(queues),
            Err(ClientError::NoRoute(_)) => {
                let mut route = self
                    .instance
                    .route(AUTO_CREATE_TOPIC)
                    .await
                    .map_err(|_| ClientError::NoRoute(topic.into()))?;
                if write_queues(AUTO_CREATE_TOPIC, &route).is_empty() {
                    route = self
                        .instance
                        .refresh_route(AUTO_CREATE_TOPIC)
                        .await
                        .map_err(|_| ClientError::NoRoute(topic.into()))?;
                }
                Ok(Arc::new(
                    write_queues(AUTO_CREATE_TOPIC, &route)
                        .into_iter()
                        .map(|mq| MessageQueue {
                            topic: topic.to_string(),
                            ..mq
                        })
                        .filter(|mq| mq.queue_id < 4)
                        .collect(),
                ))
            }
            Err(e) => Err(e),
        }
    }

    fn pick<'q>(&self, queues: &'q [MessageQueue], avoid: Option<&str>) -> &'q MessageQueue {
        let now = Instant::now();
        let failed = self.failed.lock().expect("failed poisoned");
        let healthy = |mq: &MessageQueue| {
            avoid != Some(mq.broker_name.as_str())
                && failed
                    .get(&mq.broker_name)
                    .is_none_or(|at| now.duration_since(*at) > self.broker_backoff)
        };
        let start = self.next_queue.fetch_add(1, Ordering::Relaxed);
        (0..queues.len())
            .map(|i| &queues[(start + i) % queues.len()])
            .find(|mq| healthy(mq))
            .unwrap_or(&queues[start % queues.len()])
    }

    /// Sends and waits for the broker's acknowledgement.
    pub async fn send(&self, message: Message) -> Result<SendResult> {
        let queues = self.queues(&message.topic).await?;
        if queues.is_empty() {
            return Err(ClientError::NoRoute(message.topic.clone()));
        }
        let mut avoid: Option<String> = None;
        let mut last = None;
        for _ in 0..=self.retries {
            let mq = self.pick(&queues, avoid.as_deref());
            match self.send_to(&message, mq).await {
                Ok(result) => return Ok(result),
                // The group has a new master: at it again, with no backoff.
                Err(e @ ClientError::MasterMoved { .. }) => {
                    tracing::debug!(error = %e, "send abandoned; retrying at the new master");
                    avoid = None;
                    last = Some(e);
                }
                Err(e) if retryable(&e) => {
                    tracing::debug!(broker = %mq.broker_name, error = %e, "send failed; trying another broker");
                    self.failed
                        .lock()
                        .expect("failed poisoned")
                        .insert(mq.broker_name.clone(), Instant::now());
                    avoid = Some(mq.broker_name.clone());
                    // A topic not created yet is routed by the auto-create topic's route,
                    // whose master may be the one that just failed.
                    if let Err(ClientError::NoRoute(_)) =
                        self.instance.refresh_route(&message.topic).await
                    {
                        let _ = self.instance.refresh_route(AUTO_CREATE_TOPIC).await;
                    }
                    last = Some(e);
                }
                Err(e) => {
                    if let ClientError::Rpc(RpcError::Timeout { .. }) = e {
                        // Not retried (the send may yet take effect), but the master
                        // may be paused or gone: the next send should go by a fresh
                        // route, not wait out another timeout.
                        let _ = self.instance.refresh_route(&message.topic).await;
                    }
                    return Err(e);
                }
            }
        }
        Err(last.expect("at least one attempt"))
    }

    /// Sends to the queue `selector` picks from the topic's queues (ordered messages:
    /// the same key always maps to the same queue). No retry on another queue.
    pub async fn send_with_selector(
        &self,
        message: Message,
        selector: impl FnOnce(&[MessageQueue]) -> usize,
    ) -> Result<SendResult> {
        let queues = self.queues(&message.topic).await?;
        if queues.is_empty() {
            return Err(ClientError::NoRoute(message.topic.clone()));
        }
        let index = selector(&queues) % queues.len();
        self.send_to(&message, &queues[index]).await
    }

    /// Sends without waiting for an acknowledgement.
    pub async fn send_oneway(&self, message: Message) -> Result<()> {
        let queues = self.queues(&message.topic).await?;
        if queues.is_empty() {
            return Err(ClientError::NoRoute(message.topic.clone()));
        }
        let mq = self.pick(&queues, None);
        let (addr, request, _) = self.request(&message, mq).await?;
        self.instance.pool().invoke_oneway(&addr, request).await?;
        Ok(())
    }

    /// Sends messages of one topic as one batch to one queue.
    pub async fn send_batch(&self, messages: Vec<Message>) -> Result<SendResult> {
        let Some(first) = messages.first() else {
            return Err(ClientError::Invalid("empty batch".into()));
        };
        let topic = first.topic.clone();
        if messages.iter().any(|m| m.topic != topic) {
            return Err(ClientError::Invalid("a batch must have one topic".into()));
        }
        let queues = self.queues(&topic).await?;
        if queues.is_empty() {
            return Err(ClientError::NoRoute(topic));
        }
        let mq = self.pick(&queues, None);
        let ids: Vec<String> = messages.iter().map(|_| self.unique_id()).collect();
        let entries = messages
            .iter()
            .zip(&ids)
            .map(|(m, id)| {
                Ok(BatchEntry {
                    flag: m.flag,
                    body: m.body.clone(),
                    properties: m.encoded_properties(id)?,
                })
            })
            .collect::<Result<Vec<BatchEntry>>>()?;
        let header = self.header(&topic, mq, "", 0, true);
        let addr = self.addr(mq).await?;
        let request = header.to_command().with_body(batch::encode(&entries));
        let response = self.instance.invoke(&addr, request).await?;
        let mut result = send_result(&addr, mq, response)?;
        result.msg_id = ids.join(",");
        Ok(result)
    }

    async fn addr(&self, mq: &MessageQueue) -> Result<String> {
        if let Some(addr) = self.instance.master_addr(&mq.broker_name) {
            return Ok(addr);
        }
        self.instance.refresh_route(AUTO_CREATE_TOPIC).await.ok();
        self.instance
            .master_addr(&mq.broker_name)
            .ok_or_else(|| ClientError::NoRoute(mq.topic.clone()))
    }

    fn header<'a>(
        &'a self,
        topic: &'a str,
        mq: &MessageQueue,
        properties: &'a str,
        flag: i32,
        batch: bool,
    ) -> SendMessageHeader<&'a str> {
        SendMessageHeader {
            producer_group: &self.group,
            topic,
            default_topic: AUTO_CREATE_TOPIC,
            default_topic_queue_nums: 4,
            queue_id: mq.queue_id as i32,
            sys_flag: 0,
            born_timestamp: proto::clock::now_ms(),
            flag,
            properties,
            reconsume_times: 0,
            unit_mode: false,
            batch,
            max_reconsume_times: None,
        }
    }

    /// The send request for `message` to `mq`, the master's address, and the unique id
    /// (UNIQ_KEY) given to the message.
    async fn request(
        &self,
        message: &Message,
        mq: &MessageQueue,
    ) -> Result<(String, RemotingCommand, String)> {
        let id = self.unique_id();
        // A consumer's copy for a retry topic carries its counts as properties, which go
        // into the header, as Java's producer moves them.
        let counts = message
            .topic
            .starts_with(crate::send_back::RETRY_PREFIX)
            .then(|| retry_counts(message));
        let stripped;
        let message = match &counts {
            Some((_, _, without)) => {
                stripped = without.clone();
                &stripped
            }
            None => message,
        };
        let properties = message.encoded_properties(&id)?;
        let mut header = self.header(&message.topic, mq, &properties, message.flag, false);
        if let Some((reconsume_times, max_reconsume_times, _)) = counts {
            header.reconsume_times = reconsume_times;
            header.max_reconsume_times = max_reconsume_times;
        }
        if message
            .properties
            .get(TRAN_MSG)
            .is_some_and(|v| v == "true")
        {
            header.sys_flag = TRANSACTION_PREPARED_TYPE;
        }
        let request = header.to_command().with_body(message.body.clone());
        Ok((self.addr(mq).await?, request, id))
    }

    /// Sends to one queue, once. A send whose master stops answering while the name
    /// servers come to name another is given up as [`ClientError::MasterMoved`] (its
    /// outcome unknown, retried by [`Producer::send`]) rather than left to time out.
    pub async fn send_to(&self, message: &Message, mq: &MessageQueue) -> Result<SendResult> {
        let (addr, request, msg_id) = self.request(message, mq).await?;
        let moved = self
            .instance
            .master_moved(&message.topic, &mq.broker_name, &addr);
        let response = tokio::select! {
            response = self.instance.invoke(&addr, request) => response?,
            to = moved => {
                return Err(ClientError::MasterMoved {
                    broker: mq.broker_name.clone(),
                    from: addr,
                    to,
                })
            }
        };
        let mut result = send_result(&addr, mq, response)?;
        result.msg_id = msg_id;
        Ok(result)
    }
}

/// A retry-topic copy's reconsume times and bound, and the message without them.
fn retry_counts(message: &Message) -> (i32, Option<i32>, Message) {
    let mut without = message.clone();
    let mut take = |name: &str| {
        without
            .properties
            .remove(name)
            .and_then(|v| v.trim().parse::<i32>().ok())
    };
    let reconsume_times = take(crate::send_back::RECONSUME_TIME).unwrap_or(0);
    let max = take(crate::send_back::MAX_RECONSUME_TIMES);
    (reconsume_times, max, without)
}

fn retryable(e: &ClientError) -> bool {
    match e {
        ClientError::Rpc(RpcError::Timeout { .. }) => false,
        ClientError::Rpc(_) => true,
        // Unknown outcome, like a timeout, but the group has a new master to try now.
        ClientError::MasterMoved { .. } => true,
        ClientError::Broker { code, .. } => {
            matches!(
                *code,
                response::SYSTEM_BUSY | response::SERVICE_NOT_AVAILABLE | response::SYSTEM_ERROR
            )
        }
        _ => false,
    }
}

fn send_result(addr: &str, mq: &MessageQueue, response: RemotingCommand) -> Result<SendResult> {
    let status = match response.code {
        response::SUCCESS => SendStatus::Ok,
        response::FLUSH_DISK_TIMEOUT => SendStatus::FlushDiskTimeout,
        response::FLUSH_SLAVE_TIMEOUT => SendStatus::FlushSlaveTimeout,
        response::SLAVE_NOT_AVAILABLE => SendStatus::SlaveNotAvailable,
        code => {
            return Err(ClientError::Broker {
                addr: addr.to_string(),
                code,
                remark: response.remark.unwrap_or_default(),
            })
        }
    };
    let queue_id: u32 = response.ext_parse("queueId")?;
    Ok(SendResult {
        status,
        msg_id: String::new(),
        offset_msg_id: response.ext("msgId").unwrap_or_default().to_string(),
        queue: MessageQueue {
            queue_id,
            ..mq.clone()
        },
        queue_offset: response.ext_parse("queueOffset")?,
        transaction_id: response.ext("transactionId").map(str::to_string),
    })
}
