//! The bugs a planted run switches on (`fault-injection` builds only), to show the
//! checkers catch each one (`tests/planted.rs`).

use std::str::FromStr;

use crate::cluster::Running;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Plant {
    None,
    /// Under `ack = quorum`, acknowledge a send once the master's own log has it.
    AckBeforeQuorum,
    /// Under `flush = sync`, acknowledge Raft log appends before an fsync covers them.
    SkipFsync,
    /// Push consumers commit a batch's offset before processing it.
    EarlyOffsetCommit,
    /// Push consumers deliver each batch in reverse.
    OutOfOrderDelivery,
    /// A replica installing a snapshot restarts every queue at offset 0.
    SnapshotQueuesAtZero,
    /// A transactional send is stored in its topic at once, visible before it commits.
    DeliverHalfMessage,
    /// Delayed messages are delivered to their topic at once.
    DeliverDelayedEarly,
    /// A consumer's send-back is answered and never stored.
    DropSendBack,
    /// Timer messages are delivered up to 3 s before their time.
    DeliverTimersEarly,
}

impl FromStr for Plant {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "none" => Plant::None,
            "ack-before-quorum" => Plant::AckBeforeQuorum,
            "skip-fsync" => Plant::SkipFsync,
            "early-offset-commit" => Plant::EarlyOffsetCommit,
            "out-of-order-delivery" => Plant::OutOfOrderDelivery,
            "snapshot-queues-at-zero" => Plant::SnapshotQueuesAtZero,
            "deliver-half-message" => Plant::DeliverHalfMessage,
            "deliver-delayed-early" => Plant::DeliverDelayedEarly,
            "drop-send-back" => Plant::DropSendBack,
            "deliver-timers-early" => Plant::DeliverTimersEarly,
            other => {
                return Err(format!(
                    "plant {other:?}: expected none, ack-before-quorum, skip-fsync, \
                     early-offset-commit, out-of-order-delivery, snapshot-queues-at-zero, \
                     deliver-half-message, deliver-delayed-early, drop-send-back or \
                     deliver-timers-early"
                ))
            }
        })
    }
}

impl std::fmt::Display for Plant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Plant::None => "none",
            Plant::AckBeforeQuorum => "ack-before-quorum",
            Plant::SkipFsync => "skip-fsync",
            Plant::EarlyOffsetCommit => "early-offset-commit",
            Plant::OutOfOrderDelivery => "out-of-order-delivery",
            Plant::SnapshotQueuesAtZero => "snapshot-queues-at-zero",
            Plant::DeliverHalfMessage => "deliver-half-message",
            Plant::DeliverDelayedEarly => "deliver-delayed-early",
            Plant::DropSendBack => "drop-send-back",
            Plant::DeliverTimersEarly => "deliver-timers-early",
        })
    }
}

impl Plant {
    /// Switches the process-wide bugs on (call once, before the run starts).
    pub fn apply_globally(self) {
        match self {
            Plant::None | Plant::AckBeforeQuorum | Plant::SkipFsync => {}
            #[cfg(feature = "fault-injection")]
            Plant::EarlyOffsetCommit => client::plant::plant_early_offset_commit(),
            #[cfg(feature = "fault-injection")]
            Plant::OutOfOrderDelivery => client::plant::plant_out_of_order_delivery(),
            #[cfg(feature = "fault-injection")]
            Plant::SnapshotQueuesAtZero => {
                store::message_store::plant::plant_reset_queues_at_zero()
            }
            #[cfg(feature = "fault-injection")]
            Plant::DeliverHalfMessage => raftmq::broker::transaction::plant_deliver_half_messages(),
            #[cfg(feature = "fault-injection")]
            Plant::DeliverDelayedEarly => raftmq::broker::retry::plant_deliver_delayed_early(),
            #[cfg(feature = "fault-injection")]
            Plant::DropSendBack => raftmq::broker::retry::plant_drop_send_back(),
            #[cfg(feature = "fault-injection")]
            Plant::DeliverTimersEarly => raftmq::broker::timer::plant_deliver_timers_early(),
            #[cfg(not(feature = "fault-injection"))]
            _ => panic!("planted bugs need the fault-injection feature"),
        }
    }

    /// Switches a per-broker bug on in a replica that just started.
    pub fn apply_to_broker(self, broker: &Running) {
        match self {
            #[cfg(feature = "fault-injection")]
            Plant::AckBeforeQuorum => broker
                .broker
                .replica()
                .expect("a replicated group")
                .plant_ack_before_quorum(),
            #[cfg(feature = "fault-injection")]
            Plant::SkipFsync => broker.broker.store().plant_ack_before_fsync(),
            #[cfg(not(feature = "fault-injection"))]
            Plant::AckBeforeQuorum | Plant::SkipFsync => {
                let _ = broker;
                panic!("planted bugs need the fault-injection feature")
            }
            _ => {}
        }
    }
}
