//! The `[replication]` table: a broker group of N replicas whose CommitLog is a Raft log.
//!
//! ```toml
//! [replication]
//! replica_id = 1
//! replica_listen_port = 10912
//! election = "raft"     # or "fixed": the lowest replica id is master, no failover
//! ack = "quorum"        # or "leader": answer once the master has the message
//! [replication.replicas]
//! 1 = { broker = "127.0.0.1:10911", replica = "127.0.0.1:10912" }
//! 2 = { broker = "127.0.0.1:10921", replica = "127.0.0.1:10922" }
//! 3 = { broker = "127.0.0.1:10931", replica = "127.0.0.1:10932" }
//! ```
//! Every replica of a group lists the same replicas, with the same store segment size
//! (replicas hold byte-identical CommitLogs).

use std::collections::BTreeMap;
use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

/// How the group's master is chosen.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Election {
    /// Raft elects any replica; a lost master is replaced automatically.
    #[default]
    Raft,
    /// The lowest replica id is always master (RocketMQ's BrokerId 0); the others follow
    /// as non-voting learners, and nothing takes over when the master is gone.
    Fixed,
}

/// As the TOML and the flags spell it.
impl std::fmt::Display for Election {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Election::Raft => "raft",
            Election::Fixed => "fixed",
        })
    }
}

/// When a send is acknowledged.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AckMode {
    /// Once a majority of the group holds the message (RocketMQ's sync dual write).
    #[default]
    Quorum,
    /// Once the master holds it (async replication): a failover may lose a tail.
    Leader,
}

/// As the TOML and the flags spell it.
impl std::fmt::Display for AckMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AckMode::Quorum => "quorum",
            AckMode::Leader => "leader",
        })
    }
}

/// One replica's two addresses.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplicaAddrs {
    /// Where clients reach its broker (`broker_ip1:listen_port`).
    pub broker: String,
    /// Its replica port, for Raft traffic.
    pub replica: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplicationSettings {
    /// This replica's id in the group, 1..=65535.
    pub replica_id: u64,
    /// Port of the replica (Raft) listener, on `listen_addr` (RocketMQ `haListenPort`).
    pub replica_listen_port: u16,
    /// Every replica of the group by id (TOML keys are strings: `1 = { ... }`).
    pub replicas: BTreeMap<String, ReplicaAddrs>,
    #[serde(default)]
    pub election: Election,
    #[serde(default)]
    pub ack: AckMode,
    #[serde(default = "defaults::heartbeat_interval_ms")]
    pub heartbeat_interval_ms: u64,
    #[serde(default = "defaults::election_timeout_min_ms")]
    pub election_timeout_min_ms: u64,
    #[serde(default = "defaults::election_timeout_max_ms")]
    pub election_timeout_max_ms: u64,
    /// How long a send waits for its acknowledgement before answering
    /// FLUSH_SLAVE_TIMEOUT (outcome unknown).
    #[serde(default = "defaults::write_timeout_ms")]
    pub write_timeout_ms: u64,
    /// A replica added to a running group: it does not form the group itself, but
    /// waits for the master to add it (`raftmq group add-replica`).
    #[serde(default)]
    pub join: bool,
}

impl Default for ReplicationSettings {
    /// A one-replica group; callers fill in the replicas.
    fn default() -> Self {
        ReplicationSettings {
            replica_id: 1,
            replica_listen_port: 10912,
            replicas: BTreeMap::new(),
            election: Election::default(),
            ack: AckMode::default(),
            heartbeat_interval_ms: defaults::heartbeat_interval_ms(),
            election_timeout_min_ms: defaults::election_timeout_min_ms(),
            election_timeout_max_ms: defaults::election_timeout_max_ms(),
            write_timeout_ms: defaults::write_timeout_ms(),
            join: false,
        }
    }
}

/// openraft lets a follower campaign `election_timeout_max_ms` (the leader lease) plus a
/// random election timeout after the last heartbeat, so a master's death is noticed
/// after 550..700 ms with these defaults, leaving room for the election, the new
/// master's registration and the clients' retry within a second.
mod defaults {
    pub fn heartbeat_interval_ms() -> u64 {
        50
    }
    pub fn election_timeout_min_ms() -> u64 {
        200
    }
    pub fn election_timeout_max_ms() -> u64 {
        350
    }
    pub fn write_timeout_ms() -> u64 {
        3_000
    }
}

impl ReplicationSettings {
    /// The replicas by numeric id; errors name the bad key or address.
    pub fn replica_map(&self) -> anyhow::Result<BTreeMap<u64, ReplicaAddrs>> {
        let mut out = BTreeMap::new();
        for (key, addrs) in &self.replicas {
            let id: u64 = key
                .parse()
                .ok()
                .filter(|id| (1..=u64::from(u16::MAX)).contains(id))
                .ok_or_else(|| {
                    anyhow::anyhow!("replication.replicas: key {key:?} is not an id in 1..=65535")
                })?;
            for (field, addr) in [("broker", &addrs.broker), ("replica", &addrs.replica)] {
                addr.parse::<SocketAddr>().map_err(|e| {
                    anyhow::anyhow!("replication.replicas.{key}.{field}: {addr:?}: {e}")
                })?;
            }
            out.insert(id, addrs.clone());
        }
        Ok(out)
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        let replicas = self.replica_map()?;
        if !replicas.contains_key(&self.replica_id) {
            anyhow::bail!(
                "replication.replica_id: {} is not among replication.replicas ({:?})",
                self.replica_id,
                replicas.keys().collect::<Vec<_>>()
            );
        }
        if self.heartbeat_interval_ms == 0
            || self.election_timeout_min_ms <= self.heartbeat_interval_ms
            || self.election_timeout_max_ms <= self.election_timeout_min_ms
        {
            anyhow::bail!(
                "replication: need 0 < heartbeat_interval_ms ({}) < election_timeout_min_ms ({}) \
                 < election_timeout_max_ms ({})",
                self.heartbeat_interval_ms,
                self.election_timeout_min_ms,
                self.election_timeout_max_ms
            );
        }
        if self.write_timeout_ms == 0 {
            anyhow::bail!("replication.write_timeout_ms: must be positive");
        }
        Ok(())
    }

    /// The fixed master under `election = "fixed"`: the lowest replica id.
    pub fn fixed_master(&self) -> u64 {
        self.replica_map()
            .ok()
            .and_then(|m| m.keys().next().copied())
            .unwrap_or(self.replica_id)
    }
}
