//! **Delayed messages**: a delayed send is never delivered before its delay has passed
//! since it was sent (the value names the delay, [`crate::delayed`]), and, where nothing
//! may be lost, an acknowledged one is found by the final reads. A delayed send whose
//! outcome is unknown may or may not appear.

use std::collections::BTreeMap;

use super::{LossAllowance, Observed, Report};
use crate::history::{Type, F};

pub(super) fn check(o: &Observed, allowance: LossAllowance, r: &mut Report) {
    let sent_ms: BTreeMap<&str, i64> = o
        .events
        .iter()
        .filter(|e| e.f == F::Delayed && e.kind == Type::Invoke)
        .map(|e| (e.value.as_str(), e.time_ms))
        .collect();
    let mut early = BTreeMap::new();
    for e in o.seen.iter().filter(|e| e.f == F::Deliver) {
        let (Some(sent), Some(delay)) = (
            sent_ms.get(e.value.as_str()),
            crate::delayed::delay_ms(&e.value),
        ) else {
            continue;
        };
        let after_ms = e.time_ms - sent;
        if after_ms < delay as i64 {
            early.entry(e.value.clone()).or_insert(format!(
                "{} delivered {after_ms} ms after its send",
                e.value
            ));
        }
    }
    r.delayed_early = early.into_values().collect();
    if allowance == LossAllowance::Tail || !o.has_reads {
        return;
    }
    r.delayed_lost = o
        .events
        .iter()
        .filter(|e| e.f == F::Delayed && e.kind == Type::Ok)
        .filter(|e| !o.survivors.contains(e.value.as_str()))
        .map(|e| e.value.clone())
        .collect();
}

#[cfg(test)]
mod tests {
    use crate::checker::fixtures::q;
    use crate::checker::{check, LossAllowance};
    use crate::history::{History, SendOutcome};

    fn delayed(h: &mut History, at_ms: i64, value: &str) {
        h.delayed_invoke(at_ms, "p1", value);
        let acked = SendOutcome::Acked {
            queue: q(0),
            queue_offset: 0,
            node: None,
        };
        h.record_delayed(at_ms + 5, "p1", value, acked);
    }

    #[test]
    fn a_delayed_message_is_never_early_and_never_lost() {
        let mut h = History::new();
        delayed(&mut h, 1_000, "p1-1-d1000");
        h.deliver(2_000, "c1", "G", "p1-1-d1000", q(1), 0);
        h.read(3_000, "n1", "p1-1-d1000", q(1), 0);
        let r = check(&h, LossAllowance::None, false);
        assert!(r.valid, "{r:?}");

        let mut early = History::new();
        delayed(&mut early, 1_000, "p1-1-d1000");
        early.deliver(1_999, "c1", "G", "p1-1-d1000", q(1), 0);
        early.read(3_000, "n1", "p1-1-d1000", q(1), 0);
        let r = check(&early, LossAllowance::None, false);
        assert!(!r.valid);
        assert_eq!(
            r.delayed_early,
            vec!["p1-1-d1000 delivered 999 ms after its send"]
        );

        let mut lost = History::new();
        delayed(&mut lost, 1_000, "p1-1-d1000");
        delayed(&mut lost, 1_000, "p1-2-d1000");
        lost.read(3_000, "n1", "p1-1-d1000", q(1), 0);
        let r = check(&lost, LossAllowance::None, false);
        assert_eq!(r.delayed_lost, vec!["p1-2-d1000"]);
        assert!(r.unexpected.is_empty());
        assert!(check(&lost, LossAllowance::Tail, false).valid);
    }
}
