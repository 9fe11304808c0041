//! openraft on `RaftRuntime`: three replicas elect a leader, replicate, survive the
//! leader's isolation, and converge. The same test runs on real tokio and, in the
//! simulated build, on madsim (where `MADSIM_TEST_SEED` replays a run and
//! `MADSIM_TEST_CHECK_DETERMINISM=1` checks it is deterministic).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use openraft::{BasicNode, Config, Raft};
use raft::mem::{MemLog, MemMachine};
use raft::router::{NodeNetwork, Router};
use raft::types::{GroupRaft, GroupRequest};

struct Node {
    raft: Raft<GroupRaft>,
    machine: MemMachine,
}

async fn start(n: u64) -> (Router, BTreeMap<u64, Node>) {
    let config = Config {
        heartbeat_interval: 50,
        election_timeout_min: 150,
        election_timeout_max: 300,
        ..Config::default()
    };
    let config = Arc::new(config.validate().unwrap());
    let router = Router::default();
    let mut nodes = BTreeMap::new();
    for id in 1..=n {
        let machine = MemMachine::default();
        let network = NodeNetwork {
            id,
            router: router.clone(),
        };
        let raft = Raft::new(
            id,
            config.clone(),
            network,
            MemLog::default(),
            machine.clone(),
        )
        .await
        .unwrap();
        router.add(id, raft.clone());
        nodes.insert(id, Node { raft, machine });
    }
    let members: BTreeMap<u64, BasicNode> = (1..=n).map(|id| (id, BasicNode::default())).collect();
    nodes[&1].raft.initialize(members).await.unwrap();
    (router, nodes)
}

async fn leader_among(nodes: &BTreeMap<u64, Node>, candidates: &[u64]) -> u64 {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        for id in candidates {
            let metrics = nodes[id].raft.metrics().borrow().clone();
            if metrics.current_leader == Some(*id) {
                return *id;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no leader among {candidates:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn wait_applied(node: &Node, index: u64) {
    wait_applied_index(&node.raft, index).await;
}

/// Waits until `raft` applied `index`. A polling loop rather than openraft's
/// `Raft::wait`, whose unbiased `tokio::select!` draws from an RNG madsim does not seed.
async fn wait_applied_index(raft: &Raft<GroupRaft>, index: u64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let applied = raft.metrics().borrow().last_applied.map_or(0, |l| l.index);
        if applied >= index {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "index {index} not applied (at {applied})"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn three_replicas_elect_replicate_and_fail_over() {
    let (router, nodes) = start(3).await;
    let first = leader_among(&nodes, &[1, 2, 3]).await;
    let mut last = 0;
    for i in 0..10u8 {
        last = nodes[&first]
            .raft
            .client_write(GroupRequest::Raw(vec![i]))
            .await
            .unwrap()
            .log_id
            .index;
    }
    for node in nodes.values() {
        wait_applied(node, last).await;
    }

    // Cut the leader off: the other two elect a new one and keep taking writes.
    router.isolate(first);
    let rest: Vec<u64> = nodes.keys().copied().filter(|id| *id != first).collect();
    let second = leader_among(&nodes, &rest).await;
    assert_ne!(second, first);
    for i in 10..20u8 {
        last = nodes[&second]
            .raft
            .client_write(GroupRequest::Raw(vec![i]))
            .await
            .unwrap()
            .log_id
            .index;
    }
    // The deposed leader cannot commit anything on its own.
    let stale = tokio::time::timeout(
        Duration::from_millis(500),
        nodes[&first].raft.client_write(GroupRequest::Raw(vec![99])),
    )
    .await;
    assert!(
        !matches!(stale, Ok(Ok(_))),
        "an isolated leader acknowledged a write"
    );

    // Heal: everyone converges on the same applied entries.
    router.heal();
    for node in nodes.values() {
        wait_applied(node, last).await;
    }
    let applied: Vec<Vec<u64>> = nodes.values().map(|n| n.machine.applied()).collect();
    assert!(
        applied.iter().all(|a| *a == applied[0]),
        "replicas diverged: {applied:?}"
    );
    assert_eq!(
        applied[0].len(),
        20,
        "every acknowledged write applied once"
    );
    for node in nodes.values() {
        node.raft.shutdown().await.unwrap();
    }
}
