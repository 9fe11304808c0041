//! Background services: the CommitLog flusher, the checkpointer and retention.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::Shared;
use crate::checkpoint::{self, Checkpoint};
use crate::commit_log::SegmentInfo;
use crate::config::FlushMode;
use crate::disk::Disk;
use crate::error::Result;
use crate::log_start::{self, LogStart, QueueStart};
use crate::retention::{expired_prefix, segments_to_delete, RetentionPolicy};
use proto::clock;

/// Syncs the CommitLog: on every wakeup with `flush = sync` (group commit: one fsync for
/// everything written since the last), every `flush_interval_ms` with `flush = async`.
pub(super) async fn run_flusher<D: Disk>(shared: Arc<Shared<D>>) {
    let interval = Duration::from_millis(shared.config.flush_interval_ms);
    loop {
        match shared.config.flush_disk_type {
            FlushMode::Sync => {
                // A timeout as well, so a lost wakeup cannot strand a waiter.
                let _ = tokio::time::timeout(interval, shared.flush_wakeup.notified()).await;
            }
            FlushMode::Async => tokio::time::sleep(interval).await,
        }
        if shared.failure().is_some() {
            return;
        }
        match shared.commit_log.sync().await {
            Ok(_) => shared.publish_flushed(),
            Err(e) => {
                shared.fail(&e);
                return;
            }
        }
    }
}

/// Every `checkpoint_interval_ms`, syncs ConsumeQueues and the index and writes a
/// checkpoint; every `clean_interval_ms`, runs retention.
pub(super) async fn run_checkpointer<D: Disk>(shared: Arc<Shared<D>>) {
    let interval_ms = shared.config.checkpoint_interval_ms;
    let clean_every = (shared.config.clean_interval_ms / interval_ms).max(1);
    let mut ticks = 0u64;
    loop {
        tokio::time::sleep(Duration::from_millis(interval_ms)).await;
        if shared.failure().is_some() {
            return;
        }
        ticks += 1;
        let mut result = checkpoint(&shared).await;
        if result.is_ok() && ticks.is_multiple_of(clean_every) {
            result = clean(&shared).await;
        }
        if let Err(e) = result {
            shared.fail(&e);
            return;
        }
    }
}

/// Makes ConsumeQueues and the index durable up to the dispatched offset seen first,
/// then records it with the CommitLog's flushed offset.
pub(super) async fn checkpoint<D: Disk>(shared: &Shared<D>) -> Result<()> {
    let _one_at_a_time = shared.checkpoint_lock.lock().await;
    checkpoint_locked(shared).await
}

/// [`checkpoint`], for a caller that holds `checkpoint_lock`.
pub(super) async fn checkpoint_locked<D: Disk>(shared: &Shared<D>) -> Result<()> {
    let dispatched = *shared.dispatched.borrow();
    for queue in shared.all_queues() {
        queue.sync().await?;
    }
    shared.index.sync().await?;
    let commitlog_offset = shared.commit_log.flushed_offset();
    let checkpoint = Checkpoint {
        sequence: shared.checkpoint_sequence.fetch_add(1, Ordering::AcqRel) + 1,
        commitlog_offset,
        dispatch_offset: dispatched.min(commitlog_offset),
        timestamp_ms: clock::now_ms(),
    };
    checkpoint::store(&shared.disk, &checkpoint).await
}

/// Writes a checkpoint that claims nothing at or above `offset` (which is about to be
/// cut), for a caller that holds `checkpoint_lock`.
pub(super) async fn lower_checkpoint_locked<D: Disk>(
    shared: &Shared<D>,
    offset: u64,
) -> Result<()> {
    let commitlog_offset = shared.commit_log.flushed_offset().min(offset);
    let dispatched = (*shared.dispatched.borrow()).min(commitlog_offset);
    let checkpoint = Checkpoint {
        sequence: shared.checkpoint_sequence.fetch_add(1, Ordering::AcqRel) + 1,
        commitlog_offset,
        dispatch_offset: dispatched,
        timestamp_ms: clock::now_ms(),
    };
    checkpoint::store(&shared.disk, &checkpoint).await
}

/// Applies retention: deletes old CommitLog segments and moves ConsumeQueues and the
/// index along.
pub(super) async fn clean<D: Disk>(shared: &Shared<D>) -> Result<()> {
    let _retention = shared.retention_lock.lock().await;
    let policy = RetentionPolicy {
        file_reserved_hours: shared.config.file_reserved_hours,
        disk_max_used_space_ratio: shared.config.disk_max_used_space_ratio,
    };
    let space = shared
        .disk
        .space()
        .map_err(|e| crate::error::StoreError::io("disk space", e))?;
    let segments = shared.commit_log.segment_infos();
    let used = space.total_bytes.saturating_sub(space.free_bytes);
    let floor = shared.retention_floor.load(Ordering::Acquire);
    let floor = (floor != u64::MAX).then_some(floor);
    let now_ms = clock::now_ms();
    let count = segments_to_delete(&policy, &segments, now_ms, space.total_bytes, used, floor)
        .min(segments.len().saturating_sub(1)); // never the active segment
    if count == 0 {
        return Ok(());
    }
    let why = if count > expired_prefix(&policy, &segments, now_ms, floor) {
        Why::Space {
            used_ratio: space.used_ratio(),
            limit: policy.disk_max_used_space_ratio,
        }
    } else {
        Why::Age {
            file_reserved_hours: policy.file_reserved_hours,
        }
    };
    if let Some(floor) = floor.filter(|f| segments[count - 1].base + segments[count - 1].size > *f)
    {
        tracing::error!(
            floor,
            deleted_to = segments[count].base,
            "the disk is over disk_max_used_space_ratio: deleting segments a replica has \
             not received yet; it cannot catch up by log and must be removed and re-added"
        );
    }
    delete_oldest(shared, &segments, count, why).await
}

/// Why retention deletes segments, for its log line: a deletion for space takes
/// messages whatever their age, consumed or not, so it says so louder.
#[derive(Clone, Copy, Debug)]
enum Why {
    Age { file_reserved_hours: u64 },
    Space { used_ratio: f64, limit: f64 },
    Compaction,
}

impl Why {
    fn log(self, segments: usize) {
        match self {
            Why::Age {
                file_reserved_hours,
            } => tracing::info!(
                segments,
                file_reserved_hours,
                "retention: deleting CommitLog segments whose newest message is older than \
                 file_reserved_hours"
            ),
            Why::Space { used_ratio, limit } => tracing::warn!(
                segments,
                disk_used_ratio = format!("{used_ratio:.3}"),
                disk_max_used_space_ratio = limit,
                "retention: the disk is fuller than disk_max_used_space_ratio; deleting the \
                 oldest CommitLog segments whatever their age"
            ),
            Why::Compaction => tracing::info!(segments, "compaction: deleting CommitLog segments"),
        }
    }
}

/// Deletes the segments wholly below CommitLog offset `offset` (never the active one)
/// whatever their age: what disk pressure does, on demand (the simulator's compaction).
pub(super) async fn compact_below<D: Disk>(shared: &Shared<D>, offset: u64) -> Result<()> {
    let _retention = shared.retention_lock.lock().await;
    let segments = shared.commit_log.segment_infos();
    let size = shared.commit_log.segment_size();
    let count = segments
        .iter()
        .take_while(|s| s.base + size <= offset)
        .count()
        .min(segments.len().saturating_sub(1));
    if count == 0 {
        return Ok(());
    }
    delete_oldest(shared, &segments, count, Why::Compaction).await
}

/// Deletes the `count` oldest segments and moves ConsumeQueues and the index along. A
/// replicated log only records where it will start: Raft decides when the entries go
/// (once no replication still reads them, `purge_log`). The caller holds
/// `retention_lock`.
async fn delete_oldest<D: Disk>(
    shared: &Shared<D>,
    segments: &[SegmentInfo],
    count: usize,
    why: Why,
) -> Result<()> {
    if shared.replicated {
        // Only committed (applied) entries may go: a replica's expired segments can
        // still hold a stale, uncommitted tail (a deposed master's, say), which the
        // start must not claim as committed.
        let committed = *shared.committed.borrow();
        let count = segments[..=count]
            .iter()
            .rposition(|s| s.base <= committed)
            .unwrap_or(0);
        let recorded = shared
            .log_start
            .lock()
            .expect("log start poisoned")
            .1
            .clone();
        if count == 0 || recorded.is_some_and(|s| s.base_offset >= segments[count].base) {
            return Ok(());
        }
        why.log(count);
        return record_log_start(shared, &segments[count - 1..=count]).await;
    }
    why.log(count);
    delete_segments(shared, count).await
}

/// Raft no longer needs the entries up to record index `upto`: deletes the segments
/// that hold only those, below the recorded log start.
pub(super) async fn purge_log<D: Disk>(shared: &Shared<D>, upto: u64) -> Result<()> {
    let _retention = shared.retention_lock.lock().await;
    purge_log_locked(shared, upto).await
}

/// [`purge_log`] for a caller that holds `retention_lock`.
pub(super) async fn purge_log_locked<D: Disk>(shared: &Shared<D>, upto: u64) -> Result<()> {
    let recorded = shared
        .log_start
        .lock()
        .expect("log start poisoned")
        .1
        .clone();
    let Some(start) = recorded else {
        return Ok(());
    };
    let segments = shared.commit_log.segment_infos();
    let mut count = 0;
    for segment in &segments[..segments.len().saturating_sub(1)] {
        if segment.base >= start.base_offset
            || shared
                .commit_log
                .closed_segment_last(segment.base)
                .await?
                .index
                > upto
        {
            break;
        }
        count += 1;
    }
    if count == 0 {
        return Ok(());
    }
    delete_segments(shared, count).await
}

async fn delete_segments<D: Disk>(shared: &Shared<D>, count: usize) -> Result<()> {
    let commitlog_min = shared.commit_log.delete_oldest_segments(count).await?;
    for queue in shared.all_queues() {
        queue.advance_min(commitlog_min).await?;
    }
    shared.index.delete_below(commitlog_min).await
}

/// Before retention deletes a replicated log up to `kept` (the last segment to delete
/// and the first to keep), records durably where the log will start: Raft needs the log
/// id before the first entry left, and a snapshot the queue offsets there.
async fn record_log_start<D: Disk>(shared: &Shared<D>, kept: &[SegmentInfo]) -> Result<()> {
    let [last_deleted, first_kept] = kept else {
        unreachable!("retention keeps the active segment");
    };
    // The marker must never name entries a power loss could take (`flush = async`).
    shared.commit_log.sync().await?;
    shared.publish_flushed();
    let prev = shared
        .commit_log
        .closed_segment_last(last_deleted.base)
        .await?;
    let mut queues = Vec::new();
    for queue in shared.all_queues() {
        queues.push(QueueStart {
            topic: queue.topic().to_string(),
            queue_id: queue.queue_id(),
            offset: queue.first_at_or_after(first_kept.base).await?,
        });
    }
    let start = LogStart {
        base_offset: first_kept.base,
        prev,
        queues,
    };
    store_log_start(shared, start).await
}

/// Writes a log start marker durably and makes it the store's.
pub(super) async fn store_log_start<D: Disk>(shared: &Shared<D>, start: LogStart) -> Result<()> {
    let sequence = shared.log_start.lock().expect("log start poisoned").0 + 1;
    log_start::store(&shared.disk, sequence, &start).await?;
    tracing::info!(
        base_offset = start.base_offset,
        prev_index = start.prev.index,
        "the replicated log now starts here"
    );
    *shared.log_start.lock().expect("log start poisoned") = (sequence, Some(start));
    Ok(())
}
