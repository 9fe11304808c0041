//! Messages the broker parks in a system queue of its own until it moves them on: a
//! delayed message (a `DELAY` level, in `SCHEDULE_TOPIC_XXXX`), a timer message (in
//! `rmq_sys_wheel_timer`) and a transaction's half message. A parked message keeps its
//! topic and queue in `REAL_TOPIC` / `REAL_QID`, as in Java.
//!
//! [`Broker::park_if_later`] is where a message meant for later delivery is parked, for
//! a producer's send and for a committed transaction alike.

use proto::NewMessage;
use store::meta::MetaStore;
use store::Disk;

use super::retry::{schedule_if_delayed, BadDelayLevel};
use super::timer::{schedule_if_timer, BadTimer, Placed};
use super::Broker;

pub use proto::properties::keys::{REAL_QUEUE_ID, REAL_TOPIC};

/// Moves `message` to `queue_id` of `system_topic`, keeping where it was sent; returns
/// the queue it was sent to.
pub(super) fn park(message: &mut NewMessage, system_topic: &str, queue_id: u32) -> u32 {
    let real_queue = message.queue_id;
    message
        .properties
        .insert(REAL_TOPIC, message.topic.as_str());
    message
        .properties
        .insert(REAL_QUEUE_ID, real_queue.to_string());
    message.topic = system_topic.to_string();
    message.queue_id = queue_id;
    real_queue
}

/// Sends a parked message back to its topic and queue, dropping `REAL_TOPIC` /
/// `REAL_QID`; returns false, the message unchanged, when they do not say where.
pub(super) fn unpark(message: &mut NewMessage) -> bool {
    let props = &message.properties;
    let real_queue = props.get(REAL_QUEUE_ID).and_then(|q| q.parse().ok());
    let (Some(topic), Some(queue_id)) = (props.get(REAL_TOPIC).map(str::to_string), real_queue)
    else {
        return false;
    };
    message.properties.remove(REAL_TOPIC);
    message.properties.remove(REAL_QUEUE_ID);
    message.topic = topic;
    message.queue_id = queue_id;
    true
}

/// How a message was parked for later delivery.
#[derive(Clone, Copy, Debug)]
pub(super) enum Later {
    /// At a delay level, in the schedule topic; from the producer's `real_queue`.
    Level { real_queue: u32 },
    /// In the timing wheel.
    Timer(Placed),
}

impl Later {
    /// The queue the producer sent to, which the send's answer names.
    pub(super) fn real_queue(&self) -> u32 {
        match self {
            Later::Level { real_queue } => *real_queue,
            Later::Timer(placed) => placed.real_queue,
        }
    }
}

/// A delay the broker refuses.
#[derive(Debug, thiserror::Error)]
pub(super) enum BadDelay {
    #[error(transparent)]
    Level(#[from] BadDelayLevel),
    #[error(transparent)]
    Timer(#[from] BadTimer),
}

impl<D: Disk, M: MetaStore> Broker<D, M> {
    /// Parks `message` when it asks for later delivery: a timer (`TIMER_*`), else a
    /// `DELAY` level. Wake its deliverer with [`Self::wake_for`] once it is stored.
    pub(super) fn park_if_later(
        &self,
        message: &mut NewMessage,
    ) -> Result<Option<Later>, BadDelay> {
        let timer = schedule_if_timer(
            message,
            proto::clock::now_ms(),
            self.config.timer_max_delay_sec as i64 * 1_000,
            self.config.timer_wheel_enable,
        )?;
        let level = schedule_if_delayed(message, self.delay_levels_ms.len())?;
        Ok(level
            .map(|real_queue| Later::Level { real_queue })
            .or(timer.map(Later::Timer)))
    }

    /// Wakes the task that delivers a message parked as `later`.
    pub(super) fn wake_for(&self, later: &Later) {
        match later {
            Later::Level { .. } => self.scheduled.send_modify(|v| *v += 1),
            Later::Timer(placed) => self.timer_placed(placed.queue_id, placed.due_ms),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_parked_message_goes_back_where_it_was_sent() {
        let mut m = NewMessage::new("Orders", 3, "body");
        assert_eq!(park(&mut m, "SYS", 7), 3);
        assert_eq!((m.topic.as_str(), m.queue_id), ("SYS", 7));
        assert_eq!(m.properties.get(REAL_TOPIC), Some("Orders"));
        assert_eq!(m.properties.get(REAL_QUEUE_ID), Some("3"));
        assert!(unpark(&mut m));
        assert_eq!((m.topic.as_str(), m.queue_id), ("Orders", 3));
        assert!(
            m.properties.get(REAL_TOPIC).is_none() && m.properties.get(REAL_QUEUE_ID).is_none()
        );
        let mut lost = NewMessage::new("SYS", 0, "body");
        lost.properties.insert(REAL_TOPIC, "Orders");
        assert!(!unpark(&mut lost));
        assert_eq!(lost.topic, "SYS");
    }
}
