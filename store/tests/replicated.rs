//! The replicated store: the CommitLog as a Raft log. Entries by index, offsets assigned
//! on the leader and checked on followers, committed-only reads, truncation of a
//! conflicting tail, and recovery after a crash. Both builds run them.

mod common;

use bytes::Bytes;
use proto::{MessageRef, NewMessage};
use store::disk::HeldSyncDisk;
use store::{
    FlushMode, GetStatus, LogPayload, LogPosition, LogRecord, MessageStore, QueueStart, SimDisk,
    SimDiskConfig, StoreConfig, StoreError,
};

/// The scenario tests' small files, with sync flush.
fn config() -> StoreConfig {
    common::config(FlushMode::Sync)
}

/// A new message entry as a leader proposes it: offsets not yet assigned.
fn message(term: u64, index: u64, queue_id: u32, body: &str) -> LogRecord {
    messages(term, index, queue_id, &[body])
}

/// One-message entries of `term` at `indexes` on queue 0, bodies `{prefix}{index}`.
fn run_of(term: u64, indexes: std::ops::RangeInclusive<u64>, prefix: &str) -> Vec<LogRecord> {
    indexes
        .map(|i| message(term, i, 0, &format!("{prefix}{i}")))
        .collect()
}

/// A new entry carrying several messages.
fn messages(term: u64, index: u64, queue_id: u32, bodies: &[&str]) -> LogRecord {
    common::entry_at(term, index, queue_id, bodies, 1_000 + index as i64)
}

fn at(term: u64, index: u64) -> LogPosition {
    LogPosition {
        term,
        leader: 1,
        index,
    }
}

fn control(term: u64, index: u64) -> LogRecord {
    LogRecord {
        term,
        leader: 1,
        index,
        payload: LogPayload::Control(Bytes::from(format!("control {index}"))),
    }
}

async fn open(disk: &SimDisk) -> MessageStore<SimDisk> {
    MessageStore::open_replicated(disk.clone(), config())
        .await
        .unwrap()
}

async fn append(store: &MessageStore<SimDisk>, records: Vec<LogRecord>) -> u64 {
    let appended = store.append_log(records).await.unwrap();
    store.wait_durable(appended.end_offset).await.unwrap();
    appended.end_offset
}

async fn bodies(store: &MessageStore<SimDisk>, queue_id: u32) -> Vec<String> {
    let mut out = Vec::new();
    let mut offset = 0;
    loop {
        let got = store
            .get_messages("T", queue_id, offset, 1000, |_| true)
            .await
            .unwrap();
        if got.status != GetStatus::Found {
            return out;
        }
        for bytes in &got.messages {
            let m = MessageRef::parse_checked(bytes).unwrap();
            out.push(String::from_utf8(m.body().to_vec()).unwrap());
        }
        offset = got.next_offset;
    }
}

/// Publishes every message entry up to `index` as committed, as the state machine does.
async fn commit_through(store: &MessageStore<SimDisk>, index: u64) {
    let first = store.first_log_id().await.unwrap().map_or(1, |f| f.index);
    let records = store.read_log(first, index + 1, usize::MAX).await.unwrap();
    let mut end = 0;
    let mut messages = Vec::new();
    for r in &records {
        if let LogPayload::Messages { messages: all, .. } = &r.payload {
            for bytes in all {
                let m = MessageRef::parse(bytes).unwrap();
                messages.push((m.queue_id(), m.queue_offset()));
                end = m.physical_offset() + bytes.len() as u64;
            }
        }
    }
    store.publish_committed(messages.iter().map(|&(q, o)| ("T", q, o)), end);
}

#[tokio::test]
async fn entries_round_trip_and_only_committed_messages_are_readable() {
    let disk = SimDisk::new(SimDiskConfig::reliable(1));
    let leader = open(&disk).await;
    let mut records = vec![control(1, 1)];
    for i in 2..=60 {
        records.push(message(1, i, (i % 2) as u32, &format!("m{i}")));
    }
    append(&leader, records).await;
    assert_eq!(leader.last_log_id().await, at(1, 60));
    assert_eq!(leader.max_offset("T", 0), 0, "nothing is committed yet");
    assert_eq!(
        leader
            .get_messages("T", 0, 0, 10, |_| true)
            .await
            .unwrap()
            .status,
        GetStatus::NoMessageInQueue
    );
    let mut waiter = leader.queue_arrivals("T", 0);
    waiter.borrow_and_update();
    commit_through(&leader, 30).await;
    assert!(
        waiter.has_changed().unwrap(),
        "a commit wakes the queue's waiters"
    );
    assert_eq!(leader.max_offset("T", 0), 15);
    assert_eq!(bodies(&leader, 0).await.len(), 15);

    // A follower appends what the leader's log reads back, in pieces: the same bytes at
    // the same offsets, with segment rolls in the same places.
    let follower_disk = SimDisk::new(SimDiskConfig::reliable(2));
    let follower = open(&follower_disk).await;
    let mut next = 1;
    while next <= 60 {
        let chunk = leader.read_log(next, 61, 700).await.unwrap();
        assert!(!chunk.is_empty());
        next = chunk.last().unwrap().index + 1;
        follower.append_log(chunk).await.unwrap();
    }
    let (a, b) = (
        leader.read_log(1, 61, usize::MAX).await.unwrap(),
        follower.read_log(1, 61, usize::MAX).await.unwrap(),
    );
    assert_eq!(a.len(), 60);
    assert_eq!(a, b);
    assert!(
        leader.commitlog_max_offset() > 4096,
        "the test spans segments"
    );
    commit_through(&follower, 60).await;
    assert_eq!(bodies(&follower, 0).await.len(), 30);
    assert_eq!(bodies(&follower, 1).await.len(), 29);
}

#[tokio::test]
async fn a_diverged_entry_stops_the_store() {
    let disk = SimDisk::new(SimDiskConfig::reliable(3));
    let leader = open(&disk).await;
    append(&leader, vec![message(1, 1, 0, "a"), message(1, 2, 0, "b")]).await;
    let follower = open(&SimDisk::new(SimDiskConfig::reliable(4))).await;
    // Entry 2 (queue offset 1) where the follower expects queue offset 0.
    let second = leader.read_log(2, 3, usize::MAX).await.unwrap();
    append(&follower, vec![control(1, 1)]).await;
    let err = follower.append_log(second).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Corrupt { reason, .. } if reason.contains("diverged")),
        "{err}"
    );
    assert!(follower.failure().is_some());
}

#[tokio::test]
async fn truncation_cuts_the_tail_and_survives_a_crash() {
    let disk = SimDisk::new(SimDiskConfig::reliable(5));
    let store = open(&disk).await;
    append(&store, run_of(1, 1..=50, "old")).await;
    commit_through(&store, 10).await;
    store.checkpoint_now().await.unwrap();
    // A new leader's entries replace 11.. (from an earlier segment than the last).
    store.truncate_log(11).await.unwrap();
    assert_eq!(store.last_log_id().await, at(1, 10));
    append(&store, run_of(2, 11..=20, "new")).await;
    assert_eq!(store.last_log_id().await, at(2, 20));
    drop(store);
    disk.crash();

    let store = open(&disk).await;
    assert_eq!(store.last_log_id().await, at(2, 20));
    store
        .restore_committed(store.commitlog_max_offset())
        .await
        .unwrap();
    let expected: Vec<String> = (1..=10)
        .map(|i| format!("old{i}"))
        .chain((11..=20).map(|i| format!("new{i}")))
        .collect();
    assert_eq!(bodies(&store, 0).await, expected);
    let entries = store.read_log(1, 100, usize::MAX).await.unwrap();
    assert_eq!(entries.len(), 20);
    assert_eq!(entries[10].term, 2);
    assert_eq!(store.first_log_id().await.unwrap(), Some(at(1, 1)));
}

/// A replicated store's reads never wait on the plain writer's acknowledgement mark
/// (`MessageStore::settled`): after a restart and a truncation, `dispatched` sits below
/// where the recovered log ended, and stays there until new entries pass it.
#[tokio::test]
async fn reads_after_a_restart_and_a_truncation_do_not_wait() {
    let disk = SimDisk::new(SimDiskConfig::reliable(6));
    let store = open(&disk).await;
    append(&store, run_of(1, 1..=50, "m")).await;
    drop(store);
    disk.crash();
    let store = open(&disk).await;
    store.truncate_log(11).await.unwrap();
    commit_through(&store, 10).await;
    let read = tokio::time::timeout(std::time::Duration::from_secs(5), bodies(&store, 0))
        .await
        .expect("a read waited for a mark the truncated log no longer reaches");
    assert_eq!(read.len(), 10);
}

#[tokio::test]
async fn writes_outside_the_log_are_refused() {
    let store = open(&SimDisk::new(SimDiskConfig::reliable(6))).await;
    let err = store
        .put_message(NewMessage::new("T", 0, b"x".to_vec()))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err}");
}

#[tokio::test]
async fn truncating_a_record_that_rolled_a_segment_restores_the_layout() {
    // `a` appends a large entry that does not fit segment 0 and rolls it; a new leader
    // `b` never had it. After `a` truncates it, both logs must continue identically.
    let a = open(&SimDisk::new(SimDiskConfig::reliable(7))).await;
    let b = open(&SimDisk::new(SimDiskConfig::reliable(8))).await;
    let mut index = 1;
    while a.commitlog_max_offset() < 4096 - 400 {
        for s in [&a, &b] {
            append(s, vec![message(1, index, 0, &"x".repeat(100))]).await;
        }
        index += 1;
    }
    append(&a, vec![message(1, index, 0, &"y".repeat(600))]).await;
    assert!(
        a.commitlog_max_offset() > 4096,
        "the large entry rolled the segment"
    );
    a.truncate_log(index).await.unwrap();
    for s in [&a, &b] {
        append(s, vec![control(2, index), message(2, index + 1, 0, "z")]).await;
    }
    assert!(
        b.commitlog_max_offset() < 4096,
        "the control record fits segment 0"
    );
    let (la, lb) = (
        a.read_log(1, index + 2, usize::MAX).await.unwrap(),
        b.read_log(1, index + 2, usize::MAX).await.unwrap(),
    );
    assert_eq!(la, lb);
    assert_eq!(a.commitlog_max_offset(), b.commitlog_max_offset());
}

#[tokio::test]
async fn entries_of_several_messages_replicate_and_truncate_whole() {
    // Entries of 1..=4 messages of ~300 bytes in 4 KiB segments: several entries have
    // to move whole to the next segment.
    let leader = open(&SimDisk::new(SimDiskConfig::reliable(9))).await;
    let body = "m".repeat(250);
    let mut expected = Vec::new();
    let mut records = Vec::new();
    for index in 1..=40u64 {
        let bodies: Vec<String> = (0..index % 4 + 1)
            .map(|i| format!("{index}-{i}-{body}"))
            .collect();
        expected.extend(bodies.iter().cloned());
        let refs: Vec<&str> = bodies.iter().map(String::as_str).collect();
        records.push(messages(1, index, 0, &refs));
    }
    let appended = leader.append_log(records).await.unwrap();
    assert_eq!(appended.puts.len(), 40);
    for (i, puts) in appended.puts.iter().enumerate() {
        assert_eq!(puts.len() as u64, (i as u64 + 1) % 4 + 1, "entry {}", i + 1);
    }
    leader.wait_durable(appended.end_offset).await.unwrap();
    assert!(
        leader.commitlog_max_offset() > 3 * 4096,
        "the test spans segments"
    );
    let log = leader.read_log(1, 41, usize::MAX).await.unwrap();
    assert_eq!(log.len(), 40);
    // A follower fed in small reads (each returns whole entries) ends byte-identical.
    let follower = open(&SimDisk::new(SimDiskConfig::reliable(10))).await;
    let mut next = 1;
    while next <= 40 {
        let chunk = leader.read_log(next, 41, 500).await.unwrap();
        next = chunk.last().unwrap().index + 1;
        follower.append_log(chunk).await.unwrap();
    }
    assert_eq!(follower.read_log(1, 41, usize::MAX).await.unwrap(), log);
    assert_eq!(
        follower.commitlog_max_offset(),
        leader.commitlog_max_offset()
    );
    // Entries 39 (4 messages) and 40 (1 message) stay uncommitted.
    commit_through(&follower, 38).await;
    assert_eq!(bodies(&follower, 0).await, expected[..expected.len() - 5]);
    // Truncating a multi-message entry removes all of its messages.
    follower.truncate_log(39).await.unwrap();
    assert_eq!(follower.last_log_id().await, at(1, 38));
    follower
        .append_log(vec![messages(2, 39, 0, &["x", "y"])])
        .await
        .unwrap();
    let entries = follower.read_log(37, 100, usize::MAX).await.unwrap();
    assert_eq!(entries.len(), 3);
    let LogPayload::Messages { messages: last, .. } = &entries[2].payload else {
        panic!("a message entry")
    };
    assert_eq!(last.len(), 2);
}

#[tokio::test]
async fn an_entry_torn_by_a_crash_is_dropped_whole() {
    // A crash keeps a random prefix of the unsynced tail: the torn entry's first records
    // may survive intact. Recovery must keep an entry whole or not at all.
    let mut torn_inside = 0;
    for seed in 0..40 {
        let disk = SimDisk::new(SimDiskConfig {
            torn_tail_probability: 1.0,
            ..SimDiskConfig::reliable(100 + seed)
        });
        let store = open(&disk).await;
        append(&store, vec![message(1, 1, 0, "durable")]).await;
        store.checkpoint_now().await.unwrap();
        let start = store.commitlog_max_offset();
        let bodies3 = ["a".repeat(200), "b".repeat(200), "c".repeat(200)];
        let refs: Vec<&str> = bodies3.iter().map(String::as_str).collect();
        let appended = store
            .append_log(vec![messages(1, 2, 0, &refs)])
            .await
            .unwrap();
        let first_record_end =
            appended.puts[0][0].physical_offset + u64::from(appended.puts[0][0].size);
        // No await between the append and the crash: nothing syncs the entry.
        drop(store);
        disk.crash();
        let survived = disk.durable_len("commitlog/00000000000000000000").unwrap();
        if survived >= first_record_end && survived < appended.end_offset {
            torn_inside += 1;
        }
        let store = open(&disk).await;
        store
            .restore_committed(store.commitlog_max_offset())
            .await
            .unwrap();
        let got = bodies(&store, 0).await;
        let last = store.last_log_id().await;
        if survived >= appended.end_offset {
            assert_eq!(last, at(1, 2), "seed {seed}");
            assert_eq!(got.len(), 4, "seed {seed}");
        } else {
            assert_eq!(last, at(1, 1), "seed {seed}: a torn entry was kept");
            assert_eq!(
                got,
                ["durable"],
                "seed {seed}: part of a torn entry is readable"
            );
            assert_eq!(store.commitlog_max_offset(), start, "seed {seed}");
        }
    }
    assert!(
        torn_inside > 0,
        "no seed tore the entry after a whole record"
    );
}

#[tokio::test]
async fn a_segment_closed_right_after_a_restart_keeps_its_messages_from_retention() {
    // Messages stamped now, so retention (72 h) must keep them.
    let now_ms = proto::clock::now_ms();
    let body = "n".repeat(300);
    let fresh = |index: u64| common::entry_at(1, index, 0, &[body.as_str()], now_ms);
    let disk = SimDisk::new(SimDiskConfig::reliable(11));
    let store = open(&disk).await;
    let mut index = 1;
    while store.commitlog_max_offset() < 4096 - 800 {
        append(&store, vec![fresh(index)]).await;
        index += 1;
    }
    store.checkpoint_now().await.unwrap();
    drop(store);
    // A restart, then only control entries (a new term's blank, say) until the segment
    // rolls: its end record must still name its newest message.
    let store = open(&disk).await;
    while store.commitlog_max_offset() < 4096 {
        append(&store, vec![control(2, index)]).await;
        index += 1;
    }
    // Committed, so retention may move the log's start past them if it judged them old.
    append(&store, vec![message(2, index, 0, "after")]).await;
    commit_through(&store, index).await;
    store.clean_now().await.unwrap();
    assert_eq!(
        store.log_start(),
        None,
        "retention deleted a segment of fresh messages"
    );
}

/// A leader whose log spans four segments, all committed, with messages stamped long
/// ago (so they expire at once), and every entry it wrote, read back. Queue 1 has
/// messages in the first segment only.
async fn leader_of_four_segments(disk: &SimDisk) -> (MessageStore<SimDisk>, Vec<LogRecord>) {
    let leader = open(disk).await;
    let body = "s".repeat(200);
    let mut index = 1;
    while leader.commitlog_max_offset() < 3 * 4096 + 1000 {
        let queue_id = if leader.commitlog_max_offset() < 4096 {
            (index % 2) as u32
        } else {
            0
        };
        let entry = if index % 5 == 0 {
            control(1, index)
        } else {
            messages(1, index, queue_id, &[body.as_str(), "x"])
        };
        append(&leader, vec![entry]).await;
        index += 1;
    }
    commit_through(&leader, index - 1).await;
    let all = leader.read_log(1, index, usize::MAX).await.unwrap();
    assert_eq!(all.len() as u64, index - 1);
    (leader, all)
}

#[tokio::test]
async fn retention_records_where_the_log_starts_raft_purges_and_a_reset_continues_there() {
    // Once the first segment is gone queue 1 continues at its max offset.
    let disk = SimDisk::new(SimDiskConfig::reliable(12));
    let (leader, _) = leader_of_four_segments(&disk).await;
    let queue_1_max = leader.max_offset("T", 1);
    assert!(queue_1_max > 0);
    assert_eq!(leader.log_start(), None, "nothing deleted yet");
    leader.clean_now().await.unwrap();
    let start = leader.log_start().expect("retention moved the log's start");
    // The segments stay until Raft purges the entries (replication may still read them).
    assert_eq!(leader.commitlog_min_offset(), 0);
    leader.purge_log(start.prev.index - 1).await.unwrap();
    assert!(
        leader.commitlog_min_offset() < start.base_offset,
        "a purge short of the start keeps the segment ending at the start"
    );
    leader.purge_log(start.prev.index).await.unwrap();
    let first = leader.first_log_id().await.unwrap().unwrap();
    assert_eq!(start.base_offset, leader.commitlog_min_offset());
    assert_eq!((start.prev.index + 1, start.prev.term), (first.index, 1));
    assert_eq!(
        start.queues,
        vec![
            QueueStart {
                topic: "T".into(),
                queue_id: 0,
                offset: leader.min_offset("T", 0),
            },
            QueueStart {
                topic: "T".into(),
                queue_id: 1,
                offset: queue_1_max,
            },
        ]
    );
    let tail = leader
        .read_log(first.index, u64::MAX, usize::MAX)
        .await
        .unwrap();
    assert_eq!(tail.first().unwrap().index, first.index);

    // The marker survives a crash.
    disk.crash();
    drop(leader);
    let leader = open(&disk).await;
    assert_eq!(leader.log_start(), Some(start.clone()));
    assert_eq!(leader.max_offset("T", 1), queue_1_max);

    // A follower without the start's entry resets to the start: empty, continuing there.
    let follower_disk = SimDisk::new(SimDiskConfig::reliable(13));
    let follower = open(&follower_disk).await;
    append(&follower, vec![message(1, 1, 1, "stale"), control(1, 2)]).await;
    follower.install_log_start(start.clone()).await.unwrap();
    assert_eq!(follower.last_log_id().await, start.prev);
    assert_eq!(follower.commitlog_max_offset(), start.base_offset);
    assert_eq!(
        (follower.min_offset("T", 0), follower.max_offset("T", 1)),
        (start.queues[0].offset, queue_1_max)
    );
    // The leader's entries from there land at the same offsets (a follower checks).
    append(&follower, tail.clone()).await;
    let leader_min_max: Vec<(u64, u64)> = (0..2)
        .map(|q| (leader.min_offset("T", q), leader.max_offset("T", q)))
        .collect();
    let same = |store: MessageStore<SimDisk>| {
        let (tail, leader_min_max) = (tail.clone(), leader_min_max.clone());
        async move {
            let read = store
                .read_log(first.index, u64::MAX, usize::MAX)
                .await
                .unwrap();
            assert_eq!(read, tail);
            for q in 0..2 {
                assert_eq!(
                    (store.min_offset("T", q), store.max_offset("T", q)),
                    leader_min_max[q as usize]
                );
            }
            store
        }
    };
    let follower = same(follower).await;
    // And all of it survives the follower's crash.
    follower_disk.crash();
    drop(follower);
    let follower = same(open(&follower_disk).await).await;
    assert_eq!(follower.log_start(), Some(start));
}

#[tokio::test]
async fn a_segment_closed_for_an_entry_a_crash_took_is_opened_again() {
    // A power loss kept the end record that closed a segment but none of the next
    // segment's first record. Recovery leaves that segment empty; looking up entries
    // older than what recovery scanned must still find them.
    let disk = SimDisk::new(SimDiskConfig::reliable(14));
    let store = open(&disk).await;
    let body = "e".repeat(300);
    let mut index = 1;
    // Synced entries into the second segment, and a checkpoint there: recovery scans
    // from the second segment on, so entry 1 is looked up by scanning segments.
    while store.commitlog_max_offset() < 4096 + 400 {
        append(&store, vec![message(1, index, 0, &body)]).await;
        index += 1;
    }
    store.checkpoint_now().await.unwrap();
    while store.commitlog_max_offset() < 2 * 4096 - 400 {
        append(&store, vec![message(1, index, 0, &body)]).await;
        index += 1;
    }
    drop(store);
    let unsynced = StoreConfig {
        flush_disk_type: FlushMode::Async,
        flush_interval_ms: 3_600_000,
        ..config()
    };
    let store = MessageStore::open_replicated(disk.clone(), unsynced.clone())
        .await
        .unwrap();
    // This entry rolls the log into a third segment; only the second one (closed by
    // its end record) reaches the disk.
    store
        .append_log(vec![message(1, index, 0, &body)])
        .await
        .unwrap();
    assert!(store.commitlog_max_offset() > 2 * 4096);
    use store::disk::{Disk, DiskFile};
    let second = disk
        .open("commitlog/00000000000000004096", false)
        .await
        .unwrap();
    second.sync().await.unwrap();
    disk.crash();
    drop(store);
    let store = MessageStore::open_replicated(disk.clone(), unsynced)
        .await
        .unwrap();
    assert_eq!(store.last_log_id().await, at(1, index - 1));
    let read = store.read_log(1, index, usize::MAX).await.unwrap();
    assert_eq!(
        read.len() as u64,
        index - 1,
        "entries hidden by the empty segment"
    );
    assert_eq!(read[0].index, 1);

    // The second segment is open again: the layout is what appending these entries
    // alone produces (a master that kept the end record would otherwise place its next
    // entry one segment later than its followers). A replica
    // fed the same entries checks every offset, and both put the next entry alike.
    let replica_disk = SimDisk::new(SimDiskConfig::reliable(16));
    let replica = open(&replica_disk).await;
    append(&replica, read).await;
    assert_eq!(replica.commitlog_max_offset(), store.commitlog_max_offset());
    assert!(
        store.commitlog_max_offset() < 2 * 4096,
        "the segment stayed closed"
    );
    let next = vec![control(2, index)];
    let (a, b) = (
        store.append_log(next.clone()).await.unwrap(),
        replica.append_log(next).await.unwrap(),
    );
    assert_eq!(a.end_offset, b.end_offset);
}

#[tokio::test]
async fn retention_never_moves_the_start_past_uncommitted_entries() {
    // Expired (old timestamps) but not committed: a deposed master's stale tail, say.
    let disk = SimDisk::new(SimDiskConfig::reliable(15));
    let store = open(&disk).await;
    let body = "u".repeat(300);
    let mut index = 1;
    while store.commitlog_max_offset() < 3 * 4096 + 500 {
        append(&store, vec![message(1, index, 0, &body)]).await;
        index += 1;
    }
    store.clean_now().await.unwrap();
    assert_eq!(
        store.log_start(),
        None,
        "the start moved past uncommitted entries"
    );
    // Committed into the second segment: the start may move to it, not further.
    let mut committed = 1;
    while store.log_offset(committed + 1).await.unwrap().unwrap() < 4096 + 100 {
        committed += 1;
    }
    commit_through(&store, committed).await;
    store.clean_now().await.unwrap();
    let start = store.log_start().expect("committed, expired segments");
    assert_eq!(start.base_offset, 4096);
    assert!(start.base_offset <= store.committed_offset());
}

#[tokio::test]
async fn a_follower_holding_the_starts_entry_keeps_the_entries_after_it() {
    // A follower killed right after appending an entry its leader never heard it
    // acknowledge was sent a snapshot ending just before that entry. openraft keeps such entries (the follower holds
    // the snapshot's last one) and sends only what follows; a store that emptied its
    // log then refused the next entry's queue offset.
    let (leader, all) = leader_of_four_segments(&SimDisk::new(SimDiskConfig::reliable(17))).await;
    leader.clean_now().await.unwrap();
    let start = leader.log_start().expect("retention moved the log's start");
    let prev = start.prev.index;
    let kept = prev + 2;
    assert!(all.len() as u64 > kept, "entries follow the kept ones");
    let disk = SimDisk::new(SimDiskConfig::reliable(18));
    let follower = open(&disk).await;
    append(&follower, all[..kept as usize].to_vec()).await;
    assert!(
        bodies(&follower, 0).await.is_empty(),
        "nothing committed yet"
    );

    // openraft purges what the snapshot covers before the state machine installs it:
    // the store, not knowing the start yet, deletes nothing then; the install does.
    follower.purge_log(prev).await.unwrap();
    assert_eq!(follower.commitlog_min_offset(), 0);
    let prev_end = follower.installed_committed_offset(&start).await.unwrap();
    assert!(
        prev_end > follower.log_offset(prev).await.unwrap().unwrap()
            && prev_end <= start.base_offset,
        "committed up to where entry prev ends"
    );
    follower.install_log_start(start.clone()).await.unwrap();
    assert_eq!(follower.log_start(), Some(start.clone()));
    assert_eq!(
        follower.last_log_id().await.index,
        kept,
        "the entries after the start's were kept"
    );
    assert_eq!(follower.commitlog_min_offset(), start.base_offset);
    // What lies below the start is applied (readable up to it) and, with its
    // segments, deleted, as on the leader; the kept entries are not committed yet.
    for (q, queue) in start.queues.iter().enumerate() {
        let q = q as u32;
        assert_eq!(follower.max_offset("T", q), queue.offset);
        assert_eq!(follower.min_offset("T", q), queue.offset);
    }
    // openraft goes on after the kept entries: the follower checks every offset.
    append(&follower, all[kept as usize..].to_vec()).await;
    commit_through(&follower, all.len() as u64).await;
    assert_eq!(
        follower.commitlog_max_offset(),
        leader.commitlog_max_offset()
    );
    for q in 0..2 {
        assert_eq!(follower.max_offset("T", q), leader.max_offset("T", q));
    }
    disk.crash();
    drop(follower);
    let follower = open(&disk).await;
    assert_eq!(follower.log_start(), Some(start.clone()));
    assert_eq!(follower.last_log_id().await.index, all.len() as u64);

    // A kept entry after `prev` may be another term's, uncommitted, and short enough to
    // sit in `prev`'s segment, where the leader's next entry did not fit: only what
    // ends at `prev` is committed, so Raft can still cut it, and the leader's entries
    // then land at the leader's offsets.
    let disk = SimDisk::new(SimDiskConfig::reliable(19));
    let stale = open(&disk).await;
    let mut log = all[..prev as usize].to_vec();
    log.push(LogRecord {
        payload: LogPayload::Control(Bytes::new()),
        ..control(2, prev + 1)
    });
    append(&stale, log).await;
    let prev_end = stale.log_offset(prev + 1).await.unwrap().unwrap();
    assert!(
        prev_end < start.base_offset,
        "the stale entry stayed in prev's segment"
    );
    assert_eq!(
        stale.installed_committed_offset(&start).await.unwrap(),
        prev_end
    );
    stale.install_log_start(start.clone()).await.unwrap();
    assert_eq!(stale.committed_offset(), prev_end);
    // Also after a restart, where the state machine's saved readable offset rules.
    disk.crash();
    drop(stale);
    let stale = open(&disk).await;
    stale.restore_committed(prev_end).await.unwrap();
    stale.truncate_log(prev + 1).await.unwrap();
    append(&stale, all[prev as usize..].to_vec()).await;
    assert_eq!(stale.commitlog_max_offset(), leader.commitlog_max_offset());

    // A follower whose entry at the start's index is another term's resets.
    let other = open(&SimDisk::new(SimDiskConfig::reliable(20))).await;
    let mut conflicting = all[..prev as usize - 1].to_vec();
    conflicting.push(control(2, prev));
    conflicting.push(control(2, prev + 1));
    append(&other, conflicting).await;
    assert_eq!(
        other.installed_committed_offset(&start).await.unwrap(),
        start.base_offset
    );
    other.install_log_start(start.clone()).await.unwrap();
    assert_eq!(other.last_log_id().await, start.prev);
    assert_eq!(other.commitlog_max_offset(), start.base_offset);
}

/// A Raft log append is reported durable when its sync completes, however long that
/// takes: a sync slower than `sync_flush_timeout_ms` (a stalled disk, or the process
/// paused and resumed) is no storage error, which would stop the replica's Raft for
/// good. A send to a single broker still gets FLUSH_DISK_TIMEOUT after it.
#[tokio::test]
async fn a_log_sync_slower_than_the_flush_timeout_is_waited_out() {
    let config = StoreConfig {
        sync_flush_timeout_ms: 20,
        ..config()
    };
    let disk = HeldSyncDisk::new(SimDisk::new(SimDiskConfig::reliable(9)));
    let store = MessageStore::open_replicated(disk.clone(), config.clone())
        .await
        .unwrap();
    disk.hold();
    let appended = store.append_log(run_of(1, 1..=3, "m")).await.unwrap();
    let release = async {
        disk.until_a_sync_waits().await;
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        disk.release();
    };
    let (durable, ()) = tokio::join!(store.wait_durable(appended.end_offset), release);
    durable.unwrap();
    // A single broker's sync-flush send still gets its timeout.
    let disk = HeldSyncDisk::new(SimDisk::new(SimDiskConfig::reliable(10)));
    let single = MessageStore::open(disk.clone(), config).await.unwrap();
    disk.hold();
    let refused = single
        .put_message(NewMessage::new("T", 0, Bytes::from_static(b"late")))
        .await;
    assert!(
        matches!(refused, Err(StoreError::FlushTimeout { timeout_ms: 20 })),
        "{refused:?}"
    );
    disk.release();
}
