//! **Inconsistent offsets**: one (queue, offset) holds one message everywhere it is
//! observed, across acknowledgements, deliveries and replicas.
//!
//! Where a tail may be lost ([`LossAllowance::Tail`]), a lost message's acknowledged
//! position was never durable and may be reused (a power loss voids it), so only the
//! positions of survivors count. Where nothing may be lost, every position counts.

use std::collections::{BTreeMap, BTreeSet};

use super::{position, LossAllowance, Observed, Report};
use crate::history::QueueRef;

pub(super) fn check(o: &Observed, allowance: LossAllowance, r: &mut Report) {
    let counts = |v: &str| allowance == LossAllowance::None || o.survivors.contains(v);
    let durable = o.acked.iter().filter(|(v, _)| counts(v)).map(|(_, e)| *e);
    let surviving = o.seen.iter().copied().filter(|e| counts(e.value.as_str()));
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
}
