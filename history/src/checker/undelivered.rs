//! **Undelivered**: at least once per consumer group. Everything the final reads hold
//! reaches every group, checked apart from [`check`](super::check) once the consumers
//! had time to catch up after the heal.
//!
//! Where a tail may be lost, a consumer that received a message which was then lost has
//! moved past its offset, and skips whatever later took that offset: part of the loss,
//! reported apart (`skipped_after_loss`).

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::{position, LossAllowance};
use crate::history::{History, QueueRef, Type, F};

/// At least once, checked after the liveness phase: what the final reads found but
/// `group` never received.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Undelivered {
    /// Stored (read from a replica) and never delivered to the group.
    pub missing: Vec<String>,
    /// Of those, the ones at a position where the group had received another message
    /// that was then lost (a lost tail whose offsets were reused): a consumer already
    /// past that offset skips them. Part of the loss, allowed only where a tail is.
    pub skipped_after_loss: Vec<String>,
}

impl Undelivered {
    /// The violations under `allowance`.
    pub fn violations(&self, allowance: LossAllowance) -> usize {
        match allowance {
            LossAllowance::None => self.missing.len(),
            LossAllowance::Tail => self.missing.len() - self.skipped_after_loss.len(),
        }
    }
}

/// What the final reads hold of `topics` (all topics when empty) that `group` never
/// received.
pub fn undelivered(history: &History, group: &str, topics: &[&str]) -> Undelivered {
    let mut delivered: BTreeSet<&str> = BTreeSet::new();
    let mut delivered_at: BTreeMap<(QueueRef, u64), BTreeSet<&str>> = BTreeMap::new();
    let mut stored: BTreeMap<&str, (QueueRef, u64)> = BTreeMap::new();
    for e in history.events().iter().filter(|e| e.kind == Type::Ok) {
        let Some(pos) = position(e) else { continue };
        match e.f {
            F::Deliver if e.group.as_deref() == Some(group) => {
                delivered.insert(&e.value);
                delivered_at.entry(pos).or_default().insert(&e.value);
            }
            F::Read if topics.is_empty() || topics.contains(&pos.0.topic.as_str()) => {
                stored.insert(&e.value, pos);
            }
            _ => {}
        }
    }
    let mut u = Undelivered::default();
    for (value, pos) in stored {
        if delivered.contains(value) {
            continue;
        }
        u.missing.push(value.to_string());
        if delivered_at
            .get(&pos)
            .is_some_and(|seen| seen.iter().any(|d| *d != value))
        {
            u.skipped_after_loss.push(value.to_string());
        }
    }
    u
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checker::fixtures::{base, deliver_all, q};

    #[test]
    fn undelivered_names_what_a_group_never_received() {
        let mut h = base();
        h.fault(50, "power loss");
        for i in 0..5 {
            h.read(60, "n1", &format!("v{i}"), q(0), i as u64);
        }
        deliver_all(&mut h, 3);
        // v9 was delivered at offset 3, then lost; v3 took its offset afterwards.
        h.deliver(70, "c1", "G", "v9", q(0), 3);
        let u = undelivered(&h, "G", &[]);
        assert_eq!(u.missing, vec!["v3", "v4"]);
        assert_eq!(u.skipped_after_loss, vec!["v3"]);
        assert_eq!(u.violations(LossAllowance::None), 2);
        assert_eq!(u.violations(LossAllowance::Tail), 1);
        assert_eq!(undelivered(&h, "other", &["T"]).missing.len(), 5);
        assert!(undelivered(&h, "G", &["U"]).missing.is_empty());
    }
}
