//! Drives raftmq's name server and broker with the crates.io `rocketmq-client-rust` client.
//!
//! raftmq's own client only proves raftmq agrees with itself. This test sends and
//! push-consumes through an independent implementation of RocketMQ's remoting protocol, so a
//! header field, request code or JSON body shape that raftmq gets wrong shows up here.
//! raftmq's own `client::Admin` is used only to create the topic; the data path is
//! entirely the third-party client's.
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
use rocketmq_client_rust::{
    ClientRuntime, ClientRuntimeConfig, ConsumeConcurrentlyContext, ConsumeConcurrentlyStatus,
    DefaultMQProducer, DefaultMQPushConsumer, MQPushConsumer, SendStatus, TelemetryHandle,
};
use rocketmq_model::common::consumer::consume_from_where::ConsumeFromWhere;
use rocketmq_model::common::message::message_ext::MessageExt;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rocketmq_rust_client_produces_and_push_consumes() {
    let (namesrv, cluster) = cluster().await;
    // A name of its own per run: an external cluster keeps earlier runs' topics.
    let run = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    let topic = format!("{TOPIC}{run}");
    let topic = topic.as_str();
    client::Admin::new(client::ClientConfig::with_namesrv(&namesrv))
        .create_topic(topic, 4, None, false)
        .await
        .unwrap();

    let owner = RuntimeOwner::plan(RuntimeConfig {
        thread_name: "rocketmq-rust-client".to_string(),
        ..Default::default()
    })
    .unwrap()
    .build()
    .unwrap();

    let mut producer = DefaultMQProducer::builder(client_runtime(&owner, "producer"))
        .producer_group("ThirdPartyProducerGroup".to_string())
        .name_server_addr(namesrv.to_string())
        .send_msg_timeout(5_000)
        .build();
    producer.start().await.unwrap();
    for i in 0..MESSAGES {
        let message = Message::builder()
            .topic(topic)
            .tags(TAG)
            .body_slice(body(i).as_bytes())
            .build_unchecked();
        let result = producer
            .send_with_timeout(message, 5_000)
            .await
            .unwrap_or_else(|e| panic!("send {i}: {}", chain(&e)))
            .unwrap_or_else(|| panic!("send {i}: no send result"));
        assert_eq!(
            result.send_status,
            SendStatus::SendOk,
            "send {i}: {result:?}"
        );
    }

    let seen = Arc::new(Mutex::new(BTreeSet::new()));
    let sink = seen.clone();
    let mut consumer = DefaultMQPushConsumer::builder(client_runtime(&owner, "consumer"))
        .consumer_group(format!("ThirdPartyConsumerGroup{run}"))
        .name_server_addr(namesrv.to_string())
        .message_model(MessageModel::Clustering)
        .consume_from_where(ConsumeFromWhere::ConsumeFromFirstOffset)
        // The client runs each listener call on its runtime's bounded blocking lane (on
        // 2 cores: 4 running, 16 queued). Its default of 20 concurrent consumes overflows
        // that lane; the overflowing message then goes the retry-topic way and comes back
        // only after the next 20 s rebalance.
        .consume_thread_min(2)
        .consume_thread_max(4)
        .build();
    consumer.subscribe(topic, TAG).await.unwrap();
    consumer.register_message_listener_concurrently(
        move |msgs: &[&MessageExt], _: &ConsumeConcurrentlyContext| {
            let mut seen = sink.lock().unwrap();
            for msg in msgs {
                if let Some(body) = msg.body() {
                    seen.insert(String::from_utf8_lossy(body.as_ref()).into_owned());
                }
            }
            Ok(ConsumeConcurrentlyStatus::ConsumeSuccess)
        },
    );
    consumer.start().await.unwrap();

    let expected: BTreeSet<String> = (0..MESSAGES).map(body).collect();
    let deadline = tokio::time::Instant::now() + RECEIVE_LIMIT;
    loop {
        let missing: Vec<String> = expected
            .difference(&seen.lock().unwrap())
            .cloned()
            .collect();
        if missing.is_empty() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "after {RECEIVE_LIMIT:?}, {} of {MESSAGES} bodies never arrived, e.g. {:?}",
            missing.len(),
            &missing[..missing.len().min(5)]
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    consumer.shutdown().await;
    producer.shutdown().await;
    owner.shutdown_tasks().await;
    owner.shutdown_background();
    if let Cluster::Embedded {
        broker,
        namesrv_tasks,
        ..
    } = cluster
    {
        broker.shutdown().await.unwrap();
        for task in namesrv_tasks {
            task.abort();
        }
    }
}
