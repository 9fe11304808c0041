//! What admin tools read of a broker: a topic's queue offsets (GET_TOPIC_STATS_INFO), a
//! group's clients and subscriptions (GET_CONSUMER_CONNECTION_LIST) and runtime figures
//! (GET_BROKER_RUNTIME_INFO), through `client::Admin`.

use client::{Admin, ConsumeFromWhere, ConsumeResult, Message, Producer, PushConsumerBuilder};

use crate::cluster::TestCluster;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_stats_connections_and_runtime_figures_describe_the_broker() {
    let cluster = TestCluster::start().await;
    let admin = Admin::new(cluster.client_config());
    let producer = Producer::new("stats-producer", cluster.client_config());
    for i in 0..6 {
        producer
            .send(Message::new("StatsTopic", format!("m{i}")))
            .await
            .unwrap();
    }
    let stats = admin.topic_stats("StatsTopic").await.unwrap();
    assert_eq!(stats.len(), 4, "{stats:?}");
    assert_eq!(stats.iter().map(|(_, o)| o.max_offset).sum::<u64>(), 6);
    assert!(stats.iter().all(|(_, o)| o.min_offset == 0));
    let missing = admin.topic_stats("NoSuchTopic").await.unwrap_err();
    assert!(missing.to_string().contains("NoSuchTopic"), "{missing}");

    let consumer = PushConsumerBuilder::new("stats-group", cluster.client_config())
        .subscribe("StatsTopic", "TagA || TagB")
        .consume_from(ConsumeFromWhere::FirstOffset)
        .start(|_| ConsumeResult::Success)
        .await
        .unwrap();
    let connection = admin.consumer_connection("stats-group").await.unwrap();
    assert_eq!(connection.connection_set.len(), 1, "{connection:?}");
    assert_eq!(connection.connection_set[0].language, "RUST");
    assert_eq!(connection.message_model, "CLUSTERING");
    assert_eq!(
        connection.subscription_table["StatsTopic"].sub_string,
        "TagA || TagB"
    );
    let nobody = admin.consumer_connection("nobody").await.unwrap_err();
    assert!(nobody.to_string().contains("no client online"), "{nobody}");
    consumer.shutdown().await;

    let addr = cluster.broker.as_ref().unwrap().broker.addr().to_string();
    let info = admin.broker_runtime_info(&addr).await.unwrap();
    assert_eq!(info["msgPutTotalTodayNow"], "6");
    assert_eq!(info["raftmqRole"], "single");
    let latency = raftmq::metrics::buckets::Snapshot::decode(&info["raftmqSendLatencyMs"]).unwrap();
    assert_eq!(latency.count(), 6, "{latency:?}");
    cluster.shutdown().await;
}
