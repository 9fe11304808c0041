//! One replica of a Raft-replicated broker group: openraft over the CommitLog (see the
//! `raft` crate), the replica port, and the group's modes.
//!
//! - `election = "raft"`: every replica votes; any can be elected master.
//! - `election = "fixed"`: the lowest replica id is the only voter, so it is always the
//!   master (RocketMQ's BrokerId 0) and commits alone; the others are learners that
//!   replicate but never take over.
//! - `ack = "quorum"`: a send is answered once a majority of the group holds it —
//!   Raft's commit under `raft`; under `fixed`, once enough learners have matched.
//! - `ack = "leader"`: answered once the master's own log holds it (a ticket, see
//!   `LogStore::ticket`); a failover may lose what the others had not received.
//!
//! Readers everywhere see committed messages only, so a message a new master discards
//! was never delivered.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::Bytes;
use futures::FutureExt;
use openraft::error::{ClientWriteError, InitializeError, RaftError};
use openraft::{BasicNode, ChangeMembers, Raft, RaftMetrics, ServerState, SnapshotPolicy};
use proto::net::server::Shutdown;
use proto::remoting::body::GroupStatus;
use raft::log_store::{LogStore, TicketError};
use raft::state_machine::GroupMachine;
use raft::transport::{self, ReplicaName, TcpNetwork};
use raft::types::{GroupRaft, GroupRequest, GroupResponse};
use store::{Disk, MessageStore, PutResult};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::proposer::{Part, Proposer};
use super::write::{ProposeError, WriteError};
use crate::config::{AckMode, Election, ReplicaAddrs, ReplicationSettings};

pub struct Replica<D: Disk> {
    pub id: u64,
    settings: ReplicationSettings,
    /// Addresses of the replicas this one knows: the config's, plus any added since.
    replicas: RwLock<BTreeMap<u64, ReplicaAddrs>>,
    raft: Raft<GroupRaft>,
    log: LogStore<D>,
    machine: GroupMachine<D>,
    /// Packs this replica's sends into entries while it is master.
    proposer: Proposer,
    /// Leadership confirmed by a quorum (see `confirm_role`): what name servers hear.
    confirmed_master: AtomicBool,
    /// The term that leadership was confirmed in: what a master registration carries, so
    /// a deposed master whose flag is not yet cleared still sends its old term.
    confirmed_term: AtomicU64,
    /// Leaderships a quorum confirmed (a new term, or a return to mastership).
    masterships: AtomicU64,
    /// PLANTED BUG (`fault-injection` builds): `ack = quorum` answers once the
    /// master's own log has a message.
    #[cfg(feature = "fault-injection")]
    ack_before_quorum: AtomicBool,
}

type Metrics = RaftMetrics<u64, BasicNode>;
pub type ServerMetrics = openraft::metrics::RaftServerMetrics<u64, BasicNode>;

impl<D: Disk> Replica<D> {
    /// Starts Raft on `store` (opened replicated), serves the replica port on
    /// `listen_ip`, and joins or forms the group.
    pub async fn start(
        group: &str,
        settings: ReplicationSettings,
        store: Arc<MessageStore<D>>,
        disk: D,
        listen_ip: IpAddr,
        shutdown: Shutdown,
    ) -> anyhow::Result<(Arc<Self>, JoinHandle<()>)> {
        let replicas = settings.replica_map()?;
        let config = openraft::Config {
            cluster_name: group.to_string(),
            heartbeat_interval: settings.heartbeat_interval_ms,
            election_timeout_min: settings.election_timeout_min_ms,
            election_timeout_max: settings.election_timeout_max_ms,
            // Under `fixed` only the master votes, and it elects itself at once.
            enable_elect: true,
            // The CommitLog keeps entries until retention; a snapshot is taken where
            // retention left the log's start (`sync_log_start`), and openraft forgets
            // exactly the entries before it.
            snapshot_policy: SnapshotPolicy::Never,
            max_in_snapshot_log_to_keep: 0,
            ..openraft::Config::default()
        }
        .validate()?;
        // An entry must also fit one AppendEntries request (and so a frame on the
        // replica port): the transport never splits an entry.
        let entry_bytes_max = store
            .entry_size_max()
            .min(transport::APPEND_ENTRIES_BYTES_MAX);
        let log = LogStore::open(store.clone(), disk.clone())
            .await
            .map_err(|e| anyhow::anyhow!("open the Raft log: {e}"))?;
        let machine = GroupMachine::open(store, disk)
            .await
            .map_err(|e| anyhow::anyhow!("open the Raft state machine: {e}"))?;
        let raft = Raft::new(
            settings.replica_id,
            Arc::new(config),
            // Half a heartbeat: a replica back from being unreachable hears from the
            // master long before its election timeout.
            TcpNetwork::new(group).with_unreachable_retry(Duration::from_millis(
                (settings.heartbeat_interval_ms / 2).max(10),
            )),
            log.clone(),
            machine.clone(),
        )
        .await?;
        let bind = SocketAddr::new(listen_ip, settings.replica_listen_port);
        let (bound, task) = transport::start(
            bind,
            ReplicaName::new(group, settings.replica_id),
            raft.clone(),
            shutdown,
        )
        .await
        .map_err(|e| anyhow::anyhow!("bind the replica port {bind}: {e}"))?;
        tracing::info!(replica = settings.replica_id, %bound, election = ?settings.election, ack = ?settings.ack, "replica port serving");
        let proposer = Proposer::start(
            raft.clone(),
            log.clone(),
            entry_bytes_max,
            Duration::from_millis(settings.write_timeout_ms),
        );
        let replica = Arc::new(Replica {
            id: settings.replica_id,
            settings,
            replicas: RwLock::new(replicas),
            raft,
            log,
            machine,
            proposer,
            confirmed_master: AtomicBool::new(false),
            confirmed_term: AtomicU64::new(0),
            masterships: AtomicU64::new(0),
            // The Jepsen harness plants the bug in real broker processes this way.
            #[cfg(feature = "fault-injection")]
            ack_before_quorum: AtomicBool::new(
                std::env::var_os("RAFTMQ_PLANT_ACK_BEFORE_QUORUM").is_some(),
            ),
        });
        replica.bootstrap().await?;
        tokio::spawn(run_log_upkeep(Arc::downgrade(&replica)));
        Ok((replica, task))
    }

    fn node(&self, id: u64) -> BasicNode {
        let replicas = self.replicas.read().expect("replicas poisoned");
        BasicNode::new(&replicas[&id].replica)
    }

    fn replica_ids(&self) -> Vec<u64> {
        let replicas = self.replicas.read().expect("replicas poisoned");
        replicas.keys().copied().collect()
    }

    /// Forms the group on first start (a no-op once it exists).
    async fn bootstrap(self: &Arc<Self>) -> anyhow::Result<()> {
        // A replica with any entry or vote has been part of the group already; one that
        // joins waits for the master to add it (`raftmq group add-replica`).
        let formed = self.log.message_store().last_log_id().await.index > 0
            || self.metrics().vote.leader_id().term > 0;
        if formed || self.settings.join {
            return Ok(());
        }
        let voters: BTreeMap<u64, BasicNode> = match self.settings.election {
            Election::Raft => self
                .replica_ids()
                .into_iter()
                .map(|id| (id, self.node(id)))
                .collect(),
            Election::Fixed if self.id == self.settings.fixed_master() => {
                BTreeMap::from([(self.id, self.node(self.id))])
            }
            Election::Fixed => return Ok(()),
        };
        match self.raft.initialize(voters).await {
            Ok(()) => tracing::info!(replica = self.id, "formed the group"),
            Err(RaftError::APIError(InitializeError::NotAllowed(_))) => {}
            Err(e) => anyhow::bail!("forming the group: {e}"),
        }
        if self.settings.election == Election::Fixed {
            let this = self.clone();
            tokio::spawn(async move { this.add_learners().await });
        }
        Ok(())
    }

    /// Under `fixed`: the master adds every other replica as a learner, retrying until
    /// each is in the membership.
    async fn add_learners(self: Arc<Self>) {
        let others: Vec<u64> = self
            .replica_ids()
            .into_iter()
            .filter(|id| *id != self.id)
            .collect();
        for id in others {
            loop {
                let known = self
                    .metrics()
                    .membership_config
                    .nodes()
                    .any(|(n, _)| *n == id);
                if known {
                    break;
                }
                match self.raft.add_learner(id, self.node(id), false).await {
                    Ok(_) => break,
                    Err(e) => {
                        tracing::debug!(learner = id, error = %e, "adding a learner; retrying");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            }
        }
    }

    pub fn metrics(&self) -> Metrics {
        self.raft.metrics().borrow().clone()
    }

    /// Waits until this replica's Raft stops on a fatal error (a storage error it
    /// cannot go on from, such as a failed fsync) and returns the error. It never
    /// serves again: `raftmq-broker` exits, for its supervisor to restart it, rather
    /// than linger as a replica that neither replicates nor votes.
    ///
    /// Looked at every second rather than watched: openraft sends its full metrics after
    /// every batch of log I/O, and a watcher would wake with every write.
    pub async fn fatal(&self) -> String {
        loop {
            if let Err(fatal) = &self.raft.metrics().borrow().running_state {
                return fatal.to_string();
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// Role changes, for re-registering with the name servers at once. openraft's
    /// server metrics change only with the vote, state, leader or membership; its full
    /// metrics are sent after every batch of log I/O, and watching them woke the
    /// role watch of every replica several times per message.
    pub fn watch(&self) -> watch::Receiver<ServerMetrics> {
        self.raft.server_metrics()
    }

    /// Borrowed, not cloned: this runs on every send.
    pub fn is_master(&self) -> bool {
        let metrics = self.raft.server_metrics();
        let m = metrics.borrow();
        m.state == ServerState::Leader && m.current_leader == Some(self.id)
    }

    fn current_leader(&self) -> Option<u64> {
        self.raft.server_metrics().borrow().current_leader
    }

    /// Whether this replica was master when last confirmed by a quorum. Name servers
    /// are told this rather than the local view: a restarted replica briefly believes
    /// in the leadership its saved vote names, and must not claim broker id 0 for it.
    pub fn confirmed_master(&self) -> bool {
        self.confirmed_master.load(Ordering::Acquire)
    }

    /// Re-checks the role when the local view changed: leadership counts only once a
    /// quorum answers a heartbeat. Returns whether what the name servers should hear
    /// changed: the confirmed role, or the term of a confirmed leadership.
    pub async fn confirm_role(&self) -> bool {
        let claims = self.is_master();
        let term = self.term();
        let confirmed_as = (
            self.confirmed_master(),
            self.confirmed_term.load(Ordering::Acquire),
        );
        if !needs_confirmation(claims, term, confirmed_as) {
            return false;
        }
        let confirmed = claims && {
            let wait = Duration::from_millis(self.settings.election_timeout_max_ms);
            matches!(
                tokio::time::timeout(wait, self.raft.ensure_linearizable()).await,
                Ok(Ok(_))
            )
        };
        if confirmed {
            let was = (
                self.confirmed_master(),
                self.confirmed_term.swap(term, Ordering::AcqRel),
            );
            if was != (true, term) {
                self.masterships.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.confirmed_master.swap(confirmed, Ordering::AcqRel) != confirmed || confirmed
    }

    /// Waits until this master has applied every entry committed before its term
    /// began (openraft's read barrier), so what it reads from its state is what the
    /// group committed. False when it is not master or no quorum answered in time.
    pub async fn linearize(&self) -> bool {
        let wait = Duration::from_millis(self.settings.write_timeout_ms);
        matches!(
            tokio::time::timeout(wait, self.raft.ensure_linearizable()).await,
            Ok(Ok(_))
        )
    }

    /// What to register as: `(true, term confirmed in)` for the master, else `(false,
    /// current term)`.
    pub fn registration_role(&self) -> (bool, u64) {
        if self.confirmed_master() {
            (true, self.confirmed_term.load(Ordering::Acquire))
        } else {
            (false, self.term())
        }
    }

    /// The master's broker address, if one is known.
    pub fn master_broker_addr(&self) -> Option<String> {
        let leader = self.current_leader()?;
        let replicas = self.replicas.read().expect("replicas poisoned");
        replicas.get(&leader).map(|a| a.broker.clone())
    }

    pub fn machine(&self) -> &GroupMachine<D> {
        &self.machine
    }

    fn not_master(&self) -> WriteError {
        WriteError::NotMaster {
            master: self
                .master_broker_addr()
                .filter(|_| self.current_leader() != Some(self.id)),
        }
    }

    fn timeout(&self) -> Duration {
        Duration::from_millis(self.settings.write_timeout_ms)
    }

    fn timed_out(&self) -> WriteError {
        WriteError::Timeout {
            timeout_ms: self.settings.write_timeout_ms,
            landed: Vec::new(),
        }
    }

    /// A refused proposal or membership change: "not the master" when mastership
    /// moved meanwhile (the caller retries at the new master).
    fn raft_error(&self, what: impl Into<String>, e: ProposeError) -> WriteError {
        match e {
            RaftError::APIError(ClientWriteError::ForwardToLeader(_)) => self.not_master(),
            source => WriteError::Raft {
                what: what.into(),
                source: Box::new(source),
            },
        }
    }

    /// Proposes one entry and waits for it to be committed and applied.
    pub async fn write(&self, request: GroupRequest) -> Result<GroupResponse, WriteError> {
        if !self.is_master() {
            return Err(self.not_master());
        }
        match tokio::time::timeout(self.timeout(), self.raft.client_write(request)).await {
            Err(_) => Err(self.timed_out()),
            Ok(Err(e)) => Err(self.raft_error("Raft refused the write", e)),
            Ok(Ok(response)) => Ok(response.data),
        }
    }

    /// Stores messages (each in the stored layout, offsets zero), in order, answering as
    /// the group's `ack` mode says.
    pub async fn put(&self, messages: Vec<Bytes>) -> Result<Vec<PutResult>, WriteError> {
        if !self.is_master() {
            return Err(self.not_master());
        }
        if !self.within_lease() {
            return Err(WriteError::NotMaster { master: None });
        }
        let parts = self.proposer.propose(messages).await?;
        let acked = tokio::time::timeout(self.timeout(), async {
            match self.ack_mode() {
                AckMode::Leader => self.wait_landed(&parts).await.and_then(|landed| {
                    // The lease is judged again when the answer goes out: the entry may
                    // have waited (behind earlier entries and a slow fsync) while this
                    // master was cut off and another was elected.
                    match self.within_lease() {
                        true => Ok(landed),
                        false => Err(WriteError::LeaseExpired { landed }),
                    }
                }),
                AckMode::Quorum => self.wait_committed(&parts).await,
            }
        })
        .await;
        match acked {
            Ok(Err(e)) if e.is_failure() && !self.is_master() => {
                tracing::debug!(error = %e, "write failed while losing mastership");
                Err(self.not_master())
            }
            Ok(result) => result,
            // Where the master's own log has the messages, say so: the outcome is
            // unknown, not failed (RocketMQ's FLUSH_SLAVE_TIMEOUT).
            Err(_) => Err(WriteError::Timeout {
                timeout_ms: self.settings.write_timeout_ms,
                landed: parts
                    .iter()
                    .map_while(|p| {
                        Some(p.landed.clone().now_or_never()?.ok()?[p.range.clone()].to_vec())
                    })
                    .flatten()
                    .collect(),
            }),
        }
    }

    /// Under `election = raft, ack = leader` a master acknowledges from its own log, so
    /// one cut off from the group would go on acknowledging what the next master never
    /// sees until it hears of that master (openraft 0.9's leader does not step down on
    /// its own). It refuses writes instead once no quorum has answered it for
    /// `election_timeout_max_ms`: the followers' leader lease, before which none of
    /// them votes for a new master, so an old and a new master never acknowledge at
    /// the same time. Quorum acks need no lease: nothing commits without a quorum.
    fn within_lease(&self) -> bool {
        if self.settings.election != Election::Raft || self.ack_mode() != AckMode::Leader {
            return true;
        }
        // Borrowed, not cloned: this runs on every send.
        let metrics = self.raft.metrics();
        let m = metrics.borrow();
        if m.membership_config.membership().voter_ids().count() < 2 {
            return true;
        }
        m.millis_since_quorum_ack
            .is_some_and(|ms| ms <= self.settings.election_timeout_max_ms)
    }

    #[cfg(not(feature = "fault-injection"))]
    fn ack_mode(&self) -> AckMode {
        self.settings.ack
    }

    #[cfg(feature = "fault-injection")]
    fn ack_mode(&self) -> AckMode {
        if self.ack_before_quorum.load(Ordering::Relaxed) {
            return AckMode::Leader;
        }
        self.settings.ack
    }

    /// PLANTED BUG for the simulator's tests: acknowledge `ack = quorum` sends before a
    /// quorum has them.
    #[cfg(feature = "fault-injection")]
    pub fn plant_ack_before_quorum(&self) {
        self.ack_before_quorum.store(true, Ordering::Relaxed);
    }

    async fn wait_landed(&self, parts: &[Part]) -> Result<Vec<PutResult>, WriteError> {
        let mut puts = Vec::new();
        for part in parts {
            match part.landed.clone().await {
                Ok(landed) => puts.extend_from_slice(&landed[part.range.clone()]),
                Err(TicketError::NotMaster) => return Err(self.not_master()),
                Err(e) => return Err(e.into()),
            }
        }
        Ok(puts)
    }

    async fn wait_committed(&self, parts: &[Part]) -> Result<Vec<PutResult>, WriteError> {
        let mut puts = Vec::new();
        let mut last_index = 0;
        for part in parts {
            let response = match part.committed.clone().await {
                Err(WriteError::NotMaster { .. }) => return Err(self.not_master()),
                other => other?,
            };
            let stored =
                response
                    .stored
                    .get(part.range.clone())
                    .ok_or_else(|| WriteError::Misapplied {
                        index: response.index,
                        stored: response.stored.len(),
                        proposed: part.range.clone(),
                    })?;
            puts.extend(stored.iter().copied().map(put_result));
            last_index = response.index;
        }
        if self.settings.election == Election::Fixed {
            self.wait_learners(last_index).await?;
        }
        Ok(puts)
    }

    /// Under `fixed` + `quorum`: the master commits alone, so wait until a majority of
    /// the group (the master included) has matched `index`.
    async fn wait_learners(&self, index: u64) -> Result<(), WriteError> {
        let majority = self.metrics().membership_config.nodes().count() / 2 + 1;
        let mut metrics = self.raft.metrics();
        let matched = |m: &Metrics| {
            1 + m.replication.as_ref().map_or(0, |r| {
                r.iter()
                    .filter(|(id, l)| **id != self.id && l.is_some_and(|l| l.index >= index))
                    .count()
            })
        };
        let waited = metrics
            .wait_for(|m| matched(m) >= majority || m.current_leader != Some(self.id))
            .await;
        match waited {
            Err(_) => Err(WriteError::Stopped { what: "Raft" }),
            Ok(m) if matched(&m) >= majority => Ok(()),
            Ok(_) => Err(self.not_master()),
        }
    }

    /// How far each other replica has matched the master's log, in entries behind
    /// (on the master; empty elsewhere).
    pub fn replica_lag(&self) -> BTreeMap<u64, u64> {
        let m = self.metrics();
        let last = m.last_log_index.unwrap_or(0);
        m.replication
            .iter()
            .flatten()
            .filter(|(id, _)| **id != self.id)
            .map(|(id, l)| (*id, last - l.map_or(0, |l| l.index).min(last)))
            .collect()
    }

    /// Leaderships of this replica that a quorum confirmed, since it started.
    pub fn masterships(&self) -> u64 {
        self.masterships.load(Ordering::Relaxed)
    }

    /// On the master, the highest log index a majority of the voters holds: what it
    /// can commit. (openraft 0.9 does not publish its commit index; the applied index
    /// follows it.)
    pub fn quorum_matched_index(&self) -> Option<u64> {
        let m = self.metrics();
        let replication = m.replication.as_ref()?;
        let voters: Vec<u64> = m.membership_config.membership().voter_ids().collect();
        let mut matched: Vec<u64> = voters
            .iter()
            .map(|id| match id {
                id if *id == self.id => m.last_log_index.unwrap_or(0),
                id => replication
                    .get(id)
                    .and_then(|l| l.as_ref())
                    .map_or(0, |l| l.index),
            })
            .collect();
        matched.sort_unstable_by(|a, b| b.cmp(a));
        matched.get(voters.len() / 2).copied()
    }

    /// The Raft term this replica is in: the fencing token of its master registrations.
    pub fn term(&self) -> u64 {
        self.raft.metrics().borrow().current_term
    }

    /// The group as this replica sees it.
    pub fn status(&self) -> GroupStatus {
        let m = self.metrics();
        let membership = m.membership_config.membership();
        let voters: Vec<u64> = membership.voter_ids().collect();
        let learners: Vec<u64> = membership.learner_ids().collect();
        GroupStatus {
            replica_id: self.id,
            master: m.current_leader,
            term: m.current_term,
            voters,
            learners,
            last_log_index: m.last_log_index.unwrap_or(0),
            last_applied_index: m.last_applied.map_or(0, |l| l.index),
            lag: self.replica_lag(),
        }
    }

    /// Adds a replica to the group while it serves: first as a learner, waiting until
    /// it has caught up with the log; then, under `election = "raft"`, as a voter.
    /// Only the master can.
    pub async fn add_replica(&self, id: u64, addrs: ReplicaAddrs) -> Result<(), WriteError> {
        if !self.is_master() {
            return Err(self.not_master());
        }
        if !(1..=u64::from(u16::MAX)).contains(&id) {
            return Err(WriteError::InvalidReplicaId(id));
        }
        // A new replica starts empty: it catches up by log from entry 0, or, once
        // retention deleted the first segments, by a snapshot taken where the log
        // starts and the log after it.
        self.replicas
            .write()
            .expect("replicas poisoned")
            .insert(id, addrs.clone());
        // Blocking: returns once the learner has replicated the log up to now.
        self.raft
            .add_learner(id, BasicNode::new(&addrs.replica), true)
            .await
            .map_err(|e| self.raft_error(format!("adding replica {id} as a learner"), e))?;
        if self.settings.election == Election::Raft {
            let ids = BTreeSet::from([id]);
            self.raft
                .change_membership(ChangeMembers::AddVoterIds(ids), false)
                .await
                .map_err(|e| self.raft_error(format!("making replica {id} a voter"), e))?;
        }
        tracing::info!(replica = id, broker = %addrs.broker, "replica added to the group");
        Ok(())
    }

    /// Removes a replica from the group while it serves. Only the master can; removing
    /// the master itself hands mastership to another voter.
    pub async fn remove_replica(&self, id: u64) -> Result<(), WriteError> {
        if !self.is_master() {
            return Err(self.not_master());
        }
        let status = self.status();
        if !status.voters.contains(&id) && !status.learners.contains(&id) {
            return Err(WriteError::NotInGroup(id));
        }
        if status.voters == [id] {
            return Err(WriteError::LastVoter(id));
        }
        let ids = BTreeSet::from([id]);
        let what = || format!("removing replica {id}");
        if status.voters.contains(&id) {
            self.raft
                .change_membership(ChangeMembers::RemoveVoters(ids.clone()), false)
                .await
                .map_err(|e| self.raft_error(what(), e))?;
        }
        if self.is_master() {
            self.raft
                .change_membership(ChangeMembers::RemoveNodes(ids), false)
                .await
                .map_err(|e| self.raft_error(what(), e))?;
        }
        tracing::info!(replica = id, "replica removed from the group");
        Ok(())
    }

    pub async fn shutdown(&self) {
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!(error = %e, "raft shutdown");
        }
    }
}

/// Whether the role a replica claims now (`claims` master, in `term`) differs from
/// the one a quorum last confirmed (`confirmed_as`: master or not, and the term of that
/// leadership). A master that lost leadership and won it back in a later term while no
/// one looked (its role watch busy registering, or the replica paused) claims the same
/// role but not the same leadership: the name servers must hear its new term, since
/// they refuse a master registration whose term is older than one they saw.
fn needs_confirmation(claims: bool, term: u64, confirmed_as: (bool, u64)) -> bool {
    match confirmed_as {
        (true, confirmed_term) => !claims || term != confirmed_term,
        (false, _) => claims,
    }
}

/// How often the log's upkeep runs (retention floor, snapshot at the log start).
const LOG_UPKEEP_INTERVAL: Duration = Duration::from_secs(1);

/// On the master, keeps the store's retention floor at the first entry some replica has
/// not received, so a member that was down for longer than `file_reserved_hours`
/// still catches up by log, keeping every message (see `store::retention`); elsewhere
/// no floor. On every replica, tells openraft where retention left the log's start
/// (`sync_log_start`): a new replica, or one whose entries disk pressure deleted,
/// catches up by snapshot and log from there.
async fn run_log_upkeep<D: Disk>(replica: std::sync::Weak<Replica<D>>) {
    loop {
        tokio::time::sleep(LOG_UPKEEP_INTERVAL).await;
        let Some(replica) = replica.upgrade() else {
            return;
        };
        let floor = replica.retention_floor().await;
        replica.log.message_store().set_retention_floor(floor);
        replica.sync_log_start().await;
    }
}

impl<D: Disk> Replica<D> {
    /// Once retention moved the log's start, has openraft take a snapshot there (the
    /// state machine builds it at the log start) and, with it, forget the entries
    /// before: a replica that needs them gets the snapshot and the log after it.
    async fn sync_log_start(&self) {
        let Some(start) = self.log.message_store().log_start() else {
            return;
        };
        // Raft entry i is CommitLog record i + 1.
        let Some(last) = start.prev.index.checked_sub(1) else {
            return;
        };
        let (snapshot, purged) = {
            let metrics = self.raft.metrics();
            let m = metrics.borrow();
            (m.snapshot.map(|s| s.index), m.purged.map(|p| p.index))
        };
        if snapshot.is_none_or(|s| s < last) {
            if let Err(e) = self.raft.trigger().snapshot().await {
                tracing::warn!(error = %e, "taking a snapshot at the log start");
            }
        } else if purged.is_none_or(|p| p < last) {
            if let Err(e) = self.raft.trigger().purge_log(last).await {
                tracing::warn!(error = %e, "forgetting the entries before the log start");
            }
        }
    }

    async fn retention_floor(&self) -> Option<u64> {
        let needed = {
            let metrics = self.raft.metrics();
            let m = metrics.borrow();
            if m.current_leader != Some(self.id) {
                return None;
            }
            // Raft index of the first entry some other member lacks.
            m.replication
                .as_ref()?
                .iter()
                .filter(|(id, _)| **id != self.id)
                .map(|(_, matched)| matched.map_or(0, |l| l.index + 1))
                .min()?
        };
        let store = self.log.message_store();
        // Raft entry i is CommitLog record i + 1.
        match store.log_offset(needed + 1).await {
            Ok(Some(offset)) => Some(offset),
            // Every member has every entry.
            Ok(None) => Some(store.commitlog_max_offset()),
            Err(e) => {
                tracing::warn!(error = %e, "locating the retention floor; keeping everything");
                Some(0)
            }
        }
    }
}

fn put_result(stored: raft::types::StoredAt) -> PutResult {
    PutResult {
        msg_id: proto::MessageId {
            store_host: stored.store_host,
            physical_offset: stored.physical_offset,
        },
        physical_offset: stored.physical_offset,
        size: stored.size,
        queue_id: stored.queue_id,
        queue_offset: stored.queue_offset,
        store_timestamp_ms: stored.store_timestamp_ms,
    }
}

#[cfg(test)]
mod tests {
    use super::needs_confirmation;

    #[test]
    fn a_master_that_won_a_later_term_is_confirmed_again() {
        // Confirmed master of term 3, deposed and re-elected in term 5 unseen.
        assert!(needs_confirmation(true, 5, (true, 3)));
        // Nothing changed.
        assert!(!needs_confirmation(true, 3, (true, 3)));
        assert!(!needs_confirmation(false, 7, (false, 3)));
        // The role changed.
        assert!(needs_confirmation(false, 4, (true, 3)));
        assert!(needs_confirmation(true, 4, (false, 3)));
    }
}
