//! An in-process cluster over real sockets on 127.0.0.1 with ephemeral ports: one name
//! server and one broker on real files (`StdDisk` + sled, as the binary runs).

use std::net::SocketAddr;
use std::time::Duration;

use client::ClientConfig;
use raftmq::dev::start_broker_on_disk;
use raftmq::{BrokerConfig, RunningBroker};
use store::meta::SledMetaStore;
use store::StdDisk;

pub struct TestCluster {
    pub namesrv: SocketAddr,
    pub broker: Option<RunningBroker<StdDisk, SledMetaStore>>,
    namesrv_tasks: Vec<tokio::task::JoinHandle<()>>,
    pub dir: tempfile::TempDir,
}

pub fn broker_config(namesrv: SocketAddr, dir: &std::path::Path) -> BrokerConfig {
    BrokerConfig {
        listen_addr: "127.0.0.1".into(),
        listen_port: 0,
        namesrv_addr: namesrv.to_string(),
        store_path_root_dir: dir.join("broker-a"),
        ..BrokerConfig::default()
    }
}

impl TestCluster {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(tweak: impl FnOnce(&mut BrokerConfig)) -> Self {
        let (namesrv, namesrv_tasks) = namesrv::start("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut config = broker_config(namesrv, dir.path());
        tweak(&mut config);
        let broker = start_broker_on_disk(config).await.unwrap();
        TestCluster {
            namesrv,
            broker: Some(broker),
            namesrv_tasks,
            dir,
        }
    }

    pub fn client_config(&self) -> ClientConfig {
        ClientConfig {
            request_timeout: Duration::from_secs(5),
            ..ClientConfig::with_namesrv(&self.namesrv.to_string())
        }
    }

    /// Restarts the broker on the same data directory and port.
    pub async fn restart_broker(&mut self) {
        let running = self.broker.take().unwrap();
        let port = running.local_addr.port();
        running.shutdown().await.unwrap();
        let mut config = broker_config(self.namesrv, self.dir.path());
        config.listen_port = port;
        self.broker = Some(start_broker_on_disk(config).await.unwrap());
    }

    pub async fn shutdown(mut self) {
        if let Some(broker) = self.broker.take() {
            broker.shutdown().await.unwrap();
        }
        for t in &self.namesrv_tasks {
            t.abort();
        }
    }
}

/// `raftmq dev --replicas 3` (Raft election, quorum ack) on ephemeral ports in a fresh
/// directory, and a client config for it with a generous timeout.
pub async fn dev_group(
    flush: store::FlushMode,
) -> (raftmq::dev::DevCluster, ClientConfig, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let cluster = raftmq::dev::start(raftmq::dev::DevOptions {
        data_dir: dir.path().to_path_buf(),
        namesrv_port: 0,
        broker_port: 0,
        flush_disk_type: flush,
        replicas: 3,
        election: raftmq::config::Election::Raft,
        ack: raftmq::config::AckMode::Quorum,
    })
    .await
    .unwrap();
    let config = ClientConfig {
        request_timeout: Duration::from_secs(10),
        ..ClientConfig::with_namesrv(&cluster.namesrv_addr.to_string())
    };
    (cluster, config, dir)
}

/// Sends each message until it is acknowledged (a new group may be electing its master).
pub async fn send_acked(
    producer: &client::Producer,
    messages: impl Iterator<Item = client::Message>,
) -> Vec<client::SendResult> {
    let mut sent = Vec::new();
    for message in messages {
        loop {
            match producer.send(message.clone()).await {
                Ok(r) if r.status == client::SendStatus::Ok => break sent.push(r),
                _ => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }
    sent
}
