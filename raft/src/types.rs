//! The openraft type configuration of a broker group.
//!
//! Entries carry [`GroupRequest`]s: messages, consumer-offset updates, topic and
//! subscription group changes. They are stored as CommitLog records whose frame carries the entry's term
//! and index (see `log_store`).

use std::io::Cursor;
use std::net::SocketAddr;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use store::meta::{SubscriptionGroupConfig, TopicConfig};

use crate::runtime::RaftRuntime;

/// What a broker group replicates.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum GroupRequest {
    /// Messages to store (at least one; the master packs concurrent sends into one
    /// entry, so they share one append, one fsync and one replication round), each in
    /// the stored layout (RocketMQ `MessageDecoder`) with its queue and physical offsets
    /// still zero: each replica's store fills them in where the entry lands,
    /// identically (see `store::message_store::replicated`).
    ///
    /// `ticket` (see `LogStore::ticket`) asks the proposing leader to report where the
    /// messages landed as soon as *its own* log has them (and, with `flush = sync`, has
    /// synced them): `ack = leader` answers the producer then, without waiting for a
    /// quorum. Only the proposer's in-memory entry has it; the log does not store it.
    Messages {
        messages: Vec<Bytes>,
        ticket: Option<u64>,
    },
    /// Messages as a log holds them, offsets assigned: what replication and apply read
    /// back. A replica checks the offsets instead of assigning them.
    Stored(Vec<Bytes>),
    /// Consumer offsets committed by consumer groups, so they fail over with the log.
    ConsumerOffsets(Vec<OffsetUpdate>),
    /// A topic created or changed, so every replica (and a new master) serves it.
    Topic(TopicConfig),
    /// A subscription group created or changed, so every replica (and a new master)
    /// enforces it.
    SubscriptionGroup(SubscriptionGroupConfig),
    /// A subscription group deleted.
    DeleteSubscriptionGroup(String),
}

/// One consumer group's committed offset in one queue.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OffsetUpdate {
    pub group: String,
    pub topic: String,
    pub queue_id: u32,
    pub offset: u64,
}

/// What applying a request returns.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupResponse {
    /// Index of the entry that carried the request.
    pub index: u64,
    /// For a message entry: where each of its messages was stored.
    pub stored: Vec<StoredAt>,
}

/// Where a replicated message landed (the same on every replica).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredAt {
    pub physical_offset: u64,
    pub size: u32,
    pub queue_id: u32,
    pub queue_offset: u64,
    pub store_timestamp_ms: i64,
    /// The store host written into the message (the leader's), which with the physical
    /// offset makes the msg id.
    pub store_host: SocketAddr,
}

openraft::declare_raft_types!(
    /// A broker group's Raft: u64 node ids, entries of `GroupRequest`, on `RaftRuntime`.
    pub GroupRaft:
        D = GroupRequest,
        R = GroupResponse,
        NodeId = u64,
        Node = openraft::BasicNode,
        Entry = openraft::Entry<GroupRaft>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = RaftRuntime,
);
