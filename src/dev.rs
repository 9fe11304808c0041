//! `raftmq dev`: a name server and a broker group in one process, on RocketMQ's default
//! ports, with data under `./raftmq-data`: one broker by default, or a Raft-replicated
//! group of N replicas (`--replicas 3`). The embedded default for trying raftmq out;
//! not a deployment.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

use store::meta::SledMetaStore;
use store::StdDisk;

use crate::broker::RunningBroker;
use crate::config::{AckMode, BrokerConfig, Election, ReplicaAddrs, ReplicationSettings};

pub struct DevCluster {
    pub namesrv_addr: SocketAddr,
    pub namesrv: std::sync::Arc<namesrv::NameServer>,
    /// One broker, or the replicas of a replicated group.
    pub brokers: Vec<RunningBroker<StdDisk, SledMetaStore>>,
    namesrv_tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// What `raftmq dev` starts.
#[derive(Clone, Debug)]
pub struct DevOptions {
    pub data_dir: PathBuf,
    /// 0 picks a free port.
    pub namesrv_port: u16,
    /// The first replica's broker port; replica `i` (from 0) uses `broker_port + 10 i`
    /// for clients and one more for its replica port (0 picks free ports).
    pub broker_port: u16,
    pub flush_disk_type: store::FlushMode,
    /// 1: a single broker; more: a Raft-replicated group of that many replicas.
    pub replicas: u16,
    pub election: Election,
    pub ack: AckMode,
}

/// Starts the name server and the broker group, storing under `data_dir`.
pub async fn start(options: DevOptions) -> anyhow::Result<DevCluster> {
    let (namesrv_addr, namesrv, namesrv_tasks) =
        namesrv::start_server(SocketAddr::from(([127, 0, 0, 1], options.namesrv_port))).await?;
    let mut brokers = Vec::new();
    for config in group_configs(&options, namesrv_addr)? {
        brokers.push(start_broker_on_disk(config).await?);
    }
    Ok(DevCluster {
        namesrv_addr,
        namesrv,
        brokers,
        namesrv_tasks,
    })
}

/// The configs of broker group `broker-a` on 127.0.0.1: one broker, or `replicas`
/// replicas that list each other.
pub fn group_configs(
    options: &DevOptions,
    namesrv_addr: SocketAddr,
) -> anyhow::Result<Vec<BrokerConfig>> {
    let base = BrokerConfig {
        broker_ip1: "127.0.0.1".into(),
        listen_addr: "127.0.0.1".into(),
        listen_port: options.broker_port,
        namesrv_addr: namesrv_addr.to_string(),
        store_path_root_dir: options.data_dir.join("broker-a"),
        flush_disk_type: options.flush_disk_type,
        ..BrokerConfig::default()
    };
    if options.replicas <= 1 {
        return Ok(vec![base]);
    }
    let n = u64::from(options.replicas);
    let mut ports = Vec::new();
    for i in 0..n {
        let (broker, replica) = if options.broker_port == 0 {
            (free_port()?, free_port()?)
        } else {
            let broker = options.broker_port + 10 * i as u16;
            (broker, broker + 1)
        };
        ports.push((i + 1, broker, replica));
    }
    let replicas: BTreeMap<String, ReplicaAddrs> = ports
        .iter()
        .map(|(id, broker, replica)| {
            let addrs = ReplicaAddrs {
                broker: format!("127.0.0.1:{broker}"),
                replica: format!("127.0.0.1:{replica}"),
            };
            (id.to_string(), addrs)
        })
        .collect();
    Ok(ports
        .iter()
        .map(|(id, broker, replica)| BrokerConfig {
            listen_port: *broker,
            store_path_root_dir: options.data_dir.join(format!("broker-a-r{id}")),
            replication: Some(ReplicationSettings {
                replica_id: *id,
                replica_listen_port: *replica,
                replicas: replicas.clone(),
                election: options.election,
                ack: options.ack,
                ..ReplicationSettings::default()
            }),
            ..base.clone()
        })
        .collect())
}

/// A port for a replica whose address its peers must know before it binds, free a
/// moment ago and handed out once per process.
///
/// Not the kernel's choice (binding port 0): the kernel can hand that port out again at
/// once — to another listener or to an outgoing connection — before the replica binds
/// it. In the parallel tests a replica once got Raft requests carrying its own id as
/// the leader's: two replicas' addresses had crossed. Ports come from below the
/// kernel's ephemeral range (32768 and up by default), from a base that differs between
/// processes, each probed by binding it.
pub fn free_port() -> anyhow::Result<u16> {
    const LOW: u32 = 20_000;
    const SPAN: u32 = 12_000;
    static HANDED_OUT: AtomicU32 = AtomicU32::new(0);
    let base = (std::process::id() % 60) * 200;
    for _ in 0..SPAN {
        let n = HANDED_OUT.fetch_add(1, Ordering::Relaxed);
        let port = u16::try_from(LOW + (base + n) % SPAN).expect("below 32000");
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    anyhow::bail!("no free port in {LOW}..{}", LOW + SPAN)
}

/// Starts a broker with real files and sled metadata under its `store_path_root_dir`.
pub async fn start_broker_on_disk(
    config: BrokerConfig,
) -> anyhow::Result<RunningBroker<StdDisk, SledMetaStore>> {
    let root = config.store_path_root_dir.clone();
    let disk = StdDisk::new(root.join("store"))
        .map_err(|e| anyhow::anyhow!("store_path_root_dir {}: {e}", root.display()))?;
    let meta = SledMetaStore::open(root.join("meta"))?;
    crate::broker::start(config, disk, meta).await
}

impl DevCluster {
    /// Renders the metrics of the name server and every broker, for one endpoint.
    pub fn metrics_renderer(&self) -> std::sync::Arc<dyn Fn() -> String + Send + Sync> {
        let namesrv = self.namesrv.clone();
        let node_id = self.namesrv_addr.to_string();
        let brokers: Vec<_> = self.brokers.iter().map(|b| b.broker.clone()).collect();
        std::sync::Arc::new(move || {
            let mut out = crate::metrics::exposition::Exposition::default();
            crate::metrics::collect_namesrv(&namesrv, &node_id, &mut out);
            for broker in &brokers {
                broker.collect_metrics(&mut out);
            }
            out.render()
        })
    }

    pub async fn shutdown(self) -> anyhow::Result<()> {
        for broker in self.brokers {
            broker.shutdown().await?;
        }
        for task in self.namesrv_tasks {
            task.abort();
        }
        Ok(())
    }
}
