//! The master's book of transactions: which half messages still wait for their
//! producer's decision, which transactions have ended, and how far the half and op
//! queues may be consumed. Pure: the broker feeds it what it reads from the two queues
//! and what it writes itself, and persists the floors it computes.
//!
//! A transaction is known by its id (`__transactionId__`, the producer's UNIQ_KEY), not
//! by a half message's offset: each check-back appends a new copy of the half message
//! (as RocketMQ does), and the producer may answer for any copy. Keying on the id is
//! what keeps a commit from being applied twice when the producer's own decision and
//! its answer to a check both arrive.
//!
//! # Invariants
//! - A pending transaction's latest copy is at or above `half_floor`.
//! - Every ended transaction with a copy at or above `half_floor` is in `ended`: an op
//!   is forgotten only once every copy of its transaction lies below the floor.
//!
//! So a decision may be applied exactly when its transaction is not in `ended` and has
//! a copy at or above the floor ([`TxBook::may_end`]).

use std::collections::{BTreeMap, HashMap};

/// One copy of a half message, as read from the half queue or just appended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HalfCopy {
    pub txid: String,
    /// The topic it is for (`REAL_TOPIC`).
    pub topic: String,
    /// Its offset in the half queue.
    pub queue_offset: u64,
    /// Its CommitLog offset, where the broker reads it back.
    pub physical_offset: u64,
    pub stored_ms: i64,
    /// How long after `stored_ms` it may first be checked.
    pub immunity_ms: u64,
    /// Checks already sent for earlier copies (`TRANSACTION_CHECK_TIMES`).
    pub check_times: u32,
}

/// An op record: the transaction ended (committed, rolled back or discarded).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Op {
    pub txid: String,
    /// Its offset in the op queue.
    pub queue_offset: u64,
    /// The highest half-queue offset of the transaction's copies when it ended.
    pub last_half: u64,
}

#[derive(Debug, Default)]
pub struct TxBook {
    /// Half-queue offsets below this are settled: ended, superseded by a newer copy,
    /// or discarded.
    half_floor: u64,
    /// The next half-queue offset to read.
    half_read: u64,
    /// Op-queue offsets below this are no longer needed.
    op_floor: u64,
    /// The next op-queue offset to read.
    op_read: u64,
    /// Latest copy of each pending transaction, by half-queue offset.
    pending: BTreeMap<u64, HalfCopy>,
    /// Pending transaction id → the half-queue offset of its latest copy.
    latest: HashMap<String, u64>,
    /// Ended transaction id → its op.
    ended: HashMap<String, Op>,
    /// Ended transactions by op-queue offset, for moving `op_floor`.
    ops: BTreeMap<u64, String>,
}

impl TxBook {
    /// A book that starts reading at the persisted floors.
    pub fn new(half_floor: u64, op_floor: u64) -> Self {
        TxBook {
            half_floor,
            half_read: half_floor,
            op_floor,
            op_read: op_floor,
            ..TxBook::default()
        }
    }

    pub fn half_read(&self) -> u64 {
        self.half_read
    }

    pub fn op_read(&self) -> u64 {
        self.op_read
    }

    pub fn half_floor(&self) -> u64 {
        self.half_floor
    }

    pub fn op_floor(&self) -> u64 {
        self.op_floor
    }

    /// Pending transactions.
    pub fn pending_count(&self) -> usize {
        self.pending.len()
    }

    /// Pending transactions per topic.
    pub fn pending_by_topic(&self) -> BTreeMap<String, usize> {
        let mut by_topic = BTreeMap::new();
        for copy in self.pending.values() {
            *by_topic.entry(copy.topic.clone()).or_default() += 1;
        }
        by_topic
    }

    /// Skips unreadable half-queue offsets (removed by retention, or never there).
    pub fn skip_half_to(&mut self, offset: u64) {
        self.half_read = self.half_read.max(offset);
    }

    /// Skips unreadable op-queue offsets.
    pub fn skip_op_to(&mut self, offset: u64) {
        self.op_read = self.op_read.max(offset);
    }

    /// A copy read from the half queue (`read` true, at `half_read`) or just appended
    /// by this broker (`read` false; it is read again later, which changes nothing).
    pub fn observe_half(&mut self, copy: HalfCopy, read: bool) {
        if read {
            debug_assert!(
                copy.queue_offset >= self.half_read,
                "half copies read in order"
            );
            self.half_read = copy.queue_offset + 1;
        }
        if copy.queue_offset < self.half_floor || self.ended.contains_key(&copy.txid) {
            return;
        }
        match self.latest.get(&copy.txid) {
            Some(&at) if at >= copy.queue_offset => return,
            Some(&older) => {
                self.pending.remove(&older);
            }
            None => {}
        }
        self.latest.insert(copy.txid.clone(), copy.queue_offset);
        self.pending.insert(copy.queue_offset, copy);
    }

    /// An op read from the op queue (`read` true, at `op_read`) or just written by this
    /// broker.
    pub fn observe_op(&mut self, op: Op, read: bool) {
        if read {
            debug_assert!(op.queue_offset >= self.op_read, "ops read in order");
            self.op_read = op.queue_offset + 1;
        }
        if op.queue_offset < self.op_floor {
            return;
        }
        if let Some(at) = self.latest.remove(&op.txid) {
            self.pending.remove(&at);
        }
        if let Some(earlier) = self.ended.get(&op.txid) {
            // A transaction ends once; a second op (a bug, or a discard racing a
            // decision in an older broker) keeps the first.
            if earlier.queue_offset <= op.queue_offset {
                return;
            }
            self.ops.remove(&earlier.queue_offset);
        }
        self.ops.insert(op.queue_offset, op.txid.clone());
        self.ended.insert(op.txid.clone(), op);
    }

    /// Whether a decision for `txid`, naming its copy at `copy_offset`, may be applied:
    /// the transaction has not ended and is still in the book's window.
    pub fn may_end(&self, txid: &str, copy_offset: u64) -> bool {
        !self.ended.contains_key(txid)
            && (copy_offset >= self.half_floor || self.latest.contains_key(txid))
    }

    /// The highest copy offset of `txid` known, with `named` (the copy a decision
    /// names): what its op records as `last_half`.
    pub fn last_half(&self, txid: &str, named: u64) -> u64 {
        self.latest.get(txid).map_or(named, |&at| at.max(named))
    }

    /// Whether `txid`'s latest copy is still `copy_offset` and pending.
    pub fn is_latest_pending(&self, txid: &str, copy_offset: u64) -> bool {
        self.latest.get(txid) == Some(&copy_offset)
    }

    /// Pending copies whose immunity has passed at `now_ms`: the ones to check.
    pub fn due(&self, now_ms: i64) -> Vec<HalfCopy> {
        self.pending
            .values()
            .filter(|c| now_ms.saturating_sub(c.stored_ms) >= c.immunity_ms as i64)
            .cloned()
            .collect()
    }

    /// Moves both floors as far as the invariants allow; returns them.
    pub fn advance_floors(&mut self) -> (u64, u64) {
        // Never past what was read: copies and ops this broker wrote itself are booked
        // before they are read, and may lie above half messages not read yet.
        let half_floor = self
            .pending
            .keys()
            .next()
            .copied()
            .unwrap_or(self.half_read)
            .min(self.half_read);
        debug_assert!(
            half_floor >= self.half_floor,
            "the half floor never moves back"
        );
        self.half_floor = half_floor;
        while let Some((&at, txid)) = self.ops.first_key_value() {
            let op = &self.ended[txid];
            if op.last_half >= half_floor {
                break;
            }
            let txid = txid.clone();
            self.ops.remove(&at);
            self.ended.remove(&txid);
        }
        self.op_floor = self
            .ops
            .keys()
            .next()
            .copied()
            .unwrap_or(self.op_read)
            .min(self.op_read)
            .max(self.op_floor);
        (self.half_floor, self.op_floor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn copy(txid: &str, queue_offset: u64, stored_ms: i64) -> HalfCopy {
        HalfCopy {
            txid: txid.into(),
            topic: "Orders".into(),
            queue_offset,
            physical_offset: 1000 + queue_offset,
            stored_ms,
            immunity_ms: 6_000,
            check_times: 0,
        }
    }

    fn op(txid: &str, queue_offset: u64, last_half: u64) -> Op {
        Op {
            txid: txid.into(),
            queue_offset,
            last_half,
        }
    }

    #[test]
    fn a_transaction_ends_once() {
        let mut book = TxBook::new(0, 0);
        book.observe_half(copy("t1", 0, 0), true);
        assert!(book.may_end("t1", 0));
        book.observe_op(op("t1", 0, 0), false);
        assert!(!book.may_end("t1", 0), "a second decision is not applied");
        assert_eq!(book.pending_count(), 0);
    }

    #[test]
    fn a_check_copy_supersedes_the_one_before_and_either_may_be_answered() {
        let mut book = TxBook::new(0, 0);
        book.observe_half(copy("t1", 0, 0), true);
        book.observe_half(copy("t2", 1, 0), true);
        // The check round appends copy 2 of t1.
        book.observe_half(copy("t1", 2, 7_000), false);
        assert_eq!(book.pending_count(), 2);
        assert!(book.is_latest_pending("t1", 2));
        assert!(!book.is_latest_pending("t1", 0));
        // Reading copy 2 back changes nothing; reading an older copy after it neither.
        book.observe_half(copy("t1", 2, 7_000), true);
        assert_eq!(book.half_read(), 3);
        assert_eq!(
            book.advance_floors(),
            (1, 0),
            "t2 at 1 is the lowest pending"
        );
        // The producer answers for its first copy, below nothing pending of t1.
        assert!(book.may_end("t1", 0), "latest copy still pending");
        assert_eq!(book.last_half("t1", 0), 2);
    }

    #[test]
    fn an_op_is_kept_while_a_copy_of_its_transaction_is_in_the_window() {
        let mut book = TxBook::new(0, 0);
        book.observe_half(copy("t1", 0, 0), true);
        book.observe_half(copy("t2", 1, 0), true);
        book.observe_half(copy("t1", 2, 7_000), true);
        book.observe_op(op("t1", 0, 2), true);
        // t2 pending at 1 holds the half floor; t1's op names copy 2, above it.
        assert_eq!(book.advance_floors(), (1, 0));
        assert!(!book.may_end("t1", 2));
        book.observe_op(op("t2", 1, 1), true);
        // Everything settled: both floors move to the ends read.
        assert_eq!(book.advance_floors(), (3, 2));
        // t1 is forgotten, but its copies are all below the floor: still refused.
        assert!(!book.may_end("t1", 0));
        assert!(!book.may_end("t1", 2));
        // A transaction not read yet (its copy above the floor) may end.
        assert!(book.may_end("t3", 3));
    }

    #[test]
    fn a_book_rebuilt_from_the_floors_agrees_with_the_one_that_wrote_them() {
        // The master's book, and a new master's rebuilt from the persisted floors and
        // the same queues: the same decisions are allowed.
        let halves = [
            copy("a", 0, 0),
            copy("b", 1, 0),
            copy("a", 2, 7_000),
            copy("c", 3, 8_000),
        ];
        let ops = [op("b", 0, 1), op("a", 1, 2)];
        let mut old = TxBook::new(0, 0);
        for h in &halves {
            old.observe_half(h.clone(), true);
        }
        for o in &ops {
            old.observe_op(o.clone(), true);
        }
        let (half_floor, op_floor) = old.advance_floors();
        assert_eq!((half_floor, op_floor), (3, 2));
        let mut new = TxBook::new(half_floor, op_floor);
        for h in halves.iter().filter(|h| h.queue_offset >= half_floor) {
            new.observe_half(h.clone(), true);
        }
        for o in ops.iter().filter(|o| o.queue_offset >= op_floor) {
            new.observe_op(o.clone(), true);
        }
        for (txid, at) in [("a", 0), ("a", 2), ("b", 1), ("c", 3)] {
            assert_eq!(new.may_end(txid, at), old.may_end(txid, at), "{txid}@{at}");
        }
        assert_eq!(new.pending_count(), 1);
    }

    #[test]
    fn the_floors_never_pass_what_was_not_read() {
        // Copy 0 read; this broker appends its check copy at 2 and an op at 3 while a
        // half message at 1 and ops below 3 are not read yet.
        let mut book = TxBook::new(0, 0);
        book.observe_half(copy("t1", 0, 0), true);
        book.observe_half(copy("t1", 2, 7_000), false);
        book.observe_op(op("t3", 3, 2), false);
        assert_eq!(book.advance_floors(), (1, 0));
        // The unread half message at 1 is still in the window when read.
        book.observe_half(copy("t2", 1, 0), true);
        assert!(book.may_end("t2", 1));
        assert_eq!(book.pending_count(), 2);
    }

    #[test]
    fn due_copies_are_those_past_their_immunity() {
        let mut book = TxBook::new(0, 0);
        book.observe_half(copy("t1", 0, 0), true);
        book.observe_half(
            HalfCopy {
                immunity_ms: 1_000,
                ..copy("t2", 1, 0)
            },
            true,
        );
        assert_eq!(book.due(999).len(), 0);
        assert_eq!(book.due(1_000).len(), 1);
        assert_eq!(book.due(6_000).len(), 2);
    }

    #[test]
    fn skipped_offsets_move_the_floors() {
        let mut book = TxBook::new(0, 0);
        book.skip_half_to(5);
        book.skip_op_to(4);
        assert_eq!(book.advance_floors(), (5, 4));
        assert!(!book.may_end("old", 4));
    }
}
