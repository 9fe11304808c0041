//! `raftmq dev`: a name server and a one-replica broker in one process, on RocketMQ's
//! default ports, with data under `./raftmq-data`. The embedded default for trying
//! raftmq out; not a deployment.

use std::net::SocketAddr;
use std::path::PathBuf;

use store::meta::SledMetaStore;
use store::StdDisk;

use crate::broker::RunningBroker;
use crate::config::BrokerConfig;

pub struct DevCluster {
    pub namesrv_addr: SocketAddr,
    pub broker: RunningBroker<StdDisk, SledMetaStore>,
    namesrv_tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// Starts the name server on `namesrv_port` and the broker on `broker_port` (0 picks
/// free ports), storing under `data_dir`.
pub async fn start(
    data_dir: PathBuf,
    namesrv_port: u16,
    broker_port: u16,
    flush_disk_type: store::FlushMode,
) -> anyhow::Result<DevCluster> {
    let (namesrv_addr, namesrv_tasks) =
        namesrv::start(SocketAddr::from(([127, 0, 0, 1], namesrv_port))).await?;
    let config = BrokerConfig {
        broker_ip1: "127.0.0.1".into(),
        listen_addr: "127.0.0.1".into(),
        listen_port: broker_port,
        namesrv_addr: namesrv_addr.to_string(),
        store_path_root_dir: data_dir.join("broker-a"),
        flush_disk_type,
        ..BrokerConfig::default()
    };
    let broker = start_broker_on_disk(config).await?;
    Ok(DevCluster {
        namesrv_addr,
        broker,
        namesrv_tasks,
    })
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
    pub async fn shutdown(self) -> anyhow::Result<()> {
        self.broker.shutdown().await?;
        for task in self.namesrv_tasks {
            task.abort();
        }
        Ok(())
    }
}
