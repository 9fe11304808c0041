//! The broker group's state machine: what applying committed entries means.
//!
//! - A message entry is already in the CommitLog and dispatched to its ConsumeQueue (see
//!   `log_store`); applying it makes it *readable* (`MessageStore::publish_committed`),
//!   so consumers never see a message a new leader could still discard.
//! - A consumer-offset entry sets the group's offset, so committed offsets fail over
//!   with the log and never move backwards after a failover.
//! - A topic entry creates or changes a topic on every replica (`watch_topics`).
//! - A membership entry is kept for openraft.
//!
//! The applied state (last applied log id, membership, consumer offsets and the
//! readable CommitLog offset) is saved in two slot files (`raft/machine-{0,1}`) at most
//! every `SAVE_INTERVAL_MS`: taken first, then the store is synced, then it is written,
//! so a saved state never names entries this replica could lose. After a restart
//! openraft re-applies the entries after it; applying is idempotent. The periodic save
//! runs in a task of its own: `apply` is on the acknowledgement path, and waiting there
//! for the store's sync (35–50 ms under load) stalled every write of the group once a
//! second. A failed save fails the next `apply`, as it did when it ran inline.
//!
//! # Snapshots: catching up where the leader's log no longer reaches
//!
//! A replica catches up by log while the leader still holds the entries it lacks. Once
//! retention deleted them, openraft sends a snapshot. The messages themselves are gone
//! from the leader, so a snapshot cannot carry them; it is taken *where the leader's log
//! starts* (its store's [`LogStart`]): its last log id is the entry before the first one
//! stored, and it carries that start (segment base, queue offsets) with the applied
//! state. The follower continues its store there (`MessageStore::install_log_start`):
//! it keeps the entries after the snapshot's when it holds that entry itself, as
//! openraft does, and otherwise empties the store; then it receives every entry it
//! lacks that the leader still has, by log, at the same offsets.
//!
//! The applied state in the snapshot is the leader's *current* one, newer than the
//! snapshot's log id (a "fuzzy" snapshot, as ZooKeeper's): the follower re-applies the
//! entries after the log id over it. That is exact because every non-message entry is
//! a last-writer-wins update of one key (a consumer offset, a topic, a subscription
//! group), so replaying a suffix of updates over a state that already contains them
//! ends in the same state. The membership in the snapshot is the one in effect at its
//! log id, which the state keeps a short history of.
//!
//! Installing saves the new applied state (with the log start) *before* continuing the
//! store there; a crash in between is finished by [`GroupMachine::open`], which installs
//! the start again when the store's log starts before the saved state's.

use std::collections::BTreeMap;
use std::io::{self, Cursor};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    BasicNode, Entry, LogId, OptionalSend, RaftSnapshotBuilder, SnapshotMeta, StorageError,
    StorageIOError, StoredMembership,
};
use proto::watch;
use serde::{Deserialize, Serialize};
use store::meta::{SubscriptionGroupConfig, TopicConfig};
use store::slot_file::SlotFile;
use store::versioned;
use store::{Disk, LogStart, MessageStore};

pub use crate::applied::OffsetKey;
use crate::applied::{decode_applied, Applied, Effects, LAYOUT_VERSION};
use crate::background::BackgroundWrite;
use crate::types::{GroupRaft, GroupResponse};

const MACHINE_SLOTS: SlotFile = SlotFile {
    names: ["raft/machine-0", "raft/machine-1"],
    magic: 0x524D_514D, // "RMQM"
};

/// How often the applied state is saved at most.
const SAVE_INTERVAL_MS: i64 = 1_000;

/// What a snapshot carries.
#[derive(Serialize, Deserialize)]
struct SnapshotData {
    applied: Applied,
    log_start: LogStart,
}

struct Inner {
    applied: Applied,
    sequence: u64,
    saved_at_ms: i64,
    snapshot: Option<(SnapshotMeta<u64, BasicNode>, Vec<u8>)>,
    /// Why the last periodic save failed; the next `apply` reports it.
    save_error: Option<String>,
}

/// The state machine of one replica. Clones share everything.
#[derive(Clone)]
pub struct GroupMachine<D: Disk> {
    store: Arc<MessageStore<D>>,
    disk: D,
    inner: Arc<Mutex<Inner>>,
    /// Bumped whenever the topic table changes.
    topics_version: Arc<watch::Sender<u64>>,
    /// Held by a save from taking the state to writing its slot, so saves write their
    /// sequence numbers in order.
    save_lock: Arc<tokio::sync::Mutex<()>>,
    /// The periodic save.
    periodic_save: Arc<BackgroundWrite>,
    /// Snapshots installed since the replica started (operators' metrics).
    snapshot_installs: Arc<AtomicU64>,
}

/// What a save needs, without the handle whose drop aborts it.
struct Saver<D: Disk> {
    store: Arc<MessageStore<D>>,
    disk: D,
    inner: Arc<Mutex<Inner>>,
    save_lock: Arc<tokio::sync::Mutex<()>>,
}

fn io_error(e: impl ToString) -> io::Error {
    io::Error::other(e.to_string())
}

impl<D: Disk> GroupMachine<D> {
    /// Loads the saved applied state and makes the messages it covers readable again.
    pub async fn open(store: Arc<MessageStore<D>>, disk: D) -> Result<Self, StorageError<u64>> {
        let read_err = |e: io::Error| StorageError::from(StorageIOError::read_state_machine(&e));
        let (sequence, applied) = match MACHINE_SLOTS
            .load(&disk)
            .await
            .map_err(|e| read_err(io_error(e)))?
        {
            Some((sequence, bytes)) => (
                sequence,
                decode_applied(&bytes).map_err(|e| read_err(io_error(e)))?,
            ),
            None => (0, Applied::default()),
        };
        // A snapshot was installed, but the store may not have continued there yet.
        if let Some(start) = &applied.log_start {
            let at = store.log_start().map_or(0, |s| s.prev.index);
            if at < start.prev.index {
                tracing::warn!(
                    prev_index = start.prev.index,
                    "finishing a snapshot's install that a crash interrupted"
                );
                store
                    .install_log_start(start.clone())
                    .await
                    .map_err(|e| read_err(io_error(e)))?;
            }
        }
        store
            .restore_committed(applied.readable_offset)
            .await
            .map_err(|e| read_err(io_error(e)))?;
        Ok(GroupMachine {
            store,
            disk,
            topics_version: Arc::new(watch::Sender::new(0)),
            inner: Arc::new(Mutex::new(Inner {
                applied,
                sequence,
                saved_at_ms: proto::clock::now_ms(),
                snapshot: None,
                save_error: None,
            })),
            save_lock: Arc::default(),
            periodic_save: Arc::default(),
            snapshot_installs: Arc::default(),
        })
    }

    /// Snapshots this replica installed since it started: each one a leader that no
    /// longer had the entries this replica lacked.
    pub fn snapshot_installs(&self) -> u64 {
        self.snapshot_installs.load(Ordering::Relaxed)
    }

    /// The committed offset of `group` in a queue.
    pub fn consumer_offset(&self, group: &str, topic: &str, queue_id: u32) -> Option<u64> {
        let inner = self.inner.lock().expect("machine poisoned");
        let key = (group.to_string(), topic.to_string(), queue_id);
        inner.applied.offsets.get(&key).copied()
    }

    /// Every committed consumer offset.
    pub fn consumer_offsets(&self) -> BTreeMap<OffsetKey, u64> {
        self.inner
            .lock()
            .expect("machine poisoned")
            .applied
            .offsets
            .clone()
    }

    /// The replicated topic table.
    pub fn topics(&self) -> Vec<TopicConfig> {
        let inner = self.inner.lock().expect("machine poisoned");
        inner.applied.topics.values().cloned().collect()
    }

    /// A replicated subscription group.
    pub fn subscription_group(&self, name: &str) -> Option<SubscriptionGroupConfig> {
        let inner = self.inner.lock().expect("machine poisoned");
        inner.applied.groups.get(name).cloned()
    }

    /// Every replicated subscription group.
    pub fn subscription_groups(&self) -> Vec<SubscriptionGroupConfig> {
        let inner = self.inner.lock().expect("machine poisoned");
        inner.applied.groups.values().cloned().collect()
    }

    /// Changes whenever the topic table does.
    pub fn watch_topics(&self) -> watch::Receiver<u64> {
        self.topics_version.subscribe()
    }

    fn saver(&self) -> Saver<D> {
        Saver {
            store: self.store.clone(),
            disk: self.disk.clone(),
            inner: self.inner.clone(),
            save_lock: self.save_lock.clone(),
        }
    }

    /// Saves the applied state now (see [`Saver::save`]).
    async fn save(&self, force: bool) -> Result<(), io::Error> {
        self.saver().save(force).await
    }

    /// Starts a periodic save in its own task if one is due and none is running.
    fn save_if_due(&self) {
        {
            let inner = self.inner.lock().expect("machine poisoned");
            let now_ms = proto::clock::now_ms();
            if now_ms.saturating_sub(inner.saved_at_ms) < SAVE_INTERVAL_MS {
                return;
            }
        }
        let saver = self.saver();
        self.periodic_save.start(async move {
            if let Err(e) = saver.save(false).await {
                tracing::error!(error = %e, "saving the applied state failed");
                saver.inner.lock().expect("machine poisoned").save_error = Some(e.to_string());
            }
        });
    }

    /// The error of a failed periodic save, once.
    fn take_save_error(&self) -> Result<(), io::Error> {
        let error = self
            .inner
            .lock()
            .expect("machine poisoned")
            .save_error
            .take();
        error.map_or(Ok(()), |e| {
            Err(io_error(format!("saving the applied state: {e}")))
        })
    }
}

impl<D: Disk> Saver<D> {
    /// Saves the applied state if it is due (or `force`): takes it, syncs the store so
    /// that nothing it names can be lost by this replica, and writes it.
    async fn save(&self, force: bool) -> Result<(), io::Error> {
        let _in_order = self.save_lock.lock().await;
        let now_ms = proto::clock::now_ms();
        let (sequence, bytes) = {
            let mut inner = self.inner.lock().expect("machine poisoned");
            if !force && now_ms.saturating_sub(inner.saved_at_ms) < SAVE_INTERVAL_MS {
                return Ok(());
            }
            inner.saved_at_ms = now_ms;
            let bytes = versioned::encode(LAYOUT_VERSION, &inner.applied).map_err(io_error)?;
            (inner.sequence + 1, bytes)
        };
        // Every entry the state names was appended before it was applied, so the sync
        // (up to what is written now) covers them.
        self.store.checkpoint_now().await.map_err(io_error)?;
        MACHINE_SLOTS
            .store(&self.disk, sequence, &bytes)
            .await
            .map_err(io_error)?;
        // Only now: a write after a failed one goes to the same slot again, never over
        // the other, which holds the last state written whole.
        self.inner.lock().expect("machine poisoned").sequence = sequence;
        Ok(())
    }
}

impl<D: Disk> GroupMachine<D> {
    /// A snapshot at the start of the store's log (see the module doc); `None` while
    /// the log holds every entry from the first (no replica needs one).
    fn snapshot_at_log_start(&self) -> Result<Option<Snapshot<GroupRaft>>, io::Error> {
        let Some(log_start) = self.store.log_start().filter(|s| s.prev.index > 0) else {
            return Ok(None);
        };
        let last_log_id = crate::log_store::log_id(log_start.prev);
        let mut inner = self.inner.lock().expect("machine poisoned");
        if let Some((meta, data)) = &inner.snapshot {
            if meta.last_log_id == Some(last_log_id) {
                return Ok(Some(Snapshot {
                    meta: meta.clone(),
                    snapshot: Box::new(Cursor::new(data.clone())),
                }));
            }
        }
        let applied = &inner.applied;
        if applied.last_applied < Some(last_log_id) {
            return Err(io_error(format!(
                "the log starts after entry {last_log_id}, which is not applied yet"
            )));
        }
        let last_membership = std::iter::once(&applied.membership)
            .chain(applied.memberships.iter().rev())
            .find(|m| m.log_id().as_ref() <= Some(&last_log_id))
            .cloned()
            .ok_or_else(|| {
                io_error(format!(
                    "no membership known at entry {last_log_id}, where the log starts"
                ))
            })?;
        let data = versioned::encode(
            LAYOUT_VERSION,
            &SnapshotData {
                applied: applied.clone(),
                log_start,
            },
        )
        .map_err(io_error)?;
        let meta = SnapshotMeta {
            last_log_id: Some(last_log_id),
            last_membership,
            snapshot_id: format!("{last_log_id}@{:?}", applied.last_applied),
        };
        inner.snapshot = Some((meta.clone(), data.clone()));
        Ok(Some(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        }))
    }
}

impl<D: Disk> RaftSnapshotBuilder<GroupRaft> for GroupMachine<D> {
    /// Builds the snapshot at the log start and saves the applied state: openraft
    /// purges entries only up to a snapshot it built, and a purge deletes them, so the
    /// saved state must already cover them (a restart re-applies only what is stored).
    async fn build_snapshot(&mut self) -> Result<Snapshot<GroupRaft>, StorageError<u64>> {
        let read_err = |e: io::Error| StorageError::from(StorageIOError::read_state_machine(&e));
        let snapshot = self
            .snapshot_at_log_start()
            .map_err(read_err)?
            .ok_or_else(|| read_err(io_error("the log starts at its first entry: no snapshot")))?;
        self.save(true)
            .await
            .map_err(|e| StorageIOError::write_state_machine(&e))?;
        Ok(snapshot)
    }
}

impl<D: Disk> RaftStateMachine<GroupRaft> for GroupMachine<D> {
    type SnapshotBuilder = GroupMachine<D>;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<u64>>, StoredMembership<u64, BasicNode>), StorageError<u64>> {
        let inner = self.inner.lock().expect("machine poisoned");
        Ok((inner.applied.last_applied, inner.applied.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<GroupResponse>, StorageError<u64>>
    where
        I: IntoIterator<Item = Entry<GroupRaft>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        self.take_save_error()
            .map_err(|e| StorageIOError::write_state_machine(&e))?;
        let mut responses = Vec::new();
        let mut effects = Effects::default();
        {
            let mut inner = self.inner.lock().expect("machine poisoned");
            for entry in entries {
                let log_id = entry.log_id;
                let response = inner
                    .applied
                    .apply(entry, &mut effects)
                    .map_err(|e| StorageError::from(StorageIOError::apply(log_id, &e)))?;
                responses.push(response);
            }
        }
        let Effects {
            committed,
            readable_offset,
            topics_changed,
        } = effects;
        self.store.publish_committed(
            committed.iter().map(|(t, q, o)| (t.as_str(), *q, *o)),
            readable_offset,
        );
        if topics_changed {
            self.topics_version.send_modify(|v| *v += 1);
        }
        self.save_if_due();
        Ok(responses)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<Cursor<Vec<u8>>>, StorageError<u64>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<u64, BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<u64>> {
        let data = snapshot.into_inner();
        let SnapshotData {
            mut applied,
            log_start,
        } = versioned::decode_current("a snapshot", LAYOUT_VERSION, &data)
            .map_err(|e| StorageIOError::read_snapshot(Some(meta.signature()), &io_error(e)))?;
        let last_log_id = meta
            .last_log_id
            .expect("openraft installs a non-empty snapshot");
        assert_eq!(
            crate::log_store::log_id(log_start.prev),
            last_log_id,
            "a snapshot is taken where the log it came from starts"
        );
        tracing::info!(
            %last_log_id,
            base_offset = log_start.base_offset,
            "installing a snapshot: the log continues after its entry, at its offset"
        );
        let write_err = |e: io::Error| StorageError::from(StorageIOError::write_state_machine(&e));
        applied.last_applied = meta.last_log_id;
        applied.membership = meta.last_membership.clone();
        applied.readable_offset = self
            .store
            .installed_committed_offset(&log_start)
            .await
            .map_err(|e| write_err(io_error(e)))?;
        applied.log_start = Some(log_start.clone());
        {
            let mut inner = self.inner.lock().expect("machine poisoned");
            inner.applied = applied;
            inner.snapshot = Some((meta.clone(), data));
        }
        self.topics_version.send_modify(|v| *v += 1);
        // The state first, then the store: see the module doc.
        self.save(true).await.map_err(write_err)?;
        self.store
            .install_log_start(log_start)
            .await
            .map_err(|e| write_err(io_error(e)))?;
        self.snapshot_installs.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Always the snapshot at the store's current log start, so a follower that needs
    /// it gets entries the leader still has from there.
    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<GroupRaft>>, StorageError<u64>> {
        self.snapshot_at_log_start()
            .map_err(|e| StorageIOError::read_state_machine(&e).into())
    }
}
