//! END_TRANSACTION: a producer's decision (or its answer to a check), applied once per
//! transaction.

use proto::remoting::codes::response;
use proto::remoting::{ProtoError, RemotingCommand};
use proto::{MessageRef, NewMessage};
use store::meta::MetaStore;
use store::{Disk, StoreError};

use super::book::{HalfCopy, Op};
use super::{
    committed_message, op_message, property, transaction_id, Outcome, CHECK_MAX_TOPIC, COMMIT,
    HALF_TOPIC, ROLLBACK, UNKNOWN,
};
use crate::broker::write::{put_error, PutError};
use crate::broker::{ok, store_error, Broker};

/// A transaction's end, as its op records it.
struct Ending<'a> {
    txid: &'a str,
    /// The copy the decision named.
    copy_offset: u64,
    last_half: u64,
    /// The topic it was for, for the counts.
    topic: &'a str,
    outcome: Outcome,
}

impl<D: Disk, M: MetaStore> Broker<D, M> {
    /// END_TRANSACTION: oneway from clients, so the answer is only seen by callers
    /// that wait for one (tests, tools); Java's broker answers the same codes.
    pub(in crate::broker) async fn end_transaction(
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
    pub(super) async fn end_locked(
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
        let mut later = None;
        match outcome {
            Outcome::Commit => {
                let mut message = committed_message(half)
                    .map_err(|e| PutError::Store(StoreError::MessageIllegal(e)))?;
                // A timer or a DELAY level applies from the commit, as in Java.
                later = self.park_if_later(&mut message).unwrap_or_else(|e| {
                    tracing::warn!(txid, error = %e, "committed message delivered at once");
                    None
                });
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
        let topic = half.property(property::REAL_TOPIC).unwrap_or_default();
        let end = Ending {
            txid,
            copy_offset,
            last_half,
            topic,
            outcome,
        };
        self.write_end(end, messages).await?;
        if let Some(later) = &later {
            self.wake_for(later);
        }
        Ok(true)
    }

    /// Ends the transaction of a pending copy whose half message is gone from the
    /// CommitLog (retention deleted it): discarded, with nothing to keep. The caller
    /// holds its stripe.
    pub(super) async fn end_lost(&self, copy: &HalfCopy) -> Result<(), PutError> {
        let last_half = self
            .transactions
            .with_book(|b| b.last_half(&copy.txid, copy.queue_offset))
            .unwrap_or(copy.queue_offset);
        let end = Ending {
            txid: &copy.txid,
            copy_offset: copy.queue_offset,
            last_half,
            topic: &copy.topic,
            outcome: Outcome::Discard,
        };
        self.write_end(end, Vec::new()).await
    }

    /// Writes `messages` (what the transaction's end stores) and its op in one write,
    /// then books and counts it.
    async fn write_end(
        &self,
        end: Ending<'_>,
        mut messages: Vec<NewMessage>,
    ) -> Result<(), PutError> {
        messages.push(op_message(
            end.txid,
            end.copy_offset,
            end.last_half,
            end.outcome,
        ));
        let results = self.put_messages(messages).await?;
        let op = results.last().expect("one result per message");
        self.transactions.with_book(|book| {
            book.observe_op(
                Op {
                    txid: end.txid.to_string(),
                    queue_offset: op.queue_offset,
                    last_half: end.last_half,
                },
                false,
            )
        });
        *self
            .transactions
            .ended
            .lock()
            .expect("transaction counts poisoned")
            .entry((end.topic.to_string(), end.outcome))
            .or_default() += 1;
        Ok(())
    }
}
