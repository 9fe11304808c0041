//! The transport between replicas: openraft's RPCs over TCP on the replica port (as
//! RocketMQ's HA port), bincode-encoded inside remoting frames.
//!
//! Reusing the remoting frame (and `proto::net`'s server loop and `RpcPool`) gives the
//! replica link what the client link already has: length-checked frames, requests
//! pipelined on one connection and matched by opaque, per-request timeouts and
//! reconnection. Each AppendEntries carries a batch of entries (openraft batches them).
//! The request codes are outside RocketMQ's range, so a replica port answers a stray
//! RocketMQ client with "not supported" rather than misreading it.
//!
//! Every request names the group and the replica it is meant for, and the replica port
//! refuses one meant for another (`WRONG_REPLICA`): a replica address that is wrong in a
//! config, or a port reused by another group's replica, would otherwise let two groups'
//! Rafts (with the same replica ids and terms) talk to each other and merge their logs.
//!
//! ```text
//! request:  frame { code: RAFT_*, ext: {group, to}, body: bincode(openraft request) }
//! response: frame { code: SUCCESS, body: bincode(Result<openraft response, RaftError>) }
//! ```

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{BasicNode, Raft};
use proto::net::rpc::{RpcError, RpcPool};
use proto::net::server::{serve, Channel, Service, Shutdown};
use proto::remoting::codes::response;
use proto::remoting::RemotingCommand;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::types::GroupRaft;

pub const RAFT_APPEND_ENTRIES: i32 = 9001;
pub const RAFT_VOTE: i32 = 9002;
pub const RAFT_INSTALL_SNAPSHOT: i32 = 9003;
/// Response: the request was meant for another group or replica than this port's.
pub const WRONG_REPLICA: i32 = 9100;

/// Request fields naming the intended receiver.
const GROUP_FIELD: &str = "group";
const TO_FIELD: &str = "to";

/// A replica as its peers address it: its group (`broker_name`) and replica id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicaName {
    pub group: Arc<str>,
    pub id: u64,
}

impl ReplicaName {
    pub fn new(group: &str, id: u64) -> Self {
        ReplicaName {
            group: group.into(),
            id,
        }
    }
}

/// Serves replica `name`'s Raft on `addr`; returns the bound address and the server task.
pub async fn start(
    addr: SocketAddr,
    name: ReplicaName,
    raft: Raft<GroupRaft>,
    shutdown: Shutdown,
) -> std::io::Result<(SocketAddr, JoinHandle<()>)> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let service = ReplicaService {
        raft,
        name,
        warned: AtomicBool::new(false),
    };
    Ok((
        local,
        tokio::spawn(serve(listener, Arc::new(service), shutdown)),
    ))
}

struct ReplicaService {
    raft: Raft<GroupRaft>,
    name: ReplicaName,
    /// A misrouted peer retries every heartbeat: warn once, then at debug level.
    warned: AtomicBool,
}

fn reply<T: Serialize>(req: &RemotingCommand, value: &T) -> RemotingCommand {
    let body = bincode::serialize(value).expect("openraft messages serialize");
    RemotingCommand::response_to(req, response::SUCCESS, None).with_body(body)
}

impl ReplicaService {
    /// Refuses a request meant for another group or replica, naming both.
    fn misrouted(&self, req: &RemotingCommand, peer: SocketAddr) -> Option<RemotingCommand> {
        let group = req.ext_fields.get(GROUP_FIELD);
        let to = req.ext_fields.get(TO_FIELD);
        let to_id = to.and_then(|to| to.parse::<u64>().ok());
        if group == Some(&*self.name.group) && to_id == Some(self.name.id) {
            return None;
        }
        let remark = format!(
            "this is the replica port of group {} replica {}, not of group {} replica {} \
             (request from {peer}): check the replica addresses in the group's configs",
            self.name.group,
            self.name.id,
            group.unwrap_or("(none)"),
            to.unwrap_or("(none)"),
        );
        if self.warned.swap(true, Ordering::Relaxed) {
            tracing::debug!(%remark, "misrouted raft request");
        } else {
            tracing::warn!(%remark, "misrouted raft request");
        }
        Some(RemotingCommand::response_to(
            req,
            WRONG_REPLICA,
            Some(remark),
        ))
    }

    async fn handle(&self, req: &RemotingCommand) -> Result<RemotingCommand, String> {
        let decode_error =
            |e: bincode::Error| format!("undecodable raft request {}: {e}", req.code);
        Ok(match req.code {
            RAFT_APPEND_ENTRIES => {
                let rpc: AppendEntriesRequest<GroupRaft> =
                    bincode::deserialize(&req.body).map_err(decode_error)?;
                reply(req, &self.raft.append_entries(rpc).await)
            }
            RAFT_VOTE => {
                let rpc: VoteRequest<u64> =
                    bincode::deserialize(&req.body).map_err(decode_error)?;
                reply(req, &self.raft.vote(rpc).await)
            }
            RAFT_INSTALL_SNAPSHOT => {
                let rpc: InstallSnapshotRequest<GroupRaft> =
                    bincode::deserialize(&req.body).map_err(decode_error)?;
                reply(req, &self.raft.install_snapshot(rpc).await)
            }
            code => RemotingCommand::response_to(
                req,
                response::REQUEST_CODE_NOT_SUPPORTED,
                Some(format!(
                    "request code {code} is not served on the replica port"
                )),
            ),
        })
    }
}

impl Service for ReplicaService {
    async fn call(&self, req: RemotingCommand, channel: Channel) -> Option<RemotingCommand> {
        if let Some(refused) = self.misrouted(&req, channel.peer) {
            return Some(refused);
        }
        Some(self.handle(&req).await.unwrap_or_else(|e| {
            RemotingCommand::response_to(&req, response::SYSTEM_ERROR, Some(e))
        }))
    }
}

/// A replica's connections to its peers in `group`: one pooled TCP connection per peer
/// address (`BasicNode::addr`).
#[derive(Clone)]
pub struct TcpNetwork {
    group: Arc<str>,
    pool: RpcPool,
    unreachable_retry: Duration,
}

/// How long the leader waits before contacting an unreachable replica again, unless
/// told otherwise (openraft's own default is 500 ms).
const UNREACHABLE_RETRY_DEFAULT: Duration = Duration::from_millis(100);

impl TcpNetwork {
    pub fn new(group: &str) -> Self {
        TcpNetwork {
            group: group.into(),
            pool: RpcPool::default(),
            unreachable_retry: UNREACHABLE_RETRY_DEFAULT,
        }
    }

    /// Waits `retry` before contacting a replica that could not be connected to again.
    /// It must be well under the election timeout: a replica that starts (or comes
    /// back) just after the leader found it down would otherwise hear nothing for
    /// openraft's 500 ms, time out, and depose the leader with a higher term.
    pub fn with_unreachable_retry(mut self, retry: Duration) -> Self {
        self.unreachable_retry = retry;
        self
    }
}

pub struct TcpConnection {
    group: Arc<str>,
    target: u64,
    addr: String,
    pool: RpcPool,
    unreachable_retry: Duration,
    /// How many entry bytes one AppendEntries to this follower may carry now.
    budget: AppendBudget,
}

impl RaftNetworkFactory<GroupRaft> for TcpNetwork {
    type Network = TcpConnection;

    async fn new_client(&mut self, target: u64, node: &BasicNode) -> TcpConnection {
        TcpConnection {
            group: self.group.clone(),
            target,
            addr: node.addr.clone(),
            pool: self.pool.clone(),
            budget: AppendBudget::default(),
            unreachable_retry: self.unreachable_retry,
        }
    }
}

/// How a failed call looks to openraft: a peer that cannot be connected to is
/// unreachable (openraft backs off before retrying it); a timeout is a network error to
/// retry.
fn transport_error<E: std::error::Error>(e: RpcError) -> RPCError<u64, BasicNode, E> {
    match e {
        RpcError::Connect { .. } | RpcError::Closed(_) => {
            RPCError::Unreachable(Unreachable::new(&e))
        }
        RpcError::Timeout { .. } => RPCError::Network(NetworkError::new(&e)),
    }
}

impl TcpConnection {
    async fn call<Req, Resp, E>(
        &self,
        code: i32,
        rpc: &Req,
        timeout: Duration,
    ) -> Result<Resp, RPCError<u64, BasicNode, RaftError<u64, E>>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let body = bincode::serialize(rpc).expect("openraft messages serialize");
        self.call_encoded(code, body, timeout).await
    }

    /// [`TcpConnection::call`] with the request already encoded.
    async fn call_encoded<Resp, E>(
        &self,
        code: i32,
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<Resp, RPCError<u64, BasicNode, RaftError<u64, E>>>
    where
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let reply = self
            .invoke(code, body, timeout)
            .await
            .map_err(transport_error)?;
        self.decode_reply(reply)
    }

    /// Sends one request to the target, addressed to it by group and id.
    async fn invoke(
        &self,
        code: i32,
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<RemotingCommand, RpcError> {
        let request = RemotingCommand::request(code)
            .with_ext(GROUP_FIELD, &*self.group)
            .with_ext(TO_FIELD, self.target)
            .with_body(body);
        self.pool
            .invoke(&self.addr, request, timeout)
            .await
            .inspect_err(|_| self.pool.forget(&self.addr))
    }

    /// openraft's error type is what it is; it is returned as openraft wants it.
    #[allow(clippy::result_large_err)]
    fn decode_reply<Resp, E>(
        &self,
        reply: RemotingCommand,
    ) -> Result<Resp, RPCError<u64, BasicNode, RaftError<u64, E>>>
    where
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        if reply.code != response::SUCCESS {
            let reason = reply.remark.unwrap_or_default();
            let e = std::io::Error::other(format!(
                "replica {} at {} answered {}: {reason}",
                self.target, self.addr, reply.code
            ));
            // Another group's or replica's port: the peer is not there (openraft backs
            // off before trying it again).
            if reply.code == WRONG_REPLICA {
                return Err(RPCError::Unreachable(Unreachable::new(&e)));
            }
            return Err(RPCError::Network(NetworkError::new(&e)));
        }
        let result: Result<Resp, RaftError<u64, E>> =
            bincode::deserialize(&reply.body).map_err(|e| {
                let e = std::io::Error::other(format!(
                    "undecodable reply from replica {}: {e}",
                    self.target
                ));
                RPCError::Network(NetworkError::new(&e))
            })?;
        result.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

/// Most entry bytes one AppendEntries carries, well inside a frame (`FRAME_SIZE_MAX`,
/// 16 MiB). openraft batches up to 300 entries and the proposer packs up to 1 MiB of
/// messages into each, so a follower catching up could be sent a 30 MiB request that
/// its replica port refused as an oversized frame, closing the connection, again and
/// again: the follower never caught up (seen in a 3-replica bench after ~1M messages).
/// In steady state a request carries far less (what arrived during one round trip).
pub const APPEND_ENTRIES_BYTES_MAX: u64 = 2 << 20;
/// The least a catching-up AppendEntries is cut to (one entry always goes, whatever its
/// size).
pub const APPEND_ENTRIES_BYTES_MIN: u64 = 64 << 10;

/// How many entry bytes the next AppendEntries to one follower may carry.
///
/// openraft gives every AppendEntries the heartbeat interval (50 ms by default) and
/// drops it when that passes. A follower that cannot store 2 MiB that fast (a loaded
/// machine, a slow disk, a debug build) timed out on every catch-up request and the
/// leader sent the same entries again: it fell behind for good. So the budget halves
/// after a request that did not return (openraft dropped it) and doubles again after
/// one answered within a quarter of its time, between [`APPEND_ENTRIES_BYTES_MIN`] and
/// [`APPEND_ENTRIES_BYTES_MAX`].
#[derive(Debug)]
struct AppendBudget {
    bytes: u64,
    /// Entry bytes of the request under way; still set when the next one starts if
    /// openraft dropped it on its timeout.
    in_flight: Option<u64>,
}

impl Default for AppendBudget {
    fn default() -> Self {
        AppendBudget {
            bytes: APPEND_ENTRIES_BYTES_MAX,
            in_flight: None,
        }
    }
}

impl AppendBudget {
    /// The budget for the next request, after what became of the last one.
    fn next(&mut self) -> u64 {
        if self.in_flight.take().is_some() {
            self.shrink();
        }
        self.bytes
    }

    /// A request of `bytes` entry bytes is going out.
    fn sending(&mut self, bytes: u64) {
        self.in_flight = Some(bytes);
    }

    fn shrink(&mut self) {
        self.bytes = (self.bytes / 2).max(APPEND_ENTRIES_BYTES_MIN);
    }

    /// The request returned: `timely` when answered well within its time, `timed_out`
    /// when our own timeout (racing openraft's) ended it.
    fn finish(&mut self, timely: bool, timed_out: bool) {
        let Some(bytes) = self.in_flight.take() else {
            return;
        };
        if timed_out {
            self.shrink();
        } else if timely && bytes * 2 >= self.bytes {
            self.bytes = (self.bytes * 2).min(APPEND_ENTRIES_BYTES_MAX);
        }
    }
}

/// How many of `entries`, from the first, fit in `budget` bytes; at least one, so an
/// entry larger than the budget still goes (alone).
fn entries_within(entries: &[openraft::Entry<GroupRaft>], budget: u64) -> usize {
    let mut bytes = 0u64;
    for (i, entry) in entries.iter().enumerate() {
        bytes += bincode::serialized_size(entry).unwrap_or(u64::MAX);
        if bytes > budget {
            return i.max(1);
        }
    }
    entries.len()
}

impl RaftNetwork<GroupRaft> for TcpConnection {
    fn backoff(&self) -> openraft::network::Backoff {
        openraft::network::Backoff::new(std::iter::repeat(self.unreachable_retry))
    }

    async fn append_entries(
        &mut self,
        mut rpc: AppendEntriesRequest<GroupRaft>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        // BUGGIFY: a follower hears late, so entries often commit on a bare majority
        // (and a lagging follower catches up while the group moves on).
        let mut ttl = option.hard_ttl();
        if crate::buggify::buggify(0.2) {
            let start = tokio::time::Instant::now();
            crate::buggify::pause_up_to(ttl / 2).await;
            ttl = ttl.saturating_sub(start.elapsed());
        }
        // Only a request over the budget (a follower catching up) is cut: send the
        // entries that fit and tell openraft how far that got (its `PartialSuccess`); it
        // sends the rest next. Heartbeats leave the budget alone. The cut comes before
        // encoding, and measuring stops at the budget: openraft hands a lagging follower
        // up to 300 entries of up to 1 MiB, and encoding all of them on every attempt
        // (a debug build: longer than the 50 ms openraft allows the call) made each
        // attempt time out before it was sent, the same entries again, for good.
        if rpc.entries.is_empty() {
            let body = bincode::serialize(&rpc).expect("openraft messages serialize");
            return self.call_encoded(RAFT_APPEND_ENTRIES, body, ttl).await;
        }
        let budget = self.budget.next();
        let mut sent_up_to = None;
        let keep = entries_within(&rpc.entries, budget);
        if keep < rpc.entries.len() {
            rpc.entries.truncate(keep);
            sent_up_to = Some(rpc.entries.last().map(|entry| entry.log_id));
        }
        let body = bincode::serialize(&rpc).expect("openraft messages serialize");
        self.budget.sending(body.len() as u64);
        let started = tokio::time::Instant::now();
        let reply = self.invoke(RAFT_APPEND_ENTRIES, body, ttl).await;
        let timed_out = matches!(reply, Err(RpcError::Timeout { .. }));
        let timely = reply.is_ok() && started.elapsed() < ttl / 4;
        self.budget.finish(timely, timed_out);
        match (
            self.decode_reply(reply.map_err(transport_error)?)?,
            sent_up_to,
        ) {
            (AppendEntriesResponse::Success, Some(up_to)) => {
                Ok(AppendEntriesResponse::PartialSuccess(up_to))
            }
            (response, _) => Ok(response),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<GroupRaft>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<u64>,
        RPCError<u64, BasicNode, RaftError<u64, InstallSnapshotError>>,
    > {
        self.call(RAFT_INSTALL_SNAPSHOT, &rpc, option.hard_ttl())
            .await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        option: RPCOption,
    ) -> Result<VoteResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        self.call(RAFT_VOTE, &rpc, option.hard_ttl()).await
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId};

    use super::*;
    use crate::types::GroupRequest;

    fn entry(index: u64, bytes: usize) -> Entry<GroupRaft> {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
            payload: EntryPayload::Normal(GroupRequest::Stored(vec![Bytes::from(vec![
                0u8;
                bytes
            ])])),
        }
    }

    /// The budget for a request of `bytes`, which then goes out.
    fn start(b: &mut AppendBudget, bytes: u64) -> u64 {
        let budget = b.next();
        b.sending(bytes);
        budget
    }

    #[test]
    fn the_budget_halves_after_a_request_that_did_not_return_and_regrows_when_timely() {
        let mut b = AppendBudget::default();
        assert_eq!(start(&mut b, 5 << 20), APPEND_ENTRIES_BYTES_MAX);
        // openraft dropped it on its timeout: the next request finds it still in flight.
        assert_eq!(start(&mut b, 5 << 20), APPEND_ENTRIES_BYTES_MAX / 2);
        b.finish(false, true);
        assert_eq!(start(&mut b, 5 << 20), APPEND_ENTRIES_BYTES_MAX / 4);
        b.finish(false, false); // slow but answered: kept
        for _ in 0..10 {
            start(&mut b, 5 << 20);
        }
        assert_eq!(
            start(&mut b, 5 << 20),
            APPEND_ENTRIES_BYTES_MIN,
            "never below the floor"
        );
        b.finish(true, false);
        assert_eq!(start(&mut b, 5 << 20), 2 * APPEND_ENTRIES_BYTES_MIN);
        b.finish(true, false);
        // A small request answered quickly says nothing about a larger one.
        assert_eq!(start(&mut b, 1000), 4 * APPEND_ENTRIES_BYTES_MIN);
        b.finish(true, false);
        assert_eq!(start(&mut b, 5 << 20), 4 * APPEND_ENTRIES_BYTES_MIN);
        for _ in 0..10 {
            b.finish(true, false);
            start(&mut b, 5 << 20);
        }
        assert_eq!(b.bytes, APPEND_ENTRIES_BYTES_MAX, "never above the ceiling");
    }

    #[test]
    fn append_entries_are_cut_to_the_byte_budget_but_never_to_nothing() {
        let entries: Vec<_> = (1..=10).map(|i| entry(i, 1000)).collect();
        let one = bincode::serialized_size(&entries[0]).unwrap();
        assert_eq!(entries_within(&entries, 10 * one), 10);
        assert_eq!(entries_within(&entries, 3 * one), 3);
        assert_eq!(entries_within(&entries, 3 * one + one / 2), 3);
        // An entry over the budget still goes, alone.
        assert_eq!(entries_within(&entries, one / 2), 1);
        assert_eq!(entries_within(&[], one), 0);
    }
}
