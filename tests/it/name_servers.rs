//! Several name servers side by side: the broker registers with all of them, and a
//! client can use any (or a list whose first entry is down).

use std::time::Duration;

use client::{Admin, ClientConfig, Message, Producer};
use raftmq::dev::start_broker_on_disk;

use crate::cluster::broker_config;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_name_server_routes_and_clients_fail_over_between_them() {
    let (ns_a, tasks_a) = namesrv::start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let (ns_b, tasks_b) = namesrv::start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut config = broker_config(ns_a, dir.path());
    config.namesrv_addr = format!("{ns_a};{ns_b}");
    let broker = start_broker_on_disk(config).await.unwrap();
    for ns in [ns_a, ns_b] {
        let admin = Admin::new(ClientConfig::with_namesrv(&ns.to_string()));
        let info = admin.cluster_info().await.unwrap();
        assert!(
            info.broker_addr_table.contains_key("broker-a"),
            "registered with {ns}"
        );
    }
    // The first name server in the list is down: the client uses the second.
    let dead = "127.0.0.1:1";
    let config = ClientConfig {
        request_timeout: Duration::from_secs(2),
        ..ClientConfig::with_namesrv(&format!("{dead};{ns_b}"))
    };
    let producer = Producer::new("PG", config);
    producer.send(Message::new("ViaB", "hello")).await.unwrap();
    // Name servers do not talk to each other: both learned the new topic from the broker.
    for ns in [ns_a, ns_b] {
        let admin = Admin::new(ClientConfig::with_namesrv(&ns.to_string()));
        assert!(
            admin
                .topic_list()
                .await
                .unwrap()
                .contains(&"ViaB".to_string()),
            "{ns}"
        );
    }
    broker.shutdown().await.unwrap();
    for t in tasks_a.into_iter().chain(tasks_b) {
        t.abort();
    }
}
