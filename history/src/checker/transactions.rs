//! **Transactions**: a transaction that rolled back or was never decided is never
//! delivered or read (its half message stays invisible), and, where nothing may be
//! lost, one that commits and whose half message was stored is found by the final
//! reads. The decision is read from the value ([`TxKind`]); a half message whose send
//! had an unknown outcome may or may not appear.

use std::collections::BTreeSet;

use super::{LossAllowance, Observed, Report};
use crate::history::{Type, F};
use crate::transaction::TxKind;

pub(super) fn check(o: &Observed, allowance: LossAllowance, r: &mut Report) {
    r.tx_uncommitted_delivered = o
        .seen_values
        .iter()
        .filter(|v| o.transactions.contains(*v))
        .filter(|v| TxKind::of(v).is_some_and(|k| !k.commits()))
        .map(|v| v.to_string())
        .collect();
    if allowance == LossAllowance::Tail || !o.has_reads {
        return;
    }
    let stored: BTreeSet<&str> = o
        .events
        .iter()
        .filter(|e| e.f == F::Tx && e.kind == Type::Ok)
        .map(|e| e.value.as_str())
        .collect();
    r.tx_committed_lost = stored
        .into_iter()
        .filter(|v| TxKind::of(v).is_some_and(TxKind::commits))
        .filter(|v| !o.survivors.contains(v))
        .map(str::to_string)
        .collect();
}

#[cfg(test)]
mod tests {
    use crate::checker::fixtures::q;
    use crate::checker::{check, LossAllowance};
    use crate::history::{History, SendOutcome};
    use crate::transaction::TxKind;

    fn stored(h: &mut History, value: &str, offset: u64) {
        h.tx_invoke(1, "t1", value);
        let half = SendOutcome::Acked {
            queue: q(0),
            queue_offset: offset,
            node: None,
        };
        h.record_tx(2, "t1", value, half);
    }

    #[test]
    fn only_committed_transactions_appear_and_every_stored_one_does() {
        let mut h = History::new();
        for (i, kind) in TxKind::ALL.into_iter().enumerate() {
            stored(&mut h, &kind.value("t1", i as u64), i as u64);
        }
        h.read(10, "n1", &TxKind::Commit.value("t1", 0), q(1), 0);
        h.read(10, "n1", &TxKind::UnknownThenCommit.value("t1", 2), q(1), 1);
        let r = check(&h, LossAllowance::None, false);
        assert!(r.valid, "{r:?}");

        // The half of a rolled-back one delivered: caught.
        let mut bad = History::new();
        for e in h.events() {
            bad.push_event(e.clone());
        }
        bad.deliver(
            11,
            "c1",
            "G",
            &TxKind::UnknownThenRollback.value("t1", 3),
            q(1),
            2,
        );
        let r = check(&bad, LossAllowance::None, false);
        assert!(!r.valid);
        assert_eq!(r.tx_uncommitted_delivered, vec!["t1-3-ur"]);
        assert!(r.unexpected.is_empty(), "a transaction's value was sent");

        // A committed one whose half was stored but never showed up: lost, unless a
        // tail may be.
        let mut lost = History::new();
        stored(&mut lost, "t2-0-c", 0);
        lost.read(10, "n1", "t1-0-c", q(1), 0);
        lost.tx_invoke(3, "t1", "t1-0-c");
        let r = check(&lost, LossAllowance::None, false);
        assert_eq!(r.tx_committed_lost, vec!["t2-0-c"]);
        assert!(!r.valid);
        assert!(check(&lost, LossAllowance::Tail, false).valid);
    }
}
