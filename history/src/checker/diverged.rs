//! **Diverged**: when the final drain reads several replicas of a broker group (`read`
//! events from more than one process), they hold the same (queue, offset) positions; a
//! position some replica lacks is a divergence (different values at one position are
//! inconsistent offsets, the `offsets` invariant).
//!
//! Compaction deletes a replica's oldest log on its own schedule, so a queue is compared
//! only above the highest offset compacted (`compact` events) on any replica.

use std::collections::{BTreeMap, BTreeSet};

use super::{position, Observed, Report};
use crate::history::{QueueRef, F};

type Held<'a> = BTreeMap<&'a str, BTreeSet<(QueueRef, u64)>>;

pub(super) fn check(o: &Observed, r: &mut Report) {
    // Below its highest compacted offset a queue may be held by some replicas only.
    let mut compacted: BTreeMap<QueueRef, u64> = BTreeMap::new();
    for (queue, offset) in o
        .seen
        .iter()
        .filter(|e| e.f == F::Compact)
        .filter_map(|e| position(e))
    {
        let floor = compacted.entry(queue).or_default();
        *floor = (*floor).max(offset + 1);
    }
    let mut by_group: BTreeMap<&str, Held> = BTreeMap::new();
    for e in o.seen.iter().filter(|e| e.f == F::Read) {
        if let Some(pos) = position(e) {
            if compacted.get(&pos.0).is_some_and(|floor| pos.1 < *floor) {
                continue;
            }
            by_group
                .entry(e.queue.as_ref().map_or("", |q| q.broker.as_str()))
                .or_default()
                .entry(e.process.as_str())
                .or_default()
                .insert(pos);
        }
    }
    for by_replica in by_group.values() {
        group(by_replica, r);
    }
}

/// The replicas of one group, by the positions each holds.
fn group(by_replica: &Held, r: &mut Report) {
    if by_replica.len() < 2 {
        return;
    }
    let all: BTreeSet<&(QueueRef, u64)> = by_replica.values().flatten().collect();
    for (queue, offset) in all {
        let missing: Vec<&str> = by_replica
            .iter()
            .filter(|(_, held)| !held.contains(&(queue.clone(), *offset)))
            .map(|(replica, _)| *replica)
            .collect();
        if !missing.is_empty() {
            r.diverged.push(format!(
                "{}:{}:{}@{offset} missing on {}",
                queue.broker,
                queue.topic,
                queue.queue_id,
                missing.join(", ")
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::checker::fixtures::{base, deliver_all, q};
    use crate::checker::{check, LossAllowance};

    #[test]
    fn catches_a_replica_missing_a_position() {
        let mut h = base();
        for replica in ["n1", "n2"] {
            for i in 0..5 {
                h.read(200, replica, &format!("v{i}"), q(0), i);
            }
        }
        assert!(check(&h, LossAllowance::None, false).valid);
        for i in 0..4 {
            h.read(200, "n3", &format!("v{i}"), q(0), i);
        }
        let r = check(&h, LossAllowance::None, false);
        assert!(!r.valid);
        assert_eq!(r.diverged, vec!["b:T:0@4 missing on n3"]);
    }

    #[test]
    fn compacted_messages_survive_and_replicas_are_compared_above_compaction() {
        let mut h = base();
        deliver_all(&mut h, 5);
        // n1 compacted v0..v1 away; n2 (a follower that never compacted) still has them.
        for i in 0..2 {
            h.compact(150, "n1", &format!("v{i}"), q(0), i);
        }
        for i in 2..5 {
            h.read(200, "n1", &format!("v{i}"), q(0), i);
        }
        for i in 0..5 {
            h.read(200, "n2", &format!("v{i}"), q(0), i);
        }
        let r = check(&h, LossAllowance::None, true);
        assert!(r.valid, "{r:?}");
        // Above the compacted offsets a missing position is still a divergence, and a
        // message neither read nor compacted is still lost.
        let mut h2 = base();
        deliver_all(&mut h2, 5);
        h2.compact(150, "n1", "v0", q(0), 0);
        for i in 2..5 {
            h2.read(200, "n1", &format!("v{i}"), q(0), i);
        }
        for i in 1..5 {
            h2.read(200, "n2", &format!("v{i}"), q(0), i);
        }
        let r = check(&h2, LossAllowance::None, true);
        assert_eq!(r.diverged, vec!["b:T:0@1 missing on n1"]);
        let mut h3 = base();
        deliver_all(&mut h3, 5);
        h3.compact(150, "n1", "v0", q(0), 0);
        for i in 2..5 {
            h3.read(200, "n1", &format!("v{i}"), q(0), i);
        }
        let r = check(&h3, LossAllowance::None, true);
        assert_eq!(r.lost, vec!["v1"]);
    }
}
