//! **Inconsistent offsets**: one (queue, offset) holds one message everywhere it is
//! observed, across acknowledgements, deliveries and replicas.
//!
//! Where a tail may be lost ([`LossAllowance::Tail`]), a lost message's acknowledged
//! position was never durable and may be reused (a power loss voids it), so only the
//! positions survivors were found at count. Where nothing may be lost, every position
//! counts.

use std::collections::{BTreeMap, BTreeSet};

use super::{position, LossAllowance, Observed, Report};
use crate::history::QueueRef;

pub(super) fn check(o: &Observed, allowance: LossAllowance, r: &mut Report) {
    let durable = o
        .acked
        .values()
        .copied()
        .filter(|e| o.durable(e, allowance));
    let surviving = o.seen.iter().copied().filter(|e| o.durable(e, allowance));
    let mut at: BTreeMap<(QueueRef, u64), BTreeSet<&str>> = BTreeMap::new();
    for e in durable.chain(surviving) {
        if let Some(pos) = position(e) {
            at.entry(pos).or_default().insert(e.value.as_str());
        }
    }
    for ((queue, offset), values) in at {
        if values.len() > 1 {
            r.inconsistent_offsets.push(format!(
                "{}:{}:{}@{offset} holds {values:?}",
                queue.broker, queue.topic, queue.queue_id
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::checker::fixtures::{base, deliver_all, q};
    use crate::checker::{check, LossAllowance};
    use crate::history::{History, QueueRef};

    #[test]
    fn catches_two_messages_at_one_offset() {
        let mut h = base();
        deliver_all(&mut h, 5);
        h.read(300, "replica-2", "v9", q(0), 3);
        let r = check(&h, LossAllowance::None, false);
        assert!(!r.valid);
        assert_eq!(r.inconsistent_offsets.len(), 1);
        assert!(r.unexpected.contains(&"v9".to_string()));
    }

    #[test]
    fn a_lost_tail_may_have_its_offsets_reused_after_the_fault() {
        let mut h = base();
        h.fault(50, "power loss on broker b");
        // v3 and v4 were lost; new sends reuse offsets 3 and 4.
        h.send_invoke(60, "p1", "v5");
        h.send_ok(61, "p1", "v5", q(0), 3);
        deliver_all(&mut h, 3);
        h.deliver(100, "c1", "G", "v5", q(0), 3);
        let r = check(&h, LossAllowance::Tail, true);
        assert!(r.valid, "{r:?}");
        assert_eq!(r.lost_tail, 2);
        // Under sync durability the same history is a loss.
        assert!(!check(&h, LossAllowance::None, true).valid);
    }

    /// A send refused by group c (which stored it anyway) and retried on b, where n1
    /// acknowledged it at offset 3 and then lost that copy in a failover; offset 3 went
    /// to the producer's next send.
    fn stored_twice() -> History {
        let c = QueueRef {
            broker: "c".into(),
            ..q(0)
        };
        let mut h = History::new();
        h.send_invoke(0, "p1", "x");
        h.send_ok_by(1, "p1", "x", q(0), 3, Some("n1"));
        h.fault(2, "isolate n1");
        h.send_invoke(3, "p1", "y");
        h.send_ok_by(4, "p1", "y", q(0), 1, Some("n2"));
        h.send_invoke(5, "p1", "z");
        h.send_ok_by(6, "p1", "z", q(0), 3, Some("n2"));
        h.fault(7, "heal");
        h.read(20, "n2", "y", q(0), 1);
        h.read(20, "n2", "z", q(0), 3);
        h.read(20, "m1", "x", c, 20);
        h
    }

    #[test]
    fn a_survivor_found_elsewhere_does_not_hold_its_lost_acknowledged_offset() {
        let h = stored_twice();
        let r = check(&h, LossAllowance::Tail, true);
        assert!(r.valid, "{r:?}");
        assert_eq!(r.lost_tail, 0, "x is not lost: {r:?}");
        // Where nothing may be lost, x's acknowledged offset holds, and z took it.
        let r = check(&h, LossAllowance::None, true);
        assert_eq!(r.inconsistent_offsets.len(), 1, "{r:?}");
        // Found at its acknowledged offset too, x holds it in a tail mode as well: z at
        // the same offset is an inconsistency and y's earlier offset a FIFO violation.
        let mut h = stored_twice();
        h.read(21, "n2", "x", q(0), 3);
        let r = check(&h, LossAllowance::Tail, true);
        assert_eq!(r.inconsistent_offsets.len(), 1, "{r:?}");
        assert_eq!(r.fifo_violations.len(), 1, "{r:?}");
    }
}
