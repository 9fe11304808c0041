//! CONSUMER_SEND_MSG_BACK: a failed message comes back through `%RETRY%group` after its
//! delay, and goes to `%DLQ%group` after the last retry.

use std::time::Duration;

use client::{Message, Producer, PullConsumer, PullStatus};
use proto::net::rpc::RpcClient;
use proto::remoting::codes::{request, response};
use proto::remoting::RemotingCommand;

use crate::cluster::TestCluster;
use crate::roundtrip::eventually_async;

const TIMEOUT: Duration = Duration::from_secs(5);

fn send_back(offset: u64, group: &str, delay_level: i32, max_reconsume: i32) -> RemotingCommand {
    RemotingCommand::request(request::CONSUMER_SEND_MSG_BACK)
        .with_ext("offset", offset)
        .with_ext("group", group)
        .with_ext("delayLevel", delay_level)
        .with_ext("maxReconsumeTimes", max_reconsume)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sent_back_messages_return_through_the_retry_topic_then_the_dlq() {
    let cluster = TestCluster::start().await;
    let producer = Producer::new("PG", cluster.client_config());
    let sent = producer
        .send(Message::new("Work", "fragile").with_keys(["job-1"]))
        .await
        .unwrap();
    let offset = u64::from_str_radix(&sent.offset_msg_id[16..], 16).unwrap();
    let rpc = RpcClient::connect(
        &cluster.broker.as_ref().unwrap().local_addr.to_string(),
        None,
    )
    .await
    .unwrap();

    // Delay level 1 (1 s): the message shows up in the retry topic, once retried.
    let reply = rpc
        .invoke(send_back(offset, "Workers", 1, 16), TIMEOUT)
        .await
        .unwrap();
    assert_eq!(reply.code, response::SUCCESS, "{:?}", reply.remark);
    let consumer = PullConsumer::new("Workers", cluster.client_config());
    let retried = eventually_async(Duration::from_secs(10), "the retry", || async {
        let queues = consumer.fetch_queues("%RETRY%Workers").await.ok()?;
        let r = consumer.pull(&queues[0], "*", 0, 8).await.ok()?;
        (r.status == PullStatus::Found).then(|| r.messages[0].clone())
    })
    .await;
    assert_eq!(&retried.body[..], b"fragile");
    assert_eq!(retried.reconsume_times, 1);
    assert_eq!(
        retried.properties.get("RETRY_TOPIC").map(String::as_str),
        Some("Work")
    );
    assert!(retried.store_timestamp_ms >= 1_000 + sent_store_time(&consumer, &sent).await);

    // Past maxReconsumeTimes: straight to the dead-letter topic.
    let reply = rpc
        .invoke(
            send_back(retried.commitlog_offset, "Workers", 0, 1),
            TIMEOUT,
        )
        .await
        .unwrap();
    assert_eq!(reply.code, response::SUCCESS, "{:?}", reply.remark);
    let queues = consumer.fetch_queues("%DLQ%Workers").await.unwrap();
    let dead = consumer.pull(&queues[0], "*", 0, 8).await.unwrap();
    assert_eq!(dead.messages.len(), 1);
    assert_eq!(dead.messages[0].reconsume_times, 2);

    // A send-back naming no stored message is refused with a reason.
    let reply = rpc
        .invoke(send_back(offset + 1, "Workers", 1, 16), TIMEOUT)
        .await
        .unwrap();
    assert_ne!(reply.code, response::SUCCESS);

    // An origin id that would break the stored message's properties apart is refused.
    let reply = rpc
        .invoke(
            send_back(offset, "Workers", 1, 16).with_ext("originMsgId", "id\u{2}X\u{1}Y"),
            TIMEOUT,
        )
        .await
        .unwrap();
    assert_eq!(reply.code, response::MESSAGE_ILLEGAL, "{:?}", reply.remark);

    // A client older than V3_4_9 (the C++ client writes V3_1_8, version 63) gets its
    // group's retryMaxTimes whatever bound it sends, as from Java's broker.
    let admin = client::Admin::new(cluster.client_config());
    let group = proto::remoting::body::SubscriptionGroupBody {
        group_name: "CppWorkers".into(),
        retry_max_times: 0,
        ..Default::default()
    };
    admin.create_subscription_group(&group, None).await.unwrap();
    let mut old_client = send_back(offset, "CppWorkers", 0, 16);
    old_client.version = 63;
    let reply = rpc.invoke(old_client, TIMEOUT).await.unwrap();
    assert_eq!(reply.code, response::SUCCESS, "{:?}", reply.remark);
    let queues = consumer.fetch_queues("%DLQ%CppWorkers").await.unwrap();
    let dead = consumer.pull(&queues[0], "*", 0, 8).await.unwrap();
    assert_eq!(dead.messages.len(), 1, "{:?}", dead.status);
    cluster.shutdown().await;
}

async fn sent_store_time(consumer: &PullConsumer, sent: &client::SendResult) -> i64 {
    let r = consumer
        .pull(&sent.queue, "*", sent.queue_offset, 1)
        .await
        .unwrap();
    r.messages[0].store_timestamp_ms
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_producers_delay_level_delivers_to_its_queue_once_due_and_not_before() {
    let cluster = TestCluster::start().await;
    let admin = client::Admin::new(cluster.client_config());
    admin.create_topic("Later", 4, None, false).await.unwrap();
    let producer = Producer::new("PG", cluster.client_config());
    let consumer = PullConsumer::new("Readers", cluster.client_config());
    let queues = consumer.fetch_queues("Later").await.unwrap();
    // Level 1 is 1 s.
    let before_send_ms = proto::clock::now_ms();
    let sent = producer
        .send_to(
            &Message::new("Later", "in a second").with_property("DELAY", "1"),
            &queues[2],
        )
        .await
        .unwrap();
    let sent_at = std::time::Instant::now();
    // The answer names the queue the producer chose, as Java's broker's does.
    assert_eq!(sent.queue.queue_id, 2);
    let pulled = consumer.pull(&queues[2], "*", 0, 8).await.unwrap();
    assert!(
        pulled.messages.is_empty(),
        "delivered before its delay: {:?}",
        pulled.status
    );
    let delivered = eventually_async(Duration::from_secs(10), "the delayed message", || async {
        let r = consumer.pull(&queues[2], "*", 0, 8).await.ok()?;
        (r.status == PullStatus::Found).then(|| r.messages[0].clone())
    })
    .await;
    assert!(sent_at.elapsed() >= Duration::from_millis(900));
    assert_eq!(&delivered.body[..], b"in a second");
    assert_eq!(delivered.queue_id, 2);
    assert!(!delivered.properties.contains_key("DELAY"));
    // Never early: stored in its topic at least the level's delay after the send.
    assert!(delivered.store_timestamp_ms >= before_send_ms + 1_000);
    // A level that is not a number is refused by name.
    let refused = producer
        .send(Message::new("Later", "x").with_property("DELAY", "soon"))
        .await
        .unwrap_err()
        .to_string();
    assert!(refused.contains("DELAY"), "{refused}");
    cluster.shutdown().await;
}
