//! `MessageStore` (RocketMQ: `DefaultMessageStore`): the CommitLog, its ConsumeQueues
//! and key index, and the tasks that write, flush, checkpoint and clean them.
//!
//! # Data path
//! `put_messages` validates, then hands the batch to the single writer task over a
//! bounded channel. The writer drains whatever else is waiting (group commit), assigns
//! queue offsets, appends everything to the CommitLog in one disk write, replies, and
//! then dispatches the ConsumeQueue units and index entries; reads wait for a dispatch in
//! progress ([`MessageStore::settled`]). With `flush = sync` the caller
//! then waits until the flusher's next fsync covers its bytes; one fsync covers every
//! write that landed before it began. With `flush = async` the caller is answered at
//! once and the flusher syncs every `flush_interval_ms`.
//!
//! A disk error on the write or flush path stops the store from accepting writes
//! (`Unavailable`): after a failed fsync it no longer knows what is durable, and the
//! only safe way on is to reopen, which runs recovery.

mod dispatch;
mod recovery;
mod replicated;
mod services;
mod writer;

#[cfg(feature = "fault-injection")]
pub use replicated::plant;
pub use replicated::{LogAppended, LogPayload, LogRecord};

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use bytes::Bytes;
use proto::watch;
use proto::{MessageId, MessageRef, NewMessage};
use tokio::sync::{mpsc, oneshot, Notify};
use tokio::task::JoinHandle;

use crate::commit_log::CommitLog;
use crate::config::{FlushMode, StoreConfig};
use crate::consume_queue::ConsumeQueue;
use crate::disk::Disk;
use crate::error::{Result, StoreError};
use crate::index::{key_hash, KeyIndex};

/// Where a stored message landed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PutResult {
    pub msg_id: MessageId,
    pub physical_offset: u64,
    pub size: u32,
    pub queue_id: u32,
    pub queue_offset: u64,
    pub store_timestamp_ms: i64,
}

impl PutResult {
    /// CommitLog offset just past this message: durable once `flushed_offset` reaches it.
    pub fn end_offset(&self) -> u64 {
        self.physical_offset + u64::from(self.size)
    }
}

/// Outcome of a read from a queue (RocketMQ `GetMessageStatus`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GetStatus {
    Found,
    /// Messages exist past the offset, but none matched the filter in this window.
    NoMatchedMessage,
    /// The queue has no messages (or does not exist).
    NoMessageInQueue,
    /// Below the queue's min offset: retention removed it.
    OffsetTooSmall,
    /// Exactly the max offset: no new message yet (a long poll parks here).
    OffsetOverflowOne,
    /// Past the max offset.
    OffsetOverflowBadly,
}

#[derive(Clone, Debug)]
pub struct GetMessages {
    pub status: GetStatus,
    /// Messages in the stored layout, in queue order.
    pub messages: Vec<Bytes>,
    /// Where the next read should start.
    pub next_offset: u64,
    pub min_offset: u64,
    pub max_offset: u64,
}

pub(crate) type QueueKey = (String, u32);

struct WriteRequest {
    messages: Vec<NewMessage>,
    reply: oneshot::Sender<Result<Written>>,
}

struct Written {
    results: Vec<PutResult>,
    end_offset: u64,
}

/// What the flush tasks publish.
#[derive(Clone, Debug, Default)]
struct FlushState {
    flushed_offset: u64,
    failed: Option<String>,
}

struct Shared<D: Disk> {
    config: StoreConfig,
    disk: D,
    commit_log: CommitLog<D>,
    queues: RwLock<BTreeMap<QueueKey, Arc<ConsumeQueue<D>>>>,
    index: KeyIndex<D>,
    flushed: watch::Sender<FlushState>,
    /// CommitLog offset up to which ConsumeQueues and the index are written.
    dispatched: watch::Sender<u64>,
    /// Single store: CommitLog offset up to which writes are acknowledged. The writer
    /// acknowledges a batch once it is in the CommitLog and writes its ConsumeQueue units
    /// and index entries right after (while the reply travels), so `dispatched` can trail
    /// this by one batch; readers wait that out in [`MessageStore::settled`], which keeps
    /// an acknowledged message readable at once.
    acked: AtomicU64,
    /// Single store: a dispatch failed, so `dispatched` stays short of `acked` until a
    /// restart re-dispatches from the CommitLog; readers stop waiting for it.
    dispatch_failed: AtomicBool,
    /// Per queue, bumped when new messages become readable in it: what a parked long
    /// poll waits on (RocketMQ's `PullRequestHoldService` is keyed by topic@queue too), so
    /// an arrival wakes only the pulls of its own queue. Created by the first waiter.
    arrival_watch: Mutex<std::collections::HashMap<QueueKey, watch::Sender<u64>>>,
    flush_wakeup: Notify,
    checkpoint_sequence: AtomicU64,
    failed: Mutex<Option<String>>,
    /// Whether Raft drives this store (see `replicated`): writes come as log entries,
    /// and readers see only committed messages.
    replicated: bool,
    /// Replicated: CommitLog offset below which every record is committed.
    committed: watch::Sender<u64>,
    /// Replicated: per queue, one past the last committed queue offset.
    committed_max: RwLock<BTreeMap<QueueKey, u64>>,
    /// Replicated: serializes log appends and truncations.
    log_lock: tokio::sync::Mutex<()>,
    /// Serializes checkpoints, so a truncation's lowered checkpoint is never overtaken
    /// by one computed before it.
    checkpoint_lock: tokio::sync::Mutex<()>,
    /// Replicated: retention keeps segments at or above this CommitLog offset
    /// (`u64::MAX`: no floor); see `retention`.
    retention_floor: AtomicU64,
    /// Replicated: where the log starts once entries were deleted (see `log_start`),
    /// with the marker's slot sequence.
    log_start: Mutex<(u64, Option<crate::log_start::LogStart>)>,
    /// Serializes retention with a snapshot's reset of the whole store.
    retention_lock: tokio::sync::Mutex<()>,
    #[cfg(feature = "fault-injection")]
    ack_before_fsync: std::sync::atomic::AtomicBool,
}

impl<D: Disk> Shared<D> {
    /// Wakes the long polls waiting on these queues.
    fn notify_arrivals<'a>(&self, queues: impl IntoIterator<Item = (&'a str, u32)>) {
        let watch = self.arrival_watch.lock().expect("arrival watch poisoned");
        if watch.is_empty() {
            return;
        }
        for (topic, queue_id) in queues {
            if let Some(tx) = watch.get(&(topic.to_string(), queue_id)) {
                tx.send_modify(|v| *v += 1);
            }
        }
    }

    fn queue(&self, topic: &str, queue_id: u32) -> Option<Arc<ConsumeQueue<D>>> {
        let queues = self.queues.read().expect("queues lock poisoned");
        queues.get(&(topic.to_string(), queue_id)).cloned()
    }

    fn queue_or_create(&self, topic: &str, queue_id: u32) -> Arc<ConsumeQueue<D>> {
        if let Some(q) = self.queue(topic, queue_id) {
            return q;
        }
        let mut queues = self.queues.write().expect("queues lock poisoned");
        queues
            .entry((topic.to_string(), queue_id))
            .or_insert_with(|| {
                Arc::new(ConsumeQueue::new(
                    self.disk.clone(),
                    topic,
                    queue_id,
                    self.config.consume_queue_units_per_file,
                ))
            })
            .clone()
    }

    fn all_queues(&self) -> Vec<Arc<ConsumeQueue<D>>> {
        self.queues
            .read()
            .expect("queues lock poisoned")
            .values()
            .cloned()
            .collect()
    }

    /// Stops the store from accepting writes and wakes every waiter with the reason.
    fn fail(&self, error: &StoreError) {
        let reason = error.to_string();
        tracing::error!(%reason, "message store stops accepting writes");
        self.failed
            .lock()
            .expect("failed lock poisoned")
            .get_or_insert(reason.clone());
        self.flushed.send_modify(|s| {
            s.failed.get_or_insert(reason);
        });
    }

    fn failure(&self) -> Option<String> {
        self.failed.lock().expect("failed lock poisoned").clone()
    }

    /// Publishes the CommitLog's flushed offset to waiters. It is read inside the watch's
    /// lock, so a flusher and a truncation cannot publish out of order.
    fn publish_flushed(&self) {
        self.flushed
            .send_modify(|s| s.flushed_offset = self.commit_log.flushed_offset());
    }
}

pub struct MessageStore<D: Disk> {
    shared: Arc<Shared<D>>,
    write_tx: mpsc::Sender<WriteRequest>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

/// Bound on write requests waiting for the writer; senders wait beyond it.
const WRITE_QUEUE_DEPTH: usize = 4096;

impl<D: Disk> MessageStore<D> {
    /// Opens the store on `disk`, running recovery (see `recovery`), and starts its tasks.
    pub async fn open(disk: D, config: StoreConfig) -> Result<Self> {
        Self::open_with(disk, config, false).await
    }

    /// Opens a store that Raft drives: the CommitLog is the Raft log (see `replicated`).
    pub async fn open_replicated(disk: D, config: StoreConfig) -> Result<Self> {
        Self::open_with(disk, config, true).await
    }

    async fn open_with(disk: D, config: StoreConfig, replicated: bool) -> Result<Self> {
        config.validate()?;
        let shared = Arc::new(recovery::recover(disk, config, replicated).await?);
        let (write_tx, write_rx) = mpsc::channel(WRITE_QUEUE_DEPTH);
        let tasks = vec![
            tokio::spawn(writer::run(shared.clone(), write_rx)),
            tokio::spawn(services::run_flusher(shared.clone())),
            tokio::spawn(services::run_checkpointer(shared.clone())),
        ];
        Ok(MessageStore {
            shared,
            write_tx,
            tasks: Mutex::new(tasks),
        })
    }

    pub fn config(&self) -> &StoreConfig {
        &self.shared.config
    }

    /// Stores `messages` (one batch, in order) and returns where each landed, once the
    /// configured flush mode allows an acknowledgement.
    pub async fn put_messages(&self, messages: Vec<NewMessage>) -> Result<Vec<PutResult>> {
        for message in &messages {
            self.validate(message)?;
        }
        if messages.is_empty() {
            return Ok(Vec::new());
        }
        if self.shared.replicated {
            return Err(StoreError::Unavailable(
                "a replicated store takes writes as Raft log entries only".into(),
            ));
        }
        if let Some(reason) = self.shared.failure() {
            return Err(StoreError::Unavailable(reason));
        }
        let (reply, written) = oneshot::channel();
        self.write_tx
            .send(WriteRequest { messages, reply })
            .await
            .map_err(|_| StoreError::Unavailable("the writer has stopped".into()))?;
        let written = written
            .await
            .map_err(|_| StoreError::Unavailable("the writer has stopped".into()))??;
        if self.shared.config.flush_disk_type == FlushMode::Sync && !self.ack_before_fsync() {
            self.wait_flushed(written.end_offset).await?;
        }
        Ok(written.results)
    }

    /// Stores one message.
    pub async fn put_message(&self, message: NewMessage) -> Result<PutResult> {
        let mut results = self.put_messages(vec![message]).await?;
        Ok(results.pop().expect("one result per message"))
    }

    /// Checks a message as `put_messages` would: its topic name, layout limits, size.
    pub fn validate(&self, message: &NewMessage) -> Result<()> {
        proto::names::validate_name("topic", &message.topic).map_err(StoreError::MessageIllegal)?;
        message
            .validate()
            .map_err(|e| StoreError::MessageIllegal(e.to_string()))?;
        let size = message.encoded_size(self.shared.config.store_host);
        if size > self.shared.config.message_size_max {
            return Err(StoreError::MessageIllegal(format!(
                "message of {size} bytes exceeds message_size_max {}",
                self.shared.config.message_size_max
            )));
        }
        Ok(())
    }

    /// Whether the planted bug below is on (always false without `fault-injection`).
    #[cfg(feature = "fault-injection")]
    pub fn ack_before_fsync(&self) -> bool {
        self.shared.ack_before_fsync.load(Ordering::Relaxed)
    }

    #[cfg(not(feature = "fault-injection"))]
    pub fn ack_before_fsync(&self) -> bool {
        false
    }

    /// PLANTED BUG for tests: acknowledge sync-flush writes before their fsync (a Raft
    /// replica reports appends durable at once, and nothing wakes the flusher early).
    #[cfg(feature = "fault-injection")]
    pub fn plant_ack_before_fsync(&self) {
        self.shared.ack_before_fsync.store(true, Ordering::Relaxed);
    }

    /// Waits until every byte below `end_offset` is synced, for at most
    /// `sync_flush_timeout_ms`: a send's FLUSH_DISK_TIMEOUT.
    async fn wait_flushed(&self, end_offset: u64) -> Result<()> {
        let timeout_ms = self.shared.config.sync_flush_timeout_ms;
        match tokio::time::timeout(
            Duration::from_millis(timeout_ms),
            self.wait_synced(end_offset),
        )
        .await
        {
            Err(_) => Err(StoreError::FlushTimeout { timeout_ms }),
            Ok(result) => result,
        }
    }

    /// Waits until every byte below `end_offset` is synced, however long that takes, or
    /// the flusher fails.
    async fn wait_synced(&self, end_offset: u64) -> Result<()> {
        self.shared.flush_wakeup.notify_one();
        let mut rx = self.shared.flushed.subscribe();
        let result = match rx
            .wait_for(|s| s.flushed_offset >= end_offset || s.failed.is_some())
            .await
        {
            Err(_) => Err(StoreError::Unavailable("the flusher has stopped".into())),
            Ok(state) if state.flushed_offset >= end_offset => Ok(()),
            Ok(state) => Err(StoreError::Unavailable(
                state.failed.clone().unwrap_or_default(),
            )),
        };
        result
    }

    /// Reads up to `max_count` messages of a queue from `offset` whose tag hash passes
    /// `filter` (RocketMQ `getMessage`).
    pub async fn get_messages(
        &self,
        topic: &str,
        queue_id: u32,
        offset: u64,
        max_count: usize,
        filter: impl Fn(i64) -> bool,
    ) -> Result<GetMessages> {
        self.settled().await?;
        let Some(queue) = self.shared.queue(topic, queue_id) else {
            return Ok(GetMessages {
                status: GetStatus::NoMessageInQueue,
                messages: Vec::new(),
                next_offset: 0,
                min_offset: 0,
                max_offset: 0,
            });
        };
        let (min, max) = (queue.min_offset(), self.readable_max(&queue));
        let reply = |status, next_offset| GetMessages {
            status,
            messages: Vec::new(),
            next_offset,
            min_offset: min,
            max_offset: max,
        };
        if max == 0 {
            return Ok(reply(GetStatus::NoMessageInQueue, 0));
        }
        if offset < min {
            return Ok(reply(GetStatus::OffsetTooSmall, min));
        }
        if offset == max {
            return Ok(reply(GetStatus::OffsetOverflowOne, offset));
        }
        if offset > max {
            return Ok(reply(GetStatus::OffsetOverflowBadly, max));
        }
        let commitlog_min = self.shared.commit_log.min_offset();
        let mut messages = Vec::new();
        let mut next = offset;
        let mut bytes = 0usize;
        while messages.len() < max_count
            && next < max
            && bytes < self.shared.config.write_batch_size_max
        {
            // Never past `max`: in a replicated store, units beyond it are uncommitted.
            let window = max_count.max(32).min((max - next) as usize);
            let units = queue.read(next, window).await?;
            if units.is_empty() {
                break;
            }
            for unit in units {
                if messages.len() >= max_count {
                    break;
                }
                next += 1;
                if unit.commitlog_offset < commitlog_min || !filter(unit.tag_hash) {
                    continue;
                }
                let message = self
                    .shared
                    .commit_log
                    .read(unit.commitlog_offset, unit.size)
                    .await?
                    .ok_or_else(|| StoreError::Corrupt {
                        file: crate::consume_queue::queue_dir(topic, queue_id),
                        offset: next - 1,
                        reason: format!(
                            "unit points at CommitLog offset {} (size {}), which is not stored \
                             (CommitLog ends at {})",
                            unit.commitlog_offset,
                            unit.size,
                            self.shared.commit_log.write_offset()
                        ),
                    })?;
                bytes += message.len();
                messages.push(message);
            }
        }
        let status = if messages.is_empty() {
            GetStatus::NoMatchedMessage
        } else {
            GetStatus::Found
        };
        Ok(GetMessages {
            status,
            messages,
            next_offset: next,
            min_offset: min,
            max_offset: max,
        })
    }

    /// Up to `max_count` ConsumeQueue units of a queue from `offset` on (fewer at its
    /// end; none below its start), without reading the messages: for a reader that
    /// decides from the units which messages it needs (the timing wheel).
    pub async fn queue_units(
        &self,
        topic: &str,
        queue_id: u32,
        offset: u64,
        max_count: usize,
    ) -> Result<Vec<crate::consume_queue::CqUnit>> {
        self.settled().await?;
        let Some(queue) = self.shared.queue(topic, queue_id) else {
            return Ok(Vec::new());
        };
        let max = self.readable_max(&queue);
        if offset < queue.min_offset() || offset >= max {
            return Ok(Vec::new());
        }
        // Never past `max`: in a replicated store, units beyond it are uncommitted.
        queue
            .read(offset, max_count.min((max - offset) as usize))
            .await
    }

    /// The message a ConsumeQueue unit points at, or `None` when retention removed it.
    pub async fn message_of(&self, unit: &crate::consume_queue::CqUnit) -> Result<Option<Bytes>> {
        if unit.commitlog_offset < self.shared.commit_log.min_offset() {
            return Ok(None);
        }
        self.shared
            .commit_log
            .read(unit.commitlog_offset, unit.size)
            .await
    }

    /// The message stored at CommitLog offset `physical_offset` (a lookup by msg id).
    pub async fn message_at(&self, physical_offset: u64) -> Result<Option<Bytes>> {
        self.shared.commit_log.read_unsized(physical_offset).await
    }

    /// Messages of `topic` whose `KEYS` or `UNIQ_KEY` include `key`, stored within
    /// `[begin_ms, end_ms]`, newest first, at most `max`.
    pub async fn query_by_key(
        &self,
        topic: &str,
        key: &str,
        begin_ms: i64,
        end_ms: i64,
        max: usize,
    ) -> Result<Vec<Bytes>> {
        self.settled().await?;
        let candidates = self
            .shared
            .index
            .lookup(key_hash(topic, key), begin_ms, end_ms, usize::MAX)
            .await?;
        let mut found = Vec::new();
        for entry in candidates {
            if found.len() >= max {
                break;
            }
            let Some(bytes) = self
                .shared
                .commit_log
                .read(entry.commitlog_offset, entry.size)
                .await
                .ok()
                .flatten()
            else {
                continue; // A stale hint: the record is gone or was replaced.
            };
            let Ok(message) = MessageRef::parse(&bytes) else {
                continue;
            };
            let keys = message
                .property(proto::properties::keys::KEYS)
                .unwrap_or_default();
            let matches = message.topic() == topic
                && (keys
                    .split(proto::properties::keys::KEY_SEPARATOR)
                    .any(|k| k == key)
                    || message.property(proto::properties::keys::UNIQ_KEY) == Some(key))
                && (begin_ms..=end_ms).contains(&message.store_timestamp_ms());
            if matches {
                found.push(bytes.clone());
            }
        }
        Ok(found)
    }

    /// The first queue offset whose message was stored at or after `timestamp_ms`
    /// (RocketMQ `getOffsetInQueueByTime`); the max offset when none was.
    pub async fn offset_by_time(
        &self,
        topic: &str,
        queue_id: u32,
        timestamp_ms: i64,
    ) -> Result<u64> {
        self.settled().await?;
        let Some(queue) = self.shared.queue(topic, queue_id) else {
            return Ok(0);
        };
        let (mut lo, mut hi) = (queue.min_offset(), queue.max_offset());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let stored_ms = match queue.get(mid).await? {
                Some(unit) => match self
                    .shared
                    .commit_log
                    .read(unit.commitlog_offset, unit.size)
                    .await?
                {
                    Some(bytes) => {
                        MessageRef::parse(&bytes).map_or(i64::MIN, |m| m.store_timestamp_ms())
                    }
                    None => i64::MIN,
                },
                None => i64::MIN,
            };
            if stored_ms < timestamp_ms {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        Ok(lo)
    }

    pub fn min_offset(&self, topic: &str, queue_id: u32) -> u64 {
        self.shared
            .queue(topic, queue_id)
            .map_or(0, |q| q.min_offset())
    }

    /// Waits until every acknowledged write is readable: its ConsumeQueue units and
    /// index entries written. The writer dispatches a batch just after acknowledging it,
    /// so this waits at most for one dispatch in progress. `get_messages`,
    /// `query_by_key` and `offset_by_time` call it themselves; call it before
    /// `max_offset` where a reader must see its own acknowledged writes.
    ///
    /// If that dispatch failed (a disk error, which also stops the store taking writes)
    /// or the writer stopped in it, acknowledged messages are in the CommitLog but not in
    /// their queues until a reopen re-dispatches them: this is then `Unavailable`, naming
    /// that, rather than a read that silently lacks them.
    pub async fn settled(&self) -> Result<()> {
        let acked = self.shared.acked.load(Ordering::Acquire);
        if *self.shared.dispatched.borrow() >= acked {
            return Ok(());
        }
        let mut rx = self.shared.dispatched.subscribe();
        // Never `Err`: `shared` holds the sender as long as `self` lives.
        let dispatched = rx
            .wait_for(|dispatched| {
                *dispatched >= acked || self.shared.dispatch_failed.load(Ordering::Acquire)
            })
            .await
            .map_or(0, |dispatched| *dispatched);
        if dispatched >= acked {
            return Ok(());
        }
        Err(StoreError::Unavailable(format!(
            "acknowledged messages from CommitLog offset {dispatched} to {acked} are not in \
             their queues (their dispatch failed: {}); reopen the store to re-dispatch them",
            self.shared.failure().unwrap_or_default()
        )))
    }

    /// One past the last queue offset (RocketMQ's max offset). Can trail the
    /// acknowledgements by the batch being dispatched; see [`Self::settled`].
    pub fn max_offset(&self, topic: &str, queue_id: u32) -> u64 {
        self.shared
            .queue(topic, queue_id)
            .map_or(0, |q| self.readable_max(&q))
    }

    /// One past the last queue offset readers may see: every stored one, or in a
    /// replicated store the committed ones.
    fn readable_max(&self, queue: &ConsumeQueue<D>) -> u64 {
        if !self.shared.replicated {
            return queue.max_offset();
        }
        let committed = self
            .shared
            .committed_max
            .read()
            .expect("committed lock poisoned");
        let key = (queue.topic().to_string(), queue.queue_id());
        committed
            .get(&key)
            .copied()
            .unwrap_or(0)
            .clamp(queue.min_offset(), queue.max_offset())
    }

    /// Every (topic, queue id) with a ConsumeQueue.
    pub fn queues(&self) -> Vec<(String, u32)> {
        self.shared
            .queues
            .read()
            .expect("queues lock poisoned")
            .keys()
            .cloned()
            .collect()
    }

    /// CommitLog offset below which everything is durable.
    pub fn flushed_offset(&self) -> u64 {
        self.shared.commit_log.flushed_offset()
    }

    /// End of the CommitLog.
    pub fn commitlog_max_offset(&self) -> u64 {
        self.shared.commit_log.write_offset()
    }

    pub fn commitlog_min_offset(&self) -> u64 {
        self.shared.commit_log.min_offset()
    }

    /// Bytes of CommitLog on disk: every segment's file.
    pub fn commitlog_disk_bytes(&self) -> u64 {
        self.shared
            .commit_log
            .segment_infos()
            .iter()
            .map(|s| s.size)
            .sum()
    }

    /// What the store measured (fsync latency, group-commit size, retention deletes).
    pub fn metrics(&self) -> &crate::metrics::StoreMetrics {
        self.shared.commit_log.metrics()
    }

    /// Changes whenever new messages become readable in queue (`topic`, `queue_id`):
    /// dispatched by a single store, committed in a replicated one. Long polls wait on it.
    pub fn queue_arrivals(&self, topic: &str, queue_id: u32) -> watch::Receiver<u64> {
        self.shared
            .arrival_watch
            .lock()
            .expect("arrival watch poisoned")
            .entry((topic.to_string(), queue_id))
            .or_insert_with(|| watch::Sender::new(0))
            .subscribe()
    }

    /// Why the store stopped accepting writes, if it did.
    pub fn failure(&self) -> Option<String> {
        self.shared.failure()
    }

    /// Runs retention once now (it also runs every `clean_interval_ms`).
    pub async fn clean_now(&self) -> Result<()> {
        services::clean(&self.shared).await
    }

    /// Syncs everything and writes a checkpoint now (it also runs every
    /// `checkpoint_interval_ms`).
    pub async fn checkpoint_now(&self) -> Result<()> {
        self.shared.commit_log.sync().await?;
        services::checkpoint(&self.shared).await
    }

    /// Stops accepting writes, then flushes, checkpoints and stops the tasks.
    pub async fn shutdown(&self) -> Result<()> {
        self.shared
            .failed
            .lock()
            .expect("failed lock poisoned")
            .get_or_insert_with(|| "shut down".to_string());
        // Let a dispatch in progress finish, so the checkpoint covers every acknowledged
        // write and the next open need not re-dispatch it (bounded: the disk may hang).
        let _ = tokio::time::timeout(Duration::from_secs(5), self.settled()).await;
        let result = self.checkpoint_now().await;
        for task in self.tasks.lock().expect("tasks lock poisoned").drain(..) {
            task.abort();
        }
        result
    }
}

impl<D: Disk> Drop for MessageStore<D> {
    /// Dropping without `shutdown` is a crash as far as the disk is concerned: the tasks
    /// stop and nothing more is flushed.
    fn drop(&mut self) {
        for task in self.tasks.lock().expect("tasks lock poisoned").iter() {
            task.abort();
        }
    }
}

/// How far the flushed and dispatched offsets are; for tests and metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    pub write_offset: u64,
    pub flushed_offset: u64,
    pub dispatched_offset: u64,
}

impl<D: Disk> MessageStore<D> {
    pub fn progress(&self) -> Progress {
        Progress {
            write_offset: self.shared.commit_log.write_offset(),
            flushed_offset: self.shared.commit_log.flushed_offset(),
            dispatched_offset: *self.shared.dispatched.borrow(),
        }
    }
}
