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

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use proto::message::DecodeError;
use proto::net::server::Channel;
use proto::remoting::codes::{request, response};
use proto::remoting::command::{SerializeType, FLAG_ONEWAY};
use proto::remoting::{ProtoError, RemotingCommand};
use proto::{MessageRef, NewMessage};
use store::meta::MetaStore;
use store::{Disk, GetStatus, StoreError};

use super::write::{put_error, PutError, WriteError};
use super::{ok, store_error, Broker};
use crate::config::TransactionSettings;
use book::{HalfCopy, Op, TxBook};

pub const HALF_TOPIC: &str = "RMQ_SYS_TRANS_HALF_TOPIC";
pub const OP_TOPIC: &str = "RMQ_SYS_TRANS_OP_HALF_TOPIC";
/// Where transactions checked `check_max` times without an answer go.
pub const CHECK_MAX_TOPIC: &str = "TRANS_CHECK_MAX_TIME_TOPIC";
/// The half and op queues' floors are kept as this group's consumer offsets.
const TX_GROUP: &str = "CID_RMQ_SYS_TRANS";

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
    pub const REAL_TOPIC: &str = "REAL_TOPIC";
    pub const REAL_QUEUE_ID: &str = "REAL_QID";
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

    fn stripe(&self, txid: &str) -> &tokio::sync::Mutex<()> {
        &self.stripes[proto::hash::java_string_hash(txid).unsigned_abs() as usize % STRIPES]
    }

    fn with_book<R>(&self, f: impl FnOnce(&mut TxBook) -> R) -> Option<R> {
        let mut book = self.book.lock().expect("transaction book poisoned");
        book.as_mut().map(|(_, b)| f(b))
    }

    /// Transactions waiting for a decision, as the master's book last saw them.
    pub fn pending(&self) -> usize {
        self.with_book(|b| b.pending_count()).unwrap_or(0)
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

/// A send with `TRAN_MSG=true` becomes a half message: returns whether it did.
pub(super) fn prepare_half(message: &mut NewMessage) -> bool {
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
    let real_queue = message.queue_id.to_string();
    message
        .properties
        .insert(property::REAL_TOPIC, message.topic.as_str());
    message
        .properties
        .insert(property::REAL_QUEUE_ID, real_queue);
    message.sys_flag &= !TRANSACTION_MASK;
    message.topic = HALF_TOPIC.to_string();
    message.queue_id = 0;
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
    let topic = message
        .properties
        .remove(property::REAL_TOPIC)
        .ok_or("the half message has no REAL_TOPIC")?;
    let queue_id = message
        .properties
        .remove(property::REAL_QUEUE_ID)
        .and_then(|q| q.parse().ok())
        .ok_or("the half message has no REAL_QID")?;
    message.properties.remove(property::TRAN_MSG);
    message.topic = topic;
    message.queue_id = queue_id;
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

/// What one message read from the half or op queue is to the book.
enum Read {
    Half(HalfCopy),
    Op(Op),
    /// An op without a transaction id, at this op-queue offset.
    BadOp(u64),
}

/// Why a check round stopped; logged, and the next round tries again.
#[derive(Debug, thiserror::Error)]
enum CheckError {
    #[error("reading {0}: {1}")]
    Read(&'static str, #[source] StoreError),
    #[error("a stored message is malformed: {0}")]
    Malformed(#[from] DecodeError),
    #[error(transparent)]
    Write(#[from] PutError),
}

impl<D: Disk, M: MetaStore> Broker<D, M> {
    /// END_TRANSACTION: oneway from clients, so the answer is only seen by callers
    /// that wait for one (tests, tools); Java's broker answers the same codes.
    pub(super) async fn end_transaction(
        &self,
        req: &RemotingCommand,
    ) -> Result<RemotingCommand, ProtoError> {
        let refuse = |code, remark: String| {
            tracing::debug!(remark, "END_TRANSACTION refused");
            Ok(RemotingCommand::response_to(req, code, Some(remark)))
        };
        let header = || -> Result<(String, u64, u64, i32), ProtoError> {
            Ok((
                req.ext_parse("producerGroup")?,
                req.ext_parse("tranStateTableOffset")?,
                req.ext_parse("commitLogOffset")?,
                req.ext_parse("commitOrRollback")?,
            ))
        };
        // Oneway: a malformed request gets no answer, so it is logged.
        let (group, queue_offset, commit_log_offset, state) = header().inspect_err(|e| {
            tracing::warn!(error = %e, fields = ?req.ext_fields, "END_TRANSACTION malformed");
        })?;
        let from_check = req.ext_bool("fromTransactionCheck").unwrap_or(false);
        let outcome = match state {
            COMMIT => Outcome::Commit,
            ROLLBACK => Outcome::Rollback,
            UNKNOWN => {
                tracing::debug!(
                    group,
                    commit_log_offset,
                    from_check,
                    "transaction still undecided"
                );
                return Ok(ok(req));
            }
            other => {
                return refuse(
                    response::SYSTEM_ERROR,
                    format!(
                        "commitOrRollback {other} is not 0 (unknown), 8 (commit) or 12 (rollback)"
                    ),
                )
            }
        };
        if self.replica.as_ref().is_some_and(|r| !r.is_master()) {
            return refuse(
                response::SLAVE_NOT_AVAILABLE,
                "END_TRANSACTION reached a slave; only the master ends transactions".into(),
            );
        }
        let bytes = match self.store.message_at(commit_log_offset).await {
            Ok(Some(bytes)) => bytes,
            Ok(None) => {
                return refuse(
                    response::SYSTEM_ERROR,
                    format!("Find prepared transaction message failed: nothing at commitLogOffset {commit_log_offset}"),
                )
            }
            Err(e) => return Ok(store_error(req, &e)),
        };
        let half = MessageRef::parse(&bytes).map_err(|e| ProtoError::Malformed(e.to_string()))?;
        if half.topic() != HALF_TOPIC || half.physical_offset() != commit_log_offset {
            return refuse(
                response::SYSTEM_ERROR,
                format!("Find prepared transaction message failed: no half message at commitLogOffset {commit_log_offset}"),
            );
        }
        if half.property(property::PRODUCER_GROUP) != Some(group.as_str()) {
            return refuse(
                response::SYSTEM_ERROR,
                format!(
                    "The producer group wrong: the half message's is {:?}, not {group:?}",
                    half.property(property::PRODUCER_GROUP).unwrap_or("")
                ),
            );
        }
        if half.queue_offset() != queue_offset {
            return refuse(
                response::SYSTEM_ERROR,
                format!(
                    "The transaction state table offset wrong: the half message is at {}, not {queue_offset}",
                    half.queue_offset()
                ),
            );
        }
        match self.end(&half, outcome).await {
            Ok(applied) => {
                tracing::debug!(txid = %transaction_id(&half), outcome = outcome.name(), applied, from_check, "END_TRANSACTION");
                Ok(ok(req))
            }
            Err(e) => Ok(put_error(req, &e)),
        }
    }

    /// Ends the transaction of `half` (any of its copies) once: returns false when it
    /// had already ended, or left the book's window long ago.
    async fn end(&self, half: &MessageRef<'_>, outcome: Outcome) -> Result<bool, PutError> {
        let txid = transaction_id(half);
        let _one_at_a_time = self.transactions.stripe(&txid).lock().await;
        self.end_locked(half, &txid, outcome).await
    }

    /// [`Self::end`], for a caller holding `txid`'s stripe.
    async fn end_locked(
        &self,
        half: &MessageRef<'_>,
        txid: &str,
        outcome: Outcome,
    ) -> Result<bool, PutError> {
        self.tx_book_ready().await?;
        let copy_offset = half.queue_offset();
        let decided = self.transactions.with_book(|book| {
            book.may_end(txid, copy_offset)
                .then(|| book.last_half(txid, copy_offset))
        });
        let Some(Some(last_half)) = decided else {
            return Ok(false);
        };
        let mut messages = Vec::with_capacity(2);
        let mut delayed = false;
        match outcome {
            Outcome::Commit => {
                let mut message = committed_message(half)
                    .map_err(|e| PutError::Store(StoreError::MessageIllegal(e)))?;
                // A DELAY level applies from the commit, as in Java.
                delayed = super::retry::schedule_if_delayed(&mut message)
                    .unwrap_or_else(|e| {
                        tracing::warn!(txid, error = %e, "committed message delivered at once");
                        None
                    })
                    .is_some();
                messages.push(message);
            }
            Outcome::Rollback => {}
            Outcome::Discard => {
                let mut copy = half.to_new_message();
                copy.topic = CHECK_MAX_TOPIC.to_string();
                copy.queue_id = 0;
                messages.push(copy);
            }
        }
        messages.push(op_message(txid, copy_offset, last_half, outcome));
        let results = self.put_messages(messages).await?;
        let op = results.last().expect("one result per message");
        self.transactions.with_book(|book| {
            book.observe_op(
                Op {
                    txid: txid.to_string(),
                    queue_offset: op.queue_offset,
                    last_half,
                },
                false,
            )
        });
        if delayed {
            self.scheduled.send_modify(|v| *v += 1);
        }
        let topic = half.property(property::REAL_TOPIC).unwrap_or_default();
        *self
            .transactions
            .ended
            .lock()
            .expect("transaction counts poisoned")
            .entry((topic.to_string(), outcome))
            .or_default() += 1;
        Ok(true)
    }

    /// Makes the book current for this master: rebuilt (from the persisted floors and
    /// the two queues) once per term, after the master applied everything committed
    /// before its term began.
    async fn tx_book_ready(&self) -> Result<(), PutError> {
        let term = match &self.replica {
            Some(replica) if !replica.is_master() => {
                return Err(PutError::Replica(WriteError::NotMaster {
                    master: replica.master_broker_addr(),
                }))
            }
            Some(replica) => replica.term(),
            None => 0,
        };
        let current = |t: &Transactions| {
            t.book
                .lock()
                .expect("transaction book poisoned")
                .as_ref()
                .is_some_and(|(built_in, _)| *built_in == term)
        };
        if current(&self.transactions) {
            return Ok(());
        }
        let _reading = self.transactions.reading.lock().await;
        if current(&self.transactions) {
            return Ok(());
        }
        if let Some(replica) = &self.replica {
            if !replica.linearize().await {
                return Err(PutError::Replica(WriteError::NotMaster { master: None }));
            }
        }
        let floor = |topic| {
            self.consumer_offset(TX_GROUP, topic, 0)
                .map(Option::unwrap_or_default)
        };
        let book = TxBook::new(floor(HALF_TOPIC)?, floor(OP_TOPIC)?);
        *self
            .transactions
            .book
            .lock()
            .expect("transaction book poisoned") = Some((term, book));
        if let Err(e) = self.read_tx_queues().await {
            *self
                .transactions
                .book
                .lock()
                .expect("transaction book poisoned") = None;
            return Err(match e {
                CheckError::Write(e) => e,
                CheckError::Read(_, e) => PutError::Store(e),
                CheckError::Malformed(e) => {
                    PutError::Store(StoreError::MessageIllegal(e.to_string()))
                }
            });
        }
        tracing::info!(
            term,
            pending = self.transactions.pending(),
            "transaction book rebuilt"
        );
        Ok(())
    }

    /// Reads what is new in the half and op queues into the book. The caller holds
    /// `reading`.
    async fn read_tx_queues(&self) -> Result<(), CheckError> {
        for topic in [OP_TOPIC, HALF_TOPIC] {
            loop {
                let Some(from) = self.transactions.with_book(|b| match topic {
                    HALF_TOPIC => b.half_read(),
                    _ => b.op_read(),
                }) else {
                    return Ok(());
                };
                let got = self
                    .store
                    .get_messages(topic, 0, from, 32, |_| true)
                    .await
                    .map_err(|e| CheckError::Read(topic, e))?;
                match got.status {
                    GetStatus::Found => {}
                    GetStatus::OffsetTooSmall => {
                        self.transactions.with_book(|b| match topic {
                            HALF_TOPIC => b.skip_half_to(got.next_offset),
                            _ => b.skip_op_to(got.next_offset),
                        });
                        continue;
                    }
                    _ => break,
                }
                let mut parsed = Vec::with_capacity(got.messages.len());
                for bytes in &got.messages {
                    let message = MessageRef::parse(bytes)?;
                    parsed.push(match topic {
                        HALF_TOPIC => Read::Half(half_copy(&message, &self.transactions.settings)),
                        _ => op_of(&message).map_or(Read::BadOp(message.queue_offset()), Read::Op),
                    });
                }
                self.transactions.with_book(|book| {
                    for item in parsed {
                        match item {
                            Read::Half(copy) => book.observe_half(copy, true),
                            Read::Op(op) => book.observe_op(op, true),
                            Read::BadOp(at) => {
                                tracing::warn!(
                                    offset = at,
                                    "op record without a transaction id; skipped"
                                );
                                book.skip_op_to(at + 1);
                            }
                        }
                    }
                });
            }
        }
        Ok(())
    }

    /// Checks undecided transactions every `check_interval_ms`, on the master.
    pub(super) async fn run_transaction_check(self: Arc<Self>) {
        let interval = Duration::from_millis(self.transactions.settings.check_interval_ms);
        loop {
            tokio::time::sleep(interval).await;
            if self.replica.as_ref().is_some_and(|r| !r.is_master()) {
                continue;
            }
            if let Err(e) = self.check_round().await {
                tracing::warn!(error = %e, "transaction check round stopped; next round retries");
            }
        }
    }

    async fn check_round(&self) -> Result<(), CheckError> {
        match self.tx_book_ready().await {
            Ok(()) => {}
            Err(PutError::Replica(WriteError::NotMaster { .. })) => return Ok(()),
            Err(e) => return Err(e.into()),
        }
        {
            let _reading = self.transactions.reading.lock().await;
            self.read_tx_queues().await?;
        }
        let due = self
            .transactions
            .with_book(|b| b.due(proto::clock::now_ms()))
            .unwrap_or_default();
        for copy in due {
            self.check_one(&copy).await?;
        }
        let floors = self.transactions.with_book(|b| b.advance_floors());
        if let Some((half_floor, op_floor)) = floors {
            // The half floor first: a new master reading from a newer op floor with an
            // older half floor could take an ended transaction for a pending one.
            self.commit_offset(TX_GROUP, HALF_TOPIC, 0, half_floor)
                .await?;
            self.commit_offset(TX_GROUP, OP_TOPIC, 0, op_floor).await?;
        }
        Ok(())
    }

    /// Checks one pending copy: a new copy and a CHECK_TRANSACTION_STATE, or a discard.
    async fn check_one(&self, copy: &HalfCopy) -> Result<(), CheckError> {
        let _one_at_a_time = self.transactions.stripe(&copy.txid).lock().await;
        let still_pending = self
            .transactions
            .with_book(|b| b.is_latest_pending(&copy.txid, copy.queue_offset));
        if still_pending != Some(true) {
            return Ok(());
        }
        let Some(bytes) = self
            .store
            .message_at(copy.physical_offset)
            .await
            .map_err(|e| CheckError::Read(HALF_TOPIC, e))?
        else {
            tracing::warn!(
                txid = copy.txid,
                "half message gone from the CommitLog; discarded"
            );
            return Ok(());
        };
        let half = MessageRef::parse(&bytes)?;
        if copy.check_times >= self.transactions.settings.check_max {
            tracing::warn!(
                txid = copy.txid,
                checks = copy.check_times,
                "transaction never decided; discarded to {CHECK_MAX_TOPIC}"
            );
            self.end_locked(&half, &copy.txid, Outcome::Discard).await?;
            return Ok(());
        }
        let mut next = half.to_new_message();
        next.properties
            .insert(property::CHECK_TIMES, (copy.check_times + 1).to_string());
        let results = self.put_messages(vec![next.clone()]).await?;
        let stored = results[0];
        let next_copy = HalfCopy {
            queue_offset: stored.queue_offset,
            physical_offset: stored.physical_offset,
            stored_ms: stored.store_timestamp_ms,
            check_times: copy.check_times + 1,
            ..copy.clone()
        };
        self.transactions
            .with_book(|b| b.observe_half(next_copy, false));
        let group = half.property(property::PRODUCER_GROUP).unwrap_or_default();
        let channel = self.producers.pick(
            group,
            proto::clock::now_ms(),
            self.config.client_channel_expired_ms,
        );
        let Some(channel) = channel else {
            tracing::warn!(
                txid = copy.txid,
                group,
                "no producer of the group to ask; checked again later"
            );
            return Ok(());
        };
        self.send_check(&channel, next, &stored);
        Ok(())
    }

    /// CHECK_TRANSACTION_STATE for a half copy, as Java's broker sends it: the message
    /// with its real topic and queue in the body, the copy's offsets in the header.
    fn send_check(&self, channel: &Channel, mut copy: NewMessage, stored: &store::PutResult) {
        let real_topic = copy
            .properties
            .get(property::REAL_TOPIC)
            .unwrap_or(HALF_TOPIC)
            .to_string();
        let real_queue = copy
            .properties
            .get(property::REAL_QUEUE_ID)
            .and_then(|q| q.parse().ok())
            .unwrap_or(0);
        let uniq = copy
            .properties
            .get(property::UNIQ_KEY)
            .unwrap_or_default()
            .to_string();
        let txid = copy
            .properties
            .get(property::TRANSACTION_ID)
            .map_or_else(|| uniq.clone(), str::to_string);
        copy.topic = real_topic.clone();
        copy.queue_id = real_queue;
        let fields = proto::message::StoreFields {
            queue_offset: stored.queue_offset,
            physical_offset: stored.physical_offset,
            store_timestamp_ms: stored.store_timestamp_ms,
            store_host: self.addr,
        };
        let mut body = Vec::with_capacity(copy.encoded_size(self.addr));
        if let Err(e) = copy.encode_into(&fields, &mut body) {
            tracing::warn!(error = %e, "encoding a transaction check");
            return;
        }
        let mut check = RemotingCommand::request(request::CHECK_TRANSACTION_STATE)
            .with_ext("topic", &real_topic)
            .with_ext("tranStateTableOffset", stored.queue_offset)
            .with_ext("commitLogOffset", stored.physical_offset)
            .with_ext("msgId", &uniq)
            .with_ext("transactionId", &txid)
            .with_ext("offsetMsgId", stored.msg_id)
            .with_ext("bname", &self.config.broker_name)
            .with_body(body);
        check.flag |= FLAG_ONEWAY;
        // JSON, as Java's broker sends its own requests: the C++ client reads no other.
        check.serialize_type = SerializeType::Json;
        check.opaque = self
            .transactions
            .next_opaque
            .fetch_add(1, Ordering::Relaxed);
        if channel.send(check) {
            tracing::debug!(peer = %channel.peer, txid, "transaction check sent");
            self.transactions
                .checks_sent
                .fetch_add(1, Ordering::Relaxed);
        } else {
            tracing::warn!(peer = %channel.peer, txid, "transaction check not sent: the producer's connection is gone or full");
        }
    }
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
