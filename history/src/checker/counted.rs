//! **Counted, not violations**: what the guarantees allow but a reader of a run wants to
//! see. `recovered`: sends with an unknown outcome (`info`) that appear after all (a
//! timeout does not mean the write did not happen). `duplicated`: deliveries of a message
//! to a group beyond its first (delivery is at least once).

use std::collections::BTreeMap;

use super::{Observed, Report};
use crate::history::F;

pub(super) fn check(o: &Observed, r: &mut Report) {
    r.recovered = o
        .seen_values
        .iter()
        .filter(|v| o.unknown.contains(*v))
        .count();
    let mut per_group: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    for e in o.seen.iter().filter(|e| e.f == F::Deliver) {
        *per_group
            .entry((e.group.as_deref().unwrap_or(""), e.value.as_str()))
            .or_default() += 1;
    }
    r.duplicated = per_group.values().map(|n| n.saturating_sub(1)).sum();
}

#[cfg(test)]
mod tests {
    use crate::checker::fixtures::{base, deliver_all, q};
    use crate::checker::{check, LossAllowance};

    #[test]
    fn counts_recovered_sends_once_and_redeliveries_per_group() {
        let mut h = base();
        h.send_invoke(10, "p1", "maybe");
        h.send_info(11, "p1", "maybe", "timeout");
        h.deliver(12, "c1", "G", "maybe", q(0), 5);
        deliver_all(&mut h, 5);
        // Another group receiving the same messages is not a duplicate; G again is.
        for i in 0..5 {
            h.deliver(200, "b1", "Broadcast", &format!("v{i}"), q(0), i);
        }
        h.deliver(201, "c2", "G", "v0", q(0), 0);
        let r = check(&h, LossAllowance::None, false);
        assert_eq!(r.recovered, 1);
        assert_eq!(r.duplicated, 1);
        assert!(r.valid, "counted, not violations: {r:?}");
    }
}
