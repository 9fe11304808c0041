//! The openraft type configuration of a broker group.
//!
//! Entries carry [`GroupRequest`]s; the Raft issue fills them with message batches,
//! consumer-offset updates and topic changes, and stores them as CommitLog records (whose
//! frame already carries `term` and `index`).

use std::io::Cursor;

use serde::{Deserialize, Serialize};

use crate::runtime::RaftRuntime;

/// What a broker group replicates.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum GroupRequest {
    /// Opaque bytes, until the Raft issue defines message batches and offset updates.
    Raw(Vec<u8>),
}

/// What applying a request returns.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupResponse {
    /// Index of the entry that carried the request.
    pub index: u64,
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
