//! Three replicas over the TCP transport: elect, replicate, lose the leader, fail over,
//! converge. Real sockets on 127.0.0.1 normally; three simulated hosts under madsim
//! (where the leader's host is killed).
//!
//! Under madsim the test is also run twice per seed in one process
//! (`MADSIM_TEST_CHECK_DETERMINISM=1`, in `scripts/test`). The servers' shutdown signal
//! is `proto::watch`, not tokio's watch channel, which wakes its waiters in an order
//! drawn from tokio's RNG (seeded from a process-wide counter), so the teardown would
//! differ between the two runs. tokio's RNG can still reach
//! the run through openraft: its replication backoff after a peer is `Unreachable` (as
//! the killed leader's is here) waits in an unbiased `select!` (see `raft::router`).

mod common;

use std::collections::BTreeMap;

use common::{config, leader_among, request, wait_applied_index};
use openraft::{BasicNode, Raft};
use proto::net::server::Shutdown;
use raft::mem::{MemLog, MemMachine};
use raft::transport::{self, ReplicaName, TcpNetwork};
use raft::types::GroupRaft;

fn rafts(replicas: &BTreeMap<u64, Replica>) -> BTreeMap<u64, Raft<GroupRaft>> {
    replicas
        .iter()
        .map(|(id, r)| (*id, r.raft.clone()))
        .collect()
}

struct Replica {
    raft: Raft<GroupRaft>,
    machine: MemMachine,
    addr: String,
    shutdown: Shutdown,
}

async fn replica(id: u64, bind: std::net::SocketAddr) -> Replica {
    let machine = MemMachine::default();
    let raft = Raft::new(
        id,
        config(),
        TcpNetwork::new("g"),
        MemLog::default(),
        machine.clone(),
    )
    .await
    .unwrap();
    let shutdown = Shutdown::new();
    let (addr, _task) = transport::start(
        bind,
        ReplicaName::new("g", id),
        raft.clone(),
        shutdown.clone(),
    )
    .await
    .unwrap();
    Replica {
        raft,
        machine,
        addr: addr.to_string(),
        shutdown,
    }
}

#[cfg(not(madsim))]
async fn start_replicas() -> (BTreeMap<u64, Replica>, Option<()>) {
    let mut replicas = BTreeMap::new();
    for id in 1..=3 {
        replicas.insert(id, replica(id, "127.0.0.1:0".parse().unwrap()).await);
    }
    (replicas, None)
}

#[cfg(madsim)]
async fn start_replicas() -> (
    BTreeMap<u64, Replica>,
    Option<BTreeMap<u64, madsim::runtime::NodeHandle>>,
) {
    let handle = madsim::runtime::Handle::current();
    let mut replicas = BTreeMap::new();
    let mut nodes = BTreeMap::new();
    for id in 1..=3u64 {
        let ip: std::net::IpAddr = format!("10.0.2.{id}").parse().unwrap();
        let node = handle
            .create_node()
            .name(format!("replica-{id}"))
            .ip(ip)
            .build();
        let r = node
            .spawn(async move { replica(id, std::net::SocketAddr::new(ip, 10912)).await })
            .await
            .unwrap();
        replicas.insert(id, r);
        nodes.insert(id, node);
    }
    (replicas, Some(nodes))
}

#[tokio::test]
async fn replicas_over_tcp_fail_over_and_converge() {
    let (replicas, _nodes) = start_replicas().await;
    let members: BTreeMap<u64, BasicNode> = replicas
        .iter()
        .map(|(id, r)| {
            (
                *id,
                BasicNode {
                    addr: r.addr.clone(),
                },
            )
        })
        .collect();
    replicas[&1].raft.initialize(members).await.unwrap();
    let first = leader_among(&rafts(&replicas), &[1, 2, 3]).await;
    for i in 0..10u8 {
        replicas[&first]
            .raft
            .client_write(request(i))
            .await
            .unwrap();
    }

    // The leader goes away: its port closes (normally) or its host dies (madsim).
    #[cfg(madsim)]
    madsim::runtime::Handle::current().kill(_nodes.as_ref().unwrap()[&first].id());
    #[cfg(not(madsim))]
    {
        replicas[&first].shutdown.trigger();
        replicas[&first].raft.shutdown().await.unwrap();
    }
    let rest: Vec<u64> = replicas.keys().copied().filter(|id| *id != first).collect();
    let second = leader_among(&rafts(&replicas), &rest).await;
    let mut last = 0;
    for i in 10..20u8 {
        last = replicas[&second]
            .raft
            .client_write(request(i))
            .await
            .unwrap()
            .log_id
            .index;
    }
    for id in &rest {
        wait_applied_index(&replicas[id].raft, last).await;
    }
    let a = replicas[&rest[0]].machine.applied();
    let b = replicas[&rest[1]].machine.applied();
    assert_eq!(a, b, "survivors diverged");
    assert_eq!(a.len(), 20, "every acknowledged write applied once");
    for id in &rest {
        replicas[id].shutdown.trigger();
    }
}

/// A request meant for another group, or another replica of the group, is refused by
/// the replica port and reads as an unreachable peer to the sender: two groups whose
/// addresses cross (a wrong config, a reused port) never merge their logs.
#[cfg(not(madsim))]
#[tokio::test]
async fn a_replica_port_refuses_requests_meant_for_another_replica() {
    use openraft::error::RPCError;
    use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
    use openraft::raft::VoteRequest;
    use openraft::Vote;

    let r = replica(1, "127.0.0.1:0".parse().unwrap()).await;
    let node = BasicNode {
        addr: r.addr.clone(),
    };
    let vote = || VoteRequest::new(Vote::new(1, 2), None);
    let option = || RPCOption::new(std::time::Duration::from_secs(5));
    for (group, target) in [("other", 1), ("g", 2)] {
        let mut peer = TcpNetwork::new(group).new_client(target, &node).await;
        match peer.vote(vote(), option()).await {
            Err(RPCError::Unreachable(e)) => {
                let e = e.to_string();
                assert!(e.contains("group g replica 1"), "{e}");
                assert!(
                    e.contains(&format!("group {group} replica {target}")),
                    "{e}"
                );
            }
            other => panic!("{group}/{target}: expected a refusal, got {other:?}"),
        }
    }
    let mut peer = TcpNetwork::new("g").new_client(1, &node).await;
    let granted = peer
        .vote(vote(), option())
        .await
        .expect("the right replica answers");
    assert!(granted.vote_granted, "{granted:?}");
    r.shutdown.trigger();
}
