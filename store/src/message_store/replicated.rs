//! A store that Raft drives: the CommitLog *is* the Raft log, as in RocketMQ's DLedger
//! CommitLog, so a message is written once per replica.
//!
//! Each Raft entry is one CommitLog record whose header carries the entry's term and
//! index: a message entry is a message record in RocketMQ's layout, any other entry
//! (blank, membership, consumer offsets) a control record the store does not read.
//! Replicas append the same records in the same order into segments of the same size,
//! so a message has the same physical offset, queue offset and bytes on every replica.
//!
//! - The leader's own message entries arrive with their offsets unassigned; this store
//!   assigns the queue offset (next in its ConsumeQueue) and the physical offset (where
//!   the record lands). Entries read back from a log carry both, and a replica checks
//!   them against what it would assign: a mismatch means the replicas diverged, and the
//!   store stops rather than serve different bytes under the same offsets.
//! - ConsumeQueues and the key index are dispatched at append, as in a plain store, so
//!   recovery is unchanged. Readers, though, see only *committed* messages:
//!   [`MessageStore::publish_committed`] moves the readable end when Raft applies
//!   entries, and long polls wake on it.
//! - A follower's uncommitted tail that conflicts with the leader is cut by
//!   [`MessageStore::truncate_log`], which also cuts ConsumeQueues and lowers the
//!   checkpoint durably, so recovery never expects bytes that are gone.

use std::collections::BTreeMap;

use bytes::Bytes;
use proto::message::{OFFSET_PHYSICAL_OFFSET, OFFSET_QUEUE_OFFSET};
use proto::properties::keys;
use proto::{MessageId, MessageRef};

use super::writer::index_entries;
use super::{services, MessageStore, PutResult, QueueKey};
use crate::commit_log::RecordPayload;
use crate::consume_queue::CqUnit;
use crate::disk::Disk;
use crate::error::{Result, StoreError};
use crate::record::{LogPosition, RecordKind};

/// What one Raft entry stores.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LogPayload {
    /// A message in the stored layout. `assigned` is false for a message new to the log
    /// (the leader's own entry), whose queue and physical offsets are filled in here;
    /// true for one read back from a log, whose offsets are checked instead.
    Message { bytes: Bytes, assigned: bool },
    /// Any other entry, opaque to the store.
    Control(Bytes),
}

/// One Raft entry to append, or one read back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogRecord {
    pub term: u64,
    /// Node id of the leader that created the entry.
    pub leader: u16,
    pub index: u64,
    pub payload: LogPayload,
}

#[derive(Clone, Debug)]
pub struct LogAppended {
    /// Per record: where its message landed, `None` for a control record.
    pub puts: Vec<Option<PutResult>>,
    /// CommitLog offset after the append: durable once the flushed offset reaches it.
    pub end_offset: u64,
}

/// A record as the CommitLog writes it.
struct Encoded<'a> {
    record: &'a LogRecord,
    /// For a message: the message, parsed once, and its queue offset.
    message: Option<(MessageRef<'a>, u64)>,
}

impl RecordPayload for Encoded<'_> {
    fn payload_size(&self) -> usize {
        match &self.record.payload {
            LogPayload::Message { bytes, .. } | LogPayload::Control(bytes) => bytes.len(),
        }
    }

    fn encode_payload(&self, payload_offset: u64, out: &mut Vec<u8>) {
        let start = out.len();
        match &self.record.payload {
            LogPayload::Message { bytes, .. } => {
                out.extend_from_slice(bytes);
                let (_, queue_offset) = self.message.expect("a message has a queue offset");
                let at = |field: usize| start + field..start + field + 8;
                out[at(OFFSET_QUEUE_OFFSET)].copy_from_slice(&queue_offset.to_be_bytes());
                out[at(OFFSET_PHYSICAL_OFFSET)].copy_from_slice(&payload_offset.to_be_bytes());
            }
            LogPayload::Control(bytes) => out.extend_from_slice(bytes),
        }
    }

    fn store_timestamp_ms(&self) -> i64 {
        self.message
            .map_or(i64::MIN, |(m, _)| m.store_timestamp_ms())
    }

    fn kind(&self) -> RecordKind {
        match self.record.payload {
            LogPayload::Message { .. } => RecordKind::Message,
            LogPayload::Control(_) => RecordKind::Control,
        }
    }

    fn log_id(&self) -> Option<LogPosition> {
        Some(LogPosition {
            term: self.record.term,
            leader: self.record.leader,
            index: self.record.index,
        })
    }
}

fn diverged(offset: u64, reason: String) -> StoreError {
    StoreError::Corrupt {
        file: "commitlog (replicated)".into(),
        offset,
        reason: format!("replicas diverged: {reason}"),
    }
}

impl<D: Disk> MessageStore<D> {
    /// Appends Raft entries (consecutive, continuing the log) and dispatches their
    /// messages. Not durable until the flushed offset reaches `end_offset`
    /// (see [`MessageStore::wait_durable`]); not readable until committed.
    pub async fn append_log(&self, records: Vec<LogRecord>) -> Result<LogAppended> {
        let shared = &self.shared;
        assert!(
            shared.replicated,
            "append_log on a store opened without Raft"
        );
        let _log = shared.log_lock.lock().await;
        if let Some(reason) = shared.failure() {
            return Err(StoreError::Unavailable(reason));
        }
        let mut next_queue_offset: BTreeMap<QueueKey, u64> = BTreeMap::new();
        let mut encoded = Vec::with_capacity(records.len());
        for record in &records {
            let LogPayload::Message { bytes, assigned } = &record.payload else {
                encoded.push(Encoded {
                    record,
                    message: None,
                });
                continue;
            };
            let message = MessageRef::parse(bytes)
                .map_err(|e| StoreError::MessageIllegal(format!("entry {}: {e}", record.index)))?;
            let key = (message.topic().to_string(), message.queue_id());
            let next = next_queue_offset.entry(key).or_insert_with(|| {
                shared
                    .queue_or_create(message.topic(), message.queue_id())
                    .max_offset()
            });
            if *assigned && message.queue_offset() != *next {
                let e = diverged(
                    message.physical_offset(),
                    format!(
                        "entry {} has {}:{} queue offset {}, this replica's next is {next}",
                        record.index,
                        message.topic(),
                        message.queue_id(),
                        message.queue_offset()
                    ),
                );
                shared.fail(&e);
                return Err(e);
            }
            encoded.push(Encoded {
                record,
                message: Some((message, *next)),
            });
            *next += 1;
        }
        let appended = match shared.commit_log.append(&encoded).await {
            Ok(appended) => appended,
            Err(e) => {
                shared.fail(&e);
                return Err(e);
            }
        };
        let mut units: BTreeMap<QueueKey, Vec<CqUnit>> = BTreeMap::new();
        let mut entries = Vec::new();
        let mut puts = Vec::with_capacity(records.len());
        for (e, at) in encoded.iter().zip(&appended.records) {
            let (LogPayload::Message { assigned, .. }, Some((message, queue_offset))) =
                (&e.record.payload, e.message)
            else {
                puts.push(None);
                continue;
            };
            let timestamp_ms = message.store_timestamp_ms();
            if *assigned && message.physical_offset() != at.payload_offset {
                let err = diverged(
                    at.payload_offset,
                    format!(
                        "entry {} names physical offset {}",
                        e.record.index,
                        message.physical_offset()
                    ),
                );
                shared.fail(&err);
                return Err(err);
            }
            units
                .entry((message.topic().to_string(), message.queue_id()))
                .or_default()
                .push(CqUnit {
                    commitlog_offset: at.payload_offset,
                    size: at.payload_size,
                    tag_hash: message.tags().map_or(0, proto::hash::java_string_hash),
                });
            let (keys, uniq) = (
                message.property(keys::KEYS),
                message.property(keys::UNIQ_KEY),
            );
            let index_at = (at.payload_offset, at.payload_size, timestamp_ms);
            index_entries(message.topic(), keys, uniq, index_at, &mut entries);
            puts.push(Some(PutResult {
                msg_id: MessageId {
                    store_host: message.store_host(),
                    physical_offset: at.payload_offset,
                },
                physical_offset: at.payload_offset,
                size: at.payload_size,
                queue_id: message.queue_id(),
                queue_offset,
                store_timestamp_ms: timestamp_ms,
            }));
        }
        let dispatched: Result<()> = async {
            for ((topic, queue_id), units) in units {
                shared
                    .queue_or_create(&topic, queue_id)
                    .append(&units)
                    .await?;
            }
            shared.index.add(&entries).await
        }
        .await;
        if let Err(e) = dispatched {
            shared.fail(&e);
            return Err(e);
        }
        shared.dispatched.send_replace(appended.end_offset);
        // (The planted ack-before-fsync bug also leaves the flusher asleep until its
        // interval: the acknowledged entries stay unsynced for up to flush_interval_ms.)
        if !self.ack_before_fsync() {
            shared.flush_wakeup.notify_one();
        }
        Ok(LogAppended {
            puts,
            end_offset: appended.end_offset,
        })
    }

    /// Waits until every CommitLog byte below `end_offset` is durable.
    pub async fn wait_durable(&self, end_offset: u64) -> Result<()> {
        self.wait_flushed(end_offset).await
    }

    /// Removes the entry `from_index` and every later one, with their ConsumeQueue
    /// units, durably. Raft only ever truncates uncommitted entries.
    pub async fn truncate_log(&self, from_index: u64) -> Result<()> {
        let shared = &self.shared;
        let _log = shared.log_lock.lock().await;
        let _checkpoint = shared.checkpoint_lock.lock().await;
        let Some(offset) = shared.commit_log.cut_offset(from_index).await? else {
            return Ok(());
        };
        assert!(
            offset >= *shared.committed.borrow(),
            "Raft truncated committed entries"
        );
        // The checkpoint comes down first: after a crash (or an fsync EIO) between the
        // cut and a new checkpoint, an old one would name durable bytes that are gone,
        // and recovery would refuse the log (the simulator's seed 136, EIO on a follower
        // truncating a conflicting tail).
        services::lower_checkpoint_locked(shared, offset).await?;
        // From here a failure leaves the files and what this process believes about
        // them apart (a truncate whose sync failed, say): stop, so no later checkpoint
        // can claim the cut bytes again (the simulator's seed 10777 in leader+sync); the
        // lowered checkpoint is what recovery starts from.
        let cut = async {
            let cut = shared.commit_log.truncate_from(from_index).await?;
            assert_eq!(
                cut,
                Some(offset),
                "the cut moved while the log lock was held"
            );
            for queue in shared.all_queues() {
                queue.truncate_from_commitlog(offset).await?;
            }
            Ok(())
        }
        .await;
        if let Err(e) = cut {
            shared.fail(&e);
            return Err(e);
        }
        shared.dispatched.send_replace(offset);
        shared.publish_flushed();
        // A checkpoint written before the cut may name durable bytes that are gone now.
        services::checkpoint_locked(shared).await
    }

    /// The entries with indexes in `[from, to)`, at most about `max_bytes` of them
    /// (at least one when any is stored).
    pub async fn read_log(&self, from: u64, to: u64, max_bytes: usize) -> Result<Vec<LogRecord>> {
        let records = self
            .shared
            .commit_log
            .read_records(from, to, max_bytes)
            .await?;
        Ok(records
            .into_iter()
            .map(|r| LogRecord {
                term: r.header.term,
                leader: r.header.leader,
                index: r.header.index,
                payload: match r.header.kind {
                    RecordKind::Message => LogPayload::Message {
                        bytes: r.payload,
                        assigned: true,
                    },
                    _ => LogPayload::Control(r.payload),
                },
            })
            .collect())
    }

    /// Log id of the last entry; index 0 when the log is empty.
    pub async fn last_log_id(&self) -> LogPosition {
        self.shared.commit_log.last_log_id().await
    }

    /// Log id of the oldest entry still stored.
    pub async fn first_log_id(&self) -> Result<Option<LogPosition>> {
        let first = self.shared.commit_log.first_record().await?;
        Ok(first.map(|h| LogPosition {
            term: h.term,
            leader: h.leader,
            index: h.index,
        }))
    }

    /// Raft applied message entries up to CommitLog offset `committed_offset`: readers
    /// may now see `messages` — (topic, queue id, queue offset) of each.
    pub fn publish_committed<'a>(
        &self,
        messages: impl IntoIterator<Item = (&'a str, u32, u64)>,
        committed_offset: u64,
    ) {
        {
            let mut max = self
                .shared
                .committed_max
                .write()
                .expect("committed lock poisoned");
            for (topic, queue_id, queue_offset) in messages {
                let key = (topic.to_string(), queue_id);
                let end = max.entry(key).or_insert(0);
                *end = (*end).max(queue_offset + 1);
            }
        }
        self.shared.committed.send_if_modified(|c| {
            let advanced = committed_offset > *c;
            if advanced {
                *c = committed_offset;
            }
            advanced
        });
    }

    /// After a restart: every entry below CommitLog offset `committed_offset` is known
    /// committed (Raft's applied state), so every queue's readable end is recomputed.
    pub async fn restore_committed(&self, committed_offset: u64) -> Result<()> {
        let mut ends = Vec::new();
        for queue in self.shared.all_queues() {
            let mut end = queue.max_offset();
            while end > queue.min_offset() {
                match queue.get(end - 1).await? {
                    Some(unit) if unit.commitlog_offset < committed_offset => break,
                    _ => end -= 1,
                }
            }
            ends.push(((queue.topic().to_string(), queue.queue_id()), end));
        }
        *self
            .shared
            .committed_max
            .write()
            .expect("committed lock poisoned") = ends.into_iter().collect();
        self.shared.committed.send_replace(committed_offset);
        Ok(())
    }
}
