//! Transactional messages over sockets: half messages invisible until committed,
//! rollbacks never delivered, undecided transactions resolved by checking back with
//! another producer of the group, each transaction ended once, and the same across a
//! failover of a replicated group.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use client::{
    ClientConfig, LocalTransactionState, Message, MessageExt, Producer, PullConsumer, PullStatus,
    TransactionProducer,
};
use proto::net::rpc::RpcClient;
use proto::remoting::codes::{request, response};
use proto::remoting::RemotingCommand;
use raftmq::broker::stats::keys;
use raftmq::config::{AckMode, Election, TransactionSettings};
use raftmq::BrokerConfig;

use crate::cluster::TestCluster;
use crate::group::Group;
use crate::roundtrip::eventually_async;

const TIMEOUT: Duration = Duration::from_secs(5);

/// Checks after 300 ms, every 200 ms, three at most: the check-back within a test's time.
fn quick_checks(config: &mut BrokerConfig) {
    config.transaction = TransactionSettings {
        timeout_ms: 300,
        check_interval_ms: 200,
        check_max: 3,
    };
}

/// Every body in `topic`, in queue order, queue by queue.
async fn bodies(config: ClientConfig, topic: &str) -> Vec<String> {
    let consumer = PullConsumer::new("reader", config);
    let mut bodies = Vec::new();
    let Ok(queues) = consumer.fetch_queues(topic).await else {
        return bodies;
    };
    for queue in queues {
        let mut offset = 0;
        loop {
            let got = consumer.pull(&queue, "*", offset, 32).await.unwrap();
            if got.status != PullStatus::Found {
                break;
            }
            bodies.extend(
                got.messages
                    .iter()
                    .map(|m| String::from_utf8(m.body.to_vec()).unwrap()),
            );
            offset = got.next_begin_offset;
        }
    }
    bodies
}

/// A checker that answers from a table of bodies (unknown bodies: Unknown) and counts
/// the checks per body.
#[derive(Clone, Default)]
struct Checker {
    answers: Arc<Mutex<BTreeMap<String, LocalTransactionState>>>,
    checks: Arc<Mutex<BTreeMap<String, usize>>>,
}

impl Checker {
    fn answer(&self, body: &str, state: LocalTransactionState) {
        self.answers.lock().unwrap().insert(body.into(), state);
    }

    fn checks(&self, body: &str) -> usize {
        self.checks.lock().unwrap().get(body).copied().unwrap_or(0)
    }

    fn boxed(&self) -> impl Fn(&MessageExt) -> LocalTransactionState + Send + Sync + 'static {
        let me = self.clone();
        move |m: &MessageExt| {
            let body = String::from_utf8_lossy(&m.body).to_string();
            *me.checks.lock().unwrap().entry(body.clone()).or_default() += 1;
            me.answers
                .lock()
                .unwrap()
                .get(&body)
                .copied()
                .unwrap_or(LocalTransactionState::Unknown)
        }
    }
}

async fn send_tx(
    producer: &TransactionProducer,
    topic: &str,
    body: &str,
    decide: LocalTransactionState,
) -> client::TransactionSendResult {
    send_tx_message(producer, Message::new(topic, body.to_string()), decide).await
}

async fn send_tx_message(
    producer: &TransactionProducer,
    message: Message,
    decide: LocalTransactionState,
) -> client::TransactionSendResult {
    // A group electing a master (a loaded machine) has no route for a moment: a send
    // that failed ran no local transaction, and is tried again.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let result = loop {
        match producer
            .send_in_transaction(message.clone(), |_, _| async move { decide })
            .await
        {
            Ok(result) => break result,
            Err(e) if tokio::time::Instant::now() < deadline => {
                eprintln!("transaction send failed, trying again: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("transaction send failed: {e}"),
        }
    };
    assert_eq!(result.send.status, client::SendStatus::Ok);
    assert_eq!(result.state, decide);
    result
}

async fn runtime(config: ClientConfig, addr: &str, key: &str) -> u64 {
    let info = client::Admin::new(config)
        .broker_runtime_info(addr)
        .await
        .unwrap();
    info[key].parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_is_delivered_rollback_never_and_unknown_by_check_back() {
    let cluster = TestCluster::start_with(quick_checks).await;
    let addr = cluster.broker.as_ref().unwrap().local_addr.to_string();
    let config = cluster.client_config();
    let plain = Producer::new("PG", config.clone());
    plain.send(Message::new("Orders", "plain")).await.unwrap();

    let checker = Checker::default();
    // A check answers as the local transaction decided (a decision late enough to be
    // checked first is not an error); unknown-1 is decided by its check.
    checker.answer("commit-1", LocalTransactionState::Commit);
    checker.answer("rollback-1", LocalTransactionState::Rollback);
    checker.answer("unknown-1", LocalTransactionState::Commit);
    let producer = TransactionProducer::start("TxPG", config.clone(), checker.boxed()).unwrap();
    // Invisible while the local transaction runs.
    let (seen_during, committed) = {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let seen_in = seen.clone();
        let config_in = config.clone();
        let result = producer
            .send_in_transaction(Message::new("Orders", "commit-1"), |_, _| async move {
                *seen_in.lock().unwrap() = bodies(config_in, "Orders").await;
                LocalTransactionState::Commit
            })
            .await
            .unwrap();
        let seen = seen.lock().unwrap().clone();
        (seen, result)
    };
    assert_eq!(seen_during, vec!["plain"], "a half message was visible");
    send_tx(
        &producer,
        "Orders",
        "rollback-1",
        LocalTransactionState::Rollback,
    )
    .await;
    send_tx(
        &producer,
        "Orders",
        "unknown-1",
        LocalTransactionState::Unknown,
    )
    .await;

    let delivered = eventually_async(
        Duration::from_secs(10),
        "the checked-back commit",
        || async {
            let got = bodies(config.clone(), "Orders").await;
            got.contains(&"unknown-1".to_string()).then_some(got)
        },
    )
    .await;
    let mut sorted = delivered.clone();
    sorted.sort();
    assert_eq!(sorted, vec!["commit-1", "plain", "unknown-1"]);
    assert!(checker.checks("unknown-1") >= 1);

    // The committed message is the producer's: its msg id and no transaction flags.
    let consumer = PullConsumer::new("reader", config.clone());
    let queue = consumer
        .fetch_queues("Orders")
        .await
        .unwrap()
        .into_iter()
        .find(|q| q.queue_id == committed.send.queue.queue_id)
        .unwrap();
    let got = consumer.pull(&queue, "*", 0, 32).await.unwrap();
    let message = got
        .messages
        .iter()
        .find(|m| &m.body[..] == b"commit-1")
        .expect("committed into the queue it was sent to");
    assert_eq!(message.msg_id, committed.send.msg_id);
    assert!(!message.properties.contains_key("TRAN_MSG"));
    assert!(!message.properties.contains_key("REAL_TOPIC"));

    assert_eq!(runtime(config.clone(), &addr, keys::TX_COMMITTED).await, 2);
    assert_eq!(
        runtime(config.clone(), &addr, keys::TX_ROLLED_BACK).await,
        1
    );
    let mut metrics = raftmq::metrics::exposition::Exposition::default();
    cluster
        .broker
        .as_ref()
        .unwrap()
        .broker
        .collect_metrics(&mut metrics);
    let metrics = metrics.render();
    for line in [
        "rocketmq_commit_messages_total{",
        "rocketmq_rollback_messages_total{",
        "raftmq_transaction_checks_total{",
    ] {
        let sample = metrics
            .lines()
            .find(|l| l.starts_with(line))
            .unwrap_or_else(|| panic!("no {line} in\n{metrics}"));
        let value: f64 = sample.rsplit(' ').next().unwrap().parse().unwrap();
        assert!(value >= 1.0, "{sample}");
        if !line.starts_with("raftmq_transaction_checks") {
            assert!(sample.contains("topic=\"Orders\""), "{sample}");
        }
    }
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        bodies(config.clone(), "Orders").await.len(),
        3,
        "a rolled-back or ended transaction was delivered later"
    );
    producer.shutdown().await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_producers_transaction_is_checked_with_another_of_its_group_or_discarded() {
    let cluster = TestCluster::start_with(quick_checks).await;
    let addr = cluster.broker.as_ref().unwrap().local_addr.to_string();
    let config = cluster.client_config();
    let first = Checker::default();
    let dies = TransactionProducer::start("TxPG", config.clone(), first.boxed()).unwrap();
    // Checked from 1 s on: its producer is gone, the next one not yet started.
    let orphan =
        Message::new("Orders", "orphan").with_property("CHECK_IMMUNITY_TIME_IN_SECONDS", "1");
    send_tx_message(&dies, orphan, LocalTransactionState::Unknown).await;
    dies.shutdown().await;

    // Another producer of the group answers for it.
    let second = Checker::default();
    second.answer("orphan", LocalTransactionState::Commit);
    let survivor = TransactionProducer::start("TxPG", config.clone(), second.boxed()).unwrap();
    // It must be known to the broker before a check can reach it: a send heartbeats.
    send_tx(
        &survivor,
        "Orders",
        "warm-up",
        LocalTransactionState::Rollback,
    )
    .await;
    eventually_async(Duration::from_secs(10), "the orphan committed", || async {
        bodies(config.clone(), "Orders")
            .await
            .contains(&"orphan".to_string())
            .then_some(())
    })
    .await;
    assert_eq!(first.checks("orphan"), 0, "the departed producer was asked");
    assert!(second.checks("orphan") >= 1);

    // Never decided: checked `check_max` (3) times, then discarded, never delivered.
    send_tx(
        &survivor,
        "Orders",
        "undecided",
        LocalTransactionState::Unknown,
    )
    .await;
    eventually_async(Duration::from_secs(10), "the discard", || async {
        (runtime(config.clone(), &addr, keys::TX_DISCARDED).await == 1).then_some(())
    })
    .await;
    assert_eq!(second.checks("undecided"), 3);
    assert_eq!(runtime(config.clone(), &addr, keys::TX_PENDING).await, 0);
    let delivered = bodies(config.clone(), "Orders").await;
    assert_eq!(delivered, vec!["orphan"], "only the orphan was committed");
    survivor.shutdown().await;
    cluster.shutdown().await;
}

fn end_transaction(
    group: &str,
    result: &client::TransactionSendResult,
    state: i32,
) -> RemotingCommand {
    let offset = u64::from_str_radix(&result.send.offset_msg_id[16..], 16).unwrap();
    RemotingCommand::request(request::END_TRANSACTION)
        .with_ext("producerGroup", group)
        .with_ext("tranStateTableOffset", result.send.queue_offset)
        .with_ext("commitLogOffset", offset)
        .with_ext("commitOrRollback", state)
        .with_ext("fromTransactionCheck", "1")
        .with_ext("msgId", &result.send.msg_id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_ends_once_and_bad_decisions_are_refused_by_name() {
    let cluster = TestCluster::start().await;
    let addr = cluster.broker.as_ref().unwrap().local_addr.to_string();
    let config = cluster.client_config();
    let producer = TransactionProducer::start("TxPG", config.clone(), |_: &MessageExt| {
        LocalTransactionState::Unknown
    })
    .unwrap();
    let result = send_tx(&producer, "Orders", "once", LocalTransactionState::Commit).await;
    let rpc = RpcClient::connect(&addr, None).await.unwrap();
    // A late second commit and a rollback after it: answered, and change nothing.
    for state in [8, 12] {
        let reply = rpc
            .invoke(end_transaction("TxPG", &result, state), TIMEOUT)
            .await
            .unwrap();
        assert_eq!(reply.code, response::SUCCESS, "{:?}", reply.remark);
    }
    assert_eq!(bodies(config.clone(), "Orders").await, vec!["once"]);

    let pending = send_tx(
        &producer,
        "Orders",
        "pending",
        LocalTransactionState::Unknown,
    )
    .await;
    let refusals = [
        (
            end_transaction("OtherPG", &pending, 8),
            "producer group wrong",
        ),
        (
            end_transaction("TxPG", &pending, 8).with_ext("tranStateTableOffset", 99),
            "transaction state table offset wrong",
        ),
        (
            end_transaction("TxPG", &pending, 8).with_ext("commitLogOffset", 1),
            "Find prepared transaction message failed",
        ),
        (end_transaction("TxPG", &pending, 5), "commitOrRollback 5"),
    ];
    for (request, expected) in refusals {
        let reply = rpc.invoke(request, TIMEOUT).await.unwrap();
        assert_eq!(reply.code, response::SYSTEM_ERROR);
        let remark = reply.remark.unwrap_or_default();
        assert!(remark.contains(expected), "{expected:?} not in {remark:?}");
    }
    // The half topic is the broker's: a producer cannot write it.
    let direct = Producer::new("PG", config.clone())
        .send(Message::new("RMQ_SYS_TRANS_HALF_TOPIC", "forged"))
        .await
        .unwrap_err();
    assert!(direct.to_string().contains("forbidden"), "{direct}");
    assert_eq!(bodies(config.clone(), "Orders").await, vec!["once"]);
    producer.shutdown().await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_master_checks_back_what_the_old_one_left_and_ends_nothing_twice() {
    let mut group = Group::start_with(
        store::FlushMode::Async,
        Election::Raft,
        AckMode::Quorum,
        quick_checks,
    )
    .await;
    let config = group.client_config();
    let checker = Checker::default();
    checker.answer("left-pending", LocalTransactionState::Commit);
    // A check answers as the local transaction decided: the commit goes oneway, and the
    // old master may stop before it applies it; the new master then asks.
    checker.answer("committed", LocalTransactionState::Commit);
    let producer = TransactionProducer::start("TxPG", config.clone(), checker.boxed()).unwrap();
    // The group is up, and the topic routed, once a plain send is acknowledged.
    crate::cluster::send_acked(
        producer.producer(),
        std::iter::once(Message::new("Orders", "plain")),
    )
    .await;
    let committed = send_tx(
        &producer,
        "Orders",
        "committed",
        LocalTransactionState::Commit,
    )
    .await;
    // Long enough immunity that the old master cannot check it before it stops.
    let pending =
        Message::new("Orders", "left-pending").with_property("CHECK_IMMUNITY_TIME_IN_SECONDS", "2");
    send_tx_message(&producer, pending, LocalTransactionState::Unknown).await;
    let master = group.wait_master_registered(Duration::from_secs(10)).await;
    group.stop(master).await;
    let new_master = group.wait_master_registered(Duration::from_secs(15)).await;
    assert_ne!(new_master, master);

    let delivered = eventually_async(Duration::from_secs(20), "the check-back commit", || async {
        let got = bodies(config.clone(), "Orders").await;
        got.contains(&"left-pending".to_string()).then_some(got)
    })
    .await;
    // A late second decision for the transaction the old master ended changes nothing.
    let addr = group.brokers[new_master]
        .as_ref()
        .unwrap()
        .local_addr
        .to_string();
    let rpc = RpcClient::connect(&addr, None).await.unwrap();
    let reply = rpc
        .invoke(end_transaction("TxPG", &committed, 8), TIMEOUT)
        .await
        .unwrap();
    assert_eq!(reply.code, response::SUCCESS, "{:?}", reply.remark);
    assert!(checker.checks("left-pending") >= 1);
    tokio::time::sleep(Duration::from_millis(800)).await;
    let mut after = bodies(config.clone(), "Orders").await;
    after.sort();
    assert_eq!(
        after,
        vec!["committed", "left-pending", "plain"],
        "before: {delivered:?}"
    );
    producer.shutdown().await;
    group.shutdown().await;
}
