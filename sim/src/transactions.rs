//! The transactional producers: one producer group on hosts of their own, each sending
//! transactions of every kind ([`TxKind`]: committed, rolled back, undecided and then
//! resolved by a check, never decided) to [`TX_TOPIC`]. The value names the decision,
//! so any producer of the group answers a check as the sender would have: the scenario
//! kills one producer mid-run (a producer that dies mid-transaction), and the others
//! answer for its transactions.
//!
//! Producers stop sending at the liveness phase but keep answering checks until every
//! transaction is settled (`settle`), and only then leave: a commit must not land
//! between the final reads of two replicas.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use client::{LocalTransactionState, Message, MessageExt, TransactionProducer};
use history::transaction::{Decision, TxKind};
use madsim::rand::Rng;
use madsim::runtime::{Handle, NodeHandle};

use crate::nodes::send_outcome;
use crate::workload::{client_config, Recorder};
use raftmq::broker::transaction::HALF_TOPIC;

/// The transactional producers' topic.
pub const TX_TOPIC: &str = "SimTx";
/// Their producer group.
pub const TX_GROUP: &str = "SimTxProducers";

fn state(d: Decision) -> LocalTransactionState {
    match d {
        Decision::Commit => LocalTransactionState::Commit,
        Decision::Rollback => LocalTransactionState::Rollback,
        Decision::Unknown => LocalTransactionState::Unknown,
    }
}

/// Answers a check from the value alone, as every producer of the group does.
fn check(message: &MessageExt) -> LocalTransactionState {
    let value = String::from_utf8_lossy(&message.body);
    TxKind::of(&value).map_or(LocalTransactionState::Unknown, |k| state(k.on_check()))
}

/// A transactional producer on its own host: one transaction at a time, a random kind
/// each, until `stop`; then it stays, answering checks, until its host is killed.
pub fn spawn_tx_producer(
    handle: &Handle,
    ip: IpAddr,
    process: String,
    namesrv: String,
    recorder: Recorder,
    stop: Arc<AtomicBool>,
) -> NodeHandle {
    let node = handle.create_node().name(process.clone()).ip(ip).build();
    node.spawn(async move {
        let producer =
            TransactionProducer::start(TX_GROUP, client_config(&namesrv, &process), check)
                .unwrap_or_else(|e| panic!("transactional producer {process}: {e}"));
        // As the consumers do: a replica restarted (power loss) learns of the group's
        // producers within a check interval, not RocketMQ's 30 s.
        producer.set_heartbeat_interval(Duration::from_secs(1));
        let mut seq = 0u64;
        while !stop.load(Ordering::Acquire) {
            seq += 1;
            let kind = TxKind::ALL[madsim::rand::thread_rng().gen_range(0..TxKind::ALL.len())];
            let value = kind.value(&process, seq);
            recorder.record(|h, t| h.tx_invoke(t, &process, &value));
            let local = state(kind.local());
            let result = producer
                .send_in_transaction(Message::new(TX_TOPIC, value.clone()), |_, _| async move {
                    local
                })
                .await;
            let outcome = send_outcome(&result.map(|r| r.send)).staged_in(HALF_TOPIC, 0);
            recorder.record(|h, t| h.record_tx(t, &process, &value, outcome));
            let pause_ms = madsim::rand::thread_rng().gen_range(20..80);
            tokio::time::sleep(Duration::from_millis(pause_ms)).await;
        }
        std::future::pending::<()>().await;
        drop(producer);
    });
    node
}
