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

/// Every delay level 1 s: a send-back returns within a test's time.
fn quick_retries(config: &mut raftmq::BrokerConfig) {
    config.message_delay_level = "1s 1s 1s 1s 1s".into();
}

/// What the push consumer's listener saw: (topic, body, reconsume times).
type Seen = std::sync::Arc<std::sync::Mutex<Vec<(String, String, i32)>>>;

/// A raftmq `PushConsumer` (concurrent, clustering) whose listener fails "flaky" once and
/// "poison" always: both are sent back and return through `%RETRY%Flaky` showing their
/// own topic, "poison" goes to `%DLQ%Flaky` after the group's `retryMaxTimes` (2), and
/// the queue moves on meanwhile. Returns the consumer, still running.
async fn failures_go_back_through_retry_then_dlq(
    config: client::ClientConfig,
) -> (client::PushConsumer, Seen) {
    use client::{ConsumeFromWhere, ConsumeResult, PushConsumerBuilder};
    let admin = client::Admin::new(config.clone());
    let group = proto::remoting::body::SubscriptionGroupBody {
        group_name: "Flaky".into(),
        retry_max_times: 2,
        ..Default::default()
    };
    eventually_async(Duration::from_secs(20), "the group's master", || async {
        admin.create_subscription_group(&group, None).await.ok()
    })
    .await;
    admin.create_topic("Jobs", 1, None, false).await.unwrap();
    let seen = Seen::default();
    let seen_log = seen.clone();
    let record = seen.clone();
    let consumer = PushConsumerBuilder::new("Flaky", config.clone())
        .subscribe("Jobs", "*")
        .consume_from(ConsumeFromWhere::FirstOffset)
        .intervals(Duration::from_secs(1), Duration::from_millis(200))
        .start(move |messages| {
            let m = &messages[0];
            let body = String::from_utf8(m.body.to_vec()).unwrap();
            let result = match body.as_str() {
                "poison" => ConsumeResult::Later,
                "flaky" if m.reconsume_times == 0 => ConsumeResult::Later,
                _ => ConsumeResult::Success,
            };
            let mut seen = record.lock().unwrap();
            seen.push((m.topic.clone(), body, m.reconsume_times));
            result
        })
        .await
        .unwrap();
    let producer = Producer::new("PG", config.clone());
    crate::cluster::send_acked(
        &producer,
        ["flaky", "poison", "fine"]
            .into_iter()
            .map(|b| Message::new("Jobs", b)),
    )
    .await;
    let reader = PullConsumer::new("DeadLetterReader", config.clone());
    let dead = eventually_async(Duration::from_secs(30), "the dead letter", || async {
        let queues = reader.fetch_queues("%DLQ%Flaky").await.ok()?;
        let r = reader.pull(&queues[0], "*", 0, 8).await.ok()?;
        (r.status == PullStatus::Found).then_some(r.messages)
    })
    .await;
    assert_eq!(dead.len(), 1);
    assert_eq!(&dead[0].body[..], b"poison");
    assert_eq!(dead[0].reconsume_times, 3);
    assert_eq!(
        dead[0].properties.get("RETRY_TOPIC").map(String::as_str),
        Some("Jobs")
    );
    // Nothing comes back from the dead-letter topic.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let mut seen = seen.lock().unwrap().clone();
    seen.sort_by(|a, b| (&a.1, a.2).cmp(&(&b.1, b.2)));
    let expected: Vec<(String, String, i32)> = [
        ("fine", 0),
        ("flaky", 0),
        ("flaky", 1),
        ("poison", 0),
        ("poison", 1),
        ("poison", 2),
    ]
    .into_iter()
    .map(|(body, times)| ("Jobs".to_string(), body.to_string(), times))
    .collect();
    assert_eq!(seen, expected);
    (consumer, seen_log)
}

/// Every message of "Jobs" counts as consumed: the retries live elsewhere.
async fn assert_jobs_consumed(config: client::ClientConfig) {
    let admin = client::Admin::new(config);
    let progress = admin.consumer_progress("Flaky", "Jobs").await.unwrap();
    assert_eq!(
        progress.iter().map(|q| q.lag()).sum::<u64>(),
        0,
        "{progress:?}"
    );
}

/// Runs the `raftmq` binary against the name server `namesrv`; returns its stdout.
async fn raftmq_cli(namesrv: String, args: &[&str]) -> String {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_raftmq"))
            .arg("-n")
            .arg(namesrv)
            .args(args)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_consumer_sends_failures_back_on_a_single_broker() {
    let cluster = TestCluster::start_with(quick_retries).await;
    let config = cluster.client_config();
    let (consumer, seen) = failures_go_back_through_retry_then_dlq(config.clone()).await;
    assert_jobs_consumed(config).await;

    // `raftmq dlq list` shows the dead letter; `resend` gives it to the group again.
    let namesrv = cluster.namesrv.to_string();
    let listed = raftmq_cli(namesrv.clone(), &["dlq", "list", "-g", "Flaky"]).await;
    assert_eq!(listed.lines().count(), 1, "{listed}");
    assert!(listed.contains("from=Jobs reconsumed=3"), "{listed}");
    assert!(listed.ends_with("body=poison\n"), "{listed}");
    let id = listed
        .split("msgId=")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap();
    let resent = raftmq_cli(namesrv.clone(), &["dlq", "resend", "-g", "Flaky", "-i", id]).await;
    assert!(
        resent.starts_with(&format!("resent {id} to %RETRY%Flaky")),
        "{resent}"
    );
    eventually_async(
        Duration::from_secs(10),
        "the resent dead letter",
        || async {
            let seen = seen.lock().unwrap();
            (seen.iter().filter(|s| s.1 == "poison" && s.2 == 0).count() == 2).then_some(())
        },
    )
    .await;
    assert_eq!(seen.lock().unwrap().last().unwrap().0, "Jobs");
    let unknown = raftmq_cli(namesrv.clone(), &["dlq", "list", "-g", "Nobody"]).await;
    assert_eq!(unknown, "no dead letters for group Nobody\n");
    consumer.shutdown().await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_consumer_sends_failures_back_on_a_raft_group() {
    use raftmq::config::{AckMode, Election};
    let group = crate::group::Group::start_with(
        store::FlushMode::Async,
        Election::Raft,
        AckMode::Quorum,
        quick_retries,
    )
    .await;
    group.wait_master_registered(Duration::from_secs(20)).await;
    let (consumer, _) = failures_go_back_through_retry_then_dlq(group.client_config()).await;
    consumer.shutdown().await;
    assert_jobs_consumed(group.client_config()).await;
    group.shutdown().await;
}

/// A consumer whose send-back the broker refused sends the copy to the retry topic
/// itself (`client::send_back::fallback_copy`, as Java's consumer does): its counts
/// travel in the send's header, it waits out its delay, and once reconsumed more than
/// the bound it goes to the dead-letter topic instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumers_own_retry_copy_waits_its_delay_or_is_a_dead_letter() {
    use client::send_back::fallback_copy;
    let cluster = TestCluster::start_with(quick_retries).await;
    let config = cluster.client_config();
    let admin = client::Admin::new(config.clone());
    admin.create_topic("Work2", 1, None, false).await.unwrap();
    admin
        .create_topic("%RETRY%Raw", 1, None, false)
        .await
        .unwrap();
    let producer = Producer::new("PG", config.clone());
    producer
        .send(Message::new("Work2", "fragile").with_property("tenant", "acme"))
        .await
        .unwrap();
    let reader = PullConsumer::new("Reader", config.clone());
    let pull_one = |topic: &'static str| {
        let reader = &reader;
        async move {
            let queues = reader.fetch_queues(topic).await.ok()?;
            let r = reader.pull(&queues[0], "*", 0, 8).await.ok()?;
            (r.status == PullStatus::Found).then(|| r.messages[0].clone())
        }
    };
    let failed = pull_one("Work2").await.unwrap();
    let copy = fallback_copy(&failed, "Raw", Some(2));
    let sent = producer.send(copy).await.unwrap();
    assert_eq!(sent.status, client::SendStatus::Ok);
    let retried = eventually_async(Duration::from_secs(10), "the retry copy", || {
        pull_one("%RETRY%Raw")
    })
    .await;
    assert_eq!(&retried.body[..], b"fragile");
    assert_eq!(retried.reconsume_times, 1);
    let props = &retried.properties;
    assert_eq!(props.get("RETRY_TOPIC").map(String::as_str), Some("Work2"));
    assert_eq!(props.get("ORIGIN_MESSAGE_ID"), Some(&failed.msg_id));
    assert_eq!(props.get("tenant").map(String::as_str), Some("acme"));
    assert!(!props.contains_key("RECONSUME_TIME"), "{props:?}");
    assert!(!props.contains_key("MAX_RECONSUME_TIMES"), "{props:?}");

    // Reconsumed twice already, bound 2: the third copy is a dead letter, at once.
    let mut spent = retried.clone();
    spent.reconsume_times = 2;
    producer
        .send(fallback_copy(&spent, "Raw", Some(2)))
        .await
        .unwrap();
    let dead = pull_one("%DLQ%Raw").await.expect("a dead letter at once");
    assert_eq!(&dead.body[..], b"fragile");
    assert_eq!(dead.reconsume_times, 3);
    assert!(!dead.properties.contains_key("DELAY"));
    cluster.shutdown().await;
}
