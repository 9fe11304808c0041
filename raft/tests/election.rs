//! openraft on `RaftRuntime`: three replicas elect a leader, replicate, survive the
//! leader's isolation, and converge. The same test runs on real tokio and, in the
//! simulated build, on madsim (where `MADSIM_TEST_SEED` replays a run and
//! `MADSIM_TEST_CHECK_DETERMINISM=1` checks it is deterministic).

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{config, leader_among, request, wait_applied_index};
use openraft::{BasicNode, Raft};
use raft::mem::{MemLog, MemMachine};
use raft::router::{NodeNetwork, Router};
use raft::types::GroupRaft;

fn rafts(nodes: &BTreeMap<u64, Node>) -> BTreeMap<u64, Raft<GroupRaft>> {
    nodes.iter().map(|(id, n)| (*id, n.raft.clone())).collect()
}

struct Node {
    raft: Raft<GroupRaft>,
    machine: MemMachine,
}

async fn start(n: u64) -> (Router, BTreeMap<u64, Node>) {
    let config = config();
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

async fn wait_applied(node: &Node, index: u64) {
    wait_applied_index(&node.raft, index).await;
}

#[tokio::test]
async fn three_replicas_elect_replicate_and_fail_over() {
    let (router, nodes) = start(3).await;
    let first = leader_among(&rafts(&nodes), &[1, 2, 3]).await;
    let mut last = 0;
    for i in 0..10u8 {
        last = nodes[&first]
            .raft
            .client_write(request(i))
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
    let second = leader_among(&rafts(&nodes), &rest).await;
    assert_ne!(second, first);
    for i in 10..20u8 {
        last = nodes[&second]
            .raft
            .client_write(request(i))
            .await
            .unwrap()
            .log_id
            .index;
    }
    // The deposed leader cannot commit anything on its own.
    let stale = tokio::time::timeout(
        Duration::from_millis(500),
        nodes[&first].raft.client_write(request(99)),
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
