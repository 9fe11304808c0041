//! The simulated cluster as a struct: name servers, Raft-replicated broker groups and
//! the hosts they run on. Every server is the real code the binaries run
//! (`namesrv::start`, `raftmq::start_broker`) over madsim's TCP; each replica's disk is
//! a `SimDisk` and its metadata a `MemMetaStore`, both outliving the process as real
//! ones do, so a kill keeps the page cache and a power loss does not.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use history::mode::{Ack, Flush, Mode};
use madsim::runtime::{Handle, NodeHandle};
use raftmq::config::{AckMode, Election, ReplicaAddrs, ReplicationSettings};
use raftmq::{BrokerConfig, RunningBroker};
use store::meta::MemMetaStore;
use store::{FlushMode, SimDisk, SimDiskConfig};

use crate::plant::Plant;

pub type Running = RunningBroker<SimDisk, MemMetaStore>;
type Slot = Arc<Mutex<Option<Running>>>;

/// What to build. `Spec::standard` is the cluster: 2 name servers, 2 groups × 3
/// replicas.
#[derive(Clone, Debug)]
pub struct Spec {
    pub mode: Mode,
    pub namesrvs: usize,
    pub groups: usize,
    pub replicas: u64,
    /// Simulated time each disk operation takes (drawn per operation), when set: slow
    /// fsyncs let concurrent sends pile up into one Raft entry.
    pub disk_latency_us: Option<std::ops::Range<u64>>,
    /// CommitLog segment size, when not the default 1 GiB: small segments make the
    /// replicas roll segments often, so appends, truncations and recovery meet segment
    /// ends (where an entry must move whole to the next segment).
    pub segment_bytes: Option<u64>,
}

impl Spec {
    pub fn standard(mode: Mode) -> Self {
        Spec {
            mode,
            namesrvs: 2,
            groups: 2,
            replicas: 3,
            disk_latency_us: None,
            segment_bytes: None,
        }
    }
}

/// One broker replica: its host, its durable state and, while it runs, the broker.
pub struct Replica {
    pub group: usize,
    pub id: u64,
    pub name: String,
    pub node: NodeHandle,
    pub disk: SimDisk,
    pub meta: MemMetaStore,
    slot: Slot,
    /// Why the last start failed, while the replica keeps failing to start.
    start_error: Arc<Mutex<Option<String>>>,
}

impl Replica {
    /// The running broker, if the process is up and has started.
    pub fn broker(&self) -> Option<Arc<raftmq::broker::Broker<SimDisk, MemMetaStore>>> {
        self.slot.lock().unwrap().as_ref().map(|b| b.broker.clone())
    }

    pub fn is_master(&self) -> bool {
        self.slot
            .lock()
            .unwrap()
            .as_ref()
            .and_then(|b| b.broker.replica())
            .is_some_and(|r| r.is_master())
    }

    /// Marks the process gone (after `Handle::kill`): its broker is dropped with it.
    pub fn forget(&self) {
        self.slot.lock().unwrap().take();
    }

    pub fn addr(&self) -> String {
        format!("{}:10911", self.ip())
    }

    pub fn ip(&self) -> IpAddr {
        replica_ip(self.group, self.id)
    }
}

pub struct Cluster {
    pub spec: Spec,
    pub handle: Handle,
    pub namesrvs: Vec<NodeHandle>,
    /// `groups[g]` holds group g's replicas, ids 1..=replicas.
    pub groups: Vec<Vec<Replica>>,
}

pub fn group_name(g: usize) -> String {
    format!("broker-{}", (b'a' + g as u8) as char)
}

fn replica_ip(group: usize, id: u64) -> IpAddr {
    format!("10.1.{}.{id}", group + 1).parse().unwrap()
}

/// Name servers, `;`-separated as RocketMQ spells them.
pub fn namesrv_spec(spec: &Spec) -> String {
    (1..=spec.namesrvs)
        .map(|i| format!("10.1.0.{i}:9876"))
        .collect::<Vec<_>>()
        .join(";")
}

fn broker_config(spec: &Spec, group: usize, id: u64) -> BrokerConfig {
    let mut config = replica_config(
        group_name(group),
        spec.replicas,
        |i| replica_ip(group, i),
        id,
        namesrv_spec(spec),
        spec.mode,
    );
    if let Some(bytes) = spec.segment_bytes {
        config.store.commitlog_segment_size = bytes;
        // The largest message must still fit a segment; the workload's are small.
        config.store.message_size_max = config.store.message_size_max.min(bytes as usize / 4);
    }
    // Checks within a run's seconds; enough of them that a transaction outlives the
    // safety phase's partitions before it is discarded.
    config.transaction = raftmq::config::TransactionSettings {
        timeout_ms: 1_000,
        check_interval_ms: TX_CHECK_INTERVAL.as_millis() as u64,
        check_max: 15,
    };
    config.message_delay_level = DELAY_LEVELS.into();
    config
}

/// The simulated brokers' `message_delay_level`: levels 1 and 2 as RocketMQ's (the
/// producers' delayed sends use them), and short retries (a send-back waits at level
/// 3 + its reconsume times: 2 s, 3 s, 4 s), so messages go back and return within the
/// run's seconds.
pub const DELAY_LEVELS: &str = "1s 5s 2s 3s 4s";

/// The delay of `level` (from 1) on the simulated brokers.
pub fn delay_ms(level: usize) -> u64 {
    let levels = raftmq::config::parse_delay_levels(DELAY_LEVELS).expect("valid delay levels");
    levels[level - 1]
}

/// How often the simulated masters check undecided transactions.
pub const TX_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// The broker's `replication.ack` for a mode's acknowledgement.
fn ack_mode(ack: Ack) -> AckMode {
    match ack {
        Ack::Quorum => AckMode::Quorum,
        Ack::Leader => AckMode::Leader,
    }
}

/// The broker's `flush_disk_type` for a mode's flush.
fn flush_mode(flush: Flush) -> FlushMode {
    match flush {
        Flush::Sync => FlushMode::Sync,
        Flush::Async => FlushMode::Async,
    }
}

/// Replica `id` of a Raft group `broker_name` whose replica `i` (1..=`replicas`) lives
/// at `ip_of(i)`, ports 10911 and 10912: how every simulated scenario configures one.
pub fn replica_config(
    broker_name: String,
    replicas: u64,
    ip_of: impl Fn(u64) -> IpAddr,
    id: u64,
    namesrv_addr: String,
    mode: Mode,
) -> BrokerConfig {
    let replicas: BTreeMap<String, ReplicaAddrs> = (1..=replicas)
        .map(|i| {
            let ip = ip_of(i);
            let addrs = ReplicaAddrs {
                broker: format!("{ip}:10911"),
                replica: format!("{ip}:10912"),
            };
            (i.to_string(), addrs)
        })
        .collect();
    BrokerConfig {
        broker_name,
        broker_ip1: ip_of(id).to_string(),
        listen_addr: "0.0.0.0".into(),
        listen_port: 10911,
        namesrv_addr,
        flush_disk_type: flush_mode(mode.flush),
        register_broker_interval_ms: 1_000,
        replication: Some(ReplicationSettings {
            replica_id: id,
            replica_listen_port: 10912,
            replicas,
            election: Election::Raft,
            ack: ack_mode(mode.ack),
            write_timeout_ms: 1_000,
            ..ReplicationSettings::default()
        }),
        ..BrokerConfig::default()
    }
}

impl Cluster {
    /// Starts every name server and replica on its own host.
    pub fn start(spec: Spec, plant: Plant) -> Cluster {
        let handle = Handle::current();
        let seed = handle.seed();
        let namesrvs = (1..=spec.namesrvs)
            .map(|i| {
                let addr: std::net::SocketAddr = format!("10.1.0.{i}:9876").parse().unwrap();
                handle
                    .create_node()
                    .name(format!("namesrv-{i}"))
                    .ip(addr.ip())
                    .init(move || async move {
                        let (_addr, tasks) = namesrv::start(addr).await.unwrap();
                        for t in tasks {
                            let _ = t.await;
                        }
                    })
                    .build()
            })
            .collect();
        let mut groups = Vec::new();
        for g in 0..spec.groups {
            let mut replicas = Vec::new();
            for id in 1..=spec.replicas {
                let disk_seed = seed.wrapping_add((g as u64) << 8 | id);
                let disk = SimDisk::new(SimDiskConfig {
                    torn_tail_probability: 0.5,
                    latency_us: spec.disk_latency_us.clone(),
                    ..SimDiskConfig::reliable(disk_seed)
                });
                let meta = MemMetaStore::new(disk_seed);
                let slot: Slot = Arc::default();
                let config = broker_config(&spec, g, id);
                let start_error: Arc<Mutex<Option<String>>> = Arc::default();
                let (d, m, s, f) = (
                    disk.clone(),
                    meta.clone(),
                    slot.clone(),
                    start_error.clone(),
                );
                let name = format!("{}-r{id}", group_name(g));
                let node = handle
                    .create_node()
                    .name(name.clone())
                    .ip(replica_ip(g, id))
                    .init(move || {
                        let (config, disk, meta, slot, failed) =
                            (config.clone(), d.clone(), m.clone(), s.clone(), f.clone());
                        async move {
                            // As a supervisor would: a start that fails (an fsync EIO
                            // during recovery, say) is retried; why is kept for the
                            // verdict, in case it never succeeds.
                            let broker = loop {
                                let started = raftmq::start_broker(
                                    config.clone(),
                                    disk.clone(),
                                    meta.clone(),
                                )
                                .await;
                                match started {
                                    Ok(broker) => break broker,
                                    Err(e) => {
                                        tracing::warn!(error = %e, "replica failed to start; retrying in 1 s");
                                        *failed.lock().unwrap() = Some(e.to_string());
                                        tokio::time::sleep(Duration::from_secs(1)).await;
                                    }
                                }
                            };
                            failed.lock().unwrap().take();
                            plant.apply_to_broker(&broker);
                            *slot.lock().unwrap() = Some(broker);
                            std::future::pending::<()>().await;
                        }
                    })
                    .build();
                replicas.push(Replica {
                    group: g,
                    id,
                    name,
                    node,
                    disk,
                    meta,
                    slot,
                    start_error,
                });
            }
            groups.push(replicas);
        }
        Cluster {
            spec,
            handle,
            namesrvs,
            groups,
        }
    }

    pub fn replicas(&self) -> impl Iterator<Item = &Replica> {
        self.groups.iter().flatten()
    }

    /// The index (in its group) of group `g`'s master now, if any.
    pub fn master(&self, g: usize) -> Option<usize> {
        self.groups[g].iter().position(Replica::is_master)
    }

    /// Waits until every group has a master, up to `limit`.
    pub async fn await_masters(&self, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        while tokio::time::Instant::now() < deadline {
            if (0..self.groups.len()).all(|g| self.master(g).is_some()) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }

    /// Waits up to `limit` for every group's replicas to be up with the same last log
    /// entry, everything applied; then compares their logs byte for byte (from where
    /// the latest of them starts, after compaction). `Ok(None)`:
    /// converged; `Ok(Some(why))`: not within the limit (a liveness failure);
    /// `Err(why)`: the logs differ (a safety failure).
    pub async fn await_converged(&self, limit: Duration) -> Result<Option<String>, String> {
        let deadline = tokio::time::Instant::now() + limit;
        let mut why = String::new();
        while tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
            match self.converged().await {
                Ok(true) => return Ok(None),
                Ok(false) => {}
                Err(e) if e.starts_with("waiting") => why = e,
                Err(e) => return Err(e),
            }
        }
        Ok(Some(format!(
            "replicas did not converge within {} ms: {why}",
            limit.as_millis()
        )))
    }

    async fn converged(&self) -> Result<bool, String> {
        for (g, replicas) in self.groups.iter().enumerate() {
            let brokers: Vec<_> = replicas.iter().filter_map(Replica::broker).collect();
            if brokers.len() < replicas.len() {
                let why: Vec<String> = replicas
                    .iter()
                    .filter_map(|r| {
                        let e = r.start_error.lock().unwrap().clone()?;
                        Some(format!("{} cannot start: {e}", r.name))
                    })
                    .collect();
                return Err(format!(
                    "waiting: {} has a replica down {}",
                    group_name(g),
                    why.join("; ")
                ));
            }
            let mut last = Vec::new();
            for b in &brokers {
                let replica = b.replica().expect("replicated");
                let metrics = replica.metrics();
                let log_last = b.store().last_log_id().await;
                // Applied up to the last entry the *log* holds (the store counts from 1,
                // Raft from 0): Raft's metrics may trail the log, so they cannot say it.
                let applied_through = metrics.last_applied.map_or(0, |l| l.index + 1);
                if metrics.current_leader.is_none() || applied_through < log_last.index {
                    return Err(format!("waiting: {} is still applying", group_name(g)));
                }
                last.push(log_last);
            }
            if last.iter().any(|l| *l != last[0]) {
                return Err(format!("waiting: {} logs differ in length", group_name(g)));
            }
            // Compaction may have deleted the oldest entries of some: compare from the
            // latest start.
            let from = brokers
                .iter()
                .filter_map(|b| b.store().log_start())
                .map(|s| s.prev.index + 1)
                .max()
                .unwrap_or(1);
            let first = brokers[0]
                .store()
                .read_log(from, last[0].index + 1, usize::MAX)
                .await
                .map_err(|e| format!("reading {}'s log: {e}", replicas[0].name))?;
            for (i, b) in brokers.iter().enumerate().skip(1) {
                let other = b
                    .store()
                    .read_log(from, last[0].index + 1, usize::MAX)
                    .await
                    .map_err(|e| format!("reading {}'s log: {e}", replicas[i].name))?;
                if other != first {
                    let at = first
                        .iter()
                        .zip(&other)
                        .position(|(a, b)| a != b)
                        .or(Some(first.len().min(other.len())));
                    let describe = |r: Option<&store::LogRecord>| match r {
                        Some(r) => format!("{r:?}").chars().take(300).collect(),
                        None => "nothing".to_string(),
                    };
                    return Err(format!(
                        "{} diverged from {} (same last entry, different logs): first at \
                         entry {:?}: {} vs {}",
                        replicas[i].name,
                        replicas[0].name,
                        at.map(|k| (k, first.len(), other.len())),
                        describe(at.and_then(|k| first.get(k))),
                        describe(at.and_then(|k| other.get(k))),
                    ));
                }
            }
            // The same log must read the same: every queue's readable end alike.
            let ends = |b: &Arc<raftmq::broker::Broker<SimDisk, MemMetaStore>>| {
                let store = b.store();
                store
                    .queues()
                    .into_iter()
                    .map(|(t, q)| {
                        let end = store.max_offset(&t, q);
                        ((t, q), end)
                    })
                    // An empty queue file and no file read the same.
                    .filter(|(_, end)| *end > 0)
                    .collect::<BTreeMap<_, _>>()
            };
            let first_ends = ends(&brokers[0]);
            tracing::info!(target: "sim::scenario", group = %group_name(g), ends = ?first_ends);
            for (i, b) in brokers.iter().enumerate().skip(1) {
                let other = ends(b);
                if other != first_ends {
                    return Err(format!(
                        "waiting: {} and {} hold the same log but their queues end at {:?} and {:?}",
                        replicas[0].name, replicas[i].name, first_ends, other
                    ));
                }
            }
        }
        Ok(true)
    }
}
