//! **FIFO** (ordered workloads, `check(.., ordered = true)`): a producer's acknowledged
//! sends to one queue get increasing offsets in send order, and a group's *first*
//! deliveries of a queue's messages come in increasing offset order. Re-deliveries from
//! an earlier offset (after a rebalance, a restart, an offset reset) are at-least-once
//! replays, allowed. Only survivors count: a lost message's position may be reused, and
//! where a tail may be lost, only the positions survivors were found at.

use std::collections::{BTreeMap, BTreeSet};

use super::{position, LossAllowance, Observed, Report};
use crate::history::{Event, QueueRef, Type, F};

pub(super) fn check(o: &Observed, allowance: LossAllowance, r: &mut Report) {
    let counts = |e: &Event| o.survivors.contains(e.value.as_str()) && o.durable(e, allowance);
    producers(o, &counts, r);
    consumers(o, &counts, r);
}

/// Acknowledged sends of one process to one queue, in invoke order, get increasing
/// offsets.
fn producers(o: &Observed, counts: &dyn Fn(&Event) -> bool, r: &mut Report) {
    let mut invoked: BTreeMap<(&str, &str), u64> = BTreeMap::new();
    for e in o
        .events
        .iter()
        .filter(|e| e.f == F::Send && e.kind == Type::Invoke)
    {
        invoked.insert((e.process.as_str(), e.value.as_str()), e.index);
    }
    // (process, queue) → (invoke index, offset, value) of its acknowledged sends.
    type Sends<'a> = BTreeMap<(&'a str, QueueRef), Vec<(u64, u64, &'a str)>>;
    let mut by_producer: Sends = BTreeMap::new();
    for e in o
        .events
        .iter()
        .filter(|e| e.f == F::Send && e.kind == Type::Ok && counts(e))
    {
        if let (Some((queue, offset)), Some(order)) = (
            position(e),
            invoked.get(&(e.process.as_str(), e.value.as_str())),
        ) {
            by_producer
                .entry((e.process.as_str(), queue))
                .or_default()
                .push((*order, offset, e.value.as_str()));
        }
    }
    for ((process, queue), mut sends) in by_producer {
        sends.sort();
        for pair in sends.windows(2) {
            if pair[1].1 <= pair[0].1 {
                r.fifo_violations.push(format!(
                    "{process} sent {} then {} to {}:{} but they got offsets {} and {}",
                    pair[0].2, pair[1].2, queue.topic, queue.queue_id, pair[0].1, pair[1].1
                ));
            }
        }
    }
}

/// Per group and queue, first deliveries come in offset order; going back to an offset
/// the group already received is a replay.
fn consumers(o: &Observed, counts: &dyn Fn(&Event) -> bool, r: &mut Report) {
    let mut delivered: BTreeSet<(&str, QueueRef, u64)> = BTreeSet::new();
    let mut newest: BTreeMap<(&str, QueueRef), (u64, &str)> = BTreeMap::new();
    for e in o
        .events
        .iter()
        .filter(|e| e.f == F::Deliver && e.kind == Type::Ok && counts(e))
    {
        let Some((queue, offset)) = position(e) else {
            continue;
        };
        let group = e.group.as_deref().unwrap_or("");
        if !delivered.insert((group, queue.clone(), offset)) {
            continue; // A replay.
        }
        let key = (group, queue);
        if let Some((prev, by)) = newest.get(&key) {
            if offset < *prev {
                r.fifo_violations.push(format!(
                    "group {group} first received {}:{} offset {offset} ({}) after offset {prev} ({by})",
                    key.1.topic, key.1.queue_id, e.process
                ));
            }
        }
        let top = newest.entry(key).or_insert((offset, e.process.as_str()));
        if offset >= top.0 {
            *top = (offset, e.process.as_str());
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::checker::fixtures::{base, q};
    use crate::checker::{check, LossAllowance};
    use crate::history::History;

    #[test]
    fn catches_fifo_violations_on_both_sides() {
        let mut h = History::new();
        h.send_invoke(0, "p1", "a");
        h.send_ok(1, "p1", "a", q(0), 5);
        h.send_invoke(2, "p1", "b");
        h.send_ok(3, "p1", "b", q(0), 4);
        h.deliver(4, "c1", "G", "b", q(0), 4);
        h.deliver(5, "c1", "G", "a", q(0), 5);
        let r = check(&h, LossAllowance::Tail, true);
        assert_eq!(r.fifo_violations.len(), 1, "{r:?}");
        let mut h = base();
        h.deliver(100, "c1", "G", "v0", q(0), 0);
        h.deliver(101, "c1", "G", "v2", q(0), 2);
        h.deliver(102, "c1", "G", "v1", q(0), 1);
        let r = check(&h, LossAllowance::Tail, true);
        assert!(
            r.fifo_violations
                .iter()
                .any(|v| v.contains("offset 1 (c1) after offset 2")),
            "{r:?}"
        );
        // Replays from an earlier offset, by the same consumer or another, are fine.
        let mut h = base();
        for (c, o) in [
            ("c1", 0),
            ("c1", 1),
            ("c1", 2),
            ("c2", 1),
            ("c2", 2),
            ("c1", 0),
            ("c2", 3),
        ] {
            h.deliver(100, c, "G", &format!("v{o}"), q(0), o);
        }
        let r = check(&h, LossAllowance::Tail, true);
        assert!(r.fifo_violations.is_empty(), "{r:?}");
        // Without the ordered flag, order is not checked.
        assert!(check(&h, LossAllowance::Tail, false)
            .fifo_violations
            .is_empty());
    }
}
