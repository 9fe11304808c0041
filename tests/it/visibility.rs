//! What a broker acknowledged, its reads count at once, although the store writes a
//! batch's ConsumeQueue units and index entries just after the acknowledgement.
//! GET_MAX_OFFSET and GET_CONSUME_STATS (the lag mqadmin and `raftmq group lag` show)
//! each wait for a dispatch in progress.

use std::time::Duration;

use client::{Message, Producer};
use proto::net::rpc::RpcClient;
use proto::remoting::codes::{request, response};
use proto::remoting::RemotingCommand;
use store::meta::MemMetaStore;
use store::{SimDisk, SimDiskConfig};

use crate::cluster::broker_config;

#[tokio::test]
async fn an_acknowledged_send_counts_in_get_max_offset_and_consume_stats_at_once() {
    let (namesrv, namesrv_tasks) = namesrv::start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    // Every disk operation takes 20 ms: the dispatch (a ConsumeQueue and an index write)
    // is still running when the producer's next request arrives.
    let mut disk = SimDiskConfig::reliable(9);
    disk.latency_us = Some(20_000..20_001);
    let broker = raftmq::start_broker(
        broker_config(namesrv, dir.path()),
        SimDisk::new(disk),
        MemMetaStore::new(9),
    )
    .await
    .unwrap();
    let mut config = client::ClientConfig::with_namesrv(&namesrv.to_string());
    config.request_timeout = Duration::from_secs(10);
    let producer = Producer::new("visibility-producer", config.clone());
    let admin = RpcClient::connect(&broker.local_addr.to_string(), None)
        .await
        .unwrap();
    // A group with a committed offset on every queue, so GET_CONSUME_STATS lists them.
    let group_admin = client::Admin::new(config);
    group_admin
        .create_topic("Visible", 4, None, false)
        .await
        .unwrap();
    for queue_id in 0..4 {
        let commit = RemotingCommand::request(request::UPDATE_CONSUMER_OFFSET)
            .with_ext("consumerGroup", "visibility-group")
            .with_ext("topic", "Visible")
            .with_ext("queueId", queue_id)
            .with_ext("commitOffset", 0);
        let answer = admin.invoke(commit, Duration::from_secs(10)).await.unwrap();
        assert_eq!(answer.code, response::SUCCESS, "{:?}", answer.remark);
    }
    for i in 0..3 {
        let sent = producer
            .send(Message::new("Visible", format!("m{i}")))
            .await
            .unwrap();
        let progress = group_admin
            .consumer_progress("visibility-group", "Visible")
            .await
            .unwrap();
        let row = progress
            .iter()
            .find(|p| p.queue.queue_id == sent.queue.queue_id)
            .expect("the sent-to queue is in the consume stats");
        assert_eq!(
            row.broker_offset,
            sent.queue_offset + 1,
            "send {i}: acknowledged, not counted in GET_CONSUME_STATS"
        );
        // A new send, so GET_MAX_OFFSET too is asked while its dispatch runs.
        let sent = producer
            .send(Message::new("Visible", format!("n{i}")))
            .await
            .unwrap();
        let asked = RemotingCommand::request(request::GET_MAX_OFFSET)
            .with_ext("topic", "Visible")
            .with_ext("queueId", sent.queue.queue_id);
        let answer = admin.invoke(asked, Duration::from_secs(10)).await.unwrap();
        assert_eq!(answer.code, response::SUCCESS, "{:?}", answer.remark);
        let max: u64 = answer.ext_parse("offset").unwrap();
        assert_eq!(
            max,
            sent.queue_offset + 1,
            "send {i}: acknowledged, not counted"
        );
    }
    broker.shutdown().await.unwrap();
    for t in namesrv_tasks {
        t.abort();
    }
}
