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
//! every `SAVE_INTERVAL_MS`, after syncing the store, so a saved state never names
//! entries this replica could lose. After a restart openraft re-applies the entries
//! after it; applying is idempotent.
//!
//! Snapshots carry the same state. The store's messages are *not* in them: a replica
//! catches up by log (see the crate doc for what that leaves open).

use std::collections::BTreeMap;
use std::io::{self, Cursor};
use std::sync::{Arc, Mutex};

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    BasicNode, Entry, EntryPayload, LogId, OptionalSend, RaftSnapshotBuilder, SnapshotMeta,
    StorageError, StorageIOError, StoredMembership,
};
use proto::MessageRef;
use serde::{Deserialize, Serialize};
use store::meta::{SubscriptionGroupConfig, TopicConfig};
use store::slot_file::SlotFile;
use store::{Disk, MessageStore};
use tokio::sync::watch;

use crate::types::{GroupRaft, GroupRequest, GroupResponse, StoredAt};

const MACHINE_SLOTS: SlotFile = SlotFile {
    names: ["raft/machine-0", "raft/machine-1"],
    magic: 0x524D_514D, // "RMQM"
};

/// How often the applied state is saved at most.
const SAVE_INTERVAL_MS: i64 = 1_000;

/// (consumer group, topic, queue id).
pub type OffsetKey = (String, String, u32);

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Applied {
    last_applied: Option<LogId<u64>>,
    membership: StoredMembership<u64, BasicNode>,
    offsets: BTreeMap<OffsetKey, u64>,
    topics: BTreeMap<String, TopicConfig>,
    /// CommitLog offset below which every applied message lies.
    readable_offset: u64,
    groups: BTreeMap<String, SubscriptionGroupConfig>,
}

struct Inner {
    applied: Applied,
    sequence: u64,
    saved_at_ms: i64,
    snapshot: Option<(SnapshotMeta<u64, BasicNode>, Vec<u8>)>,
}

/// The state machine of one replica. Clones share everything.
#[derive(Clone)]
pub struct GroupMachine<D: Disk> {
    store: Arc<MessageStore<D>>,
    disk: D,
    inner: Arc<Mutex<Inner>>,
    /// Bumped whenever the topic table changes.
    topics_version: Arc<watch::Sender<u64>>,
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
                bincode::deserialize::<Applied>(&bytes).map_err(|e| read_err(io_error(e)))?,
            ),
            None => (0, Applied::default()),
        };
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
            })),
        })
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

    /// Saves the applied state if it is due (or `force`), after syncing the store so
    /// that nothing it names can be lost by this replica.
    async fn save(&self, force: bool) -> Result<(), io::Error> {
        let now_ms = proto::clock::now_ms();
        {
            let inner = self.inner.lock().expect("machine poisoned");
            if !force && now_ms.saturating_sub(inner.saved_at_ms) < SAVE_INTERVAL_MS {
                return Ok(());
            }
        }
        self.store.checkpoint_now().await.map_err(io_error)?;
        let (sequence, bytes) = {
            let mut inner = self.inner.lock().expect("machine poisoned");
            inner.sequence += 1;
            inner.saved_at_ms = now_ms;
            let bytes = bincode::serialize(&inner.applied).map_err(io_error)?;
            (inner.sequence, bytes)
        };
        MACHINE_SLOTS
            .store(&self.disk, sequence, &bytes)
            .await
            .map_err(io_error)
    }
}

/// Where a message entry's bytes say it was stored, and its topic.
fn stored_at(bytes: &[u8]) -> Result<(StoredAt, String), io::Error> {
    let m = MessageRef::parse(bytes).map_err(io_error)?;
    let at = StoredAt {
        physical_offset: m.physical_offset(),
        size: bytes.len() as u32,
        queue_id: m.queue_id(),
        queue_offset: m.queue_offset(),
        store_timestamp_ms: m.store_timestamp_ms(),
        store_host: m.store_host(),
    };
    Ok((at, m.topic().to_string()))
}

impl<D: Disk> RaftSnapshotBuilder<GroupRaft> for GroupMachine<D> {
    async fn build_snapshot(&mut self) -> Result<Snapshot<GroupRaft>, StorageError<u64>> {
        let mut inner = self.inner.lock().expect("machine poisoned");
        let data = bincode::serialize(&inner.applied)
            .map_err(|e| StorageIOError::read_state_machine(&io_error(e)))?;
        let meta = SnapshotMeta {
            last_log_id: inner.applied.last_applied,
            last_membership: inner.applied.membership.clone(),
            snapshot_id: format!("{:?}", inner.applied.last_applied),
        };
        inner.snapshot = Some((meta.clone(), data.clone()));
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
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
        let mut responses = Vec::new();
        let mut committed = Vec::new();
        let mut readable_offset = 0;
        let mut topics_changed = false;
        {
            let mut inner = self.inner.lock().expect("machine poisoned");
            for entry in entries {
                let index = entry.log_id.index;
                let applied_err =
                    |e: io::Error| StorageError::from(StorageIOError::apply(entry.log_id, &e));
                inner.applied.last_applied = Some(entry.log_id);
                let mut stored = Vec::new();
                match entry.payload {
                    EntryPayload::Blank => {}
                    EntryPayload::Normal(GroupRequest::Stored(messages)) => {
                        for bytes in &messages {
                            let (at, topic) = stored_at(bytes).map_err(applied_err)?;
                            committed.push((topic, at.queue_id, at.queue_offset));
                            readable_offset = at.physical_offset + u64::from(at.size);
                            stored.push(at);
                        }
                    }
                    EntryPayload::Normal(GroupRequest::Messages { .. }) => {
                        return Err(applied_err(io_error(
                            "a message entry must be applied as the log stored it",
                        )))
                    }
                    EntryPayload::Normal(GroupRequest::ConsumerOffsets(updates)) => {
                        for u in updates {
                            inner
                                .applied
                                .offsets
                                .insert((u.group, u.topic, u.queue_id), u.offset);
                        }
                    }
                    EntryPayload::Normal(GroupRequest::Topic(config)) => {
                        inner
                            .applied
                            .topics
                            .insert(config.topic_name.clone(), config);
                        topics_changed = true;
                    }
                    EntryPayload::Normal(GroupRequest::Raw(_)) => {}
                    EntryPayload::Normal(GroupRequest::SubscriptionGroup(config)) => {
                        inner
                            .applied
                            .groups
                            .insert(config.group_name.clone(), config);
                    }
                    EntryPayload::Normal(GroupRequest::DeleteSubscriptionGroup(name)) => {
                        inner.applied.groups.remove(&name);
                    }
                    EntryPayload::Membership(m) => {
                        inner.applied.membership = StoredMembership::new(Some(entry.log_id), m)
                    }
                }
                responses.push(GroupResponse { index, stored });
            }
            if readable_offset > inner.applied.readable_offset {
                inner.applied.readable_offset = readable_offset;
            }
        }
        self.store.publish_committed(
            committed.iter().map(|(t, q, o)| (t.as_str(), *q, *o)),
            readable_offset,
        );
        if topics_changed {
            self.topics_version.send_modify(|v| *v += 1);
        }
        self.save(false)
            .await
            .map_err(|e| StorageIOError::write_state_machine(&e))?;
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
        let applied: Applied = bincode::deserialize(&data)
            .map_err(|e| StorageIOError::read_snapshot(Some(meta.signature()), &io_error(e)))?;
        {
            let mut inner = self.inner.lock().expect("machine poisoned");
            inner.applied = applied;
            inner.applied.last_applied = meta.last_log_id;
            inner.applied.membership = meta.last_membership.clone();
            inner.snapshot = Some((meta.clone(), data));
        }
        self.topics_version.send_modify(|v| *v += 1);
        self.save(true)
            .await
            .map_err(|e| StorageIOError::write_state_machine(&e).into())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<GroupRaft>>, StorageError<u64>> {
        let inner = self.inner.lock().expect("machine poisoned");
        Ok(inner.snapshot.as_ref().map(|(meta, data)| Snapshot {
            meta: meta.clone(),
            snapshot: Box::new(Cursor::new(data.clone())),
        }))
    }
}
