//! Opening a store after a clean shutdown or any crash.
//!
//! 1. Load the checkpoint: the CommitLog is durable and valid below `commitlog_offset`;
//!    ConsumeQueues and the index are durable below `dispatch_offset`.
//! 2. Open the index and every ConsumeQueue, cutting what they hold for records at or
//!    past `dispatch_offset`. A queue whose files are damaged is deleted and rebuilt.
//! 3. Open the CommitLog, which scans from the segment holding `dispatch_offset`,
//!    truncates a torn tail and hands back every record it scanned.
//! 4. Re-dispatch the scanned records. A queue whose next offset does not line up with
//!    them is behind or damaged: it is rebuilt from the whole CommitLog.
//! 5. Move queue min offsets to the CommitLog's min offset, sync, write a checkpoint.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, RwLock};

use proto::properties::keys;
use proto::MessageRef;
use tokio::sync::{watch, Notify};

use super::{writer::index_entries, FlushState, QueueKey, Shared};
use crate::checkpoint;
use crate::commit_log::{CommitLog, ScannedRecord};
use crate::config::StoreConfig;
use crate::consume_queue::{self, ConsumeQueue, CqUnit};
use crate::disk::Disk;
use crate::error::{IoContext, Result, StoreError};
use crate::index::KeyIndex;

/// What re-dispatch needs of one scanned message.
struct Scanned {
    queue: QueueKey,
    queue_offset: u64,
    unit: CqUnit,
}

pub(super) async fn recover<D: Disk>(disk: D, config: StoreConfig) -> Result<Shared<D>> {
    let checkpoint = checkpoint::load(&disk).await?;
    tracing::info!(?checkpoint, "recovering message store");
    let from = checkpoint.dispatch_offset;
    let index = KeyIndex::open(disk.clone(), config.index_entries_per_file, from).await?;
    let (mut queues, mut rebuild) = open_queues(&disk, &config, from).await?;

    let mut scanned = Vec::new();
    let mut entries = Vec::new();
    let on_record = |record: ScannedRecord<'_>| -> Result<()> {
        let message = MessageRef::parse(record.payload).map_err(|e| StoreError::Corrupt {
            file: crate::commit_log::segment_name(
                record.payload_offset - record.payload_offset % config.commitlog_segment_size,
            ),
            offset: record.payload_offset,
            reason: format!("message layout: {e}"),
        })?;
        let unit = CqUnit {
            commitlog_offset: record.payload_offset,
            size: record.header.payload_size() as u32,
            tag_hash: message.tags().map_or(0, proto::hash::java_string_hash),
        };
        let at = (
            record.payload_offset,
            unit.size,
            message.store_timestamp_ms(),
        );
        index_entries(
            message.topic(),
            message.property(keys::KEYS),
            message.property(keys::UNIQ_KEY),
            at,
            &mut entries,
        );
        scanned.push(Scanned {
            queue: (message.topic().to_string(), message.queue_id()),
            queue_offset: message.queue_offset(),
            unit,
        });
        Ok(())
    };
    let commit_log = CommitLog::open(
        disk.clone(),
        config.commitlog_segment_size,
        config.record_size_max(),
        &checkpoint,
        on_record,
    )
    .await?;

    redispatch(&disk, &config, &mut queues, &mut rebuild, &scanned).await?;
    index.add(&entries).await?;
    for key in &rebuild {
        rebuild_queue(&disk, &config, &commit_log, &mut queues, key).await?;
    }
    let commitlog_min = commit_log.min_offset();
    for queue in queues.values() {
        queue.advance_min(commitlog_min).await?;
        queue.sync().await?;
    }
    index.sync().await?;
    let end = commit_log.write_offset();
    let (flushed, _) = watch::channel(FlushState {
        flushed_offset: commit_log.flushed_offset(),
        failed: None,
    });
    let (dispatched, _) = watch::channel(end);
    let checkpoint = checkpoint::Checkpoint {
        sequence: checkpoint.sequence + 1,
        commitlog_offset: commit_log.flushed_offset(),
        dispatch_offset: end,
        timestamp_ms: crate::clock::now_ms(),
    };
    checkpoint::store(&disk, &checkpoint).await?;
    tracing::info!(
        end,
        commitlog_min,
        queues = queues.len(),
        rebuilt = rebuild.len(),
        "message store recovered"
    );
    Ok(Shared {
        config,
        disk,
        commit_log,
        queues: RwLock::new(queues.into_iter().map(|(k, q)| (k, Arc::new(q))).collect()),
        index,
        flushed,
        dispatched,
        flush_wakeup: Notify::new(),
        checkpoint_sequence: AtomicU64::new(checkpoint.sequence),
        failed: Mutex::new(None),
        #[cfg(feature = "fault-injection")]
        ack_before_fsync: std::sync::atomic::AtomicBool::new(false),
    })
}

type Queues<D> = BTreeMap<QueueKey, ConsumeQueue<D>>;

/// Opens every ConsumeQueue found on disk and cuts units at or past `from`. Returns the
/// queues and those that must be rebuilt.
async fn open_queues<D: Disk>(
    disk: &D,
    config: &StoreConfig,
    from: u64,
) -> Result<(Queues<D>, BTreeSet<QueueKey>)> {
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
    let mut queues = BTreeMap::new();
    let mut rebuild = BTreeSet::new();
    let units_per_file = config.consume_queue_units_per_file;
    for ((topic, queue_id), names) in by_queue {
        let opened =
            ConsumeQueue::open(disk.clone(), &topic, queue_id, units_per_file, &names).await;
        let queue = match opened {
            Ok(queue) => queue,
            Err(StoreError::Corrupt {
                file,
                offset,
                reason,
            }) => {
                tracing::warn!(%file, offset, %reason, "ConsumeQueue is damaged; rebuilding it from the CommitLog");
                for name in &names {
                    disk.remove(name)
                        .await
                        .context(|| format!("remove {name}"))?;
                }
                rebuild.insert((topic.clone(), queue_id));
                ConsumeQueue::new(disk.clone(), &topic, queue_id, units_per_file)
            }
            Err(e) => return Err(e),
        };
        queue.truncate_from_commitlog(from).await?;
        queues.insert((topic, queue_id), queue);
    }
    Ok((queues, rebuild))
}

/// Appends the units of scanned records to their queues, marking for rebuild any queue
/// whose next offset does not match.
async fn redispatch<D: Disk>(
    disk: &D,
    config: &StoreConfig,
    queues: &mut Queues<D>,
    rebuild: &mut BTreeSet<QueueKey>,
    scanned: &[Scanned],
) -> Result<()> {
    let mut units: BTreeMap<QueueKey, Vec<CqUnit>> = BTreeMap::new();
    for s in scanned {
        if rebuild.contains(&s.queue) {
            continue;
        }
        let queue = queues.entry(s.queue.clone()).or_insert_with(|| {
            ConsumeQueue::new(
                disk.clone(),
                &s.queue.0,
                s.queue.1,
                config.consume_queue_units_per_file,
            )
        });
        let pending = units.entry(s.queue.clone()).or_default();
        let expected = queue.max_offset() + pending.len() as u64;
        if s.queue_offset != expected {
            tracing::warn!(topic = %s.queue.0, queue_id = s.queue.1, expected, found = s.queue_offset,
                "ConsumeQueue does not line up with the CommitLog; rebuilding it");
            rebuild.insert(s.queue.clone());
            units.remove(&s.queue);
            continue;
        }
        pending.push(s.unit);
    }
    for (key, units) in units {
        queues
            .get(&key)
            .expect("queue was created above")
            .append(&units)
            .await?;
    }
    Ok(())
}

/// Deletes a queue's files and writes it anew from a full CommitLog scan.
async fn rebuild_queue<D: Disk>(
    disk: &D,
    config: &StoreConfig,
    commit_log: &CommitLog<D>,
    queues: &mut Queues<D>,
    key: &QueueKey,
) -> Result<()> {
    if let Some(old) = queues.remove(key) {
        old.destroy().await?;
    }
    let (topic, queue_id) = key;
    let queue = ConsumeQueue::new(
        disk.clone(),
        topic,
        *queue_id,
        config.consume_queue_units_per_file,
    );
    let mut units: Vec<(u64, CqUnit)> = Vec::new();
    commit_log
        .scan(
            commit_log.min_offset(),
            commit_log.write_offset(),
            |record| {
                let message =
                    MessageRef::parse(record.payload).map_err(|e| StoreError::Corrupt {
                        file: "commitlog".into(),
                        offset: record.payload_offset,
                        reason: format!("message layout: {e}"),
                    })?;
                if message.topic() == topic && message.queue_id() == *queue_id {
                    let tag_hash = message.tags().map_or(0, proto::hash::java_string_hash);
                    units.push((
                        message.queue_offset(),
                        CqUnit {
                            commitlog_offset: record.payload_offset,
                            size: record.header.payload_size() as u32,
                            tag_hash,
                        },
                    ));
                }
                Ok(())
            },
        )
        .await?;
    if let Some((first, _)) = units.first() {
        queue.reset_to(*first);
    }
    for (i, (queue_offset, _)) in units.iter().enumerate() {
        let expected = units[0].0 + i as u64;
        if *queue_offset != expected {
            return Err(StoreError::Corrupt {
                file: "commitlog".into(),
                offset: units[i].1.commitlog_offset,
                reason: format!("{topic}:{queue_id} has queue offset {queue_offset} where {expected} should follow"),
            });
        }
    }
    let units: Vec<CqUnit> = units.into_iter().map(|(_, u)| u).collect();
    queue.append(&units).await?;
    tracing::warn!(topic = %topic, queue_id, units = units.len(), "rebuilt ConsumeQueue from the CommitLog");
    queues.insert(key.clone(), queue);
    Ok(())
}
