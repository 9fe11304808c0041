//! **Lost**: an acknowledged message survives (see the module doc of `checker` for what
//! survived).
//!
//! Under `quorum + sync` ([`LossAllowance::None`]) any loss is an anomaly, and a message
//! delivered (so committed) and then missing from the final reads is lost too,
//! acknowledged or not.
//!
//! In the async modes ([`LossAllowance::Tail`]) only a *tail* may be lost: between two
//! faults, per queue and acknowledging master (when the history names it), the lost
//! acknowledgements must be the last ones before the fault (the highest offsets of that
//! window, among sends invoked in it; a survivor counts against a loss only if it was
//! also acknowledged in it, since a retried send may land much later): a master cut off
//! from its group may go on acknowledging while a new one is elected, and loses
//! everything it acknowledged from then on, interleaved in time with the new master's
//! surviving acknowledgements. A loss with no fault after it is an anomaly. The tail's
//! size is reported as `lost_tail`. What survived, for the tail, is the acknowledged
//! position: a message whose acknowledged copy is gone but which a failed attempt
//! stored elsewhere is not lost, and does not make the losses before it a hole.

use std::collections::{BTreeMap, BTreeSet};

use super::{position, LossAllowance, Observed, Report};
use crate::history::{QueueRef, Type, F};

pub(super) fn check(o: &Observed, allowance: LossAllowance, r: &mut Report) {
    acknowledged(o, allowance, r);
    if allowance == LossAllowance::None {
        // Delivered means committed: it must still be there, acknowledged or not.
        let gone: BTreeSet<&str> = o
            .seen
            .iter()
            .filter(|e| e.f == F::Deliver && !o.survivors.contains(e.value.as_str()))
            .filter(|e| !o.acked.contains_key(e.value.as_str()))
            .map(|e| e.value.as_str())
            .collect();
        r.lost.extend(gone.into_iter().map(str::to_string));
    }
}

/// Acknowledged and never seen. With a tail allowance, the lost acknowledgements of each
/// queue must be a suffix of their fault window.
fn acknowledged(o: &Observed, allowance: LossAllowance, r: &mut Report) {
    let events = o.events;
    type Window<'a> = (QueueRef, usize, Option<&'a str>);
    // Per window: (offset, survived there, survived anywhere) of each acknowledgement.
    let mut windows: BTreeMap<Window, Vec<(u64, bool, bool)>> = BTreeMap::new();
    let faults: Vec<u64> = events
        .iter()
        .filter(|e| e.f == F::Fault)
        .map(|e| e.index)
        .collect();
    // A send belongs to the window it was *invoked* in: its acknowledgement may arrive
    // after the fault (a reply already on the wire), but it was written before.
    let invoked: BTreeMap<&str, u64> = events
        .iter()
        .filter(|e| e.f == F::Send && e.kind == Type::Invoke)
        .map(|e| (e.value.as_str(), e.index))
        .collect();
    for (value, e) in &o.acked {
        let survived = o.survivors.contains(value);
        if !survived {
            r.lost.push(value.to_string());
        }
        if let Some((queue, offset)) = position(e) {
            let at = invoked.get(value).copied().unwrap_or(e.index);
            let window = faults.partition_point(|f| *f < at);
            // A survivor proves a loss is not a tail only if it was surely written in
            // the window: acknowledged before the next fault too. A send the client
            // retried for seconds may land with a *later* leadership of the same
            // master, at an offset a truncated tail had used
            // (`a_survivor_acknowledged_after_later_faults_does_not_void_a_tail`).
            let survived_here = o.survived_at(e);
            if survived_here && faults.partition_point(|f| *f < e.index) != window {
                continue;
            }
            // A tail of the master's log: ordered by where the sends landed, which for
            // concurrent producers need not be the order they were invoked in.
            windows
                .entry((queue, window, e.node.as_deref()))
                .or_default()
                .push((offset, survived_here, survived));
        }
    }
    if allowance == LossAllowance::None {
        return;
    }
    for ((_, window, _), mut acks) in windows {
        if window == faults.len() {
            continue; // No fault after these acks: any loss here is not a tail.
        }
        acks.sort();
        let last_survivor = acks.iter().rposition(|(_, here, _)| *here);
        let tail_from = last_survivor.map_or(0, |i| i + 1);
        r.lost_tail += acks[tail_from..]
            .iter()
            .filter(|(_, _, anywhere)| !anywhere)
            .count();
    }
}

#[cfg(test)]
mod tests {
    use crate::checker::fixtures::{base, deliver_all, q};
    use crate::checker::{check, LossAllowance};
    use crate::history::{History, F};

    #[test]
    fn catches_lost_messages_and_allows_only_a_tail_in_async_modes() {
        let mut h = base();
        deliver_all(&mut h, 3);
        let r = check(&h, LossAllowance::None, false);
        assert!(!r.valid);
        assert_eq!(r.lost, vec!["v3", "v4"]);
        let r = check(&h, LossAllowance::Tail, false);
        assert!(!r.valid, "no fault explains the loss: {r:?}");
        let mut h = base();
        h.fault(50, "power loss on broker b");
        deliver_all(&mut h, 3);
        let r = check(&h, LossAllowance::Tail, false);
        assert!(r.valid, "a lost tail before a fault is allowed: {r:?}");
        assert_eq!(r.lost_tail, 2);
        // A hole is not a tail: v1 lost while v2 survived.
        let mut h = base();
        h.fault(50, "power loss on broker b");
        for i in [0, 2, 3, 4] {
            h.deliver(100, "c1", "G", &format!("v{i}"), q(0), i as u64);
        }
        let r = check(&h, LossAllowance::Tail, false);
        assert!(!r.valid, "{r:?}");
        assert_eq!(r.lost_tail, 0);
    }

    #[test]
    fn a_tail_is_judged_per_acknowledging_master() {
        // n1, cut off, acknowledges a1 and a2 while n2 (elected) acknowledges b1 and b2
        // in between: n1's acknowledgements are all lost, a tail of n1's.
        let mut h = History::new();
        h.fault(0, "isolate n1");
        for (i, (v, node)) in [("a1", "n1"), ("b1", "n2"), ("a2", "n1"), ("b2", "n2")]
            .into_iter()
            .enumerate()
        {
            h.send_invoke(i as i64, "p1", v);
            h.send_ok_by(i as i64, "p1", v, q(0), i as u64, Some(node));
        }
        h.fault(10, "heal");
        h.read(20, "n2", "b1", q(0), 1);
        h.read(20, "n2", "b2", q(0), 3);
        let r = check(&h, LossAllowance::Tail, false);
        assert!(r.valid, "{r:?}");
        assert_eq!(r.lost_tail, 2);
        // Without the master named, the same loss is not a tail of the window.
        let mut h2 = History::new();
        for e in h.events() {
            let mut e = e.clone();
            e.node = None;
            h2.push_event(e);
        }
        assert!(!check(&h2, LossAllowance::Tail, false).valid);
        // n2 losing b1 but keeping b2 is not a tail of n2's acknowledgements.
        let mut h3 = History::new();
        for e in h
            .events()
            .iter()
            .filter(|e| !(e.f == F::Read && e.value == "b1"))
        {
            h3.push_event(e.clone());
        }
        h3.read(20, "n2", "b1x", q(0), 1);
        assert!(!check(&h3, LossAllowance::Tail, false).valid);
    }

    #[test]
    fn a_survivor_acknowledged_after_later_faults_does_not_void_a_tail() {
        // n1 acknowledges a1 at offset 2, is cut off, and loses a1 to a new master.
        // Sent before the cut but retried until n1 is master again, a2 lands at the
        // reused offset 2 and survives: a1 was still a tail.
        let mut h = History::new();
        h.send_invoke(0, "p1", "a1");
        h.send_invoke(0, "p2", "a2");
        h.send_ok_by(1, "p1", "a1", q(0), 2, Some("n1"));
        h.fault(2, "isolate n1");
        h.fault(3, "heal");
        h.fault(4, "isolate n2");
        h.send_ok_by(5, "p2", "a2", q(0), 2, Some("n1"));
        h.fault(6, "heal");
        h.read(20, "n1", "a2", q(0), 2);
        let r = check(&h, LossAllowance::Tail, false);
        assert!(r.valid, "{r:?}");
        assert_eq!(r.lost_tail, 1);
        // Acknowledged inside the window, the same survivor does void it.
        let mut h2 = History::new();
        h2.send_invoke(0, "p1", "a1");
        h2.send_invoke(0, "p2", "a2");
        h2.send_ok_by(1, "p1", "a1", q(0), 2, Some("n1"));
        h2.send_ok_by(1, "p2", "a2", q(0), 3, Some("n1"));
        h2.fault(2, "isolate n1");
        h2.read(20, "n1", "a2", q(0), 3);
        assert!(!check(&h2, LossAllowance::Tail, false).valid);
    }

    #[test]
    fn durability_is_judged_by_the_final_reads_not_by_deliveries() {
        // v3 and v4 were delivered before a power loss and are gone from every replica.
        let mut h = base();
        deliver_all(&mut h, 5);
        for i in 0..3 {
            h.read(300, "n1", &format!("v{i}"), q(0), i);
        }
        let r = check(&h, LossAllowance::None, false);
        assert!(!r.valid);
        assert_eq!(r.lost, vec!["v3", "v4"]);
        // An unacknowledged send that was delivered (committed) must survive too.
        let mut h = base();
        h.send_invoke(10, "p2", "u");
        h.send_info(11, "p2", "u", "timeout");
        h.deliver(12, "c1", "G", "u", q(0), 5);
        for i in 0..5 {
            h.read(300, "n1", &format!("v{i}"), q(0), i);
        }
        let r = check(&h, LossAllowance::None, false);
        assert_eq!(r.lost, vec!["u"]);
        // In a tail mode a lost tail's offsets may be reused: no inconsistency.
        let mut h = base();
        deliver_all(&mut h, 5);
        h.fault(50, "power loss");
        h.send_invoke(60, "p1", "w");
        h.send_ok(61, "p1", "w", q(0), 4);
        for (i, v) in ["v0", "v1", "v2", "v3", "w"].iter().enumerate() {
            h.read(300, "n1", v, q(0), i as u64);
        }
        let r = check(&h, LossAllowance::Tail, false);
        assert!(r.valid, "{r:?}");
        assert_eq!(r.lost_tail, 1);
    }
}
