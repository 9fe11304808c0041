//! A store that Raft drives: the CommitLog *is* the Raft log, as in RocketMQ's DLedger
//! CommitLog, so a message is written once per replica.
//!
//! Each Raft entry is stored as CommitLog records whose headers carry the entry's term
//! and index: a message entry as one message record in RocketMQ's layout per message it
//! carries (the master packs concurrent sends into one entry), any other entry (blank,
//! membership, consumer offsets) as a control record the store does not read.
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
use proto::{MessageId, MessageRef};

use super::dispatch::{DispatchBatch, MessageView, StoredAt};
use super::{services, MessageStore, PutResult};
use crate::commit_log::{AppendedRecord, RecordPayload};
use crate::consume_queue::ConsumeQueue;
use crate::disk::Disk;
use crate::error::{Result, StoreError};
use crate::log_start::LogStart;
use crate::record::{LogPosition, RecordKind};

/// What one Raft entry stores.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LogPayload {
    /// Messages (at least one) in the stored layout. `assigned` is false for messages
    /// new to the log (the leader's own entry), whose queue and physical offsets are
    /// filled in here; true for ones read back from a log, whose offsets are checked.
    Messages {
        messages: Vec<Bytes>,
        assigned: bool,
    },
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
    /// Per entry: where its messages landed (none for a control entry).
    pub puts: Vec<Vec<PutResult>>,
    /// CommitLog offset after the append: durable once the flushed offset reaches it.
    pub end_offset: u64,
}

/// A record as the CommitLog writes it: a control entry, or one message of an entry.
struct Encoded<'a> {
    record: &'a LogRecord,
    bytes: &'a Bytes,
    /// For a message: the message, parsed once, and its queue offset.
    message: Option<(MessageRef<'a>, u64)>,
    /// More messages of the same entry follow.
    continued: bool,
}

impl RecordPayload for Encoded<'_> {
    fn payload_size(&self) -> usize {
        self.bytes.len()
    }

    fn encode_payload(&self, payload_offset: u64, out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(self.bytes);
        if let Some((_, queue_offset)) = self.message {
            let at = |field: usize| start + field..start + field + 8;
            out[at(OFFSET_QUEUE_OFFSET)].copy_from_slice(&queue_offset.to_be_bytes());
            out[at(OFFSET_PHYSICAL_OFFSET)].copy_from_slice(&payload_offset.to_be_bytes());
        }
    }

    fn continued(&self) -> bool {
        self.continued
    }

    fn store_timestamp_ms(&self) -> i64 {
        self.message
            .map_or(i64::MIN, |(m, _)| m.store_timestamp_ms())
    }

    fn kind(&self) -> RecordKind {
        match self.message {
            Some(_) => RecordKind::Message,
            None => RecordKind::Control,
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

/// The first phase of `append_log`: parses each entry's messages and gives each its
/// queue offset, next in its ConsumeQueue. For entries read back from a log (offsets
/// assigned) a different offset means the replicas diverged, which fails the store.
fn encode_entries<'r, D: Disk>(
    shared: &super::Shared<D>,
    records: &'r [LogRecord],
) -> Result<Vec<Encoded<'r>>> {
    // Keyed by topics borrowed from the records: no String per message.
    let mut next_queue_offset: BTreeMap<(&str, u32), u64> = BTreeMap::new();
    let mut encoded = Vec::with_capacity(records.len());
    let mut entry_bytes = 0u64;
    for record in records {
        let (messages, assigned) = match &record.payload {
            LogPayload::Control(bytes) => {
                encoded.push(Encoded {
                    record,
                    bytes,
                    message: None,
                    continued: false,
                });
                continue;
            }
            LogPayload::Messages { messages, assigned } => (messages, *assigned),
        };
        if messages.is_empty() {
            return Err(StoreError::MessageIllegal(format!(
                "entry {} carries no message",
                record.index
            )));
        }
        for (i, bytes) in messages.iter().enumerate() {
            let message = MessageRef::parse(bytes)
                .map_err(|e| StoreError::MessageIllegal(format!("entry {}: {e}", record.index)))?;
            let key = (message.topic(), message.queue_id());
            let next = next_queue_offset.entry(key).or_insert_with(|| {
                shared
                    .queue_or_create(message.topic(), message.queue_id())
                    .max_offset()
            });
            if assigned && message.queue_offset() != *next {
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
                bytes,
                message: Some((message, *next)),
                continued: i + 1 < messages.len(),
            });
            *next += 1;
        }
        entry_bytes = entry_bytes.max(crate::record::entry_size(messages.iter().map(Bytes::len)));
    }
    let entry_size_max = shared.commit_log.entry_size_max();
    if entry_bytes > entry_size_max {
        return Err(StoreError::MessageIllegal(format!(
            "an entry of {entry_bytes} bytes is over the {entry_size_max} a segment holds"
        )));
    }
    Ok(encoded)
}

/// The second phase of `append_log`, once the records are in the CommitLog: where each
/// entry's messages landed, and their dispatch. An entry read back from a log that
/// names another physical offset than where its message landed means the replicas
/// diverged.
fn place_messages<'r>(
    encoded: &[Encoded<'r>],
    appended: &[AppendedRecord],
) -> Result<(Vec<Vec<PutResult>>, DispatchBatch<'r>)> {
    let mut batch = DispatchBatch::default();
    let mut puts: Vec<Vec<PutResult>> = Vec::new();
    let mut last_index = None;
    for (e, at) in encoded.iter().zip(appended) {
        if last_index != Some(e.record.index) {
            puts.push(Vec::new());
            last_index = Some(e.record.index);
        }
        let Some((message, queue_offset)) = e.message else {
            continue;
        };
        let assigned = matches!(
            e.record.payload,
            LogPayload::Messages { assigned: true, .. }
        );
        if assigned && message.physical_offset() != at.payload_offset {
            return Err(diverged(
                at.payload_offset,
                format!(
                    "entry {} names physical offset {}",
                    e.record.index,
                    message.physical_offset()
                ),
            ));
        }
        let view = MessageView::of_stored(&message);
        let stored_at = StoredAt {
            commitlog_offset: at.payload_offset,
            size: at.payload_size,
        };
        batch.add(&view, stored_at);
        puts.last_mut()
            .expect("an entry was started")
            .push(PutResult {
                msg_id: MessageId {
                    store_host: message.store_host(),
                    physical_offset: at.payload_offset,
                },
                physical_offset: at.payload_offset,
                size: at.payload_size,
                queue_id: message.queue_id(),
                queue_offset,
                store_timestamp_ms: view.store_timestamp_ms,
            });
    }
    Ok((puts, batch))
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
        let encoded = encode_entries(shared, &records)?;
        let appended = shared
            .commit_log
            .append(&encoded)
            .await
            .inspect_err(|e| shared.fail(e))?;
        let (puts, batch) =
            place_messages(&encoded, &appended.records).inspect_err(|e| shared.fail(e))?;
        assert_eq!(puts.len(), records.len(), "one put list per entry");
        batch
            .write(
                |topic, queue_id| shared.queue_or_create(topic, queue_id),
                &shared.index,
            )
            .await
            .inspect_err(|e| shared.fail(e))?;
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

    /// The most bytes one Raft entry's records may take (messages plus a record header
    /// each): an entry stays within one CommitLog segment.
    pub fn entry_size_max(&self) -> u64 {
        self.shared.commit_log.entry_size_max()
    }

    /// Sets the retention floor: segments holding bytes at or above `offset` are kept
    /// when they expire (`None`: no floor). A replicated group's master sets it to the
    /// first entry some replica has not received.
    pub fn set_retention_floor(&self, offset: Option<u64>) {
        self.shared.retention_floor.store(
            offset.unwrap_or(u64::MAX),
            std::sync::atomic::Ordering::Release,
        );
    }

    /// CommitLog offset where the entry with record index `index` starts, if stored.
    pub async fn log_offset(&self, index: u64) -> Result<Option<u64>> {
        self.shared.commit_log.record_offset(index).await
    }

    /// Waits until every CommitLog byte below `end_offset` is durable, with no time
    /// limit: Raft's log may not report an append durable before it is, and a timeout
    /// is a storage error that stops the replica's Raft for good. A sync that takes
    /// longer than `sync_flush_timeout_ms` (a stalled disk, a process paused and
    /// resumed) is logged and waited out (`a_log_sync_slower_than_the_flush_timeout_is_waited_out`).
    pub async fn wait_durable(&self, end_offset: u64) -> Result<()> {
        let warn_after = std::time::Duration::from_millis(self.shared.config.sync_flush_timeout_ms);
        let started = tokio::time::Instant::now();
        let mut synced = std::pin::pin!(self.wait_synced(end_offset));
        loop {
            match tokio::time::timeout(warn_after, &mut synced).await {
                Ok(result) => return result,
                Err(_) => tracing::warn!(
                    end_offset,
                    waited_ms = started.elapsed().as_millis() as u64,
                    "the CommitLog sync is slow; Raft waits for it"
                ),
            }
        }
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
        // and recovery would refuse the log (regression test: store/tests/
        // truncation_faults.rs, `a_truncation_lowers_the_checkpoint_before_it_cuts`).
        services::lower_checkpoint_locked(shared, offset).await?;
        // From here a failure leaves the files and what this process believes about
        // them apart (a truncate whose sync failed, say): stop, so no later checkpoint
        // can claim the cut bytes again; the lowered checkpoint is what recovery starts
        // from (`a_truncation_whose_sync_fails_stops_the_store`).
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
            .map(|mut r| LogRecord {
                term: r.header.term,
                leader: r.header.leader,
                index: r.header.index,
                payload: match r.header.kind {
                    RecordKind::Message => LogPayload::Messages {
                        messages: r.payloads,
                        assigned: true,
                    },
                    _ => LogPayload::Control(r.payloads.swap_remove(0)),
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

    /// Moves the log's start to the segment holding CommitLog offset `offset` (never
    /// the active one) whatever the age of what lies below, as disk pressure would: the
    /// simulator's compaction, which sends a follower that lacked those entries a
    /// snapshot. Only applied entries may go: `offset` is capped at
    /// [`MessageStore::committed_offset`]. As with retention, the segments are deleted
    /// once Raft purges them ([`MessageStore::purge_log`]).
    pub async fn compact_below(&self, offset: u64) -> Result<()> {
        let offset = offset.min(self.committed_offset());
        services::compact_below(&self.shared, offset).await
    }

    /// Raft no longer needs the entries up to record index `upto` (and the log's start
    /// was moved past them by retention or compaction): their segments are deleted.
    /// Deleting only now, not when retention decides, keeps every entry readable while
    /// Raft may still send it to a follower.
    pub async fn purge_log(&self, upto: u64) -> Result<()> {
        services::purge_log(&self.shared, upto).await
    }

    /// CommitLog offset below which every message is committed (and applied).
    pub fn committed_offset(&self) -> u64 {
        *self.shared.committed.borrow()
    }

    /// Where the log starts, once retention (or a snapshot's reset) deleted its oldest
    /// entries; `None` while it holds every entry from the first.
    pub fn log_start(&self) -> Option<LogStart> {
        self.shared
            .log_start
            .lock()
            .expect("log start poisoned")
            .1
            .clone()
    }

    /// Continues the log where `start` says: a follower installs a snapshot taken where
    /// the leader's log starts (the entries it lacks are gone from the leader).
    ///
    /// openraft keeps a follower's entries after the snapshot's last log id when the
    /// follower holds that entry itself (it truncates only a log that conflicts there),
    /// and goes on from after them: it sends what follows, or truncates them when they
    /// conflict with the leader's. So does the store: when this log holds entry
    /// `start.prev` and entries after it, it keeps them — Raft's log matching makes the
    /// entries up to `prev` the leader's — records the start, deletes the segments wholly
    /// below it (openraft purged those entries before handing the snapshot over) and
    /// makes everything up to the end of `prev` readable. Emptying the log instead would
    /// make the follower refuse the next entry openraft sends: a queue offset it has just
    /// deleted (regression test: store/tests/replicated.rs,
    /// `a_follower_holding_the_starts_entry_keeps_the_entries_after_it`).
    ///
    /// Otherwise the store is emptied to continue there: every CommitLog segment,
    /// ConsumeQueue and index file goes, the next entry is `start.prev.index + 1` at
    /// `start.base_offset`, and each queue in `start` continues at its offset. Safe to
    /// repeat after a crash: the checkpoint comes down first and the marker is written
    /// last.
    pub async fn install_log_start(&self, start: LogStart) -> Result<()> {
        let shared = &self.shared;
        let _retention = shared.retention_lock.lock().await;
        let _log = shared.log_lock.lock().await;
        let result = match self.kept_prev_end(&start).await? {
            Some(prev_end) => self.keep_log_from(start, prev_end).await,
            None => {
                let _checkpoint = shared.checkpoint_lock.lock().await;
                self.reset_log_locked(start).await
            }
        };
        if let Err(e) = &result {
            shared.fail(e);
        }
        result
    }

    /// The CommitLog offset below which everything is committed once `start` is
    /// installed ([`MessageStore::install_log_start`]): the end of entry `start.prev`
    /// when the log is kept — not the start's segment base, since a kept entry after
    /// `prev` may be an uncommitted one of another term that Raft will still cut, in
    /// `prev`'s segment — else `start.base_offset`.
    pub async fn installed_committed_offset(&self, start: &LogStart) -> Result<u64> {
        let _log = self.shared.log_lock.lock().await;
        Ok(self
            .kept_prev_end(start)
            .await?
            .unwrap_or(start.base_offset))
    }

    /// Where entry `start.prev` ends when this log holds it (same log id) and entries
    /// after it, which installing `start` keeps; `None` when it is emptied instead. The
    /// caller holds the log lock.
    async fn kept_prev_end(&self, start: &LogStart) -> Result<Option<u64>> {
        let commit_log = &self.shared.commit_log;
        if commit_log.last_log_id().await.index <= start.prev.index
            || commit_log.log_id_at(start.prev.index).await? != Some(start.prev)
        {
            return Ok(None);
        }
        let prev_end = commit_log.cut_offset(start.prev.index + 1).await?;
        assert!(prev_end.is_some(), "a stored entry follows entry prev");
        Ok(prev_end)
    }

    /// The keeping half of [`MessageStore::install_log_start`]; the caller holds the
    /// retention and log locks.
    async fn keep_log_from(&self, start: LogStart, prev_end: u64) -> Result<()> {
        let shared = &self.shared;
        let recorded = shared
            .log_start
            .lock()
            .expect("log start poisoned")
            .1
            .clone();
        if recorded.is_some_and(|r| r.base_offset >= start.base_offset) {
            return Ok(());
        }
        // As retention does: the marker never names entries a power loss could take.
        shared.commit_log.sync().await?;
        shared.publish_flushed();
        tracing::info!(
            base_offset = start.base_offset,
            prev_index = start.prev.index,
            "keeping the entries after a snapshot's last one: this log holds it"
        );
        // Everything up to `prev` is applied: each queue is readable up to where it
        // continues (the last message below it is offset - 1).
        self.publish_committed(
            start
                .queues
                .iter()
                .filter(|q| q.offset > 0)
                .map(|q| (q.topic.as_str(), q.queue_id, q.offset - 1)),
            prev_end,
        );
        let prev_index = start.prev.index;
        services::store_log_start(shared, start).await?;
        services::purge_log_locked(shared, prev_index).await
    }

    /// The emptying half of [`MessageStore::install_log_start`]; the caller holds the
    /// retention, log and checkpoint locks.
    async fn reset_log_locked(&self, start: LogStart) -> Result<()> {
        let shared = &self.shared;
        services::lower_checkpoint_locked(shared, 0).await?;
        shared
            .commit_log
            .reset(start.base_offset, start.prev)
            .await?;
        let old = std::mem::take(&mut *shared.queues.write().expect("queues lock poisoned"));
        for queue in old.values() {
            queue.remove_files().await?;
        }
        shared.index.clear().await?;
        let mut queues = BTreeMap::new();
        let mut committed_max = BTreeMap::new();
        for q in &start.queues {
            let queue = ConsumeQueue::new(
                shared.disk.clone(),
                &q.topic,
                q.queue_id,
                shared.config.consume_queue_units_per_file,
            );
            #[cfg(feature = "fault-injection")]
            let q = &crate::QueueStart {
                // PLANTED BUG (`fault-injection` builds): queues restart at 0.
                offset: if plant::reset_queues_at_zero() {
                    0
                } else {
                    q.offset
                },
                ..q.clone()
            };
            queue.reset_to(q.offset);
            let key = (q.topic.clone(), q.queue_id);
            committed_max.insert(key.clone(), q.offset);
            queues.insert(key, std::sync::Arc::new(queue));
        }
        *shared.queues.write().expect("queues lock poisoned") = queues;
        *shared
            .committed_max
            .write()
            .expect("committed lock poisoned") = committed_max;
        shared.dispatched.send_replace(start.base_offset);
        shared.committed.send_replace(start.base_offset);
        shared.publish_flushed();
        services::store_log_start(shared, start.clone()).await?;
        services::checkpoint_locked(shared).await
    }

    /// Raft applied message entries up to CommitLog offset `committed_offset`: readers
    /// may now see `messages` — (topic, queue id, queue offset) of each.
    pub fn publish_committed<'a>(
        &self,
        messages: impl IntoIterator<Item = (&'a str, u32, u64)>,
        committed_offset: u64,
    ) {
        // Per queue first (borrowed names), then one shared-map update per queue.
        let mut ends: BTreeMap<(&str, u32), u64> = BTreeMap::new();
        for (topic, queue_id, queue_offset) in messages {
            let end = ends.entry((topic, queue_id)).or_insert(0);
            *end = (*end).max(queue_offset + 1);
        }
        {
            let mut max = self
                .shared
                .committed_max
                .write()
                .expect("committed lock poisoned");
            for (&(topic, queue_id), &end) in &ends {
                let slot = max.entry((topic.to_string(), queue_id)).or_insert(0);
                *slot = (*slot).max(end);
            }
        }
        self.shared.notify_arrivals(ends.keys().copied());
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

/// Planted bugs of the snapshot reset, for the simulator's planted-bug test.
#[cfg(feature = "fault-injection")]
pub mod plant {
    use std::sync::atomic::{AtomicBool, Ordering};

    static RESET_QUEUES_AT_ZERO: AtomicBool = AtomicBool::new(false);

    /// PLANTED BUG: a store reset for a snapshot restarts every queue at offset 0 (as
    /// if the snapshot had not said where each continues). Process-wide.
    pub fn plant_reset_queues_at_zero() {
        RESET_QUEUES_AT_ZERO.store(true, Ordering::Relaxed);
    }

    pub(crate) fn reset_queues_at_zero() -> bool {
        RESET_QUEUES_AT_ZERO.load(Ordering::Relaxed)
    }
}
