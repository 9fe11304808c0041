//! Opening a store after a clean shutdown or any crash.
//!
//! 1. Load the checkpoint: the CommitLog is durable and valid below `commitlog_offset`;
//!    ConsumeQueues and the index are durable below `dispatch_offset`.
//! 2. Open the index and every ConsumeQueue, cutting what they hold for records at or
//!    past `dispatch_offset`.
//! 3. Open the CommitLog: it validates from the segment holding `dispatch_offset` and
//!    truncates a torn tail.
//! 4. Re-dispatch the records from `dispatch_offset` on, a segment at a time.
//! 5. Move queue min offsets to the CommitLog's min offset, sync, write a checkpoint.
//!
//! When a ConsumeQueue is damaged or does not line up with the CommitLog (its files were
//! cut short, a file is missing), recovery starts over in *full* mode: it first lowers
//! the checkpoint's `dispatch_offset` to zero durably, then deletes every ConsumeQueue
//! and re-dispatches the whole CommitLog. Lowering the checkpoint first means a crash
//! in the middle of the rebuild leads to another full rebuild, never to a queue that is
//! silently gone.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex, RwLock};

use proto::watch;
use proto::MessageRef;
use tokio::sync::Notify;

use super::dispatch::{dispatch_message, MessageView, StoredAt};
use super::{FlushState, QueueKey, Shared};
use crate::checkpoint::{self, Checkpoint};
use crate::commit_log::{segment_name, CommitLog};
use crate::config::StoreConfig;
use crate::consume_queue::{self, ConsumeQueue, CqUnit};
use crate::disk::Disk;
use crate::error::{IoContext, Result, StoreError};
use crate::index::KeyIndex;
use crate::log_start;

type Queues<D> = BTreeMap<QueueKey, ConsumeQueue<D>>;

/// Why recovery must re-dispatch the whole CommitLog.
struct NeedsFullRedispatch(String);

pub(super) async fn recover<D: Disk>(
    disk: D,
    config: StoreConfig,
    replicated: bool,
) -> Result<Shared<D>> {
    let checkpoint = checkpoint::load(&disk).await?;
    tracing::info!(?checkpoint, "recovering message store");
    if checkpoint.dispatch_offset > 0 {
        match try_recover(&disk, &config, checkpoint, false, replicated).await? {
            Ok(shared) => return Ok(shared),
            Err(NeedsFullRedispatch(reason)) => {
                tracing::warn!(%reason, "rebuilding every ConsumeQueue from the CommitLog");
            }
        }
    }
    // Read again: opening the CommitLog may have lowered it (a segment opened again
    // after the entry that closed it was lost), and the full pass must not claim more.
    let checkpoint = checkpoint::load(&disk).await?;
    let full = Checkpoint {
        sequence: checkpoint.sequence + 1,
        dispatch_offset: 0,
        ..checkpoint
    };
    checkpoint::store(&disk, &full).await?;
    match try_recover(&disk, &config, full, true, replicated).await? {
        Ok(shared) => Ok(shared),
        Err(NeedsFullRedispatch(reason)) => Err(StoreError::Corrupt {
            file: "commitlog".into(),
            offset: 0,
            reason: format!("a full re-dispatch did not line up: {reason}"),
        }),
    }
}

async fn try_recover<D: Disk>(
    disk: &D,
    config: &StoreConfig,
    mut checkpoint: Checkpoint,
    full: bool,
    replicated: bool,
) -> Result<Result<Shared<D>, NeedsFullRedispatch>> {
    let from = checkpoint.dispatch_offset;
    let index = KeyIndex::open(disk.clone(), config.index_entries_per_file, from).await?;
    let log_start = if replicated {
        log_start::load(disk).await?
    } else {
        None
    };
    let start = log_start.as_ref().map(|(_, s)| s);
    let commit_log = CommitLog::open(
        disk.clone(),
        config.commitlog_segment_size,
        config.record_size_max(),
        &mut checkpoint,
        start,
    )
    .await?;
    let mut queues = if full {
        remove_queues(disk).await?;
        Queues::new()
    } else {
        match open_queues(disk, config, &commit_log, from).await? {
            Ok(queues) => queues,
            Err(needs) => return Ok(Err(needs)),
        }
    };
    // Re-dispatch a segment at a time, so memory stays bounded by one segment. Start
    // with the whole segment that holds `from`: its records before `from` should have
    // units already, which catches (and fills) a queue that fell behind the checkpoint.
    let end = commit_log.write_offset();
    let mut at = (from - from % config.commitlog_segment_size).max(commit_log.min_offset());
    while at < end {
        let segment_end =
            (at - at % config.commitlog_segment_size + config.commitlog_segment_size).min(end);
        let window = Window {
            from,
            range: (at, segment_end),
            full,
        };
        if let Err(needs) =
            redispatch(disk, config, &commit_log, &index, &mut queues, window).await?
        {
            return Ok(Err(needs));
        }
        at = segment_end;
    }
    // A queue that had no message left at the log start (or none yet, after a
    // snapshot's reset) still continues where the marker says.
    for q in start.map_or(&[][..], |s| &s.queues[..]) {
        let key = (q.topic.clone(), q.queue_id);
        queues.entry(key).or_insert_with(|| {
            let queue = ConsumeQueue::new(
                disk.clone(),
                &q.topic,
                q.queue_id,
                config.consume_queue_units_per_file,
            );
            queue.reset_to(q.offset);
            queue
        });
    }
    let commitlog_min = commit_log.min_offset();
    for queue in queues.values() {
        queue.advance_min(commitlog_min).await?;
        queue.sync().await?;
    }
    index.sync().await?;
    let flushed_offset = commit_log.flushed_offset();
    let checkpoint = Checkpoint {
        sequence: checkpoint.sequence + 1,
        commitlog_offset: flushed_offset,
        dispatch_offset: end,
        timestamp_ms: proto::clock::now_ms(),
    };
    checkpoint::store(disk, &checkpoint).await?;
    tracing::info!(
        end,
        commitlog_min,
        queues = queues.len(),
        full,
        "message store recovered"
    );
    let (flushed, _) = watch::channel(FlushState {
        flushed_offset,
        failed: None,
    });
    let (dispatched, _) = watch::channel(end);
    let (committed, _) = watch::channel(0);
    Ok(Ok(Shared {
        config: config.clone(),
        disk: disk.clone(),
        commit_log,
        queues: RwLock::new(queues.into_iter().map(|(k, q)| (k, Arc::new(q))).collect()),
        index,
        flushed,
        dispatched,
        // Not `end`: a replicated store never acknowledges through the writer, and its
        // `dispatched` can move below `end` (a truncated tail, a snapshot).
        acked: AtomicU64::new(0),
        dispatch_failed: AtomicBool::new(false),
        arrival_watch: Mutex::default(),
        flush_wakeup: Notify::new(),
        checkpoint_sequence: AtomicU64::new(checkpoint.sequence),
        failed: Mutex::new(None),
        replicated,
        committed,
        committed_max: RwLock::new(BTreeMap::new()),
        log_lock: tokio::sync::Mutex::new(()),
        checkpoint_lock: tokio::sync::Mutex::new(()),
        retention_floor: AtomicU64::new(u64::MAX),
        log_start: Mutex::new(log_start.map_or((0, None), |(seq, s)| (seq, Some(s)))),
        retention_lock: tokio::sync::Mutex::new(()),
        #[cfg(feature = "fault-injection")]
        ack_before_fsync: std::sync::atomic::AtomicBool::new(false),
    }))
}

/// Groups the ConsumeQueue files on disk by queue.
async fn queue_files<D: Disk>(disk: &D) -> Result<BTreeMap<QueueKey, Vec<String>>> {
    let names = disk
        .list(consume_queue::DIR)
        .await
        .context(|| format!("list {}", consume_queue::DIR))?;
    let mut by_queue: BTreeMap<QueueKey, Vec<String>> = BTreeMap::new();
    for name in names {
        let parts: Vec<&str> = name[consume_queue::DIR.len()..].split('/').collect();
        let queue_id = match parts.as_slice() {
            [_, queue, _] => queue.parse::<u32>().ok(),
            _ => None,
        };
        let Some(queue_id) = queue_id else {
            return Err(StoreError::UnexpectedFile {
                file: name,
                reason: "not a ConsumeQueue file".into(),
            });
        };
        by_queue
            .entry((parts[0].to_string(), queue_id))
            .or_default()
            .push(name);
    }
    Ok(by_queue)
}

async fn remove_queues<D: Disk>(disk: &D) -> Result<()> {
    for name in queue_files(disk).await?.into_values().flatten() {
        disk.remove(&name)
            .await
            .context(|| format!("remove {name}"))?;
    }
    Ok(())
}

/// Opens every ConsumeQueue found on disk, cuts units at or past `from`, and cuts a
/// torn tail of units that do not match the CommitLog.
async fn open_queues<D: Disk>(
    disk: &D,
    config: &StoreConfig,
    commit_log: &CommitLog<D>,
    from: u64,
) -> Result<Result<Queues<D>, NeedsFullRedispatch>> {
    let mut queues = Queues::new();
    let units_per_file = config.consume_queue_units_per_file;
    for ((topic, queue_id), names) in queue_files(disk).await? {
        let queue = match ConsumeQueue::open(disk.clone(), &topic, queue_id, units_per_file, &names)
            .await
        {
            Ok(queue) => queue,
            Err(StoreError::Corrupt {
                file,
                offset,
                reason,
            }) => {
                return Ok(Err(NeedsFullRedispatch(format!(
                    "{file} at {offset}: {reason}"
                ))));
            }
            Err(e) => return Err(e),
        };
        queue.truncate_from_commitlog(from).await?;
        cut_units_that_do_not_match(&queue, commit_log).await?;
        queues.insert((topic, queue_id), queue);
    }
    Ok(Ok(queues))
}

/// A torn write can leave garbage in a queue's last units (ConsumeQueue units carry no
/// CRC, as in RocketMQ). Walks back from the end, cutting units until one resolves to a
/// message of this queue at this queue offset. Units older than the CommitLog's min
/// offset cannot be checked and are kept.
async fn cut_units_that_do_not_match<D: Disk>(
    queue: &ConsumeQueue<D>,
    commit_log: &CommitLog<D>,
) -> Result<()> {
    while queue.max_offset() > queue.min_offset() {
        let position = queue.max_offset() - 1;
        let Some(unit) = queue.get(position).await? else {
            break;
        };
        if unit.commitlog_offset < commit_log.min_offset() {
            break;
        }
        let matches = match commit_log.read(unit.commitlog_offset, unit.size).await {
            Ok(Some(bytes)) => MessageRef::parse(&bytes).is_ok_and(|m| {
                m.topic() == queue.topic()
                    && m.queue_id() == queue.queue_id()
                    && m.queue_offset() == position
            }),
            Ok(None) | Err(StoreError::Corrupt { .. }) => false,
            Err(e) => return Err(e),
        };
        if matches {
            break;
        }
        tracing::warn!(
            topic = queue.topic(),
            queue_id = queue.queue_id(),
            position,
            ?unit,
            "cutting a ConsumeQueue unit that does not match the CommitLog"
        );
        queue.truncate_to(position).await?;
    }
    Ok(())
}

/// One step of re-dispatch: the records in `range`, of which those before `from` should
/// be dispatched already.
struct Window {
    from: u64,
    range: (u64, u64),
    full: bool,
}

/// Re-dispatches the records in the window to ConsumeQueues and the index. A queue whose
/// next offset does not line up with the records asks for a full re-dispatch. In full
/// mode a queue without units starts at its first record (older ones may have gone to
/// retention).
async fn redispatch<D: Disk>(
    disk: &D,
    config: &StoreConfig,
    commit_log: &CommitLog<D>,
    index: &KeyIndex<D>,
    queues: &mut Queues<D>,
    window: Window,
) -> Result<Result<(), NeedsFullRedispatch>> {
    let Window { from, range, full } = window;
    let mut scanned: Vec<(QueueKey, u64, CqUnit)> = Vec::new();
    let mut entries = Vec::new();
    commit_log
        .scan(range.0, range.1, |record| {
            let message = MessageRef::parse(record.payload).map_err(|e| StoreError::Corrupt {
                file: segment_name(
                    record.payload_offset - record.payload_offset % config.commitlog_segment_size,
                ),
                offset: record.payload_offset,
                reason: format!("message layout: {e}"),
            })?;
            let view = MessageView::of_stored(&message);
            let at = StoredAt {
                commitlog_offset: record.payload_offset,
                size: record.header.payload_size() as u32,
            };
            // The index is durable below `from`: entries again would be duplicates.
            let index = (record.payload_offset >= from).then_some(&mut entries);
            let unit = dispatch_message(&view, at, index);
            scanned.push((
                (message.topic().to_string(), message.queue_id()),
                message.queue_offset(),
                unit,
            ));
            Ok(())
        })
        .await?;
    let mut units: BTreeMap<QueueKey, Vec<CqUnit>> = BTreeMap::new();
    for (key, queue_offset, unit) in scanned {
        let queue = queues.entry(key.clone()).or_insert_with(|| {
            let queue = ConsumeQueue::new(
                disk.clone(),
                &key.0,
                key.1,
                config.consume_queue_units_per_file,
            );
            if full {
                queue.reset_to(queue_offset);
            }
            queue
        });
        let pending = units.entry(key.clone()).or_default();
        let expected = queue.max_offset() + pending.len() as u64;
        if queue_offset < expected && unit.commitlog_offset < from {
            continue; // Dispatched before the checkpoint, and durable.
        }
        if queue_offset != expected {
            let (topic, queue_id) = &key;
            return Ok(Err(NeedsFullRedispatch(format!(
                "{topic}:{queue_id} expects queue offset {expected}, the CommitLog has {queue_offset} at {}",
                unit.commitlog_offset
            ))));
        }
        pending.push(unit);
    }
    for (key, units) in units {
        queues
            .get(&key)
            .expect("queue was created above")
            .append(&units)
            .await?;
    }
    index.add(&entries).await?;
    Ok(Ok(()))
}
