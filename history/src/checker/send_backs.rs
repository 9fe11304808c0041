//! **Send-backs**: a message a group's listener failed (a `reject` event) comes back to
//! that group (a later delivery through `%RETRY%group`, or again from the position it
//! failed at when the send-back itself failed or the consumer died first), or is found in the group's
//! dead-letter topic `%DLQ%group` by the final reads (or recorded as compacted from it).
//! Checked where nothing may be lost
//! and the history has final reads: in the async modes a sent-back copy is as mortal as
//! any acknowledged tail.

use std::collections::BTreeSet;

use super::{LossAllowance, Observed, Report};
use crate::history::{Event, F};

/// `%DLQ%`, the dead-letter topics' prefix (RocketMQ's `MixAll.DLQ_GROUP_TOPIC_PREFIX`).
pub const DLQ_PREFIX: &str = "%DLQ%";
/// `%RETRY%`, the retry topics' prefix.
pub const RETRY_PREFIX: &str = "%RETRY%";

pub(super) fn check(o: &Observed, allowance: LossAllowance, r: &mut Report) {
    if allowance == LossAllowance::Tail || !o.has_reads {
        return;
    }
    let in_dlq: BTreeSet<(&str, &str)> = o
        .seen
        .iter()
        .filter(|e| matches!(e.f, F::Read | F::Compact))
        .filter_map(|e| {
            let group = e.queue.as_ref()?.topic.strip_prefix(DLQ_PREFIX)?;
            Some((group, e.value.as_str()))
        })
        .collect();
    // Back through the group's retry topic, or again from where it failed (the
    // send-back refused, or the consumer gone before it): not merely another copy of
    // the value, which a producer's retried send can make.
    let came_back = |reject: &Event, e: &Event, group: &str| {
        let retried = e
            .queue
            .as_ref()
            .is_some_and(|q| q.topic.strip_prefix(RETRY_PREFIX) == Some(group));
        let again = e.queue == reject.queue && e.queue_offset == reject.queue_offset;
        retried || again
    };
    let delivered_after = |reject: &Event, group: &str| {
        o.seen.iter().any(|e| {
            e.f == F::Deliver
                && e.index > reject.index
                && e.value == reject.value
                && e.group.as_deref() == Some(group)
                && came_back(reject, e, group)
        })
    };
    let mut lost = BTreeSet::new();
    for reject in o.events.iter().filter(|e| e.f == F::Reject) {
        let group = reject.group.as_deref().unwrap_or_default();
        if !in_dlq.contains(&(group, reject.value.as_str())) && !delivered_after(reject, group) {
            lost.insert(format!(
                "{} failed by {} of {group} at {} ms: never delivered again, not in {DLQ_PREFIX}{group}",
                reject.value, reject.process, reject.time_ms
            ));
        }
    }
    r.sent_back_lost = lost.into_iter().collect();
}

#[cfg(test)]
mod tests {
    use crate::checker::fixtures::{base, deliver_all, q};
    use crate::checker::{check, LossAllowance};
    use crate::history::QueueRef;

    fn dlq() -> QueueRef {
        QueueRef {
            topic: "%DLQ%G".into(),
            broker: "b".into(),
            queue_id: 0,
        }
    }

    fn retry() -> QueueRef {
        QueueRef {
            topic: "%RETRY%G".into(),
            broker: "b".into(),
            queue_id: 0,
        }
    }

    #[test]
    fn a_failed_message_comes_back_or_is_a_dead_letter() {
        let mut h = base();
        deliver_all(&mut h, 5);
        // v1 fails once and comes back through the retry topic; v2 fails for good.
        h.reject(110, "c1", "G", "v1", q(0), 1);
        h.deliver(2_000, "c1", "G", "v1", retry(), 0);
        h.reject(120, "c1", "G", "v2", q(0), 2);
        h.deliver(2_100, "c1", "G", "v2", retry(), 1);
        h.reject(2_110, "c1", "G", "v2", retry(), 1);
        for i in 0..5 {
            h.read(9_000, "n1", &format!("v{i}"), q(0), i);
        }
        h.read(9_000, "n1", "v2", dlq(), 0);
        let r = check(&h, LossAllowance::None, false);
        assert!(r.valid, "{r:?}");

        // v3 fails and is never seen again: its send-back was lost.
        h.reject(130, "c1", "G", "v3", q(0), 3);
        let r = check(&h, LossAllowance::None, false);
        assert!(!r.valid);
        assert_eq!(
            r.sent_back_lost,
            vec!["v3 failed by c1 of G at 130 ms: never delivered again, not in %DLQ%G"]
        );
        // Another copy of the value from elsewhere (a producer's retried send) does
        // not count, nor another group's delivery or dead letter.
        h.deliver(2_900, "c1", "G", "v3", q(1), 0);
        h.deliver(3_000, "c9", "H", "v3", q(0), 3);
        h.read(
            9_000,
            "n1",
            "v3",
            QueueRef {
                topic: "%DLQ%H".into(),
                ..dlq()
            },
            0,
        );
        assert_eq!(
            check(&h, LossAllowance::None, false).sent_back_lost.len(),
            1
        );
        // Where a tail may be lost, a sent-back copy may be too.
        assert!(check(&h, LossAllowance::Tail, false)
            .sent_back_lost
            .is_empty());
        // Delivered again from where it failed: its send-back was refused.
        h.deliver(3_100, "c1", "G", "v3", q(0), 3);
        assert!(check(&h, LossAllowance::None, false)
            .sent_back_lost
            .is_empty());
    }
}
