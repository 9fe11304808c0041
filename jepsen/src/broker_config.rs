//! The broker's config file, as the harness writes it for each replica: the settings a
//! run chooses, under the broker's TOML names (`raftmq-broker -c FILE`; the fields and
//! the `[replication]` table are documented in the broker's `config` module). The broker
//! fills in everything else with its defaults.
//!
//! The harness drives the binaries as a black box, so it writes their file format and
//! does not build the broker's own config type. A test parses what it writes with the
//! broker's parser (`raftmq` is a dev-dependency of this crate, not a dependency).

use std::collections::BTreeMap;
use std::path::PathBuf;

use history::mode::{Ack, Flush, Mode};
use serde::Serialize;

use crate::opts::Election;

/// The broker group a run starts: what every replica's file shares.
#[derive(Clone, Debug)]
pub struct Group {
    pub name: String,
    /// Replica `i`'s IP address at index `i - 1` (replica ids start at 1).
    pub replica_ips: Vec<String>,
    pub broker_port: u16,
    pub replica_port: u16,
    pub namesrv_addr: String,
    pub mode: Mode,
    pub election: Election,
}

/// One replica's file.
#[derive(Clone, Debug, Serialize)]
pub struct BrokerToml {
    broker_name: String,
    broker_ip1: String,
    listen_addr: String,
    listen_port: u16,
    namesrv_addr: String,
    store_path_root_dir: PathBuf,
    flush_disk_type: &'static str,
    register_broker_interval_ms: u64,
    replication: Replication,
    transaction: Transaction,
}

/// The `[transaction]` table: undecided transactions checked within a run's seconds.
#[derive(Clone, Debug, Serialize)]
struct Transaction {
    timeout_ms: u64,
    check_interval_ms: u64,
}

/// The `[replication]` table.
#[derive(Clone, Debug, Serialize)]
struct Replication {
    replica_id: u64,
    replica_listen_port: u16,
    /// Every replica of the group by id (TOML keys are strings).
    replicas: BTreeMap<String, ReplicaAddrs>,
    election: &'static str,
    ack: &'static str,
    write_timeout_ms: u64,
}

/// One replica's two addresses.
#[derive(Clone, Debug, Serialize)]
struct ReplicaAddrs {
    broker: String,
    replica: String,
}

/// The broker's `flush_disk_type` for a mode's flush.
fn flush_disk_type(flush: Flush) -> &'static str {
    match flush {
        Flush::Sync => "sync",
        Flush::Async => "async",
    }
}

/// The broker's `replication.ack` for a mode's acknowledgement.
fn ack(ack: Ack) -> &'static str {
    match ack {
        Ack::Quorum => "quorum",
        Ack::Leader => "leader",
    }
}

/// The broker's `replication.election`.
fn election(election: Election) -> &'static str {
    match election {
        Election::Raft => "raft",
        Election::Fixed => "fixed",
    }
}

impl Group {
    /// Replica `id`'s file, with its data in `data`.
    pub fn replica(&self, id: u64, data: PathBuf) -> BrokerToml {
        assert!(id >= 1, "replica ids start at 1");
        let ip = self.replica_ips[id as usize - 1].clone();
        let replicas = (1..)
            .zip(&self.replica_ips)
            .map(|(i, ip): (u64, _)| {
                let addrs = ReplicaAddrs {
                    broker: format!("{ip}:{}", self.broker_port),
                    replica: format!("{ip}:{}", self.replica_port),
                };
                (i.to_string(), addrs)
            })
            .collect();
        BrokerToml {
            broker_name: self.name.clone(),
            broker_ip1: ip.clone(),
            listen_addr: ip,
            listen_port: self.broker_port,
            namesrv_addr: self.namesrv_addr.clone(),
            store_path_root_dir: data,
            flush_disk_type: flush_disk_type(self.mode.flush),
            register_broker_interval_ms: 5_000,
            replication: Replication {
                replica_id: id,
                replica_listen_port: self.replica_port,
                replicas,
                election: election(self.election),
                ack: ack(self.mode.ack),
                write_timeout_ms: 2_000,
            },
            transaction: Transaction {
                timeout_ms: 1_000,
                check_interval_ms: 1_000,
            },
        }
    }
}

impl BrokerToml {
    pub fn to_toml(&self) -> anyhow::Result<String> {
        Ok(toml::to_string(self)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use history::mode::parse_mode;
    use raftmq::config::{AckMode, ReplicationSettings};
    use raftmq::BrokerConfig;
    use store::FlushMode;

    fn group(mode: Mode, election: Election) -> Group {
        Group {
            name: "broker-j".into(),
            replica_ips: (1..=3).map(|i| format!("10.77.0.{i}")).collect(),
            broker_port: 10911,
            replica_port: 10912,
            namesrv_addr: "10.77.0.254:9876".into(),
            mode,
            election,
        }
    }

    /// The config the harness built with the broker's own types before it wrote the file
    /// itself: what the broker must read from the file.
    fn expected(group: &Group, id: u64, data: PathBuf) -> BrokerConfig {
        let ip = group.replica_ips[id as usize - 1].clone();
        let replicas = (1..)
            .zip(&group.replica_ips)
            .map(|(i, ip): (u64, _)| {
                let addrs = raftmq::config::ReplicaAddrs {
                    broker: format!("{ip}:10911"),
                    replica: format!("{ip}:10912"),
                };
                (i.to_string(), addrs)
            })
            .collect();
        BrokerConfig {
            broker_name: "broker-j".into(),
            broker_ip1: ip.clone(),
            listen_addr: ip,
            listen_port: 10911,
            namesrv_addr: "10.77.0.254:9876".into(),
            store_path_root_dir: data,
            flush_disk_type: match group.mode.flush {
                Flush::Sync => FlushMode::Sync,
                Flush::Async => FlushMode::Async,
            },
            register_broker_interval_ms: 5_000,
            replication: Some(ReplicationSettings {
                replica_id: id,
                replica_listen_port: 10912,
                replicas,
                election: match group.election {
                    Election::Raft => raftmq::config::Election::Raft,
                    Election::Fixed => raftmq::config::Election::Fixed,
                },
                ack: match group.mode.ack {
                    Ack::Quorum => AckMode::Quorum,
                    Ack::Leader => AckMode::Leader,
                },
                write_timeout_ms: 2_000,
                ..ReplicationSettings::default()
            }),
            transaction: raftmq::config::TransactionSettings {
                timeout_ms: 1_000,
                check_interval_ms: 1_000,
                ..Default::default()
            },
            ..BrokerConfig::default()
        }
    }

    #[test]
    fn the_broker_reads_the_file_as_the_config_the_harness_means() {
        for mode in ["quorum+sync", "quorum+async", "leader+sync", "leader+async"] {
            for election in [Election::Raft, Election::Fixed] {
                let group = group(parse_mode(mode).unwrap(), election);
                for id in 1..=3 {
                    let data = PathBuf::from(format!("/tmp/jepsen/data/n{id}"));
                    let text = group.replica(id, data.clone()).to_toml().unwrap();
                    let read = BrokerConfig::parse(&text)
                        .unwrap_or_else(|e| panic!("{mode} {election}: {e}\n{text}"));
                    // Compared as the broker writes them: BrokerConfig has no PartialEq.
                    assert_eq!(
                        toml::to_string(&read).unwrap(),
                        toml::to_string(&expected(&group, id, data)).unwrap(),
                        "{mode} {election} n{id}:\n{text}"
                    );
                }
            }
        }
    }
}
