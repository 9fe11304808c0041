//! Three replicas whose Raft log is the broker's CommitLog (`LogStore` + `GroupMachine`
//! on `SimDisk`): messages replicate to the same bytes at the same offsets, only
//! committed messages are readable, a deposed leader's uncommitted tail is truncated,
//! consumer offsets fail over with the log, and a replica that crashed recovers from its
//! disk and catches up. Runs on real tokio and, in the simulated build, on madsim.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::{config, leader_among, wait_applied_index};
use openraft::{BasicNode, EntryPayload, Raft, RaftLogReader};
use proto::message::StoreFields;
use proto::{MessageRef, NewMessage};
use raft::log_store::LogStore;
use raft::router::{NodeNetwork, Router};
use raft::state_machine::GroupMachine;
use raft::types::{GroupRaft, GroupRequest, OffsetUpdate};
use store::{FlushMode, GetStatus, LogPayload, MessageStore, SimDisk, SimDiskConfig, StoreConfig};

struct Node {
    raft: Raft<GroupRaft>,
    log: LogStore<SimDisk>,
    store: Arc<MessageStore<SimDisk>>,
    machine: GroupMachine<SimDisk>,
    disk: SimDisk,
}

fn store_config() -> StoreConfig {
    StoreConfig {
        flush_disk_type: FlushMode::Sync,
        flush_interval_ms: 5,
        checkpoint_interval_ms: 100,
        commitlog_segment_size: 4096,
        consume_queue_units_per_file: 16,
        index_entries_per_file: 64,
        message_size_max: 1024,
        ..StoreConfig::default()
    }
}

async fn start_node(id: u64, disk: SimDisk, router: &Router) -> Node {
    let store = Arc::new(
        MessageStore::open_replicated(disk.clone(), store_config())
            .await
            .unwrap(),
    );
    let log = LogStore::open(store.clone(), disk.clone()).await.unwrap();
    let machine = GroupMachine::open(store.clone(), disk.clone())
        .await
        .unwrap();
    let network = NodeNetwork {
        id,
        router: router.clone(),
    };
    let raft = Raft::new(id, config(), network, log.clone(), machine.clone())
        .await
        .unwrap();
    router.add(id, raft.clone());
    Node {
        raft,
        log,
        store,
        machine,
        disk,
    }
}

async fn start(n: u64) -> (Router, BTreeMap<u64, Node>) {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let router = Router::default();
    let mut nodes = BTreeMap::new();
    for id in 1..=n {
        let disk = SimDisk::new(SimDiskConfig::reliable(id));
        nodes.insert(id, start_node(id, disk, &router).await);
    }
    let members: BTreeMap<u64, BasicNode> = (1..=n).map(|id| (id, BasicNode::default())).collect();
    nodes[&1].raft.initialize(members).await.unwrap();
    (router, nodes)
}

fn rafts(nodes: &BTreeMap<u64, Node>) -> BTreeMap<u64, Raft<GroupRaft>> {
    nodes.iter().map(|(id, n)| (*id, n.raft.clone())).collect()
}

/// A message as a leader proposes it: stored layout, offsets not yet assigned.
fn message_bytes(queue_id: u32, body: &str) -> Bytes {
    let mut bytes = Vec::new();
    let fields = StoreFields {
        queue_offset: 0,
        physical_offset: 0,
        store_timestamp_ms: proto::clock::now_ms(),
        store_host: "10.0.0.1:10911".parse().unwrap(),
    };
    NewMessage::new("T", queue_id, body.as_bytes().to_vec())
        .encode_into(&fields, &mut bytes)
        .unwrap();
    Bytes::from(bytes)
}

/// An entry carrying one message per body.
fn entry(queue_id: u32, bodies: &[String]) -> GroupRequest {
    GroupRequest::Messages {
        messages: bodies.iter().map(|b| message_bytes(queue_id, b)).collect(),
        ticket: None,
    }
}

/// Sends `bodies` through `leader` in entries of one, two and three messages in turn
/// (so entries of several records meet segment ends), checking each acknowledgement;
/// returns the last index.
async fn send(node: &Node, bodies: impl IntoIterator<Item = String>) -> u64 {
    let bodies: Vec<String> = bodies.into_iter().collect();
    let mut last = 0;
    let mut rest = &bodies[..];
    let mut n = 1;
    while !rest.is_empty() {
        let (now, later) = rest.split_at(n.min(rest.len()));
        let response = node.raft.client_write(entry(0, now)).await.unwrap();
        let stored = response.data.stored;
        assert_eq!(stored.len(), now.len(), "one landing per message");
        assert!(stored.iter().all(|s| s.queue_id == 0));
        assert!(
            stored
                .windows(2)
                .all(|w| w[1].queue_offset == w[0].queue_offset + 1),
            "an entry's messages take consecutive queue offsets"
        );
        last = response.log_id.index;
        rest = later;
        n = n % 3 + 1;
    }
    last
}

async fn readable_bodies(store: &MessageStore<SimDisk>) -> Vec<String> {
    let mut out = Vec::new();
    let mut offset = 0;
    loop {
        let got = store
            .get_messages("T", 0, offset, 64, |_| true)
            .await
            .unwrap();
        if got.status != GetStatus::Found {
            return out;
        }
        for bytes in &got.messages {
            let m = MessageRef::parse_checked(bytes).unwrap();
            assert_eq!(m.queue_offset(), out.len() as u64, "dense queue offsets");
            out.push(String::from_utf8(m.body().to_vec()).unwrap());
        }
        offset = got.next_offset;
    }
}

/// Every replica holds byte-identical entries up to `last` and reads the same messages.
async fn assert_converged(nodes: &BTreeMap<u64, Node>, last: u64, expected: &[String]) {
    for node in nodes.values() {
        wait_applied_index(&node.raft, last).await;
    }
    let first = nodes.values().next().unwrap();
    let log = first.store.read_log(1, last + 1, usize::MAX).await.unwrap();
    assert_eq!(log.len() as u64, last);
    for (id, node) in nodes {
        let other = node.store.read_log(1, last + 1, usize::MAX).await.unwrap();
        assert!(other == log, "replica {id}'s log differs");
        assert_eq!(readable_bodies(&node.store).await, expected, "replica {id}");
        // What openraft reads (from the entry cache where it can) is what the disk has.
        let mut reader = node.log.clone();
        let entries = reader.try_get_log_entries(0..last).await.unwrap();
        assert_eq!(entries.len() as u64, last);
        for (entry, record) in entries.iter().zip(&other) {
            assert_eq!(entry.log_id.index + 1, record.index);
            assert_eq!(entry.log_id.leader_id.term, record.term);
            if let (
                EntryPayload::Normal(GroupRequest::Stored(a)),
                LogPayload::Messages { messages, .. },
            ) = (&entry.payload, &record.payload)
            {
                assert_eq!(
                    a, messages,
                    "replica {id}: entry {} differs from its record",
                    record.index
                );
            }
        }
    }
}

#[tokio::test]
async fn messages_replicate_fail_over_and_converge() {
    let (router, nodes) = start(3).await;
    let first = leader_among(&rafts(&nodes), &[1, 2, 3]).await;
    let mut expected: Vec<String> = (0..30).map(|i| format!("a{i}")).collect();
    let last = send(&nodes[&first], expected.clone()).await;
    assert_converged(&nodes, last, &expected).await;

    // Cut the leader off. What it appends alone is never acknowledged, never readable,
    // and is cut from its log once it rejoins.
    router.isolate(first);
    let stale_raft = nodes[&first].raft.clone();
    let stale = tokio::spawn(async move {
        tokio::time::timeout(
            Duration::from_millis(600),
            stale_raft.client_write(entry(0, &["stale".into(), "stale".into(), "stale".into()])),
        )
        .await
    });
    let rest: Vec<u64> = nodes.keys().copied().filter(|id| *id != first).collect();
    let second = leader_among(&rafts(&nodes), &rest).await;
    let more: Vec<String> = (0..10).map(|i| format!("b{i}")).collect();
    send(&nodes[&second], more.clone()).await;
    expected.extend(more);
    let offsets = GroupRequest::ConsumerOffsets(vec![OffsetUpdate {
        group: "G".into(),
        topic: "T".into(),
        queue_id: 0,
        offset: 25,
    }]);
    let last = nodes[&second]
        .raft
        .client_write(offsets)
        .await
        .unwrap()
        .log_id
        .index;
    assert!(
        !matches!(stale.await.unwrap(), Ok(Ok(_))),
        "an isolated leader acknowledged a write"
    );
    assert!(
        !readable_bodies(&nodes[&first].store)
            .await
            .contains(&"stale".to_string()),
        "an uncommitted message was readable"
    );

    router.heal();
    assert_converged(&nodes, last, &expected).await;
    for node in nodes.values() {
        assert_eq!(node.machine.consumer_offset("G", "T", 0), Some(25));
    }
    for node in nodes.values() {
        node.raft.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn a_crashed_replica_recovers_from_its_disk_and_catches_up() {
    let (router, mut nodes) = start(3).await;
    let leader = leader_among(&rafts(&nodes), &[1, 2, 3]).await;
    let mut expected: Vec<String> = (0..20).map(|i| format!("a{i}")).collect();
    let last = send(&nodes[&leader], expected.clone()).await;
    assert_converged(&nodes, last, &expected).await;
    let synced = last;

    // Crash a follower: unsynced bytes are lost, the rest is recovered from its disk.
    let victim = *nodes.keys().find(|id| **id != leader).unwrap();
    router.isolate(victim);
    let node = nodes.remove(&victim).unwrap();
    node.raft.shutdown().await.unwrap();
    let disk = node.disk.clone();
    drop(node);
    disk.crash();

    let more: Vec<String> = (0..20).map(|i| format!("b{i}")).collect();
    let last = send(&nodes[&leader], more.clone()).await;
    expected.extend(more);

    let restarted = start_node(victim, disk, &router).await;
    // Record index = Raft index + 1: every entry converged before the crash is synced.
    assert!(
        restarted.store.last_log_id().await.index > synced,
        "the replica lost synced entries"
    );
    nodes.insert(victim, restarted);
    router.heal();
    assert_converged(&nodes, last, &expected).await;
    for node in nodes.values() {
        node.raft.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn a_ticket_reports_the_leaders_own_append_before_any_quorum() {
    let (router, nodes) = start(3).await;
    let leader = leader_among(&rafts(&nodes), &[1, 2, 3]).await;
    send(&nodes[&leader], ["warm-up".to_string()]).await;
    // The leader alone: it appends (and syncs) but cannot commit.
    for id in nodes.keys().filter(|id| **id != leader) {
        router.isolate(*id);
    }
    let node = &nodes[&leader];
    let (ticket, landed) = node.log.ticket();
    let bodies = ["leader-only".to_string(), "leader-only-2".to_string()];
    let GroupRequest::Messages { messages, .. } = entry(0, &bodies) else {
        unreachable!()
    };
    let raft = node.raft.clone();
    let write = tokio::spawn(async move {
        raft.client_write(GroupRequest::Messages {
            messages,
            ticket: Some(ticket),
        })
        .await
    });
    let puts = tokio::time::timeout(Duration::from_secs(2), landed)
        .await
        .expect("the leader's own append is reported")
        .unwrap()
        .expect("appended");
    assert_eq!(
        puts.iter().map(|p| p.queue_offset).collect::<Vec<_>>(),
        [1, 2]
    );
    let put = puts[1];
    assert!(
        node.store.wait_durable(put.end_offset()).await.is_ok(),
        "flush = sync: the ticket waited for the fsync"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!write.is_finished(), "no quorum, so no commit");
    assert_eq!(
        node.store.max_offset("T", 0),
        1,
        "not readable before commit"
    );
    for node in nodes.values() {
        node.raft.shutdown().await.unwrap();
    }
}
