//! The master's side of transactions: its book, rebuilt once per term from the half
//! and op queues, and the check round that asks producers about undecided transactions.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use proto::message::DecodeError;
use proto::net::server::Channel;
use proto::remoting::codes::request;
use proto::remoting::RemotingCommand;
use proto::{MessageRef, NewMessage};
use store::meta::MetaStore;
use store::{Disk, GetStatus, StoreError};

use super::book::{HalfCopy, Op, TxBook};
use super::{
    half_copy, op_of, property, Outcome, Transactions, CHECK_MAX_TOPIC, HALF_TOPIC, OP_TOPIC,
    TX_GROUP,
};
use crate::broker::write::{PutError, WriteError};
use crate::broker::Broker;

/// Half messages a check round appends in one write.
const CHECK_BATCH: usize = 64;

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
    /// Makes the book current for this master: rebuilt (from the persisted floors and
    /// the two queues) once per term, after the master applied everything committed
    /// before its term began.
    pub(super) async fn tx_book_ready(&self) -> Result<(), PutError> {
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
                tracing::trace!(topic, from, status = ?got.status, n = got.messages.len(), next = got.next_offset, "read transaction queue");
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
    pub(in crate::broker) async fn run_transaction_check(self: Arc<Self>) {
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
        for batch in due.chunks(CHECK_BATCH) {
            self.check_batch(batch).await?;
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

    /// Checks pending copies: a new copy of each (appended in one write) and a
    /// CHECK_TRANSACTION_STATE for it, or, after `check_max` checks, a discard.
    async fn check_batch(&self, batch: &[HalfCopy]) -> Result<(), CheckError> {
        // Every transaction of the batch held at once, stripes in ascending order (the
        // only place that holds more than one, so no cycle).
        let mut stripes: Vec<usize> = batch
            .iter()
            .map(|c| self.transactions.stripe_index(&c.txid))
            .collect();
        stripes.sort_unstable();
        stripes.dedup();
        let mut _held = Vec::with_capacity(stripes.len());
        for i in stripes {
            _held.push(self.transactions.stripes[i].lock().await);
        }
        let mut copies = Vec::new();
        for copy in batch {
            let still_pending = self
                .transactions
                .with_book(|b| b.is_latest_pending(&copy.txid, copy.queue_offset));
            if still_pending != Some(true) {
                continue;
            }
            let Some(bytes) = self
                .store
                .message_at(copy.physical_offset)
                .await
                .map_err(|e| CheckError::Read(HALF_TOPIC, e))?
            else {
                tracing::warn!(txid = copy.txid, "half message gone from the CommitLog");
                self.end_lost(copy).await?;
                continue;
            };
            let half = MessageRef::parse(&bytes)?;
            if copy.check_times >= self.transactions.settings.check_max {
                tracing::warn!(
                    txid = copy.txid,
                    checks = copy.check_times,
                    "transaction never decided; discarded to {CHECK_MAX_TOPIC}"
                );
                self.end_locked(&half, &copy.txid, Outcome::Discard).await?;
                continue;
            }
            let mut next = half.to_new_message();
            next.properties
                .insert(property::CHECK_TIMES, (copy.check_times + 1).to_string());
            let group = half
                .property(property::PRODUCER_GROUP)
                .unwrap_or_default()
                .to_string();
            copies.push((copy, next, group));
        }
        if copies.is_empty() {
            return Ok(());
        }
        let messages = copies.iter().map(|(_, next, _)| next.clone()).collect();
        let results = self.put_messages(messages).await?;
        for ((copy, next, group), stored) in copies.into_iter().zip(results) {
            let next_copy = HalfCopy {
                queue_offset: stored.queue_offset,
                physical_offset: stored.physical_offset,
                stored_ms: stored.store_timestamp_ms,
                check_times: copy.check_times + 1,
                ..copy.clone()
            };
            self.transactions
                .with_book(|b| b.observe_half(next_copy, false));
            // Each check of one transaction goes to the group's next producer.
            let turn = proto::hash::java_string_hash(&copy.txid).unsigned_abs()
                + u64::from(copy.check_times);
            let channel = self.producers.pick(
                &group,
                turn,
                proto::clock::now_ms(),
                self.config.client_channel_expired_ms,
            );
            match channel {
                Some(channel) => self.send_check(&channel, next, &stored),
                None => tracing::warn!(
                    txid = copy.txid,
                    group,
                    "no producer of the group to ask; checked again later"
                ),
            }
        }
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
        let mut check = RemotingCommand::server_request(request::CHECK_TRANSACTION_STATE)
            .with_ext("topic", &real_topic)
            .with_ext("tranStateTableOffset", stored.queue_offset)
            .with_ext("commitLogOffset", stored.physical_offset)
            .with_ext("msgId", &uniq)
            .with_ext("transactionId", &txid)
            .with_ext("offsetMsgId", stored.msg_id)
            .with_ext("bname", &self.config.broker_name)
            .with_body(body);
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
