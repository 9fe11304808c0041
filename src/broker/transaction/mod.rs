//! Transactional messages, as RocketMQ's: a producer sends a half message, runs its
//! local transaction, and commits or rolls the message back with END_TRANSACTION; a
//! producer that does not say (it answered UNKNOW, or died) is asked by the broker with
//! CHECK_TRANSACTION_STATE.
//!
//! - A send with `TRAN_MSG=true` is stored in `RMQ_SYS_TRANS_HALF_TOPIC` (queue 0),
//!   its topic and queue kept in `REAL_TOPIC` / `REAL_QID`: no consumer sees it.
//! - END_TRANSACTION commits (the message is written to its real topic) or rolls back;
//!   either way an op record goes to `RMQ_SYS_TRANS_OP_HALF_TOPIC`, in the same write
//!   as the commit, so both take effect or neither (one Raft entry in a group).
//! - The master's check round, every `check_interval_ms`, appends a fresh copy of each
//!   half message older than its immunity (`timeout_ms`, or the message's
//!   `CHECK_IMMUNITY_TIME_IN_SECONDS`) with `TRANSACTION_CHECK_TIMES` + 1, and asks a
//!   producer of its group about it; after `check_max` checks the message is discarded
//!   to `TRANS_CHECK_MAX_TIME_TOPIC` (with an op, so it is never delivered).
//!
//! Everything goes through the write path (the Raft log in a group), and the master's
//! view of what is pending ([`book::TxBook`]) is rebuilt from the two queues after the
//! master has applied everything committed before its term: a new master continues
//! where the old one stopped, and a transaction ends once however many times its
//! producer answers.

pub mod book;
mod check;
mod end;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI32, AtomicU64};
use std::sync::Mutex;

use proto::{MessageRef, NewMessage};

use crate::config::TransactionSettings;
use book::{HalfCopy, Op, TxBook};

pub use proto::names::HALF_TOPIC;
pub const OP_TOPIC: &str = "RMQ_SYS_TRANS_OP_HALF_TOPIC";
/// Where transactions checked `check_max` times without an answer go.
pub const CHECK_MAX_TOPIC: &str = "TRANS_CHECK_MAX_TIME_TOPIC";
/// The half and op queues' floors are kept as this group's consumer offsets.
pub(super) const TX_GROUP: &str = "CID_RMQ_SYS_TRANS";

/// RocketMQ's `MessageSysFlag` transaction bits.
const TRANSACTION_MASK: i32 = 0xC;
const TRANSACTION_COMMIT_TYPE: i32 = 0x8;

/// `commitOrRollback` values.
const UNKNOWN: i32 = 0;
const COMMIT: i32 = 8;
const ROLLBACK: i32 = 12;

/// Stripes of the per-transaction lock: decisions for one transaction are applied one
/// at a time, decisions for others in parallel.
const STRIPES: usize = 64;

pub mod property {
    pub const TRAN_MSG: &str = "TRAN_MSG";
    pub const PRODUCER_GROUP: &str = "PGROUP";
    pub const TRANSACTION_ID: &str = "__transactionId__";
    pub const CHECK_TIMES: &str = "TRANSACTION_CHECK_TIMES";
    pub const CHECK_IMMUNITY_SECONDS: &str = "CHECK_IMMUNITY_TIME_IN_SECONDS";
    pub const UNIQ_KEY: &str = "UNIQ_KEY";
    pub use proto::properties::keys::{REAL_QUEUE_ID, REAL_TOPIC};
    pub const TAGS: &str = "TAGS";
    /// raftmq's, on op records: the highest half-queue offset of the transaction's
    /// copies when it ended, and how it ended (`commit`, `rollback` or `discard`).
    pub const OP_LAST_HALF: &str = "RAFTMQ_TX_LAST_HALF";
    pub const OP_OUTCOME: &str = "RAFTMQ_TX_OUTCOME";
}

/// How a transaction ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    Commit,
    Rollback,
    /// Checked `check_max` times without an answer.
    Discard,
}

impl Outcome {
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Commit => "commit",
            Outcome::Rollback => "rollback",
            Outcome::Discard => "discard",
        }
    }
}

/// The broker's transaction state: the master's book, and counters.
pub struct Transactions {
    settings: TransactionSettings,
    /// The book and the term it was rebuilt in (0 for a single broker); `None` until
    /// first needed and after a failed rebuild.
    book: Mutex<Option<(u64, TxBook)>>,
    /// Held while reading the half and op queues into the book, and while rebuilding it.
    reading: tokio::sync::Mutex<()>,
    stripes: Vec<tokio::sync::Mutex<()>>,
    next_opaque: AtomicI32,
    /// Transactions ended by this broker since it started, per topic and outcome.
    ended: Mutex<BTreeMap<(String, Outcome), u64>>,
    pub checks_sent: AtomicU64,
}

impl Transactions {
    pub fn new(settings: TransactionSettings) -> Self {
        Transactions {
            settings,
            book: Mutex::new(None),
            reading: tokio::sync::Mutex::new(()),
            stripes: (0..STRIPES).map(|_| tokio::sync::Mutex::new(())).collect(),
            next_opaque: AtomicI32::new(1),
            ended: Mutex::default(),
            checks_sent: AtomicU64::new(0),
        }
    }

    fn stripe_index(&self, txid: &str) -> usize {
        proto::hash::java_string_hash(txid).unsigned_abs() as usize % STRIPES
    }

    fn stripe(&self, txid: &str) -> &tokio::sync::Mutex<()> {
        &self.stripes[self.stripe_index(txid)]
    }

    fn with_book<R>(&self, f: impl FnOnce(&mut TxBook) -> R) -> Option<R> {
        let mut book = self.book.lock().expect("transaction book poisoned");
        book.as_mut().map(|(_, b)| f(b))
    }

    /// Transactions waiting for a decision, as the master's book last saw them.
    pub fn pending(&self) -> usize {
        self.with_book(|b| b.pending_count()).unwrap_or(0)
    }

    /// The same, if the book was built in `term` (a master's current book); `None` for
    /// a book of an earlier term, or none.
    pub fn pending_in(&self, term: u64) -> Option<usize> {
        let book = self.book.lock().expect("transaction book poisoned");
        match &*book {
            Some((built_in, book)) if *built_in == term => Some(book.pending_count()),
            _ => None,
        }
    }

    /// The same, per topic.
    pub fn pending_by_topic(&self) -> BTreeMap<String, usize> {
        self.with_book(|b| b.pending_by_topic()).unwrap_or_default()
    }

    /// Transactions this broker ended since it started, per (topic, outcome).
    pub fn ended(&self) -> BTreeMap<(String, Outcome), u64> {
        self.ended
            .lock()
            .expect("transaction counts poisoned")
            .clone()
    }

    /// The same, summed over topics.
    pub fn ended_total(&self, outcome: Outcome) -> u64 {
        let ended = self.ended.lock().expect("transaction counts poisoned");
        ended
            .iter()
            .filter(|((_, o), _)| *o == outcome)
            .map(|(_, n)| n)
            .sum()
    }
}

/// PLANTED BUG (`fault-injection` builds only), which the simulator's checkers must
/// catch: a transactional send is stored in its topic at once, as a plain message, so
/// consumers see it before (and whether or not) it commits.
#[cfg(feature = "fault-injection")]
pub fn plant_deliver_half_messages() {
    DELIVER_HALF_MESSAGES.store(true, std::sync::atomic::Ordering::Relaxed);
}

#[cfg(feature = "fault-injection")]
static DELIVER_HALF_MESSAGES: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

/// A send with `TRAN_MSG=true` becomes a half message: returns whether it did.
pub(super) fn prepare_half(message: &mut NewMessage) -> bool {
    #[cfg(feature = "fault-injection")]
    if DELIVER_HALF_MESSAGES.load(std::sync::atomic::Ordering::Relaxed) {
        return false;
    }
    let is_transaction = message
        .properties
        .get(property::TRAN_MSG)
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
    if !is_transaction {
        return false;
    }
    if let Some(uniq) = message
        .properties
        .get(property::UNIQ_KEY)
        .map(str::to_string)
    {
        message.properties.insert(property::TRANSACTION_ID, uniq);
    }
    message.sys_flag &= !TRANSACTION_MASK;
    super::park::park(message, HALF_TOPIC, 0);
    true
}

/// A transaction's id: the producer's UNIQ_KEY (kept as `__transactionId__`), else
/// the half message's first CommitLog offset.
fn transaction_id(half: &MessageRef<'_>) -> String {
    half.property(property::TRANSACTION_ID)
        .or_else(|| half.property(property::UNIQ_KEY))
        .map(str::to_string)
        .unwrap_or_else(|| format!("@{}", half.physical_offset()))
}

/// The message a committed half message becomes: its real topic and queue, committed.
fn committed_message(half: &MessageRef<'_>) -> Result<NewMessage, String> {
    let mut message = half.to_new_message();
    if !super::park::unpark(&mut message) {
        return Err("the half message has no REAL_TOPIC and REAL_QID".into());
    }
    message.properties.remove(property::TRAN_MSG);
    message.sys_flag = (message.sys_flag & !TRANSACTION_MASK) | TRANSACTION_COMMIT_TYPE;
    message.prepared_transaction_offset = half.physical_offset() as i64;
    Ok(message)
}

/// The op record that ends `txid`. Its body is the half-queue offset, as RocketMQ
/// 4.x writes it.
fn op_message(txid: &str, half_offset: u64, last_half: u64, outcome: Outcome) -> NewMessage {
    let mut op = NewMessage::new(OP_TOPIC, 0, half_offset.to_string());
    op.properties.insert(property::TAGS, "d");
    op.properties.insert(property::TRANSACTION_ID, txid);
    op.properties
        .insert(property::OP_LAST_HALF, last_half.to_string());
    op.properties.insert(property::OP_OUTCOME, outcome.name());
    op
}

/// A half copy as the book keeps it.
fn half_copy(half: &MessageRef<'_>, settings: &TransactionSettings) -> HalfCopy {
    // As Java's `getImmunityTime`: seconds, or -1 for the broker's timeout.
    let immunity_ms = half
        .property(property::CHECK_IMMUNITY_SECONDS)
        .and_then(|s| s.trim().parse::<i64>().ok())
        .filter(|&s| s >= 0)
        .map_or(settings.timeout_ms, |s| (s as u64).saturating_mul(1000));
    HalfCopy {
        txid: transaction_id(half),
        topic: half
            .property(property::REAL_TOPIC)
            .unwrap_or_default()
            .to_string(),
        queue_offset: half.queue_offset(),
        physical_offset: half.physical_offset(),
        stored_ms: half.store_timestamp_ms(),
        immunity_ms,
        check_times: half
            .property(property::CHECK_TIMES)
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0),
    }
}

/// An op as the book keeps it; `None` for one without a transaction id.
fn op_of(op: &MessageRef<'_>) -> Option<Op> {
    let txid = op.property(property::TRANSACTION_ID)?.to_string();
    let last_half = op
        .property(property::OP_LAST_HALF)
        .and_then(|n| n.parse().ok())
        .or_else(|| std::str::from_utf8(op.body()).ok()?.trim().parse().ok())?;
    Some(Op {
        txid,
        queue_offset: op.queue_offset(),
        last_half,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn half(properties: &[(&str, &str)]) -> NewMessage {
        let mut m = NewMessage::new("Orders", 2, "body");
        for (k, v) in properties {
            m.properties.insert(k, v);
        }
        m.sys_flag = 4; // TRANSACTION_PREPARED_TYPE, as clients send it
        m
    }

    fn stored(message: &NewMessage, queue_offset: u64, physical_offset: u64) -> Vec<u8> {
        let fields = proto::message::StoreFields {
            queue_offset,
            physical_offset,
            store_timestamp_ms: 5_000,
            store_host: ([127, 0, 0, 1], 10911).into(),
        };
        let mut bytes = Vec::new();
        message.encode_into(&fields, &mut bytes).expect("encodes");
        bytes
    }

    #[test]
    fn a_transactional_send_becomes_a_half_message_and_commits_back() {
        let mut plain = half(&[]);
        assert!(!prepare_half(&mut plain));
        assert_eq!(plain.topic, "Orders");
        let mut m = half(&[("TRAN_MSG", "true"), ("PGROUP", "pg"), ("UNIQ_KEY", "U1")]);
        assert!(prepare_half(&mut m));
        assert_eq!(
            (m.topic.as_str(), m.queue_id, m.sys_flag),
            (HALF_TOPIC, 0, 0)
        );
        assert_eq!(m.properties.get(property::TRANSACTION_ID), Some("U1"));
        assert_eq!(m.properties.get(property::REAL_QUEUE_ID), Some("2"));
        let bytes = stored(&m, 7, 4096);
        let half = MessageRef::parse(&bytes).expect("parses");
        assert_eq!(transaction_id(&half), "U1");
        let committed = committed_message(&half).expect("commits");
        assert_eq!(
            (committed.topic.as_str(), committed.queue_id),
            ("Orders", 2)
        );
        assert_eq!(
            committed.sys_flag & TRANSACTION_MASK,
            TRANSACTION_COMMIT_TYPE
        );
        assert_eq!(committed.prepared_transaction_offset, 4096);
        assert_eq!(committed.properties.get(property::TRAN_MSG), None);
        assert_eq!(committed.properties.get(property::REAL_TOPIC), None);
        assert_eq!(committed.properties.get(property::UNIQ_KEY), Some("U1"));
    }

    #[test]
    fn a_half_copy_takes_its_immunity_and_check_count_from_its_properties() {
        let settings = TransactionSettings::default();
        let mut m = half(&[("TRAN_MSG", "true"), ("UNIQ_KEY", "U1")]);
        prepare_half(&mut m);
        let bytes = stored(&m, 0, 0);
        let copy = half_copy(&MessageRef::parse(&bytes).unwrap(), &settings);
        assert_eq!((copy.immunity_ms, copy.check_times), (6_000, 0));
        m.properties.insert(property::CHECK_IMMUNITY_SECONDS, "1");
        m.properties.insert(property::CHECK_TIMES, "3");
        let bytes = stored(&m, 0, 0);
        let copy = half_copy(&MessageRef::parse(&bytes).unwrap(), &settings);
        assert_eq!((copy.immunity_ms, copy.check_times), (1_000, 3));
        m.properties.insert(property::CHECK_IMMUNITY_SECONDS, "-1");
        let bytes = stored(&m, 0, 0);
        let copy = half_copy(&MessageRef::parse(&bytes).unwrap(), &settings);
        assert_eq!(copy.immunity_ms, 6_000);
    }

    #[test]
    fn an_op_record_names_its_transaction_and_last_copy() {
        let op = op_message("U1", 4, 9, Outcome::Rollback);
        assert_eq!(op.body.as_ref(), b"4");
        let bytes = stored(&op, 11, 0);
        let parsed = op_of(&MessageRef::parse(&bytes).unwrap()).expect("an op");
        assert_eq!(
            parsed,
            Op {
                txid: "U1".into(),
                queue_offset: 11,
                last_half: 9
            }
        );
    }
}
