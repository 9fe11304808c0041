//! Checks a [`History`] against raftmq's guarantees: one invariant a module, each with
//! the rule it checks and its tests, composed by [`check`] into one [`Report`]. Pure: no
//! runtime, no I/O, so the simulator and the Jepsen harness share it.
//!
//! | Invariant | Report field | Module |
//! |---|---|---|
//! | An acknowledged message survives (in the async modes, all but a tail) | `lost`, `lost_tail` | `lost` |
//! | Nothing appears that was never sent | `unexpected` | `unexpected` |
//! | A send reported as failed never appears | `failed_but_read` | `failed_but_read` |
//! | One (queue, offset) holds one message | `inconsistent_offsets` | `offsets` |
//! | Offsets follow send order; first deliveries follow offsets | `fifo_violations` | `fifo` |
//! | The replicas hold the same positions | `diverged` | `diverged` |
//! | A transaction rolled back or never decided is never seen; a committed one is found | `tx_uncommitted_delivered`, `tx_committed_lost` | `transactions` |
//! | A delayed message is never delivered early; an acknowledged one is found | `delayed_early`, `delayed_lost` | `delays` |
//! | A message a group's listener failed comes back to the group or is a dead letter | `sent_back_lost` | `send_backs` |
//! | Every stored message reaches every group ([`undelivered()`], a separate call) | [`Undelivered`] | `undelivered` |
//! | Allowed, counted: unknown sends that appear, re-deliveries | `recovered`, `duplicated` | `counted` |
//!
//! **What survived** is what the final reads found (`read` events: the durable state once
//! everything healed) and what compaction deleted right after reading it (`compact`
//! events: committed on the replica until then, and every consumer had it); a history
//! without reads falls back to its deliveries. A delivery before a fault proves nothing
//! about durability. Where a tail may be lost, survival is also judged per position: a
//! send that failed on one master and was retried on another may be stored twice, and
//! its acknowledged copy lost while the other survives; the acknowledged position was
//! then not durable, and may be reused.

mod counted;
mod delays;
mod diverged;
mod failed_but_read;
mod fifo;
mod lost;
mod offsets;
mod send_backs;
mod transactions;
mod undelivered;
mod unexpected;

pub use undelivered::{undelivered, Undelivered};

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::history::{Event, History, QueueRef, Type, F};

/// How much loss the durability mode allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LossAllowance {
    /// `ack = quorum`, `flush = sync`: nothing acknowledged may be lost.
    None,
    /// `ack = leader` or `flush = async`: an acknowledged tail per queue may be lost.
    Tail,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Report {
    pub valid: bool,
    pub attempted: usize,
    pub acknowledged: usize,
    pub lost: Vec<String>,
    /// Lost messages that form an allowed tail (async modes).
    pub lost_tail: usize,
    pub unexpected: Vec<String>,
    pub failed_but_read: Vec<String>,
    pub recovered: usize,
    pub duplicated: usize,
    pub inconsistent_offsets: Vec<String>,
    pub fifo_violations: Vec<String>,
    /// Positions the final drain found on some replicas and not on others.
    #[serde(default)]
    pub diverged: Vec<String>,
    /// Transactions delivered or read though they rolled back or were never decided.
    #[serde(default)]
    pub tx_uncommitted_delivered: Vec<String>,
    /// Committed transactions whose half message was stored, missing from the reads.
    #[serde(default)]
    pub tx_committed_lost: Vec<String>,
    /// Delayed messages delivered before their delay had passed since their send.
    #[serde(default)]
    pub delayed_early: Vec<String>,
    /// Acknowledged delayed messages missing from the reads.
    #[serde(default)]
    pub delayed_lost: Vec<String>,
    /// Messages a group's listener failed that neither came back to the group nor
    /// reached its dead-letter topic.
    #[serde(default)]
    pub sent_back_lost: Vec<String>,
}

fn position(e: &Event) -> Option<(QueueRef, u64)> {
    Some((e.queue.clone()?, e.queue_offset?))
}

/// A history's sends and sightings, indexed once for every invariant.
struct Observed<'a> {
    events: &'a [Event],
    /// Values of invoked sends, transactions and delayed sends.
    attempted: BTreeSet<&'a str>,
    /// Values of transactions (a subset of `attempted`).
    transactions: BTreeSet<&'a str>,
    /// Whether the history has final reads (else deliveries stand for survival).
    has_reads: bool,
    /// Acknowledged sends by value.
    acked: BTreeMap<&'a str, &'a Event>,
    /// Values of sends reported as definitely failed.
    failed: BTreeSet<&'a str>,
    /// Values of sends with an unknown outcome.
    unknown: BTreeSet<&'a str>,
    /// Every delivery, read and compaction.
    seen: Vec<&'a Event>,
    seen_values: BTreeSet<&'a str>,
    /// Values that survived (see the module doc).
    survivors: BTreeSet<&'a str>,
    /// Where the survivors were found: (value, queue, offset).
    surviving_at: BTreeSet<(&'a str, QueueRef, u64)>,
}

impl<'a> Observed<'a> {
    fn new(events: &'a [Event]) -> Self {
        let sends = |kind: Type| {
            events
                .iter()
                .filter(move |e| e.f == F::Send && e.kind == kind)
        };
        let seen: Vec<&Event> = events
            .iter()
            .filter(|e| matches!(e.f, F::Deliver | F::Read | F::Compact) && e.kind == Type::Ok)
            .collect();
        let seen_values: BTreeSet<&str> = seen.iter().map(|e| e.value.as_str()).collect();
        let reads: Vec<&Event> = seen
            .iter()
            .copied()
            .filter(|e| matches!(e.f, F::Read | F::Compact))
            .collect();
        let found = if reads.is_empty() { &seen } else { &reads };
        let survivors: BTreeSet<&str> = found.iter().map(|e| e.value.as_str()).collect();
        let surviving_at = found
            .iter()
            .filter_map(|e| position(e).map(|(queue, offset)| (e.value.as_str(), queue, offset)))
            .collect();
        let transactions: BTreeSet<&str> = events
            .iter()
            .filter(|e| e.f == F::Tx && e.kind == Type::Invoke)
            .map(|e| e.value.as_str())
            .collect();
        let delayed = events
            .iter()
            .filter(|e| e.f == F::Delayed && e.kind == Type::Invoke)
            .map(|e| e.value.as_str());
        Observed {
            events,
            attempted: sends(Type::Invoke)
                .map(|e| e.value.as_str())
                .chain(transactions.iter().copied())
                .chain(delayed)
                .collect(),
            transactions,
            has_reads: !reads.is_empty(),
            acked: sends(Type::Ok).map(|e| (e.value.as_str(), e)).collect(),
            failed: sends(Type::Fail).map(|e| e.value.as_str()).collect(),
            unknown: sends(Type::Info).map(|e| e.value.as_str()).collect(),
            seen,
            seen_values,
            survivors,
            surviving_at,
        }
    }

    /// Whether `e`'s message survived at `e`'s position (an event without one: anywhere).
    fn survived_at(&self, e: &Event) -> bool {
        match position(e) {
            Some((queue, offset)) => self
                .surviving_at
                .contains(&(e.value.as_str(), queue, offset)),
            None => self.survivors.contains(e.value.as_str()),
        }
    }

    /// Whether `e`'s position counts as durable: where nothing may be lost every
    /// position does; where a tail may be, only those its message survived at.
    fn durable(&self, e: &Event, allowance: LossAllowance) -> bool {
        match allowance {
            LossAllowance::None => true,
            LossAllowance::Tail => self.survived_at(e),
        }
    }
}

/// Checks `history`. `ordered` turns on the FIFO checks.
pub fn check(history: &History, allowance: LossAllowance, ordered: bool) -> Report {
    let o = Observed::new(history.events());
    let mut r = Report {
        attempted: o.attempted.len(),
        acknowledged: o.acked.len(),
        ..Report::default()
    };
    unexpected::check(&o, &mut r);
    failed_but_read::check(&o, &mut r);
    counted::check(&o, &mut r);
    lost::check(&o, allowance, &mut r);
    offsets::check(&o, allowance, &mut r);
    if ordered {
        fifo::check(&o, allowance, &mut r);
    }
    diverged::check(&o, &mut r);
    transactions::check(&o, allowance, &mut r);
    delays::check(&o, allowance, &mut r);
    send_backs::check(&o, allowance, &mut r);
    let loss_allowed = match allowance {
        LossAllowance::None => r.lost.is_empty(),
        LossAllowance::Tail => r.lost.len() == r.lost_tail,
    };
    r.valid = loss_allowed
        && r.unexpected.is_empty()
        && r.failed_but_read.is_empty()
        && r.inconsistent_offsets.is_empty()
        && r.fifo_violations.is_empty()
        && r.diverged.is_empty()
        && r.tx_uncommitted_delivered.is_empty()
        && r.tx_committed_lost.is_empty()
        && r.delayed_early.is_empty()
        && r.delayed_lost.is_empty()
        && r.sent_back_lost.is_empty();
    r
}

/// Histories the invariants' tests start from.
#[cfg(test)]
mod fixtures {
    use crate::history::{History, QueueRef};

    pub fn q(id: u32) -> QueueRef {
        QueueRef {
            topic: "T".into(),
            broker: "b".into(),
            queue_id: id,
        }
    }

    /// p1 sends v0..v4 to queue 0 (offsets 0..4), all acknowledged.
    pub fn base() -> History {
        let mut h = History::new();
        for i in 0..5 {
            h.send_invoke(i, "p1", &format!("v{i}"));
            h.send_ok(i, "p1", &format!("v{i}"), q(0), i as u64);
        }
        h
    }

    pub fn deliver_all(h: &mut History, upto: usize) {
        for i in 0..upto {
            h.deliver(100, "c1", "G", &format!("v{i}"), q(0), i as u64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::{base, deliver_all, q};
    use super::*;

    #[test]
    fn a_clean_history_is_valid() {
        let mut h = base();
        deliver_all(&mut h, 5);
        let r = check(&h, LossAllowance::None, true);
        assert!(r.valid, "{r:?}");
        assert_eq!(r.acknowledged, 5);
    }

    #[test]
    fn catches_unexpected_and_failed_but_read_and_counts_recovered_and_duplicates() {
        let mut h = base();
        h.send_invoke(10, "p1", "vfail");
        h.send_fail(11, "p1", "vfail", "refused");
        h.send_invoke(12, "p1", "vinfo");
        h.send_info(13, "p1", "vinfo", "timeout");
        deliver_all(&mut h, 5);
        deliver_all(&mut h, 2);
        h.deliver(200, "c1", "G", "vinfo", q(1), 0);
        let r = check(&h, LossAllowance::None, false);
        assert!(r.valid, "{r:?}");
        assert_eq!(r.recovered, 1);
        assert_eq!(r.duplicated, 2);
        h.deliver(201, "c1", "G", "vfail", q(1), 1);
        h.deliver(202, "c1", "G", "never-sent", q(1), 2);
        let r = check(&h, LossAllowance::None, false);
        assert!(!r.valid);
        assert_eq!(r.failed_but_read, vec!["vfail"]);
        assert_eq!(r.unexpected, vec!["never-sent"]);
    }

    #[test]
    fn the_report_keeps_its_json_fields() {
        // results.json and `jepsen check` print this; readers of old runs parse it.
        let json = serde_json::to_string(&Report::default()).unwrap();
        assert_eq!(
            json,
            r#"{"valid":false,"attempted":0,"acknowledged":0,"lost":[],"lost_tail":0,"unexpected":[],"failed_but_read":[],"recovered":0,"duplicated":0,"inconsistent_offsets":[],"fifo_violations":[],"diverged":[],"tx_uncommitted_delivered":[],"tx_committed_lost":[],"delayed_early":[],"delayed_lost":[],"sent_back_lost":[]}"#
        );
    }
}
