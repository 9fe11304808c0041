//! Raft-replicated broker groups, in process over real sockets: three replicas on real
//! files, a name server, and raftmq's own client.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use client::{ClientConfig, Message, Producer, PullConsumer, PullStatus};
use raftmq::config::{AckMode, Election};
use raftmq::dev::start_broker_on_disk;
use raftmq::BrokerConfig;
use store::{FlushMode, StdDisk};

use crate::group::Group;

/// Sends `body` until it is acknowledged (an attempt that fails may still have stored
/// it: at-least-once), for at most `within`.
async fn send_until_acked(producer: &Producer, topic: &str, body: &str, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        match producer.send(Message::new(topic, body.to_string())).await {
            Ok(result) if result.status == client::SendStatus::Ok => return,
            Ok(result) => tracing::info!(?result.status, body, "not acknowledged; retrying"),
            Err(e) => tracing::info!(error = %e, body, "send failed; retrying"),
        }
        assert!(
            Instant::now() < deadline,
            "{body} not acknowledged in {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Sends `messages` as one batch, which must be acknowledged (status only on failure:
/// a large batch's result lists every msg id).
async fn send_batch_acked(producer: &Producer, messages: Vec<Message>, what: &str) {
    let result = producer.send_batch(messages).await;
    assert!(
        matches!(&result, Ok(r) if r.status == client::SendStatus::Ok),
        "{what}: {:?}",
        result.map(|r| r.status)
    );
}

/// Every message body in every queue of `topic`, read through any reachable replica.
async fn read_all(config: ClientConfig, topic: &str) -> Vec<String> {
    let consumer = PullConsumer::new("reader", config);
    let mut bodies = Vec::new();
    for queue in consumer.fetch_queues(topic).await.unwrap() {
        let mut offset = 0;
        loop {
            let got = consumer.pull(&queue, "*", offset, 32).await.unwrap();
            if got.status == PullStatus::OffsetIllegal && got.next_begin_offset > offset {
                offset = got.next_begin_offset; // retention deleted the queue's head
                continue;
            }
            if got.status != PullStatus::Found {
                break;
            }
            for m in &got.messages {
                bodies.push(String::from_utf8(m.body.to_vec()).unwrap());
            }
            offset = got.next_begin_offset;
        }
    }
    bodies
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quorum_sync_failover_keeps_every_acknowledged_message_and_offset() {
    let mut group = Group::start(FlushMode::Sync, Election::Raft, AckMode::Quorum).await;
    let config = group.client_config();
    let producer = Producer::new("failover-producer", config.clone());
    let topic = "Failover";
    let mut acked = Vec::new();
    for i in 0..40 {
        let body = format!("m{i}");
        send_until_acked(&producer, topic, &body, Duration::from_secs(20)).await;
        acked.push(body);
    }
    // A consumer group commits an offset through the log before the master dies.
    let consumer = PullConsumer::new("G", config.clone());
    let queue = consumer.fetch_queues(topic).await.unwrap()[0].clone();
    consumer.commit_offset(&queue, 3).await.unwrap();

    let old = group.master().expect("a master");
    let killed_at = Instant::now();
    group.brokers[old].take().unwrap().abort();
    let mut first_ack = None;
    for i in 40..80 {
        let body = format!("m{i}");
        send_until_acked(&producer, topic, &body, Duration::from_secs(20)).await;
        first_ack.get_or_insert_with(|| killed_at.elapsed());
        acked.push(body);
    }
    let new = group.master().expect("a new master");
    assert_ne!(new, old);
    println!(
        "failover: master killed -> first acknowledged send after {:?}",
        first_ack.unwrap()
    );

    let read: BTreeSet<String> = read_all(config.clone(), topic).await.into_iter().collect();
    let lost: Vec<&String> = acked.iter().filter(|b| !read.contains(*b)).collect();
    assert!(
        lost.is_empty(),
        "acknowledged but lost after failover: {lost:?}"
    );
    let consumer = PullConsumer::new("G", config);
    consumer.fetch_queues(topic).await.unwrap();
    assert_eq!(
        consumer.fetch_offset(&queue).await.unwrap(),
        Some(3),
        "the committed offset failed over with the log"
    );
    group.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fixed_master_loss_stops_writes_and_slaves_keep_serving_reads() {
    let mut group = Group::start(FlushMode::Async, Election::Fixed, AckMode::Quorum).await;
    assert_eq!(group.master(), Some(0), "replica 1 is the fixed master");
    let config = group.client_config();
    let producer = Producer::new("fixed-producer", config.clone());
    let sent: Vec<String> = (0..20).map(|i| format!("f{i}")).collect();
    for body in &sent {
        send_until_acked(&producer, "Fixed", body, Duration::from_secs(10)).await;
    }
    // Wait until both slaves have everything (quorum is one slave).
    tokio::time::sleep(Duration::from_millis(500)).await;
    group.brokers[0].take().unwrap().abort();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        group.master(),
        None,
        "no slave takes over under election = fixed"
    );
    assert!(
        producer
            .send(Message::new("Fixed", "after the master died"))
            .await
            .is_err(),
        "a write succeeded without the fixed master"
    );
    let mut read = read_all(config, "Fixed").await;
    read.sort();
    let mut expected = sent.clone();
    expected.sort();
    assert_eq!(read, expected, "slaves serve every message");
    group.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_ack_works_reports_lag_and_a_restarted_follower_catches_up() {
    let mut group = Group::start(FlushMode::Async, Election::Raft, AckMode::Leader).await;
    let config = group.client_config();
    let producer = Producer::new("leader-producer", config.clone());
    let (master, follower) = group.stop_follower().await;
    let sent: Vec<String> = (0..60).map(|i| format!("l{i}")).collect();
    for body in &sent {
        send_until_acked(&producer, "Lag", body, Duration::from_secs(10)).await;
    }
    let lag = group.replica(master).replica_lag();
    let follower_id = (follower + 1) as u64;
    assert!(
        lag.get(&follower_id).copied().unwrap_or(0) >= 60,
        "the stopped follower lags by every entry since: {lag:?}"
    );

    // Restart it on its own disk: it catches up by log.
    group.restart_and_catch_up(master, follower).await;
    let store = group.brokers[follower].as_ref().unwrap().broker.store();
    let deadline = Instant::now() + Duration::from_secs(10);
    let total =
        |s: &store::MessageStore<StdDisk>| (0..4).map(|q| s.max_offset("Lag", q)).sum::<u64>();
    while total(store) < 60 {
        assert!(
            Instant::now() < deadline,
            "the follower serves {} of 60",
            total(store)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    group.shutdown().await;
}

/// A follower that missed more than a frame's worth of entries (16 MiB) still catches
/// up: the transport cuts AppendEntries to a byte budget. Before, openraft's batch of up
/// to 300 entries went out as one oversized frame, the follower's replica port closed
/// the connection, and the follower never caught up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_catches_up_over_more_than_a_frame_of_entries() {
    // A debug build beside the other tests takes seconds over the large batch below:
    // room enough that a slow machine does not time it out.
    let mut group = Group::start_with(FlushMode::Async, Election::Raft, AckMode::Quorum, |c| {
        if let Some(replication) = &mut c.replication {
            replication.write_timeout_ms = 60_000;
        }
    })
    .await;
    let mut config = group.client_config();
    config.request_timeout = Duration::from_secs(60);
    let producer = Producer::new("bulk-producer", config);
    let (master, follower) = group.stop_follower().await;
    // 96 batches of 64 x 4 KiB: one entry each, 24 MiB in all.
    let body = vec![b'b'; 4096];
    for batch in 0..96 {
        let messages = (0..64)
            .map(|_| Message::new("Bulk", body.clone()))
            .collect::<Vec<_>>();
        send_batch_acked(&producer, messages, &format!("batch {batch}")).await;
    }
    // And one batch larger than an AppendEntries may carry once stored: 64k small
    // messages, a 6 MiB frame that takes over 16 MiB in the stored layout (each stored
    // message gains its store fields and its topic, here a long one). The master
    // splits it over consecutive entries.
    let topic = "Bulk".repeat(30);
    let messages = (0..64_000)
        .map(|_| Message::new(topic.as_str(), &b"0123456789abcdef"[..]))
        .collect::<Vec<_>>();
    send_batch_acked(&producer, messages, "the large batch").await;
    group.restart_and_catch_up(master, follower).await;
    wait_same_log(&group, master, follower).await;
    assert_same_store(&group, master, follower, "Bulk", 4).await;
    assert_same_store(&group, master, follower, &topic, 4).await;
    group.shutdown().await;
}

fn free_port() -> u16 {
    raftmq::dev::free_port().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_are_added_and_removed_while_the_group_serves() {
    let mut group = Group::start(FlushMode::Async, Election::Raft, AckMode::Quorum).await;
    let config = group.client_config();
    // A producer keeps sending throughout.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = {
        let (stop, producer) = (stop.clone(), Producer::new("load", config.clone()));
        tokio::spawn(async move {
            let mut acked = Vec::new();
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let body = format!("u{i}");
                send_until_acked(&producer, "Members", &body, Duration::from_secs(20)).await;
                acked.push(body);
                i += 1;
            }
            acked
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Replica 4 starts empty with `join = true` and is added while sends go on.
    let (config4, addrs4) = joining_replica(&group, 4);
    group
        .brokers
        .push(Some(start_broker_on_disk(config4).await.unwrap()));
    let admin = client::Admin::new(ClientConfig {
        request_timeout: Duration::from_secs(60),
        ..config.clone()
    });
    admin
        .add_replica("broker-a", 4, &addrs4.broker, &addrs4.replica)
        .await
        .unwrap();
    let status = admin.group_status("broker-a").await.unwrap();
    assert_eq!(status.voters, vec![1, 2, 3, 4], "{status:?}");

    // Then a follower is removed, still under load.
    let master = status.master.unwrap();
    let gone = [1, 2, 3].into_iter().find(|id| *id != master).unwrap();
    admin.remove_replica("broker-a", gone).await.unwrap();
    let status = admin.group_status("broker-a").await.unwrap();
    assert!(!status.voters.contains(&gone), "{status:?}");
    assert_eq!(status.voters.len(), 3, "{status:?}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let acked = load.await.unwrap();
    assert!(
        acked.len() > 10,
        "the load kept flowing: {} acked",
        acked.len()
    );

    let read: BTreeSet<String> = read_all(config, "Members").await.into_iter().collect();
    assert!(
        acked.iter().all(|b| read.contains(b)),
        "acknowledged messages lost"
    );
    // The new replica holds every message.
    let store4 = group.brokers[3].as_ref().unwrap().broker.store();
    let deadline = Instant::now() + Duration::from_secs(10);
    let total =
        |s: &store::MessageStore<StdDisk>| (0..4).map(|q| s.max_offset("Members", q)).sum::<u64>();
    while total(store4) < acked.len() as u64 {
        assert!(
            Instant::now() < deadline,
            "replica 4 has {} of {}",
            total(store4),
            acked.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    group.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscription_groups_fail_over_with_the_log() {
    let mut group = Group::start(FlushMode::Async, Election::Raft, AckMode::Quorum).await;
    let config = group.client_config();
    let admin = client::Admin::new(config.clone());
    admin
        .create_topic("SubGroups", 1, None, false)
        .await
        .unwrap();
    let off = proto::remoting::body::SubscriptionGroupBody {
        group_name: "Closed".into(),
        consume_enable: false,
        retry_max_times: 5,
        ..Default::default()
    };
    admin.create_subscription_group(&off, None).await.unwrap();

    let old = group.master().expect("a master");
    group.brokers[old].take().unwrap().abort();
    let new = group.wait_master(Duration::from_secs(15)).await;
    assert_ne!(new, old);
    // The new master has the group from the log: it lists it and enforces it.
    let deadline = Instant::now() + Duration::from_secs(20);
    let tables = loop {
        match admin.subscription_groups(None).await {
            Ok(t)
                if t.iter()
                    .any(|(_, w)| !w.subscription_group_table.is_empty()) =>
            {
                break t
            }
            other => {
                assert!(Instant::now() < deadline, "no master answered: {other:?}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    let closed = &tables[0].1.subscription_group_table["Closed"];
    assert!(!closed.consume_enable);
    assert_eq!(closed.retry_max_times, 5);
    let consumer = PullConsumer::new("Closed", config);
    let queue = consumer.fetch_queues("SubGroups").await.unwrap()[0].clone();
    let refused = loop {
        match consumer.pull(&queue, "*", 0, 8).await {
            Err(client::ClientError::Broker { code, .. }) => break code,
            other => {
                assert!(Instant::now() < deadline, "pull not refused: {other:?}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    assert_eq!(refused, proto::remoting::codes::response::NO_PERMISSION);
    group.shutdown().await;
}

/// An admin change made while the group fails over reaches the new master: the name
/// servers still route to the dead one at first (a lost connection), then briefly maybe
/// to a replica that is not master yet; the admin retries at the master they name next.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_changes_follow_mastership_during_a_failover() {
    let mut group = Group::start(FlushMode::Async, Election::Raft, AckMode::Quorum).await;
    let admin = client::Admin::new(group.client_config());
    let old = group.master().expect("a master");
    group.brokers[old].take().unwrap().abort();
    let masters = admin
        .create_topic("DuringFailover", 2, None, false)
        .await
        .expect("created at the new master");
    let new = group.master().expect("a new master took the change");
    assert_ne!(new, old);
    assert_eq!(masters.len(), 1);
    let route = admin.topic_route("DuringFailover").await.unwrap();
    assert_eq!(route.queue_datas[0].write_queue_nums, 2);
    group.shutdown().await;
}

/// Between a master leaving (it unregisters on a clean shutdown) and its successor
/// registering, the name servers route to no master: admin calls wait for one, as they
/// do during an election under load, rather than fail at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_calls_wait_while_no_master_is_registered() {
    let mut group = Group::start(FlushMode::Async, Election::Raft, AckMode::Quorum).await;
    let admin = client::Admin::new(group.client_config());
    let old = group.master().expect("a master");
    let old_id = group.configs[old].replication.as_ref().unwrap().replica_id;
    group.stop(old).await;
    let status = admin
        .group_status("broker-a")
        .await
        .expect("the new master answers");
    assert!(status.master.is_some(), "{status:?}");
    assert_ne!(status.master, Some(old_id), "{status:?}");
    group.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_waits_for_followers_and_a_new_replica_catches_up_by_snapshot() {
    // 64 KiB segments that expire at once; the disk ratio never forces deletion.
    let mut group = Group::start_with(FlushMode::Async, Election::Raft, AckMode::Quorum, |c| {
        c.store.commitlog_segment_size = 64 << 10;
        c.store.message_size_max = 16 << 10;
        c.store.file_reserved_hours = 0;
        c.timer_max_delay_sec = 0; // no timer may outlive a segment
        c.store.disk_max_used_space_ratio = 1.0;
    })
    .await;
    let producer = Producer::new("retention-producer", group.client_config());
    let (master, follower) = group.stop_follower().await;
    let body = "r".repeat(1000);
    let mut acked = Vec::new();
    for i in 0..250 {
        let body = format!("{i}-{body}");
        send_until_acked(&producer, "Retention", &body, Duration::from_secs(10)).await;
        acked.push(body);
    }
    // The master's floor (recomputed every second) keeps every segment the stopped
    // follower still needs, expired or not.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let store = group.brokers[master].as_ref().unwrap().broker.store();
    assert!(
        store.commitlog_max_offset() > 3 * (64 << 10),
        "the test spans segments"
    );
    store.clean_now().await.unwrap();
    assert_eq!(store.log_start(), None, "a segment the follower needs went");

    // So the follower, restarted, catches up by log.
    group.restart_and_catch_up(master, follower).await;
    // Once everyone has everything, expired segments go.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let master = group.wait_master(Duration::from_secs(15)).await;
    let store = group.brokers[master].as_ref().unwrap().broker.store();
    store.clean_now().await.unwrap();
    let start = store.log_start().expect("expired segments were kept");
    assert!(start.prev.index > 1 && start.base_offset > 0, "{start:?}");

    // A consumer group's offset, committed through the log before replica 4 exists.
    let reader = PullConsumer::new("snapshot-reader", group.client_config());
    let queues = reader.fetch_queues("Retention").await.unwrap();
    reader.commit_offset(&queues[0], 7).await.unwrap();

    // Replica 4 joins empty. The entries before the log start are gone from every
    // replica, so it gets a snapshot taken there and then the log after it.
    tokio::time::sleep(Duration::from_millis(1500)).await; // openraft learns the start
    let (config4, addrs4) = joining_replica(&group, 4);
    group
        .brokers
        .push(Some(start_broker_on_disk(config4.clone()).await.unwrap()));
    let admin = client::Admin::new(ClientConfig {
        request_timeout: Duration::from_secs(60),
        ..group.client_config()
    });
    admin
        .add_replica("broker-a", 4, &addrs4.broker, &addrs4.replica)
        .await
        .unwrap();
    let new = 3;
    wait_same_log(&group, master, new).await;
    let new_store = group.brokers[new].as_ref().unwrap().broker.store();
    assert_eq!(
        new_store.log_start(),
        Some(start.clone()),
        "the new replica's log starts there"
    );
    // The master's segments went once Raft purged the entries in them.
    let deadline = Instant::now() + Duration::from_secs(10);
    let master_store = group.brokers[master].as_ref().unwrap().broker.store();
    while master_store.commitlog_min_offset() < start.base_offset {
        assert!(
            Instant::now() < deadline,
            "the master kept its purged segments"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_same_store(&group, master, new, "Retention", queues.len() as u32).await;
    let offset = group.replica(new).machine().consumer_offset(
        "snapshot-reader",
        "Retention",
        queues[0].queue_id,
    );
    assert_eq!(offset, Some(7), "the snapshot carries committed offsets");

    // Restarted, replica 4 keeps its log start, queues and state.
    group.stop(new).await;
    group.brokers[new] = Some(start_broker_on_disk(config4).await.unwrap());
    wait_same_log(&group, master, new).await;
    assert_same_store(&group, master, new, "Retention", queues.len() as u32).await;

    // The old master goes; whoever masters now continues every queue where it was.
    group.stop(master).await;
    let master = group.wait_master(Duration::from_secs(15)).await;
    for i in 250..280 {
        let body = format!("{i}-after");
        send_until_acked(&producer, "Retention", &body, Duration::from_secs(20)).await;
        acked.push(body);
    }
    for i in (0..group.brokers.len()).filter(|i| *i != master && group.brokers[*i].is_some()) {
        wait_same_log(&group, master, i).await;
        assert_same_store(&group, master, i, "Retention", queues.len() as u32).await;
    }
    // Every acknowledged message still stored (from each queue's min offset) is read
    // back, and the ones after the failover all are.
    let read: BTreeSet<String> = read_all(group.client_config(), "Retention")
        .await
        .into_iter()
        .collect();
    assert!(
        acked[250..].iter().all(|b| read.contains(b)),
        "lost after failover"
    );
    assert!(
        read.iter().all(|b| acked.contains(b)),
        "read what was never sent"
    );
    group.shutdown().await;
}

/// The config of replica `id`, a new member that joins broker-a empty.
fn joining_replica(group: &Group, id: u64) -> (BrokerConfig, raftmq::config::ReplicaAddrs) {
    let mut config = group.configs[0].clone();
    let (broker_port, replica_port) = (free_port(), free_port());
    config.listen_port = broker_port;
    config.store_path_root_dir = group.dir.path().join(format!("broker-a-r{id}"));
    let replication = config.replication.as_mut().unwrap();
    replication.replica_id = id;
    replication.replica_listen_port = replica_port;
    replication.join = true;
    let addrs = raftmq::config::ReplicaAddrs {
        broker: format!("127.0.0.1:{broker_port}"),
        replica: format!("127.0.0.1:{replica_port}"),
    };
    replication.replicas.insert(id.to_string(), addrs.clone());
    (config, addrs)
}

/// Waits until broker `i` holds the log of broker `master` up to its last entry.
async fn wait_same_log(group: &Group, master: usize, i: usize) {
    let store = |i: usize| group.brokers[i].as_ref().unwrap().broker.store();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (want, have) = (
            store(master).last_log_id().await,
            store(i).last_log_id().await,
        );
        if want == have {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "broker {i} is at {have:?}, the master at {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Brokers `a` and `b` hold the same log from where the later of their starts is, and
/// every queue of `topic` has the same max offset on both, and the same min offset
/// when their logs start at the same place.
async fn assert_same_store(group: &Group, a: usize, b: usize, topic: &str, queues: u32) {
    let store = |i: usize| group.brokers[i].as_ref().unwrap().broker.store();
    let (a_store, b_store) = (store(a), store(b));
    let start = |s: &store::MessageStore<StdDisk>| s.log_start().map_or(0, |s| s.prev.index);
    let from = start(a_store).max(start(b_store)) + 1;
    let to = b_store.last_log_id().await.index + 1;
    let mut at = from;
    while at < to {
        let want = a_store.read_log(at, to, 1 << 20).await.unwrap();
        let have = b_store.read_log(at, to, 1 << 20).await.unwrap();
        assert!(!have.is_empty(), "broker {b} lacks entry {at}");
        assert_eq!(want, have, "brokers {a} and {b} differ from entry {at}");
        at = have.last().unwrap().index + 1;
    }
    let same_start = a_store.log_start() == b_store.log_start();
    let offsets = |s: &store::MessageStore<StdDisk>| {
        (0..queues)
            .map(|q| {
                (
                    same_start.then(|| s.min_offset(topic, q)),
                    s.max_offset(topic, q),
                )
            })
            .collect::<Vec<_>>()
    };
    // A send retried after a failover may still land meanwhile: compare once both
    // hold the same log again.
    let deadline = Instant::now() + Duration::from_secs(10);
    while offsets(a_store) != offsets(b_store) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        wait_same_log(group, a, b).await;
    }
    assert_eq!(
        offsets(a_store),
        offsets(b_store),
        "{topic} queues (min, max) on brokers {a} and {b}"
    );
}

/// A consumer heartbeats every replica of a group, as RocketMQ's clients do. A slave
/// cannot create a new group's retry topic (only the master writes the log) but records
/// the member all the same, so that if it becomes master it knows the group at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slave_records_a_new_groups_member_it_cannot_create_the_retry_topic_for() {
    use proto::net::rpc::RpcClient;
    use proto::remoting::body::{from_json, ConsumerListBody};
    use proto::remoting::codes::{request, response};
    use proto::remoting::RemotingCommand;

    let group = Group::start(FlushMode::Async, Election::Raft, AckMode::Quorum).await;
    let master = group.wait_master_registered(Duration::from_secs(10)).await;
    let slave = (0..3).find(|i| *i != master).unwrap();
    let addr = group.brokers[slave].as_ref().unwrap().local_addr;
    let rpc = RpcClient::connect(&addr.to_string(), None).await.unwrap();
    let timeout = Duration::from_secs(5);
    let body = br#"{"clientID":"slave-test@1","consumerDataSet":[{"consumeFromWhere":"CONSUME_FROM_LAST_OFFSET","consumeType":"CONSUME_PASSIVELY","groupName":"fresh-group","messageModel":"CLUSTERING","subscriptionDataSet":[{"classFilterMode":false,"codeSet":[],"expressionType":"TAG","subString":"*","subVersion":1,"tagsSet":[],"topic":"Fresh"}],"unitMode":false}],"producerDataSet":[]}"#;
    let reply = rpc
        .invoke(
            RemotingCommand::request(request::HEART_BEAT).with_body(body.to_vec()),
            timeout,
        )
        .await
        .unwrap();
    assert_eq!(reply.code, response::SUCCESS, "{:?}", reply.remark);
    let list = rpc
        .invoke(
            RemotingCommand::request(request::GET_CONSUMER_LIST_BY_GROUP)
                .with_ext("consumerGroup", "fresh-group"),
            timeout,
        )
        .await
        .unwrap();
    assert_eq!(list.code, response::SUCCESS, "{:?}", list.remark);
    let members: ConsumerListBody = from_json(&list.body).unwrap();
    assert_eq!(members.consumer_id_list, vec!["slave-test@1".to_string()]);
    group.shutdown().await;
}
