//! An in-process network between `Raft` instances, with partitions: enough to test
//! elections and replication before the real replica transport exists.
//!
//! A cut link drops requests, as a partition does: the call never returns and
//! openraft's own timeout ends it (every call openraft makes has one). The cut is
//! checked when a call starts: one already under way is still answered. It is not
//! answered `Unreachable`, because openraft 0.9 backs off after that with an unbiased
//! `tokio::select!`, whose RNG tokio seeds from a process-wide counter: two runs of one
//! seed in one process (madsim's determinism check) then take different branches
//! (`raft/tests/election.rs` and `commitlog.rs` under `MADSIM_TEST_CHECK_DETERMINISM`).
//!
//! The TCP transport still answers `Unreachable` (a peer it cannot connect to, a closed
//! connection, a misrouted replica port) and keeps openraft's backoff, which holds a
//! dead peer's errors and their log lines to two a second rather than one per
//! heartbeat. So a seed is replayed exactly by a fresh process that runs it first, as
//! `sim` does for every seed; a seed that ran after others in one process
//! (`MADSIM_TEST_NUM`, tests in parallel) drew other numbers there, and where it went
//! through that backoff it may not replay alone. (No divergence from it was seen in
//! 30 seeds of `sim --test replicated` under the in-process check.)

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use openraft::error::{InstallSnapshotError, RPCError, RaftError, RemoteError};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{BasicNode, Raft};

use crate::types::GroupRaft;

#[derive(Clone, Default)]
pub struct Router {
    inner: Arc<Mutex<RouterInner>>,
}

#[derive(Default)]
struct RouterInner {
    nodes: BTreeMap<u64, Raft<GroupRaft>>,
    /// Nodes cut off from every other node.
    isolated: BTreeSet<u64>,
}

impl Router {
    pub fn add(&self, id: u64, raft: Raft<GroupRaft>) {
        self.inner
            .lock()
            .expect("router poisoned")
            .nodes
            .insert(id, raft);
    }

    /// Cuts `id` off from every other node (both directions).
    pub fn isolate(&self, id: u64) {
        self.inner
            .lock()
            .expect("router poisoned")
            .isolated
            .insert(id);
    }

    pub fn heal(&self) {
        self.inner.lock().expect("router poisoned").isolated.clear();
    }

    /// The node `to` as `from` reaches it, or `None` when the link is cut or `to` is
    /// not registered.
    fn route(&self, from: u64, to: u64) -> Option<Raft<GroupRaft>> {
        let inner = self.inner.lock().expect("router poisoned");
        let cut = inner.isolated.contains(&from) || inner.isolated.contains(&to);
        inner.nodes.get(&to).filter(|_| !cut).cloned()
    }
}

/// The network factory of one node.
#[derive(Clone)]
pub struct NodeNetwork {
    pub id: u64,
    pub router: Router,
}

pub struct Connection {
    from: u64,
    to: u64,
    router: Router,
}

impl RaftNetworkFactory<GroupRaft> for NodeNetwork {
    type Network = Connection;

    async fn new_client(&mut self, target: u64, _node: &BasicNode) -> Connection {
        Connection {
            from: self.id,
            to: target,
            router: self.router.clone(),
        }
    }
}

type RpcResult<T, E = RaftError<u64>> = Result<T, RPCError<u64, BasicNode, E>>;

impl Connection {
    /// The target, or — when the link is cut — a request that is never answered
    /// (openraft's timeout ends the call).
    async fn raft(&self) -> Raft<GroupRaft> {
        match self.router.route(self.from, self.to) {
            Some(raft) => raft,
            None => std::future::pending().await,
        }
    }
}

impl RaftNetwork<GroupRaft> for Connection {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<GroupRaft>,
        _option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<u64>> {
        let raft = self.raft().await;
        raft.append_entries(rpc)
            .await
            .map_err(|e| RPCError::RemoteError(RemoteError::new(self.to, e)))
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<GroupRaft>,
        _option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<u64>, RaftError<u64, InstallSnapshotError>> {
        let raft = self.raft().await;
        raft.install_snapshot(rpc)
            .await
            .map_err(|e| RPCError::RemoteError(RemoteError::new(self.to, e)))
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        _option: RPCOption,
    ) -> RpcResult<VoteResponse<u64>> {
        let raft = self.raft().await;
        raft.vote(rpc)
            .await
            .map_err(|e| RPCError::RemoteError(RemoteError::new(self.to, e)))
    }
}
