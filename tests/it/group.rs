//! A Raft-replicated broker group in process over real sockets: three replicas on
//! real files (as `raftmq dev --replicas 3` starts them) and a name server, with the
//! waits the tests need (a master elected, registered, a follower caught up).

use std::time::{Duration, Instant};

use client::ClientConfig;
use raftmq::config::{AckMode, Election};
use raftmq::dev::{group_configs, start_broker_on_disk, DevOptions};
use raftmq::{BrokerConfig, RunningBroker};
use store::meta::SledMetaStore;
use store::{FlushMode, StdDisk};

pub type Running = RunningBroker<StdDisk, SledMetaStore>;

pub struct Group {
    pub namesrv: std::net::SocketAddr,
    pub configs: Vec<BrokerConfig>,
    /// By replica id - 1; `None` while a replica is down.
    pub brokers: Vec<Option<Running>>,
    namesrv_tasks: Vec<tokio::task::JoinHandle<()>>,
    /// The group's data directory (each replica under `broker-a-r{id}`).
    pub dir: tempfile::TempDir,
}

impl Group {
    pub async fn start(flush: FlushMode, election: Election, ack: AckMode) -> Group {
        Self::start_with(flush, election, ack, |_| {}).await
    }

    pub async fn start_with(
        flush: FlushMode,
        election: Election,
        ack: AckMode,
        tweak: impl Fn(&mut BrokerConfig),
    ) -> Group {
        let (namesrv, namesrv_tasks) = namesrv::start("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let options = DevOptions {
            data_dir: dir.path().to_path_buf(),
            namesrv_port: 0,
            broker_port: 0,
            flush_disk_type: flush,
            replicas: 3,
            election,
            ack,
        };
        let mut configs = group_configs(&options, namesrv).unwrap();
        for config in &mut configs {
            // Heartbeats every 2 s keep the test's route changes visible quickly.
            config.register_broker_interval_ms = 2_000;
            tweak(config);
        }
        let mut brokers = Vec::new();
        for config in &configs {
            brokers.push(Some(start_broker_on_disk(config.clone()).await.unwrap()));
        }
        let group = Group {
            namesrv,
            configs,
            brokers,
            namesrv_tasks,
            dir,
        };
        group.wait_master_registered(Duration::from_secs(15)).await;
        group
    }

    /// Waits until a replica is master and the name server routes to it, as clients see
    /// the group: a replica registers its new role just after it is elected, not at
    /// once, and until then the route may still name a replica that lost the mastership
    /// (stopping that one as a "follower" would leave the route without a master).
    /// Returns the master's index.
    pub async fn wait_master_registered(&self, within: Duration) -> usize {
        let admin = client::Admin::new(self.client_config());
        let deadline = Instant::now() + within;
        loop {
            if let (Some(master), Ok(info)) = (self.master(), admin.cluster_info().await) {
                let addr = self.brokers[master].as_ref().unwrap().local_addr;
                let registered = info
                    .broker_addr_table
                    .values()
                    .filter_map(|data| data.master_addr())
                    .any(|registered| registered.ends_with(&format!(":{}", addr.port())));
                if registered {
                    return master;
                }
            }
            assert!(
                Instant::now() < deadline,
                "no master registered with the name server"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn client_config(&self) -> ClientConfig {
        ClientConfig {
            request_timeout: Duration::from_secs(5),
            ..ClientConfig::with_namesrv(&self.namesrv.to_string())
        }
    }

    /// Index of the master among the running replicas, if one is elected.
    pub fn master(&self) -> Option<usize> {
        self.brokers.iter().position(|b| {
            b.as_ref()
                .and_then(|b| b.broker.replica())
                .is_some_and(|r| r.is_master())
        })
    }

    pub async fn wait_master(&self, within: Duration) -> usize {
        let deadline = Instant::now() + within;
        loop {
            if let Some(i) = self.master() {
                return i;
            }
            assert!(Instant::now() < deadline, "no master elected");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops a follower (cleanly); the group keeps taking writes with the other two.
    /// Returns (master, follower).
    pub async fn stop_follower(&mut self) -> (usize, usize) {
        // Not `master()`: on a loaded machine a just-started group can be between masters.
        let master = self.wait_master_registered(Duration::from_secs(10)).await;
        let follower = (0..3).find(|i| *i != master).unwrap();
        self.stop(follower).await;
        (master, follower)
    }

    /// The Raft replica of running broker `i`.
    /// Shuts replica `i` down (it can be started again from its config).
    pub async fn stop(&mut self, i: usize) {
        self.brokers[i]
            .take()
            .expect("replica running")
            .shutdown()
            .await
            .unwrap();
    }

    pub fn replica(&self, i: usize) -> std::sync::Arc<raftmq::broker::replica::Replica<StdDisk>> {
        self.brokers[i]
            .as_ref()
            .unwrap()
            .broker
            .replica()
            .unwrap()
            .clone()
    }

    /// Restarts `follower` on its own disk and waits until the master sees both
    /// followers matching its whole log.
    pub async fn restart_and_catch_up(&mut self, master: usize, follower: usize) {
        let config = self.configs[follower].clone();
        self.brokers[follower] = Some(start_broker_on_disk(config).await.unwrap());
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            // Mastership may move meanwhile (a loaded machine misses heartbeats).
            let master = self.master().unwrap_or(master);
            let lag = self.replica(master).replica_lag();
            if lag.len() == 2 && lag.values().all(|l| *l == 0) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the follower did not catch up: {lag:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn shutdown(mut self) {
        for broker in self.brokers.iter_mut().filter_map(Option::take) {
            broker.shutdown().await.unwrap();
        }
        for task in &self.namesrv_tasks {
            task.abort();
        }
    }
}
