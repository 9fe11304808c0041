//! Retry and dead-letter topics (RocketMQ's `%RETRY%group` and `%DLQ%group`) and delayed
//! delivery through `SCHEDULE_TOPIC_XXXX`.
//!
//! A consumer that fails a message sends it back (CONSUMER_SEND_MSG_BACK). The broker
//! stores a copy in the schedule topic's queue for its delay level; a delivery task per
//! level moves each copy to `%RETRY%group` once its delay has passed, and the group's
//! consumers (which subscribe to their retry topic) get it again. After
//! `maxReconsumeTimes` (default 16) the copy goes to `%DLQ%group` instead.
//!
//! A producer's own `DELAY` level takes the same way: the send is stored in the schedule
//! topic's queue for that level and delivered to its topic and queue once due.
//!
//! Everything is durable before it is acknowledged: the send-back is answered after the
//! copy is stored, and a delivery task advances its (persisted) offset only after the
//! copy reached the retry topic, so a crash can repeat a delivery but never lose one.

use std::sync::Arc;
use std::time::Duration;

use proto::message::DecodeError;
use proto::remoting::body::perm;
use proto::remoting::codes::response;
use proto::remoting::{ProtoError, RemotingCommand};
use proto::{MessageRef, NewMessage};
use store::meta::{MetaStore, TopicConfig};
use store::{Disk, GetStatus, StoreError};

use super::park::{park, unpark};
use super::write::{put_error, PutError};
use super::{ok, store_error, Broker};

pub use proto::names::{DLQ_PREFIX, RETRY_PREFIX, SCHEDULE_TOPIC};
/// The offsets of the delivery tasks are kept as this group's consumer offsets.
pub(super) const SCHEDULE_GROUP: &str = "%SCHEDULE%";

/// RocketMQ's default `messageDelayLevel` (the broker's `message_delay_level`):
/// "1s 5s 10s 30s 1m 2m 3m 4m 5m 6m 7m 8m 9m 10m 20m 30m 1h 2h".
pub const DELAY_LEVELS_MS: [u64; 18] = [
    1_000, 5_000, 10_000, 30_000, 60_000, 120_000, 180_000, 240_000, 300_000, 360_000, 420_000,
    480_000, 540_000, 600_000, 1_200_000, 1_800_000, 3_600_000, 7_200_000,
];

/// `MQVersion.Version.V3_4_9.ordinal()`: the first client version whose send-back bound
/// Java's broker honours.
const MQ_VERSION_V3_4_9: i32 = 121;

/// RocketMQ's default `maxReconsumeTimes`.
const MAX_RECONSUME_TIMES: i32 = 16;

mod property {
    pub use proto::properties::keys::{DELAY, ORIGIN_MESSAGE_ID, RETRY_TOPIC};
}

/// A producer's delayed message (`DELAY` level 1, 2, ... of `message_delay_level`)
/// goes to the schedule topic's queue for its level, with its topic and queue kept in
/// `REAL_TOPIC` / `REAL_QID`, as Java's `CommitLog.asyncPutMessage` does; the level's
/// delivery task moves it to its topic once due. Returns the queue it was sent to when it
/// was rescheduled. A level above the highest is the highest, as in Java; a level that
/// is not a number is refused (Java would throw on it).
pub(super) fn schedule_if_delayed(
    message: &mut NewMessage,
    levels: usize,
) -> Result<Option<u32>, BadDelayLevel> {
    let Some(level) = message.properties.get(property::DELAY) else {
        return Ok(None);
    };
    let level: i32 = level
        .trim()
        .parse()
        .map_err(|_| BadDelayLevel(level.to_string()))?;
    if level <= 0 || message.topic == SCHEDULE_TOPIC {
        return Ok(None);
    }
    let level = level.min(levels as i32);
    message
        .properties
        .insert(property::DELAY, level.to_string());
    Ok(Some(park(message, SCHEDULE_TOPIC, (level - 1) as u32)))
}

/// PLANTED BUG (`fault-injection` builds only), which the simulator's checkers must
/// catch: scheduled messages are delivered at once, whatever their delay.
#[cfg(feature = "fault-injection")]
pub fn plant_deliver_delayed_early() {
    DELIVER_EARLY.store(true, std::sync::atomic::Ordering::Relaxed);
}

#[cfg(feature = "fault-injection")]
static DELIVER_EARLY: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// PLANTED BUG (`fault-injection` builds only), which the simulator's checkers must
/// catch: a send-back is answered SUCCESS and never stored.
#[cfg(feature = "fault-injection")]
pub fn plant_drop_send_back() {
    DROP_SEND_BACK.store(true, std::sync::atomic::Ordering::Relaxed);
}

#[cfg(feature = "fault-injection")]
static DROP_SEND_BACK: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// A producer's `DELAY` property that is not a number.
#[derive(Debug, PartialEq, thiserror::Error)]
#[error("property DELAY {0:?} is not a delay level (a number: 1 is the shortest)")]
pub(super) struct BadDelayLevel(String);

/// Why a delay level's delivery round stopped; the task logs it and tries again.
#[derive(Debug, thiserror::Error)]
enum DeliveryError {
    #[error("reading the schedule queue: {0}")]
    Read(#[from] StoreError),
    #[error("a scheduled message is malformed: {0}")]
    Malformed(#[from] DecodeError),
    #[error("moving a due message to its topic: {0}")]
    Deliver(#[source] PutError),
    #[error("saving the delivery offset: {0}")]
    SaveOffset(#[source] PutError),
}

/// The delay level a sent-back message waits at: the one the consumer asked for, else,
/// as Java's broker does, 3 + the times it was already reconsumed (10 s, then 30 s, 1 min,
/// ...), within the levels there are.
fn retry_delay_level(requested: i32, reconsumed_before: i32, levels: usize) -> i32 {
    let level = if requested == 0 {
        3 + reconsumed_before
    } else {
        requested
    };
    level.clamp(1, levels as i32)
}

impl<D: Disk, M: MetaStore> Broker<D, M> {
    /// Creates `topic` with one queue if it does not exist; registers at once if it did not.
    pub(super) async fn ensure_group_topic(&self, topic: &str) -> Result<(), PutError> {
        if self.topics.get(topic).is_some() {
            return Ok(());
        }
        let config = TopicConfig {
            topic_name: topic.to_string(),
            read_queue_nums: 1,
            write_queue_nums: 1,
            perm: perm::READ_WRITE,
            order: false,
        };
        self.put_topic(config).await?;
        tracing::info!(topic, "created group topic");
        self.register_all().await;
        Ok(())
    }

    /// How often `group`'s messages are reconsumed before they are dead letters: the
    /// request's bound, else the group's `retry_max_times`, else RocketMQ's 16. As Java's
    /// broker does, the request's counts only from clients of V3_4_9 on: the C++ client
    /// (V3_1_8) has no setting for it, and its users cap retries per group.
    pub(super) fn max_reconsume_times(
        &self,
        group: &str,
        client_version: i32,
        from_request: Option<i32>,
    ) -> i32 {
        match from_request.filter(|_| client_version >= MQ_VERSION_V3_4_9) {
            Some(n) => n,
            None => self
                .subscription_group(group)
                .map_or(MAX_RECONSUME_TIMES, |g| {
                    i32::try_from(g.retry_max_times).unwrap_or(i32::MAX)
                }),
        }
    }

    /// A consumer's own copy for its retry topic (sent when the broker refused its
    /// send-back) goes to the group's dead-letter topic once reconsumed more than the
    /// bound, as Java's `handleRetryAndDLQ` sends it. Returns whether it did.
    pub(super) async fn dead_letter_if_spent(
        &self,
        message: &mut NewMessage,
        client_version: i32,
        max_from_request: Option<i32>,
    ) -> Result<bool, PutError> {
        let Some(group) = message.topic.strip_prefix(RETRY_PREFIX) else {
            return Ok(false);
        };
        let max = self.max_reconsume_times(group, client_version, max_from_request);
        if message.reconsume_times <= max {
            return Ok(false);
        }
        let dlq = format!("{DLQ_PREFIX}{group}");
        self.ensure_group_topic(&dlq).await?;
        message.topic = dlq;
        message.queue_id = 0;
        message.properties.remove(property::DELAY);
        Ok(true)
    }

    /// CONSUMER_SEND_MSG_BACK.
    pub(super) async fn send_back(
        &self,
        req: &RemotingCommand,
    ) -> Result<RemotingCommand, ProtoError> {
        let offset: u64 = req.ext_parse("offset")?;
        let group: String = req.ext_parse("group")?;
        let delay_level: i32 = req.ext_parse_opt("delayLevel")?.unwrap_or(0);
        let max_reconsume =
            self.max_reconsume_times(&group, req.version, req.ext_parse_opt("maxReconsumeTimes")?);
        if let Err(e) = proto::names::validate_name("group", &group) {
            return Ok(RemotingCommand::response_to(
                req,
                response::SYSTEM_ERROR,
                Some(e),
            ));
        }
        let bytes = match self.store.message_at(offset).await {
            Ok(Some(bytes)) => bytes,
            Ok(None) => {
                let remark = format!("no message at CommitLog offset {offset} to send back");
                return Ok(RemotingCommand::response_to(
                    req,
                    response::SYSTEM_ERROR,
                    Some(remark),
                ));
            }
            Err(e) => return Ok(store_error(req, &e)),
        };
        let stored = MessageRef::parse(&bytes).map_err(|e| ProtoError::Malformed(e.to_string()))?;
        let mut message = stored.to_new_message();
        let reconsume = message.reconsume_times + 1;
        message.reconsume_times = reconsume;
        if message.properties.get(property::RETRY_TOPIC).is_none() {
            message
                .properties
                .insert(property::RETRY_TOPIC, stored.topic());
        }
        let origin = req
            .ext("originMsgId")
            .map(str::to_string)
            .unwrap_or_else(|| stored.offset_msg_id().to_string());
        if proto::properties::holds_separator(&origin) {
            let remark = format!("originMsgId {origin:?} holds a property separator");
            return Ok(RemotingCommand::response_to(
                req,
                response::MESSAGE_ILLEGAL,
                Some(remark),
            ));
        }
        message
            .properties
            .insert(property::ORIGIN_MESSAGE_ID, origin);
        let retry_topic = format!("{RETRY_PREFIX}{group}");
        if reconsume > max_reconsume || delay_level < 0 {
            let dlq = format!("{DLQ_PREFIX}{group}");
            if let Err(e) = self.ensure_group_topic(&dlq).await {
                return Ok(put_error(req, &e));
            }
            message.topic = dlq;
            message.queue_id = 0;
        } else {
            if let Err(e) = self.ensure_group_topic(&retry_topic).await {
                return Ok(put_error(req, &e));
            }
            let level = retry_delay_level(delay_level, reconsume - 1, self.delay_levels_ms.len());
            message
                .properties
                .insert(property::DELAY, level.to_string());
            message.topic = retry_topic;
            message.queue_id = 0;
            park(&mut message, SCHEDULE_TOPIC, (level - 1) as u32);
        }
        let scheduled = message.topic == SCHEDULE_TOPIC;
        #[cfg(feature = "fault-injection")]
        if DROP_SEND_BACK.load(std::sync::atomic::Ordering::Relaxed) {
            return Ok(ok(req));
        }
        match self.put_messages(vec![message]).await {
            Ok(_) => {
                if scheduled {
                    self.scheduled.send_modify(|v| *v += 1);
                }
                Ok(ok(req))
            }
            Err(e) => Ok(put_error(req, &e)),
        }
    }

    /// Moves due messages of one delay level's queue to their real topic, forever.
    pub(super) async fn run_delivery(self: Arc<Self>, level_index: usize) {
        let queue_id = level_index as u32;
        let delay_ms = self.delay_levels_ms[level_index] as i64;
        // Woken by newly scheduled messages only: waking the 18 levels on every arrival
        // in the store cost more CPU than the sends themselves (a sled read and a
        // ConsumeQueue read per level per message).
        let mut scheduled = self.scheduled.subscribe();
        loop {
            scheduled.borrow_and_update();
            let wait = match self.deliver_due(queue_id, delay_ms).await {
                Ok(wait) => wait,
                Err(e) => {
                    tracing::warn!(level = level_index + 1, error = %e, "delayed delivery failed; retrying");
                    Duration::from_secs(1)
                }
            };
            let _ = tokio::time::timeout(wait, scheduled.changed()).await;
        }
    }

    /// Scheduled messages not yet moved to their topic, over every delay level.
    pub(super) fn delayed_pending(&self) -> u64 {
        (0..self.delay_levels_ms.len() as u32)
            .map(|queue_id| {
                let end = self.store.max_offset(SCHEDULE_TOPIC, queue_id);
                let delivered = self
                    .consumer_offset(SCHEDULE_GROUP, SCHEDULE_TOPIC, queue_id)
                    .ok()
                    .flatten()
                    .unwrap_or(0);
                end.saturating_sub(delivered)
            })
            .sum()
    }

    /// Delivers what is due; returns how long to wait before looking again.
    async fn deliver_due(&self, queue_id: u32, delay_ms: i64) -> Result<Duration, DeliveryError> {
        #[cfg(feature = "fault-injection")]
        let delay_ms = if DELIVER_EARLY.load(std::sync::atomic::Ordering::Relaxed) {
            0
        } else {
            delay_ms
        };
        let idle = Duration::from_secs(1);
        if self.replica.as_ref().is_some_and(|r| !r.is_master()) {
            return Ok(idle); // Only a group's master delivers.
        }
        let mut offset = self
            .consumer_offset(SCHEDULE_GROUP, SCHEDULE_TOPIC, queue_id)?
            .unwrap_or(0);
        let got = self
            .store
            .get_messages(SCHEDULE_TOPIC, queue_id, offset, 32, |_| true)
            .await?;
        match got.status {
            GetStatus::Found => {}
            GetStatus::OffsetTooSmall | GetStatus::OffsetOverflowBadly => {
                self.commit_offset(SCHEDULE_GROUP, SCHEDULE_TOPIC, queue_id, got.next_offset)
                    .await
                    .map_err(DeliveryError::SaveOffset)?;
                return Ok(Duration::ZERO);
            }
            _ => return Ok(idle),
        }
        for bytes in &got.messages {
            let stored = MessageRef::parse(bytes)?;
            let due_ms = stored.store_timestamp_ms() + delay_ms;
            let now_ms = proto::clock::now_ms();
            if now_ms < due_ms {
                return Ok(Duration::from_millis((due_ms - now_ms) as u64).min(idle));
            }
            let mut message = stored.to_new_message();
            if unpark(&mut message) {
                message.properties.remove(property::DELAY);
                self.put_messages(vec![message])
                    .await
                    .map_err(DeliveryError::Deliver)?;
            } else {
                tracing::warn!(
                    offset = stored.physical_offset(),
                    "scheduled message without a real topic; dropped"
                );
            }
            offset = stored.queue_offset() + 1;
            self.commit_offset(SCHEDULE_GROUP, SCHEDULE_TOPIC, queue_id, offset)
                .await
                .map_err(DeliveryError::SaveOffset)?;
        }
        Ok(Duration::ZERO)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delayed(level: &str) -> NewMessage {
        let mut m = NewMessage::new("Orders", 3, "body");
        m.properties.insert(property::DELAY, level);
        m
    }

    #[test]
    fn a_delayed_send_goes_to_its_levels_schedule_queue() {
        let mut m = delayed("2");
        assert_eq!(schedule_if_delayed(&mut m, 18), Ok(Some(3)));
        assert_eq!(m.topic, SCHEDULE_TOPIC);
        assert_eq!(m.queue_id, 1);
        assert_eq!(
            m.properties.get(super::super::park::REAL_TOPIC),
            Some("Orders")
        );
        assert_eq!(
            m.properties.get(super::super::park::REAL_QUEUE_ID),
            Some("3")
        );
        let mut top = delayed("40");
        assert_eq!(schedule_if_delayed(&mut top, 18), Ok(Some(3)));
        assert_eq!(top.queue_id, 17);
        assert_eq!(top.properties.get(property::DELAY), Some("18"));
        for not_delayed in ["0", "-1"] {
            let mut m = delayed(not_delayed);
            assert_eq!(schedule_if_delayed(&mut m, 18), Ok(None));
            assert_eq!(m.topic, "Orders");
        }
        let mut plain = NewMessage::new("Orders", 3, "body");
        assert_eq!(schedule_if_delayed(&mut plain, 18), Ok(None));
        let e = schedule_if_delayed(&mut delayed("soon"), 18).unwrap_err();
        assert_eq!(e, BadDelayLevel("soon".into()));
        assert!(e.to_string().contains("DELAY \"soon\""), "{e}");
    }

    #[test]
    fn a_default_retry_waits_as_java_does() {
        // First send-back of a message never reconsumed: level 3 (10 s), as
        // `3 + msgExt.getReconsumeTimes()` in Java's SendMessageProcessor.
        assert_eq!(retry_delay_level(0, 0, 18), 3);
        assert_eq!(
            DELAY_LEVELS_MS[retry_delay_level(0, 0, 18) as usize - 1],
            10_000
        );
        assert_eq!(retry_delay_level(0, 1, 18), 4);
        assert_eq!(retry_delay_level(0, 40, 18), 18);
        assert_eq!(retry_delay_level(1, 5, 18), 1);
        assert_eq!(retry_delay_level(99, 0, 18), 18);
        assert_eq!(retry_delay_level(0, 0, 2), 2);
        let default = crate::config::parse_delay_levels(crate::config::DEFAULT_MESSAGE_DELAY_LEVEL);
        assert_eq!(default.unwrap(), DELAY_LEVELS_MS);
    }
}
