//! The real name server, broker and client, on three simulated hosts under madsim: a
//! first proof of the simulation seam (DESIGN §5) that the simulator issue grows into
//! whole-cluster runs. Only in the simulated build:
//!
//! `RUSTFLAGS="--cfg madsim" CARGO_TARGET_DIR=target/sim cargo test -p sim`
//! (`MADSIM_TEST_SEED=N` replays a seed; madsim prints the seed of a failing run).
#![cfg(madsim)]

use std::net::SocketAddr;
use std::time::Duration;

use client::{ClientConfig, Message, Producer, PullConsumer, PullStatus};
use madsim::runtime::Handle;
use raftmq::BrokerConfig;
use store::meta::MemMetaStore;
use store::{SimDisk, SimDiskConfig};

const NAMESRV: &str = "10.0.0.1:9876";
const BROKER_IP: &str = "10.0.0.2";

#[madsim::test]
async fn produce_and_pull_across_simulated_hosts() {
    let handle = Handle::current();
    let namesrv_node = handle
        .create_node()
        .name("namesrv")
        .ip("10.0.0.1".parse().unwrap())
        .build();
    let _namesrv = namesrv_node.spawn(async move {
        let (_addr, tasks) = namesrv::start(NAMESRV.parse::<SocketAddr>().unwrap())
            .await
            .unwrap();
        for t in tasks {
            let _ = t.await;
        }
    });
    let broker_node = handle
        .create_node()
        .name("broker-a")
        .ip(BROKER_IP.parse().unwrap())
        .build();
    let seed = handle.seed();
    let _broker = broker_node.spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let config = BrokerConfig {
            broker_ip1: BROKER_IP.into(),
            listen_addr: "0.0.0.0".into(),
            listen_port: 10911,
            namesrv_addr: NAMESRV.into(),
            ..BrokerConfig::default()
        };
        let disk = SimDisk::new(SimDiskConfig::reliable(seed));
        let broker = raftmq::start_broker(config, disk, MemMetaStore::new(seed))
            .await
            .unwrap();
        std::future::pending::<()>().await;
        drop(broker);
    });
    let client_node = handle
        .create_node()
        .name("client")
        .ip("10.0.0.3".parse().unwrap())
        .build();
    client_node
        .spawn(async move {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let config = ClientConfig::with_namesrv(NAMESRV);
            let producer = Producer::new("PG", config.clone());
            let mut sent = Vec::new();
            for i in 0..20 {
                sent.push(
                    producer
                        .send(Message::new("SimTopic", format!("m{i}")))
                        .await
                        .unwrap(),
                );
            }
            let consumer = PullConsumer::new("CG", config);
            let mut got = 0;
            for q in consumer.fetch_queues("SimTopic").await.unwrap() {
                let r = consumer.pull(&q, "*", 0, 32).await.unwrap();
                assert_eq!(r.status, PullStatus::Found);
                got += r.messages.len();
            }
            assert_eq!(got, sent.len());
        })
        .await
        .unwrap();
}
