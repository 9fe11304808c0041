//! Drives raftmq's name server and broker with the crates.io `rocketmq-client-rust` client.
//!
//! raftmq's own client only proves raftmq agrees with itself. These tests send and
//! push-consume through an independent implementation of RocketMQ's remoting protocol, so a
//! header field, request code or JSON body shape that raftmq gets wrong shows up here:
//! sync, oneway, async and batch sends; tag filtering; keys and user properties; orderly
//! consumption of selector-routed messages; clustering and broadcasting consumption;
//! classic pulls at explicit offsets; delay levels on send; RECONSUME_LATER through the
//! retry topic to the dead-letter queue.
//! raftmq's own `client::Admin` is used only to create the topics; the data path is
//! entirely the third-party client's.
//!
//! Not covered yet, though the client offers them: transactions, request/reply, the
//! lite-pull consumer's own poll/seek API.
//!
//! Under `cargo test` it starts a name server and a broker in the test's process; run by
//! `scripts/interop` (which sets `INTEROP_TOPOLOGY`) it uses that script's cluster at
//! `NAMESRV_ADDR`, a single broker or a 3-replica group.

#![recursion_limit = "512"]

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use raftmq::dev::start_broker_on_disk;
use raftmq::BrokerConfig;
#[allow(deprecated)]
use rocketmq_client_rust::DefaultMQPullConsumer;
use rocketmq_client_rust::{
    ClientConfig, ClientError, ClientOptions, ClientRuntime, ClientRuntimeConfig,
    ConsumeConcurrentlyContext, ConsumeConcurrentlyStatus, ConsumeOrderlyContext,
    ConsumeOrderlyStatus, DefaultMQProducer, DefaultMQPushConsumer, DefaultMQPushConsumerBuilder,
    MQPushConsumer, PullResult, PullStatus, SendResult, SendStatus, TelemetryHandle,
};
use rocketmq_model::common::consumer::consume_from_where::ConsumeFromWhere;
use rocketmq_model::common::message::message_ext::MessageExt;
use rocketmq_model::common::message::message_queue::MessageQueue;
use rocketmq_model::common::message::message_single::Message;
use rocketmq_protocol::protocol::heartbeat::message_model::MessageModel;
use rocketmq_runtime::{RuntimeConfig, RuntimeOwner};

const TOPIC: &str = "ThirdPartyTopic";
const TAG: &str = "TagA";
const MESSAGES: usize = 100;
const RECEIVE_LIMIT: Duration = Duration::from_secs(60);

/// The runtime the third-party client spawns its background work on: it insists on one
/// it owns, separate from the test's tokio runtime.
fn client_runtime(owner: &RuntimeOwner, scope: &'static str) -> Arc<ClientRuntime> {
    ClientRuntime::try_new(
        owner.root_context().component(scope),
        ClientRuntimeConfig::default(),
        TelemetryHandle::noop(),
    )
    .expect("client runtime")
}

/// An error and its sources: the client's own `Display` hides the cause.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

fn body(i: usize) -> String {
    format!("third-party-{i}")
}

/// The cluster the test runs against: its own, or the one `scripts/interop` started.
enum Cluster {
    Embedded {
        broker: raftmq::RunningBroker<store::StdDisk, store::meta::SledMetaStore>,
        namesrv_tasks: Vec<tokio::task::JoinHandle<()>>,
        _dir: tempfile::TempDir,
    },
    External,
}

async fn cluster() -> (String, Cluster) {
    if std::env::var_os("INTEROP_TOPOLOGY").is_some() {
        let namesrv = std::env::var("NAMESRV_ADDR").expect("scripts/interop sets NAMESRV_ADDR");
        return (namesrv, Cluster::External);
    }
    let (namesrv, namesrv_tasks) = namesrv::start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let broker = start_broker_on_disk(BrokerConfig {
        listen_addr: "127.0.0.1".into(),
        listen_port: 0,
        namesrv_addr: namesrv.to_string(),
        store_path_root_dir: dir.path().join("broker-a"),
        ..BrokerConfig::default()
    })
    .await
    .unwrap();
    let embedded = Cluster::Embedded {
        broker,
        namesrv_tasks,
        _dir: dir,
    };
    (namesrv.to_string(), embedded)
}

/// One test's world: the cluster, a unique run id for names, and the runtime the
/// third-party client spawns its background work on.
struct Env {
    namesrv: String,
    cluster: Cluster,
    owner: RuntimeOwner,
    run: u128,
}

impl Env {
    /// Starts (or connects to) the cluster and creates `{prefix}{run}` with `queues` queues.
    async fn with_topic(prefix: &str, queues: u32) -> (Env, String) {
        let (namesrv, cluster) = cluster().await;
        // A name of its own per run: an external cluster keeps earlier runs' topics. The
        // tests of this file run in parallel, hence the prefix per test as well.
        let run = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis();
        let topic = format!("{prefix}{run}");
        client::Admin::new(client::ClientConfig::with_namesrv(&namesrv))
            .create_topic(&topic, queues, None, false)
            .await
            .unwrap();
        let owner = RuntimeOwner::plan(RuntimeConfig {
            thread_name: "rocketmq-rust-client".to_string(),
            ..Default::default()
        })
        .unwrap()
        .build()
        .unwrap();
        let env = Env {
            namesrv,
            cluster,
            owner,
            run,
        };
        (env, topic)
    }

    fn name(&self, prefix: &str) -> String {
        format!("{prefix}{}", self.run)
    }

    async fn producer(&self, group: &str) -> DefaultMQProducer {
        let mut producer = DefaultMQProducer::builder(client_runtime(&self.owner, "producer"))
            .producer_group(self.name(group))
            .name_server_addr(self.namesrv.clone())
            .send_msg_timeout(5_000)
            .build();
        producer.start().await.unwrap();
        producer
    }

    /// A push consumer, not yet subscribed or started. `instance` names its client
    /// instance: two consumers of one group in one process need different ones (the
    /// client only makes the name unique by itself in clustering mode).
    fn consumer(&self, group: &str, model: MessageModel, instance: &str) -> DefaultMQPushConsumer {
        self.consumer_builder(group, model, instance).build()
    }

    /// The builder behind [`Env::consumer`], for a test that sets more on it.
    fn consumer_builder(
        &self,
        group: &str,
        model: MessageModel,
        instance: &str,
    ) -> DefaultMQPushConsumerBuilder {
        let mut config = ClientConfig::default();
        config.set_instance_name(format!("{instance}{}", self.run).into());
        DefaultMQPushConsumer::builder(client_runtime(&self.owner, "consumer"))
            .client_config(config)
            .name_server_addr(self.namesrv.clone())
            .consumer_group(self.name(group))
            .message_model(model)
            .consume_from_where(ConsumeFromWhere::ConsumeFromFirstOffset)
            // The client runs each listener call on its runtime's bounded blocking lane (on
            // 2 cores: 4 running, 16 queued). Its default of 20 concurrent consumes overflows
            // that lane; the overflowing message then goes the retry-topic way and comes back
            // only after the next 20 s rebalance.
            .consume_thread_min(2)
            .consume_thread_max(4)
    }

    /// A classic pull consumer (deprecated by the client in favour of lite pull, but the one
    /// that pulls a given queue at a given offset), started.
    #[allow(deprecated)]
    async fn pull_consumer(&self, group: &str, instance: &str) -> DefaultMQPullConsumer {
        let mut config = ClientConfig::default();
        config.set_instance_name(format!("{instance}{}", self.run).into());
        let consumer = DefaultMQPullConsumer::builder(client_runtime(&self.owner, "pull"))
            .client_options(ClientOptions::legacy(config))
            .name_server_addr(self.namesrv.clone())
            .consumer_group(self.name(group))
            .build()
            .unwrap_or_else(|e| panic!("build pull consumer: {}", chain(&e)));
        consumer
            .start()
            .await
            .unwrap_or_else(|e| panic!("start pull consumer: {}", chain(&e)));
        consumer
    }

    async fn shutdown(self) {
        self.owner.shutdown_tasks().await;
        self.owner.shutdown_background();
        if let Cluster::Embedded {
            broker,
            namesrv_tasks,
            ..
        } = self.cluster
        {
            broker.shutdown().await.unwrap();
            for task in namesrv_tasks {
                task.abort();
            }
        }
    }
}

/// What a listener saw of one message.
#[derive(Clone, Debug)]
struct Received {
    body: String,
    tags: Option<String>,
    keys: Option<Vec<String>>,
    property: Option<String>,
    queue_id: i32,
    queue_offset: i64,
}

const USER_PROPERTY: &str = "interopColor";

impl Received {
    fn of(msg: &MessageExt) -> Received {
        let inner = msg.message_inner();
        Received {
            body: msg
                .body()
                .map(|b| String::from_utf8_lossy(b.as_ref()).into_owned())
                .unwrap_or_default(),
            tags: msg.get_tags().map(|t| t.to_string()),
            keys: inner.keys(),
            property: inner
                .get_user_property(USER_PROPERTY)
                .map(|v| v.to_string()),
            queue_id: msg.queue_id(),
            queue_offset: msg.queue_offset(),
        }
    }
}

type Inbox = Arc<Mutex<Vec<Received>>>;

/// Registers a concurrent listener that records every message into the returned inbox.
fn record_concurrently(consumer: &mut DefaultMQPushConsumer) -> Inbox {
    let inbox: Inbox = Arc::default();
    let sink = inbox.clone();
    consumer.register_message_listener_concurrently(
        move |msgs: &[&MessageExt], _: &ConsumeConcurrentlyContext| {
            sink.lock()
                .unwrap()
                .extend(msgs.iter().map(|m| Received::of(m)));
            Ok(ConsumeConcurrentlyStatus::ConsumeSuccess)
        },
    );
    inbox
}

fn bodies(inbox: &Inbox) -> BTreeSet<String> {
    inbox
        .lock()
        .unwrap()
        .iter()
        .map(|r| r.body.clone())
        .collect()
}

/// Waits until every one of `expected` bodies is in `inbox`, failing after `limit`.
async fn await_bodies(inbox: &Inbox, expected: &BTreeSet<String>, limit: Duration, who: &str) {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let seen = bodies(inbox);
        let missing: Vec<&String> = expected.difference(&seen).collect();
        if missing.is_empty() {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{who}: after {limit:?}, {} of {} bodies never arrived, e.g. {:?}",
            missing.len(),
            expected.len(),
            &missing[..missing.len().min(5)]
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn message(topic: &str, tag: &str, body: &str) -> Message {
    Message::builder()
        .topic(topic)
        .tags(tag)
        .body_slice(body.as_bytes())
        .build_unchecked()
}

async fn send_sync(producer: &DefaultMQProducer, message: Message, what: &str) -> SendResult {
    let result = producer
        .send_with_timeout(message, 5_000)
        .await
        .unwrap_or_else(|e| panic!("send {what}: {}", chain(&e)))
        .unwrap_or_else(|| panic!("send {what}: no send result"));
    assert_eq!(
        result.send_status,
        SendStatus::SendOk,
        "send {what}: {result:?}"
    );
    result
}

/// The limit for the tests below: short, as each of them sends only a few dozen messages.
const SHORT_LIMIT: Duration = Duration::from_secs(15);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rocketmq_rust_client_produces_and_push_consumes() {
    let (env, topic) = Env::with_topic(TOPIC, 4).await;
    let topic = topic.as_str();
    let mut producer = env.producer("ThirdPartyProducerGroup").await;
    for i in 0..MESSAGES {
        send_sync(&producer, message(topic, TAG, &body(i)), &i.to_string()).await;
    }

    let mut consumer = env.consumer(
        "ThirdPartyConsumerGroup",
        MessageModel::Clustering,
        "clustering",
    );
    consumer.subscribe(topic, TAG).await.unwrap();
    let inbox = record_concurrently(&mut consumer);
    consumer.start().await.unwrap();

    let expected: BTreeSet<String> = (0..MESSAGES).map(body).collect();
    await_bodies(&inbox, &expected, RECEIVE_LIMIT, "consumer").await;

    consumer.shutdown().await;
    producer.shutdown().await;
    env.shutdown().await;
}

/// Oneway, async (callback) and batch sends all land, and a batch lands as one run of
/// consecutive offsets in one queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rocketmq_rust_client_oneway_async_and_batch_sends() {
    const EACH: usize = 10;
    let (env, topic) = Env::with_topic("ThirdPartySendModes", 4).await;
    let topic = topic.as_str();
    let mut producer = env.producer("ThirdPartySendModesProducer").await;

    for i in 0..EACH {
        producer
            .send_oneway(message(topic, TAG, &format!("oneway-{i}")))
            .await
            .unwrap_or_else(|e| panic!("oneway {i}: {}", chain(&e)));
    }

    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Result<SendStatus, String>>();
    for i in 0..EACH {
        let tx = tx.clone();
        producer
            .send_with_callback(
                message(topic, TAG, &format!("async-{i}")),
                move |result: Option<&SendResult>, error: Option<&ClientError>| {
                    let outcome = match (result, error) {
                        (Some(result), _) => Ok(result.send_status),
                        (None, Some(e)) => Err(chain(e)),
                        (None, None) => Err("neither result nor error".to_string()),
                    };
                    let _ = tx.send(outcome);
                },
            )
            .await
            .unwrap_or_else(|e| panic!("async {i}: {}", chain(&e)));
    }
    drop(tx);
    for i in 0..EACH {
        let outcome = tokio::time::timeout(SHORT_LIMIT, rx.recv())
            .await
            .unwrap_or_else(|_| panic!("async send: only {i} of {EACH} callbacks ran"))
            .unwrap_or_else(|| panic!("async send: callbacks dropped after {i} of {EACH}"));
        assert_eq!(outcome, Ok(SendStatus::SendOk), "async send callback {i}");
    }

    let batch: Vec<Message> = (0..EACH)
        .map(|i| message(topic, TAG, &format!("batch-{i}")))
        .collect();
    let result = producer
        .send_batch_with_timeout(batch, 5_000)
        .await
        .unwrap_or_else(|e| panic!("batch: {}", chain(&e)));
    assert_eq!(result.send_status, SendStatus::SendOk, "batch: {result:?}");

    let mut consumer = env.consumer(
        "ThirdPartySendModesConsumer",
        MessageModel::Clustering,
        "sendmodes",
    );
    consumer.subscribe(topic, "*").await.unwrap();
    let inbox = record_concurrently(&mut consumer);
    consumer.start().await.unwrap();

    let expected: BTreeSet<String> = ["oneway", "async", "batch"]
        .iter()
        .flat_map(|kind| (0..EACH).map(move |i| format!("{kind}-{i}")))
        .collect();
    await_bodies(&inbox, &expected, SHORT_LIMIT, "consumer").await;

    let mut batch: Vec<Received> = inbox
        .lock()
        .unwrap()
        .iter()
        .filter(|r| r.body.starts_with("batch-"))
        .cloned()
        .collect();
    batch.sort_by_key(|r| r.queue_offset);
    let queues: BTreeSet<i32> = batch.iter().map(|r| r.queue_id).collect();
    assert_eq!(queues.len(), 1, "a batch spread over queues: {batch:?}");
    let first = batch[0].queue_offset;
    for (i, r) in batch.iter().enumerate() {
        assert_eq!(
            (r.body.as_str(), r.queue_offset),
            (format!("batch-{i}").as_str(), first + i as i64),
            "batch not stored in order at consecutive offsets: {batch:?}"
        );
    }

    consumer.shutdown().await;
    producer.shutdown().await;
    env.shutdown().await;
}

/// A subscription to `TagA || TagB` gets those and never TagC.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rocketmq_rust_client_filters_by_tag() {
    const EACH: usize = 10;
    let (env, topic) = Env::with_topic("ThirdPartyTags", 2).await;
    let topic = topic.as_str();
    let mut producer = env.producer("ThirdPartyTagsProducer").await;
    for i in 0..EACH {
        for tag in ["TagC", "TagA", "TagB"] {
            send_sync(&producer, message(topic, tag, &format!("{tag}-{i}")), tag).await;
        }
    }

    let mut consumer = env.consumer("ThirdPartyTagsConsumer", MessageModel::Clustering, "tags");
    consumer.subscribe(topic, "TagA || TagB").await.unwrap();
    let inbox = record_concurrently(&mut consumer);
    consumer.start().await.unwrap();

    let expected: BTreeSet<String> = ["TagA", "TagB"]
        .iter()
        .flat_map(|tag| (0..EACH).map(move |i| format!("{tag}-{i}")))
        .collect();
    await_bodies(&inbox, &expected, SHORT_LIMIT, "consumer").await;
    // Each TagC message sits before a TagA one in its queue, so by now it would have been
    // delivered; a moment more for a listener call still under way.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let wrong: Vec<Received> = inbox
        .lock()
        .unwrap()
        .iter()
        .filter(|r| {
            !matches!(r.tags.as_deref(), Some("TagA" | "TagB")) || r.body.starts_with("TagC")
        })
        .cloned()
        .collect();
    assert!(
        wrong.is_empty(),
        "delivered outside `TagA || TagB`: {wrong:?}"
    );
    for r in inbox.lock().unwrap().iter() {
        assert!(
            r.body.starts_with(r.tags.as_deref().unwrap_or("?")),
            "tag does not match body: {r:?}"
        );
    }

    consumer.shutdown().await;
    producer.shutdown().await;
    env.shutdown().await;
}

/// Keys and a user property set by the producer reach the consumer unchanged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rocketmq_rust_client_keys_and_user_properties_round_trip() {
    const COUNT: usize = 10;
    let (env, topic) = Env::with_topic("ThirdPartyProps", 2).await;
    let topic = topic.as_str();
    let mut producer = env.producer("ThirdPartyPropsProducer").await;
    for i in 0..COUNT {
        let message = Message::builder()
            .topic(topic)
            .tags(TAG)
            .keys(vec![format!("order-{i}"), format!("user-{}", i % 3)])
            .raw_property(USER_PROPERTY, format!("colour {i} \u{e9}"))
            .unwrap()
            .body_slice(format!("props-{i}").as_bytes())
            .build_unchecked();
        send_sync(&producer, message, &i.to_string()).await;
    }

    let mut consumer = env.consumer("ThirdPartyPropsConsumer", MessageModel::Clustering, "props");
    consumer.subscribe(topic, "*").await.unwrap();
    let inbox = record_concurrently(&mut consumer);
    consumer.start().await.unwrap();
    let expected: BTreeSet<String> = (0..COUNT).map(|i| format!("props-{i}")).collect();
    await_bodies(&inbox, &expected, SHORT_LIMIT, "consumer").await;

    for r in inbox.lock().unwrap().iter() {
        let i: usize = r.body["props-".len()..].parse().unwrap();
        assert_eq!(
            r.keys,
            Some(vec![format!("order-{i}"), format!("user-{}", i % 3)]),
            "keys of {r:?}"
        );
        assert_eq!(
            r.property.as_deref(),
            Some(format!("colour {i} \u{e9}").as_str()),
            "user property of {r:?}"
        );
        assert_eq!(r.tags.as_deref(), Some(TAG), "tags of {r:?}");
    }

    consumer.shutdown().await;
    producer.shutdown().await;
    env.shutdown().await;
}

/// Messages sent through a queue selector by key, consumed by an orderly listener, come
/// in send order per key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rocketmq_rust_client_orderly_per_key() {
    const KEYS: usize = 4;
    const PER_KEY: usize = 15;
    let (env, topic) = Env::with_topic("ThirdPartyOrderly", 4).await;
    let topic = topic.as_str();
    let mut producer = env.producer("ThirdPartyOrderlyProducer").await;
    let mut queue_of_key = [None; KEYS];
    for seq in 0..PER_KEY {
        for (key, key_queue) in queue_of_key.iter_mut().enumerate() {
            let message = Message::builder()
                .topic(topic)
                .tags(TAG)
                .key(format!("key{key}"))
                .body_slice(format!("key{key}:{seq}").as_bytes())
                .build_unchecked();
            let result = producer
                .send_with_selector_timeout(
                    message,
                    |queues: &[MessageQueue], _: &Message, key: &usize| {
                        Some(queues[*key % queues.len()].clone())
                    },
                    key,
                    5_000,
                )
                .await
                .unwrap_or_else(|e| panic!("send key{key}:{seq}: {}", chain(&e)))
                .unwrap_or_else(|| panic!("send key{key}:{seq}: no send result"));
            assert_eq!(result.send_status, SendStatus::SendOk, "{result:?}");
            let queue = result.message_queue.as_ref().map(|q| q.queue_id());
            assert!(queue.is_some(), "send result without a queue: {result:?}");
            // The selector's choice holds: every message of a key in one queue.
            assert_eq!(
                *key_queue.get_or_insert(queue),
                queue,
                "key{key} moved queues: {result:?}"
            );
        }
    }

    let inbox: Inbox = Arc::default();
    let sink = inbox.clone();
    let mut consumer = env.consumer(
        "ThirdPartyOrderlyConsumer",
        MessageModel::Clustering,
        "orderly",
    );
    consumer.subscribe(topic, "*").await.unwrap();
    consumer.register_message_listener_orderly(
        move |msgs: &[&MessageExt], _: &mut ConsumeOrderlyContext| {
            sink.lock()
                .unwrap()
                .extend(msgs.iter().map(|m| Received::of(m)));
            Ok(ConsumeOrderlyStatus::Success)
        },
    );
    consumer.start().await.unwrap();
    let expected: BTreeSet<String> = (0..KEYS)
        .flat_map(|key| (0..PER_KEY).map(move |seq| format!("key{key}:{seq}")))
        .collect();
    await_bodies(&inbox, &expected, SHORT_LIMIT, "orderly consumer").await;

    let received = inbox.lock().unwrap().clone();
    for (key, key_queue) in queue_of_key.iter().enumerate() {
        let prefix = format!("key{key}:");
        let order: Vec<usize> = received
            .iter()
            .filter(|r| r.body.starts_with(&prefix))
            .map(|r| r.body[prefix.len()..].parse().unwrap())
            .collect();
        assert_eq!(
            order,
            (0..PER_KEY).collect::<Vec<_>>(),
            "key{key} consumed out of order or more than once"
        );
        for r in received.iter().filter(|r| r.body.starts_with(&prefix)) {
            assert_eq!(r.keys, Some(vec![format!("key{key}")]), "keys of {r:?}");
            assert_eq!(Some(Some(r.queue_id)), *key_queue, "queue of {r:?}");
        }
    }

    consumer.shutdown().await;
    producer.shutdown().await;
    env.shutdown().await;
}

/// Two broadcasting consumers of one group each get every message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rocketmq_rust_client_broadcasting() {
    const COUNT: usize = 20;
    let (env, topic) = Env::with_topic("ThirdPartyBroadcast", 4).await;
    let topic = topic.as_str();
    let mut producer = env.producer("ThirdPartyBroadcastProducer").await;
    for i in 0..COUNT {
        send_sync(
            &producer,
            message(topic, TAG, &format!("bc-{i}")),
            &i.to_string(),
        )
        .await;
    }

    let mut consumers = Vec::new();
    let mut inboxes = Vec::new();
    for instance in ["broadcastOne", "broadcastTwo"] {
        let mut consumer = env.consumer(
            "ThirdPartyBroadcastConsumer",
            MessageModel::Broadcasting,
            instance,
        );
        consumer.subscribe(topic, TAG).await.unwrap();
        inboxes.push(record_concurrently(&mut consumer));
        consumer.start().await.unwrap();
        consumers.push(consumer);
    }

    let expected: BTreeSet<String> = (0..COUNT).map(|i| format!("bc-{i}")).collect();
    for (n, inbox) in inboxes.iter().enumerate() {
        await_bodies(
            inbox,
            &expected,
            SHORT_LIMIT,
            &format!("broadcast consumer {n}"),
        )
        .await;
    }
    for (n, inbox) in inboxes.iter().enumerate() {
        let received = inbox.lock().unwrap().len();
        assert_eq!(
            received, COUNT,
            "broadcast consumer {n} got {received} deliveries for {COUNT} messages"
        );
    }

    for mut consumer in consumers {
        consumer.shutdown().await;
    }
    producer.shutdown().await;
    env.shutdown().await;
}

/// Pulls `queue` at `offset` without waiting for new messages.
#[allow(deprecated)]
async fn pull_at(
    consumer: &DefaultMQPullConsumer,
    queue: &MessageQueue,
    offset: i64,
    max: i32,
) -> PullResult {
    consumer
        .pull(queue, "*", offset, max)
        .await
        .unwrap_or_else(|e| panic!("pull {queue:?} at {offset}: {}", chain(&e)))
}

/// A pull's status, next begin offset and (body, queue offset) of each message.
fn pulled(result: &PullResult) -> (PullStatus, u64, Vec<(String, i64)>) {
    let messages = result
        .msg_found_list()
        .unwrap_or_default()
        .iter()
        .map(|m| {
            let r = Received::of(m);
            (r.body, r.queue_offset)
        })
        .collect();
    (*result.pull_status(), result.next_begin_offset(), messages)
}

/// A classic pull consumer reads a one-queue topic at the offsets it asks for: all of it
/// from 0, a slice from the middle, nothing at the end (NO_NEW_MSG), an illegal offset
/// beyond it (OFFSET_ILLEGAL, pointed back to the end, as a Java master does), and then
/// the one message sent since.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(deprecated)]
async fn rocketmq_rust_client_pulls_at_explicit_offsets() {
    const COUNT: usize = 10;
    let (env, topic) = Env::with_topic("ThirdPartyPull", 1).await;
    let topic = topic.as_str();
    let mut producer = env.producer("ThirdPartyPullProducer").await;
    for i in 0..COUNT {
        let result = send_sync(
            &producer,
            message(topic, TAG, &format!("pull-{i}")),
            &i.to_string(),
        )
        .await;
        assert_eq!(result.queue_offset, i as u64, "send {i}: {result:?}");
    }

    let consumer = env.pull_consumer("ThirdPartyPullConsumer", "pull").await;
    let queues = consumer
        .fetch_subscribe_message_queues(topic)
        .await
        .unwrap_or_else(|e| panic!("queues of {topic}: {}", chain(&e)));
    assert_eq!(queues.len(), 1, "queues of a 1-queue topic: {queues:?}");
    let queue = &queues[0];
    assert_eq!(consumer.min_offset(queue).await.unwrap(), 0, "min offset");
    assert_eq!(
        consumer.max_offset(queue).await.unwrap(),
        COUNT as i64,
        "max offset"
    );
    let expect = |range: std::ops::Range<usize>| -> Vec<(String, i64)> {
        range.map(|i| (format!("pull-{i}"), i as i64)).collect()
    };

    let all = pull_at(&consumer, queue, 0, 32).await;
    assert_eq!(
        pulled(&all),
        (PullStatus::Found, COUNT as u64, expect(0..COUNT)),
        "pull at 0"
    );
    assert_eq!(
        (all.min_offset(), all.max_offset()),
        (0, COUNT as u64),
        "offsets reported by the pull at 0"
    );

    let middle = pull_at(&consumer, queue, 4, 3).await;
    assert_eq!(
        pulled(&middle),
        (PullStatus::Found, 7, expect(4..7)),
        "pull 3 at 4"
    );

    let end = pull_at(&consumer, queue, COUNT as i64, 32).await;
    assert_eq!(
        pulled(&end),
        (PullStatus::NoNewMsg, COUNT as u64, vec![]),
        "pull at the max offset"
    );

    let beyond = pull_at(&consumer, queue, COUNT as i64 + 5, 32).await;
    assert_eq!(
        pulled(&beyond),
        (PullStatus::OffsetIllegal, COUNT as u64, vec![]),
        "pull past the max offset"
    );

    send_sync(
        &producer,
        message(topic, TAG, &format!("pull-{COUNT}")),
        "one more",
    )
    .await;
    let more = pull_at(&consumer, queue, COUNT as i64, 32).await;
    assert_eq!(
        pulled(&more),
        (
            PullStatus::Found,
            COUNT as u64 + 1,
            expect(COUNT..COUNT + 1)
        ),
        "pull at the old max offset after one more send"
    );

    consumer.shutdown().await.unwrap();
    producer.shutdown().await;
    env.shutdown().await;
}

/// One delivery to a push listener, with when it came.
#[derive(Clone, Debug)]
struct Delivery {
    received: Received,
    at: std::time::Instant,
    topic: String,
    reconsume_times: i32,
    born: i64,
    stored: i64,
    delay_property: Option<String>,
}

type Log = Arc<Mutex<Vec<Delivery>>>;

/// Registers a concurrent listener that logs every delivery and answers RECONSUME_LATER
/// for the bodies `fail` accepts.
fn log_concurrently(
    consumer: &mut DefaultMQPushConsumer,
    fail: impl Fn(&str) -> bool + Send + Sync + 'static,
) -> Log {
    let log: Log = Arc::default();
    let sink = log.clone();
    consumer.register_message_listener_concurrently(
        move |msgs: &[&MessageExt], _: &ConsumeConcurrentlyContext| {
            let at = std::time::Instant::now();
            let mut failed = false;
            let mut log = sink.lock().unwrap();
            for m in msgs {
                let received = Received::of(m);
                failed |= fail(&received.body);
                log.push(Delivery {
                    received,
                    at,
                    topic: m.topic().to_string(),
                    reconsume_times: m.reconsume_times(),
                    born: m.born_timestamp(),
                    stored: m.store_timestamp(),
                    delay_property: m.message_inner().property("DELAY").map(str::to_string),
                });
            }
            Ok(if failed {
                ConsumeConcurrentlyStatus::ReconsumeLater
            } else {
                ConsumeConcurrentlyStatus::ConsumeSuccess
            })
        },
    );
    log
}

/// The deliveries of `body` so far.
fn deliveries_of(log: &Log, body: &str) -> Vec<Delivery> {
    log.lock()
        .unwrap()
        .iter()
        .filter(|d| d.received.body == body)
        .cloned()
        .collect()
}

/// Waits until `body` was delivered `times` times, failing after `limit`.
async fn await_deliveries(log: &Log, body: &str, times: usize, limit: Duration) -> Vec<Delivery> {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let seen = deliveries_of(log, body);
        if seen.len() >= times {
            return seen;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "after {limit:?}, {body:?} delivered {} of {times} times: {seen:?}",
            seen.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A message sent with delay level 1 ("1s" in RocketMQ's `messageDelayLevel`) reaches a
/// consumer already shown live no sooner than 1 s after the send, within 15 s, once, on
/// its own topic and without its `DELAY` property, as a Java broker's schedule service
/// delivers it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rocketmq_rust_client_delay_level_on_send() {
    const SLACK: Duration = Duration::from_millis(50);
    let (env, topic) = Env::with_topic("ThirdPartyDelay", 1).await;
    let topic = topic.as_str();
    let mut producer = env.producer("ThirdPartyDelayProducer").await;
    let mut consumer = env.consumer("ThirdPartyDelayConsumer", MessageModel::Clustering, "delay");
    consumer.subscribe(topic, "*").await.unwrap();
    let log = log_concurrently(&mut consumer, |_| false);
    consumer.start().await.unwrap();

    send_sync(&producer, message(topic, TAG, "probe"), "probe").await;
    // The probe shows the consumer live. A fresh client's first delivery waits on its
    // own heartbeat and rebalance rounds (20-30 s when its first heartbeat went out
    // before it had the topic's route), so it gets the long limit; what is timed is
    // what comes after it.
    await_deliveries(&log, "probe", 1, RECEIVE_LIMIT).await;

    let delayed = Message::builder()
        .topic(topic)
        .tags(TAG)
        .delay_level(1)
        .body_slice(b"delayed")
        .build_unchecked();
    let sent_at = std::time::Instant::now();
    send_sync(&producer, delayed, "delayed").await;
    let delivered = await_deliveries(&log, "delayed", 1, SHORT_LIMIT).await;
    let d = &delivered[0];
    let after = d.at.duration_since(sent_at);
    assert!(
        after + SLACK >= Duration::from_secs(1),
        "delay level 1 consumed {after:?} after the send: {d:?}"
    );
    assert_eq!(
        (
            d.topic.as_str(),
            d.received.queue_id,
            d.delay_property.as_deref()
        ),
        (topic, 0, None),
        "delayed message as delivered: {d:?}"
    );
    assert!(
        d.stored - d.born + SLACK.as_millis() as i64 >= 1_000,
        "delivered copy stored {} ms after it was born: {d:?}",
        d.stored - d.born
    );
    // Not a second time either.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let delivered = deliveries_of(&log, "delayed");
    assert_eq!(
        delivered.len(),
        1,
        "delayed message redelivered: {delivered:?}"
    );

    consumer.shutdown().await;
    producer.shutdown().await;
    env.shutdown().await;
}

/// A listener that answers RECONSUME_LATER, with the consumer's max reconsume times at 1,
/// gets the message again once through `%RETRY%group` (reconsume times 1, after delay
/// level 3 = 10 s: the client's listener context is read-only, so it cannot ask for a
/// shorter delay), and after failing that too the message is in `%DLQ%group`, where a
/// pull consumer finds it, and is not delivered a third time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(deprecated)]
async fn rocketmq_rust_client_reconsume_later_retries_then_dead_letters() {
    const SLACK: Duration = Duration::from_millis(50);
    let (env, topic) = Env::with_topic("ThirdPartyRetry", 1).await;
    let topic = topic.as_str();
    let group = "ThirdPartyRetryConsumer";
    let mut producer = env.producer("ThirdPartyRetryProducer").await;
    let mut consumer = env
        .consumer_builder(group, MessageModel::Clustering, "retry")
        .max_reconsume_times(1)
        .build();
    consumer.subscribe(topic, "*").await.unwrap();
    let log = log_concurrently(&mut consumer, |body| body == "doomed");
    consumer.start().await.unwrap();

    send_sync(&producer, message(topic, TAG, "probe"), "probe").await;
    // The probe shows the consumer live. A fresh client's first delivery waits on its
    // own heartbeat and rebalance rounds (20-30 s when its first heartbeat went out
    // before it had the topic's route), so it gets the long limit; what is timed is
    // what comes after it.
    await_deliveries(&log, "probe", 1, RECEIVE_LIMIT).await;

    send_sync(&producer, message(topic, TAG, "doomed"), "doomed").await;
    let delivered = await_deliveries(&log, "doomed", 2, Duration::from_secs(20)).await;
    let (first, second) = (&delivered[0], &delivered[1]);
    assert_eq!(
        (first.reconsume_times, second.reconsume_times),
        (0, 1),
        "reconsume times of the delivery and the redelivery: {delivered:?}"
    );
    assert_eq!(
        (first.topic.as_str(), second.topic.as_str()),
        (topic, topic),
        "topic of the delivery and the redelivery: {delivered:?}"
    );
    let gap = second.at.duration_since(first.at);
    assert!(
        gap + SLACK >= Duration::from_secs(10),
        "redelivered {gap:?} after the first delivery, before delay level 3 (10 s)"
    );

    let dlq = format!("%DLQ%{}", env.name(group));
    let puller = env.pull_consumer("ThirdPartyRetryDlqReader", "dlq").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let dead = loop {
        let queues = puller.fetch_subscribe_message_queues(&dlq).await;
        if let Ok(queues) = &queues {
            assert_eq!(queues.len(), 1, "queues of {dlq}: {queues:?}");
            let result = pull_at(&puller, &queues[0], 0, 32).await;
            if *result.pull_status() == PullStatus::Found {
                break result;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{dlq}: nothing to pull after 5 s; last route lookup: {:?}",
            queues.map_err(|e| chain(&e))
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let messages = dead.msg_found_list().unwrap_or_default();
    let bodies: Vec<String> = messages.iter().map(|m| Received::of(m).body).collect();
    assert_eq!(bodies, vec!["doomed".to_string()], "bodies in {dlq}");
    let m = &messages[0];
    assert_eq!(
        (
            m.topic().as_str(),
            m.message_inner().property("RETRY_TOPIC")
        ),
        (dlq.as_str(), Some(topic)),
        "topic and RETRY_TOPIC of the dead letter: {m:?}"
    );

    tokio::time::sleep(Duration::from_millis(500)).await;
    let delivered = deliveries_of(&log, "doomed");
    assert_eq!(
        delivered.len(),
        2,
        "delivered after it went to {dlq}: {delivered:?}"
    );

    puller.shutdown().await.unwrap();
    consumer.shutdown().await;
    producer.shutdown().await;
    env.shutdown().await;
}
