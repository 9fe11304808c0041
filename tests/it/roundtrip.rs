//! Produce and consume through the name server with raftmq's own client.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use client::{
    Admin, ConsumeFromWhere, ConsumeResult, Message, MessageModel, Producer, PullConsumer,
    PullStatus, PushConsumerBuilder,
};

use crate::cluster::TestCluster;

/// Waits until `done` holds, or panics after `limit`.
pub async fn eventually(limit: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + limit;
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Polls `probe` until it yields a value, or panics after `limit`.
pub async fn eventually_async<T, F: std::future::Future<Output = Option<T>>>(
    limit: Duration,
    what: &str,
    mut probe: impl FnMut() -> F,
) -> T {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_messages_with_a_tag_filter_are_all_consumed() {
    let cluster = TestCluster::start().await;
    let admin = Admin::new(cluster.client_config());
    admin
        .create_topic("TagTopic", 4, None, false)
        .await
        .unwrap();
    let producer = Arc::new(Producer::new("PG", cluster.client_config()));
    let mut tasks = Vec::new();
    for worker in 0..8 {
        let producer = producer.clone();
        tasks.push(tokio::spawn(async move {
            for i in (worker..10_000).step_by(8) {
                let tag = if i % 2 == 0 { "TagA" } else { "TagB" };
                let m = Message::new("TagTopic", format!("m{i}"))
                    .with_tags(tag)
                    .with_keys([format!("k{i}")]);
                producer.send(m).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let seen = Arc::new(Mutex::new(BTreeSet::new()));
    let sink = seen.clone();
    let consumer = PushConsumerBuilder::new("CG-tag", cluster.client_config())
        .subscribe("TagTopic", "TagA")
        .consume_from(ConsumeFromWhere::FirstOffset)
        .start(move |msgs| {
            for m in msgs {
                assert_eq!(m.tags.as_deref(), Some("TagA"));
                sink.lock()
                    .unwrap()
                    .insert(String::from_utf8(m.body.to_vec()).unwrap());
            }
            ConsumeResult::Success
        })
        .await
        .unwrap();
    eventually(Duration::from_secs(60), "5,000 TagA messages", || {
        seen.lock().unwrap().len() == 5_000
    })
    .await;
    // Its four queues of the topic, and its group's retry queue.
    let assigned = consumer.assigned_queues();
    assert_eq!(assigned.len(), 5, "{assigned:?}");
    assert_eq!(
        assigned
            .iter()
            .filter(|q| q.topic == "%RETRY%CG-tag")
            .count(),
        1
    );
    consumer.shutdown().await;
    let expected: BTreeSet<String> = (0..10_000).step_by(2).map(|i| format!("m{i}")).collect();
    assert_eq!(*seen.lock().unwrap(), expected);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_consumer_reads_explicit_queues_and_offsets() {
    let cluster = TestCluster::start().await;
    let producer = Producer::new("PG", cluster.client_config());
    // Auto-create through TBW102.
    for i in 0..20 {
        producer
            .send(Message::new("AutoTopic", format!("m{i}")))
            .await
            .unwrap();
    }
    let consumer = PullConsumer::new("PullG", cluster.client_config());
    let queues = consumer.fetch_queues("AutoTopic").await.unwrap();
    assert_eq!(queues.len(), 4);
    let mut total = 0;
    for q in &queues {
        let r = consumer.pull(q, "*", 0, 32).await.unwrap();
        assert_eq!(r.status, PullStatus::Found);
        total += r.messages.len();
        assert_eq!(r.next_begin_offset, r.messages.len() as u64);
        let empty = consumer
            .pull(q, "*", r.next_begin_offset, 32)
            .await
            .unwrap();
        assert_eq!(empty.status, PullStatus::NoNewMsg);
        consumer
            .commit_offset(q, r.next_begin_offset)
            .await
            .unwrap();
        assert_eq!(
            consumer.fetch_offset(q).await.unwrap(),
            Some(r.next_begin_offset)
        );
    }
    assert_eq!(total, 20);
    // Long polling: a pull at the end waits for the next message.
    let q = queues[0].clone();
    let offset = consumer.fetch_offset(&q).await.unwrap().unwrap();
    let waiter = tokio::spawn(async move {
        consumer
            .pull_blocking(&q, "*", offset, 32, Some(Duration::from_secs(10)))
            .await
            .unwrap()
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiter.is_finished(), "the pull parks while nothing is new");
    for i in 0..4 {
        producer
            .send(Message::new("AutoTopic", format!("late{i}")))
            .await
            .unwrap();
    }
    let r = tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.status, PullStatus::Found);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_split_the_queues_and_one_takes_over_when_the_other_leaves() {
    let cluster = TestCluster::start().await;
    Admin::new(cluster.client_config())
        .create_topic("Shared", 8, None, false)
        .await
        .unwrap();
    let producer = Producer::new("PG", cluster.client_config());
    for i in 0..400 {
        producer
            .send(Message::new("Shared", format!("m{i}")))
            .await
            .unwrap();
    }
    let seen = Arc::new(Mutex::new(Vec::<String>::new()));
    let start = |name: &'static str| {
        let sink = seen.clone();
        let config = client::ClientConfig {
            instance_name: name.into(),
            ..cluster.client_config()
        };
        PushConsumerBuilder::new("CG-shared", config)
            .subscribe("Shared", "*")
            .intervals(Duration::from_secs(2), Duration::from_millis(200))
            .start(move |msgs| {
                sink.lock().unwrap().extend(
                    msgs.iter()
                        .map(|m| String::from_utf8(m.body.to_vec()).unwrap()),
                );
                ConsumeResult::Success
            })
    };
    let a = start("a").await.unwrap();
    let b = start("b").await.unwrap();
    // Each also has, or not, the group's one retry queue.
    let shared = |c: &client::PushConsumer| -> Vec<client::MessageQueue> {
        let queues = c.assigned_queues().into_iter();
        queues.filter(|q| q.topic == "Shared").collect()
    };
    eventually(Duration::from_secs(20), "a 4/4 split", || {
        shared(&a).len() == 4 && shared(&b).len() == 4
    })
    .await;
    let mut qa: Vec<_> = shared(&a);
    qa.extend(shared(&b));
    qa.sort();
    qa.dedup();
    assert_eq!(qa.len(), 8, "each queue has one owner");
    eventually(Duration::from_secs(30), "first 400", || {
        seen.lock().unwrap().iter().collect::<BTreeSet<_>>().len() == 400
    })
    .await;
    a.shutdown().await;
    eventually(Duration::from_secs(20), "b takes all queues", || {
        shared(&b).len() == 8
    })
    .await;
    for i in 400..800 {
        producer
            .send(Message::new("Shared", format!("m{i}")))
            .await
            .unwrap();
    }
    eventually(Duration::from_secs(30), "all 800", || {
        seen.lock().unwrap().iter().collect::<BTreeSet<_>>().len() == 800
    })
    .await;
    b.shutdown().await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broadcasting_delivers_everything_to_every_instance() {
    let cluster = TestCluster::start().await;
    Admin::new(cluster.client_config())
        .create_topic("Bcast", 4, None, false)
        .await
        .unwrap();
    let producer = Producer::new("PG", cluster.client_config());
    for i in 0..100 {
        producer
            .send(Message::new("Bcast", format!("m{i}")))
            .await
            .unwrap();
    }
    let mut consumers = Vec::new();
    let mut sinks = Vec::new();
    for name in ["x", "y"] {
        let sink = Arc::new(Mutex::new(BTreeSet::new()));
        let s = sink.clone();
        let config = client::ClientConfig {
            instance_name: name.into(),
            ..cluster.client_config()
        };
        consumers.push(
            PushConsumerBuilder::new("CG-bcast", config)
                .subscribe("Bcast", "*")
                .message_model(MessageModel::Broadcasting)
                .consume_from(ConsumeFromWhere::FirstOffset)
                .start(move |msgs| {
                    s.lock().unwrap().extend(
                        msgs.iter()
                            .map(|m| m.queue_offset * 10 + u64::from(m.queue_id)),
                    );
                    ConsumeResult::Success
                })
                .await
                .unwrap(),
        );
        sinks.push(sink);
    }
    for sink in &sinks {
        eventually(
            Duration::from_secs(20),
            "every message at every instance",
            || sink.lock().unwrap().len() == 100,
        )
        .await;
    }
    for c in consumers {
        c.shutdown().await;
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ordered_messages_with_a_selector_arrive_in_order_per_queue() {
    let cluster = TestCluster::start().await;
    Admin::new(cluster.client_config())
        .create_topic("Orders", 4, None, true)
        .await
        .unwrap();
    let producer = Producer::new("PG", cluster.client_config());
    for i in 0..200u32 {
        let order = i % 10;
        let m = Message::new("Orders", format!("{order}:{i}"));
        producer
            .send_with_selector(m, |queues| order as usize % queues.len())
            .await
            .unwrap();
    }
    let seen = Arc::new(Mutex::new(Vec::<(u32, u32)>::new()));
    let sink = seen.clone();
    let consumer = PushConsumerBuilder::new("CG-orders", cluster.client_config())
        .subscribe("Orders", "*")
        .orderly(true)
        .consume_from(ConsumeFromWhere::FirstOffset)
        .start(move |msgs| {
            for m in msgs {
                let body = String::from_utf8(m.body.to_vec()).unwrap();
                let (order, i) = body.split_once(':').unwrap();
                sink.lock()
                    .unwrap()
                    .push((order.parse().unwrap(), i.parse().unwrap()));
            }
            ConsumeResult::Success
        })
        .await
        .unwrap();
    eventually(Duration::from_secs(20), "200 ordered messages", || {
        seen.lock().unwrap().len() == 200
    })
    .await;
    consumer.shutdown().await;
    let seen = seen.lock().unwrap().clone();
    for order in 0..10 {
        let sequence: Vec<u32> = seen
            .iter()
            .filter(|(o, _)| *o == order)
            .map(|(_, i)| *i)
            .collect();
        let mut sorted = sequence.clone();
        sorted.sort();
        assert_eq!(sequence, sorted, "order {order} arrived out of order");
        assert_eq!(sequence.len(), 20);
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_restart_keeps_data_and_offsets() {
    let mut cluster = TestCluster::start().await;
    Admin::new(cluster.client_config())
        .create_topic("Durable", 2, None, false)
        .await
        .unwrap();
    let producer = Producer::new("PG", cluster.client_config());
    for i in 0..50 {
        producer
            .send(Message::new("Durable", format!("m{i}")).with_keys([format!("key{i}")]))
            .await
            .unwrap();
    }
    let consumer = PullConsumer::new("DurableG", cluster.client_config());
    let queues = consumer.fetch_queues("Durable").await.unwrap();
    consumer.commit_offset(&queues[0], 7).await.unwrap();
    cluster.restart_broker().await;
    let consumer = PullConsumer::new("DurableG", cluster.client_config());
    assert_eq!(consumer.fetch_offset(&queues[0]).await.unwrap(), Some(7));
    let mut total = 0;
    for q in &queues {
        total += consumer.pull(q, "*", 0, 64).await.unwrap().messages.len();
    }
    assert_eq!(total, 50);
    let admin = Admin::new(cluster.client_config());
    let found = admin.query_by_key("Durable", "key42", 8).await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(&found[0].body[..], b"m42");
    let by_id = admin.view_by_id(&found[0].offset_msg_id).await.unwrap();
    assert_eq!(by_id.body, found[0].body);
    // By either id, as mqadmin queryMsgById: the offset msg id alone; the producer's
    // unique id (any case) with its topic; a unique id without one is refused by name.
    let offset_id = &found[0].offset_msg_id;
    let unique_id = &found[0].msg_id;
    assert_ne!(offset_id, unique_id);
    let by_offset = admin.find_by_id(offset_id, None).await.unwrap();
    assert_eq!(by_offset.len(), 1);
    assert_eq!(&by_offset[0].body[..], b"m42");
    let lower = unique_id.to_ascii_lowercase();
    let by_unique = admin.find_by_id(&lower, Some("Durable")).await.unwrap();
    assert_eq!(by_unique.len(), 1);
    assert_eq!(&by_unique[0].body[..], b"m42");
    let e = admin
        .find_by_id(unique_id, None)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("unique id") && e.contains(unique_id.as_str()),
        "{e}"
    );
    let mut other = unique_id.clone();
    other.replace_range(31.., if unique_id.ends_with('0') { "1" } else { "0" });
    let e = admin
        .find_by_id(&other, Some("Durable"))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("no message of Durable"), "{e}");
    cluster.shutdown().await;
}
