//! Timer messages (RocketMQ 5's `TIMER_DELAY_SEC` / `TIMER_DELAY_MS` /
//! `TIMER_DELIVER_MS`): delivered to the queue the producer chose once due, never
//! before; refused by name when malformed or too far; carried over a failover.

use std::time::{Duration, Instant};

use client::{Message, MessageExt, Producer, PullConsumer, PullStatus};
use raftmq::config::{AckMode, Election};

use crate::cluster::TestCluster;
use crate::group::Group;
use crate::roundtrip::eventually_async;

/// Every message of queue `queue_id` of `topic`, in queue order.
async fn queue_messages(
    config: client::ClientConfig,
    topic: &str,
    queue_id: usize,
) -> Vec<MessageExt> {
    let consumer = PullConsumer::new("TimerReader", config);
    let Ok(queues) = consumer.fetch_queues(topic).await else {
        return Vec::new();
    };
    let mut messages = Vec::new();
    let mut offset = 0;
    loop {
        let Ok(got) = consumer.pull(&queues[queue_id], "*", offset, 32).await else {
            return messages;
        };
        if got.status != PullStatus::Found {
            return messages;
        }
        offset = got.next_begin_offset;
        messages.extend(got.messages);
    }
}

fn body(m: &MessageExt) -> String {
    String::from_utf8(m.body.to_vec()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timer_messages_arrive_in_their_queue_once_due_and_not_before() {
    let cluster = TestCluster::start().await;
    let config = cluster.client_config();
    let admin = client::Admin::new(config.clone());
    admin.create_topic("Timers", 4, None, false).await.unwrap();
    let producer = Producer::new("PG", config.clone());
    let consumer = PullConsumer::new("TimerReader", config.clone());
    let queues = consumer.fetch_queues("Timers").await.unwrap();
    let sent_ms = proto::clock::now_ms();
    let started = Instant::now();
    // Sent latest-first: each is delivered at its own time, not in send order.
    let timers = [
        Message::new("Timers", "2.5 s").with_timer_delay_ms(2_500),
        Message::new("Timers", "1.5 s").with_deliver_time_ms(sent_ms + 1_500),
        Message::new("Timers", "1 s").with_property("TIMER_DELAY_SEC", "1"),
    ];
    for m in &timers {
        let sent = producer.send_to(m, &queues[1]).await.unwrap();
        assert_eq!(
            sent.queue.queue_id, 1,
            "the answer names the producer's queue"
        );
    }
    producer
        .send_to(&Message::new("Timers", "now"), &queues[1])
        .await
        .unwrap();
    let early = queue_messages(config.clone(), "Timers", 1).await;
    assert_eq!(early.iter().map(body).collect::<Vec<_>>(), ["now"]);

    let delivered = eventually_async(Duration::from_secs(15), "the timer messages", || async {
        let got = queue_messages(config.clone(), "Timers", 1).await;
        (got.len() == 4).then_some(got)
    })
    .await;
    assert!(started.elapsed() >= Duration::from_millis(2_400));
    // Within a second the wheel keeps the order its slot got them in (second
    // precision): "1 s" may follow "1.5 s", never "2.5 s".
    let bodies: Vec<String> = delivered.iter().map(body).collect();
    assert_eq!(bodies[0], "now");
    assert_eq!(bodies[3], "2.5 s");
    let by_body = |b: &str| delivered.iter().find(|m| body(m) == b).unwrap();
    for (m, delay_ms) in ["1 s", "1.5 s", "2.5 s"]
        .map(by_body)
        .into_iter()
        .zip([1_000, 1_500, 2_500])
    {
        // Never early: stored in the topic only once due.
        assert!(
            m.store_timestamp_ms >= sent_ms + delay_ms,
            "{} stored {} ms after the sends",
            body(m),
            m.store_timestamp_ms - sent_ms
        );
        let out: i64 = m.properties["TIMER_OUT_MS"].parse().unwrap();
        assert!(out >= sent_ms + delay_ms && m.store_timestamp_ms >= out);
        for gone in [
            "REAL_TOPIC",
            "REAL_QID",
            "TIMER_DELAY_MS",
            "TIMER_DELAY_SEC",
            "TIMER_DELIVER_MS",
        ] {
            assert!(
                !m.properties.contains_key(gone),
                "{gone} left on {}",
                body(m)
            );
        }
    }
    let pending = admin
        .await_runtime_zero(
            &["raftmqTimersPending"],
            Duration::from_secs(5),
            Duration::from_millis(100),
        )
        .await;
    assert_eq!(pending, Some(0));
    // A timer an hour away waits in the wheel's minute ring, counted as pending.
    producer
        .send(Message::new("Timers", "in an hour").with_timer_delay_ms(3_600_000))
        .await
        .unwrap();
    eventually_async(Duration::from_secs(5), "one timer pending", || async {
        (admin.runtime_sum("raftmqTimersPending").await == Some(1)).then_some(())
    })
    .await;
    for queue_id in 0..4 {
        let got = queue_messages(config.clone(), "Timers", queue_id).await;
        assert!(
            got.iter().all(|m| body(m) != "in an hour"),
            "delivered early"
        );
    }

    // Refused by name: not a number, beyond timer_max_delay_sec, inside a batch.
    for (name, value, says) in [
        ("TIMER_DELAY_SEC", "soon", "TIMER_DELAY_SEC \"soon\""),
        ("TIMER_DELAY_MS", "259200001", "timer_max_delay_sec"),
    ] {
        let e = producer
            .send(Message::new("Timers", "x").with_property(name, value))
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains(says), "{e}");
    }
    let batch = vec![
        Message::new("Timers", "a"),
        Message::new("Timers", "b").with_timer_delay_ms(1_000),
    ];
    let e = producer.send_batch(batch).await.unwrap_err().to_string();
    assert!(
        e.contains("a batch cannot hold delayed or timer messages (TIMER_DELAY_MS)"),
        "{e}"
    );
    cluster.shutdown().await;
}

/// The wheel's progress is replicated: a timer message sent to one master is delivered
/// by the next once due, and not before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_master_delivers_the_timers_the_old_one_took() {
    let mut group = Group::start(store::FlushMode::Async, Election::Raft, AckMode::Quorum).await;
    let config = group.client_config();
    let admin = client::Admin::new(config.clone());
    eventually_async(Duration::from_secs(20), "the group's master", || async {
        admin.create_topic("GroupTimers", 2, None, false).await.ok()
    })
    .await;
    let producer = Producer::new("PG", config.clone());
    crate::cluster::send_acked(
        &producer,
        std::iter::once(Message::new("GroupTimers", "plain")),
    )
    .await;
    let sent_ms = proto::clock::now_ms();
    for (name, delay_ms) in [("soon", 300), ("after failover", 4_000)] {
        eventually_async(Duration::from_secs(10), "a timer send", || async {
            producer
                .send(Message::new("GroupTimers", name).with_timer_delay_ms(delay_ms))
                .await
                .ok()
        })
        .await;
    }
    let all = |n: usize| {
        let config = config.clone();
        async move {
            let mut got = queue_messages(config.clone(), "GroupTimers", 0).await;
            got.extend(queue_messages(config, "GroupTimers", 1).await);
            (got.len() >= n).then_some(got)
        }
    };
    eventually_async(Duration::from_secs(10), "the first timer", || all(2)).await;
    let master = group.wait_master_registered(Duration::from_secs(10)).await;
    group.stop(master).await;
    let new_master = group.wait_master_registered(Duration::from_secs(15)).await;
    assert_ne!(new_master, master);
    let got = eventually_async(Duration::from_secs(20), "the timer left pending", || all(3)).await;
    let late = got.iter().find(|m| body(m) == "after failover").unwrap();
    assert!(late.store_timestamp_ms >= sent_ms + 4_000);
    let mut bodies: Vec<String> = got.iter().map(body).collect();
    bodies.sort();
    assert_eq!(bodies, ["after failover", "plain", "soon"], "each once");
    group.shutdown().await;
}
