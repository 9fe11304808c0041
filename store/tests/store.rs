//! Scenario tests of `MessageStore` on `SimDisk`: the data path, recovery after crashes,
//! damage, retention and queries. They run in both builds (normal and `--cfg madsim`).

mod common;

use std::time::Duration;

use common::{bodies, config, message};
use proto::properties::keys;
use proto::{MessageRef, NewMessage};
use store::disk::DiskFile;
use store::{Disk, FlushMode, GetStatus, MessageStore, SimDisk, SimDiskConfig, StoreError};

#[tokio::test]
async fn put_get_and_statuses() {
    let disk = SimDisk::new(SimDiskConfig::reliable(1));
    let store = MessageStore::open(disk, config(FlushMode::Async))
        .await
        .unwrap();
    for i in 0..20 {
        let mut m = message("T", i % 2, &format!("m{i}"));
        m.properties
            .insert(keys::TAGS, if i % 4 < 2 { "TagA" } else { "TagB" });
        let r = store.put_message(m).await.unwrap();
        assert_eq!(r.queue_offset, u64::from(i / 2));
    }
    assert_eq!(store.max_offset("T", 0), 10);
    assert_eq!(
        bodies(&store, "T", 1).await,
        (0..10)
            .map(|i| format!("m{}", 2 * i + 1))
            .collect::<Vec<_>>()
    );
    let tag_a = proto::hash::java_string_hash("TagA");
    let got = store
        .get_messages("T", 0, 0, 100, |h| h == tag_a)
        .await
        .unwrap();
    assert_eq!(got.messages.len(), 5);
    assert_eq!(got.next_offset, 10);
    assert_eq!(
        store
            .get_messages("T", 0, 10, 1, |_| true)
            .await
            .unwrap()
            .status,
        GetStatus::OffsetOverflowOne
    );
    assert_eq!(
        store
            .get_messages("T", 0, 11, 1, |_| true)
            .await
            .unwrap()
            .status,
        GetStatus::OffsetOverflowBadly
    );
    assert_eq!(
        store
            .get_messages("T", 7, 0, 1, |_| true)
            .await
            .unwrap()
            .status,
        GetStatus::NoMessageInQueue
    );
    assert_eq!(
        store
            .get_messages("U", 0, 0, 1, |_| true)
            .await
            .unwrap()
            .status,
        GetStatus::NoMessageInQueue
    );
    let tag_c = proto::hash::java_string_hash("TagC");
    assert_eq!(
        store
            .get_messages("T", 0, 0, 4, |h| h == tag_c)
            .await
            .unwrap()
            .status,
        GetStatus::NoMatchedMessage
    );
}

#[tokio::test]
async fn bad_messages_are_refused_by_name() {
    let disk = SimDisk::new(SimDiskConfig::reliable(1));
    let store = MessageStore::open(disk, config(FlushMode::Async))
        .await
        .unwrap();
    let too_big = NewMessage::new("T", 0, vec![0u8; 2000]);
    let e = store.put_message(too_big).await.unwrap_err();
    assert!(
        matches!(e, StoreError::MessageIllegal(ref s) if s.contains("message_size_max")),
        "{e}"
    );
    let e = store
        .put_message(NewMessage::new("bad/topic", 0, "x"))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("'/'"), "{e}");
    // The store keeps serving.
    store.put_message(message("T", 0, "ok")).await.unwrap();
}

#[tokio::test]
async fn sync_flush_acks_survive_a_crash_and_segments_roll() {
    let disk = SimDisk::new(SimDiskConfig::reliable(2));
    let store = MessageStore::open(disk.clone(), config(FlushMode::Sync))
        .await
        .unwrap();
    for i in 0..100 {
        let r = store
            .put_message(message("T", i % 3, &format!("m{i}")))
            .await
            .unwrap();
        assert!(
            store.flushed_offset() >= r.end_offset(),
            "sync flush acked before fsync"
        );
    }
    assert!(
        store.commitlog_min_offset() == 0 && store.commitlog_max_offset() > 3 * 4096,
        "several segments"
    );
    drop(store);
    disk.crash();
    let store = MessageStore::open(disk.clone(), config(FlushMode::Sync))
        .await
        .unwrap();
    let mut all: Vec<String> = Vec::new();
    for q in 0..3 {
        all.extend(bodies(&store, "T", q).await);
    }
    assert_eq!(all.len(), 100);
    // And the store keeps appending after recovery.
    let r = store.put_message(message("T", 0, "after")).await.unwrap();
    assert_eq!(r.queue_offset, 34);
}

#[tokio::test]
async fn torn_tail_is_truncated_and_the_log_stays_a_prefix() {
    let mut disk_config = SimDiskConfig::reliable(3);
    disk_config.torn_tail_probability = 1.0;
    disk_config.torn_garbage_probability = 0.5;
    let disk = SimDisk::new(disk_config);
    let mut cfg = config(FlushMode::Async);
    cfg.flush_interval_ms = 60_000;
    cfg.checkpoint_interval_ms = 60_000;
    let store = MessageStore::open(disk.clone(), cfg.clone()).await.unwrap();
    for i in 0..10 {
        store
            .put_message(message("T", 0, &format!("durable{i}")))
            .await
            .unwrap();
    }
    store.checkpoint_now().await.unwrap();
    for i in 0..20 {
        store
            .put_message(message("T", 0, &format!("volatile{i}")))
            .await
            .unwrap();
    }
    drop(store);
    disk.crash();
    let store = MessageStore::open(disk.clone(), cfg).await.unwrap();
    let got = bodies(&store, "T", 0).await;
    assert!(got.len() >= 10, "durable messages survive");
    let expected: Vec<String> = (0..10)
        .map(|i| format!("durable{i}"))
        .chain((0..20).map(|i| format!("volatile{i}")))
        .collect();
    assert_eq!(
        got[..],
        expected[..got.len()],
        "recovered log is a prefix of what was appended"
    );
}

#[tokio::test]
async fn corruption_in_synced_data_is_an_error_naming_file_and_offset() {
    let disk = SimDisk::new(SimDiskConfig::reliable(4));
    let store = MessageStore::open(disk.clone(), config(FlushMode::Sync))
        .await
        .unwrap();
    let mut offsets = Vec::new();
    for i in 0..5 {
        offsets.push(
            store
                .put_message(message("T", 0, &format!("m{i}")))
                .await
                .unwrap()
                .physical_offset,
        );
    }
    store.shutdown().await.unwrap();
    // Flip a byte in the body of the second message: synced, below the checkpoint.
    disk.corrupt("commitlog/00000000000000000000", offsets[1] + 100, 0x40)
        .unwrap();
    let e = MessageStore::open(disk.clone(), config(FlushMode::Sync))
        .await
        .err()
        .expect("open must fail");
    let text = e.to_string();
    assert!(matches!(e, StoreError::Corrupt { .. }), "{text}");
    assert!(text.contains("commitlog/00000000000000000000"), "{text}");
}

#[tokio::test]
async fn damaged_consume_queue_is_rebuilt_from_the_commitlog() {
    let disk = SimDisk::new(SimDiskConfig::reliable(5));
    let store = MessageStore::open(disk.clone(), config(FlushMode::Sync))
        .await
        .unwrap();
    for i in 0..20 {
        store
            .put_message(message("T", 0, &format!("m{i}")))
            .await
            .unwrap();
    }
    store.shutdown().await.unwrap();
    // Remove the middle ConsumeQueue file: the queue is inconsistent and must be rebuilt.
    let names = disk.list("consumequeue/T/0/").await.unwrap();
    assert_eq!(names.len(), 3);
    disk.remove(&names[1]).await.unwrap();
    let store = MessageStore::open(disk.clone(), config(FlushMode::Sync))
        .await
        .unwrap();
    assert_eq!(
        bodies(&store, "T", 0).await,
        (0..20).map(|i| format!("m{i}")).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn consume_queue_behind_the_checkpoint_is_rebuilt() {
    let disk = SimDisk::new(SimDiskConfig::reliable(6));
    let store = MessageStore::open(disk.clone(), config(FlushMode::Sync))
        .await
        .unwrap();
    for i in 0..5 {
        store
            .put_message(message("T", 1, &format!("m{i}")))
            .await
            .unwrap();
    }
    store.shutdown().await.unwrap();
    // Cut the queue's only file short: units the checkpoint vouched for are gone.
    let names = disk.list("consumequeue/T/1/").await.unwrap();
    let file = disk.open(&names[0], false).await.unwrap();
    file.truncate(40).await.unwrap();
    file.sync().await.unwrap();
    let store = MessageStore::open(disk.clone(), config(FlushMode::Sync))
        .await
        .unwrap();
    assert_eq!(bodies(&store, "T", 1).await.len(), 5);
    // A queue rebuilt but later than the checkpoint still lines up for new writes.
    assert_eq!(
        store
            .put_message(message("T", 1, "next"))
            .await
            .unwrap()
            .queue_offset,
        5
    );
}

#[tokio::test]
async fn retention_deletes_old_segments_and_moves_queue_min_offsets() {
    let disk = SimDisk::new(SimDiskConfig::reliable(7));
    let mut cfg = config(FlushMode::Async);
    cfg.file_reserved_hours = 0;
    let store = MessageStore::open(disk.clone(), cfg.clone()).await.unwrap();
    for i in 0..100 {
        store
            .put_message(message("T", 0, &format!("m{i}")))
            .await
            .unwrap();
    }
    let segments_before = disk.list("commitlog/").await.unwrap().len();
    // Messages are stamped now; with 0 reserved hours they expire once a millisecond passes.
    tokio::time::sleep(Duration::from_millis(5)).await;
    store.clean_now().await.unwrap();
    let segments_after = disk.list("commitlog/").await.unwrap().len();
    assert!(segments_before > 2);
    assert_eq!(segments_after, 1, "all but the active segment are deleted");
    let min = store.min_offset("T", 0);
    assert!(min > 0, "queue min offset moved with the CommitLog");
    let got = store.get_messages("T", 0, 0, 1, |_| true).await.unwrap();
    assert_eq!(got.status, GetStatus::OffsetTooSmall);
    assert_eq!(got.next_offset, min);
    let left = bodies(&store, "T", 0).await;
    assert_eq!(left.last().map(String::as_str), Some("m99"));
    assert!(
        disk.list("consumequeue/T/0/").await.unwrap().len() < 13,
        "whole queue files deleted"
    );
    // Reopen after retention: the same view.
    drop(store);
    let store = MessageStore::open(disk.clone(), cfg).await.unwrap();
    assert_eq!(store.min_offset("T", 0), min);
    assert_eq!(bodies(&store, "T", 0).await, left);
}

#[tokio::test]
async fn query_by_key_and_by_offset() {
    let disk = SimDisk::new(SimDiskConfig::reliable(8));
    let store = MessageStore::open(disk.clone(), config(FlushMode::Async))
        .await
        .unwrap();
    let mut last = None;
    for i in 0..40 {
        let mut m = message("T", 0, &format!("m{i}"));
        m.properties.insert(keys::UNIQ_KEY, format!("uniq{i}"));
        last = Some(store.put_message(m).await.unwrap());
    }
    store.put_message(message("Other", 0, "m3")).await.unwrap();
    let found = store
        .query_by_key("T", "key-m3", 0, i64::MAX, 10)
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(MessageRef::parse(&found[0]).unwrap().topic(), "T");
    assert_eq!(
        store
            .query_by_key("T", "uniq39", 0, i64::MAX, 10)
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(
        store
            .query_by_key("T", "key-m3", 0, 0, 10)
            .await
            .unwrap()
            .is_empty(),
        "time range applies"
    );
    let last = last.unwrap();
    let by_id = store
        .message_at(last.msg_id.physical_offset)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(MessageRef::parse(&by_id).unwrap().body(), b"m39");
    assert!(
        store.message_at(last.physical_offset + 1).await.is_err(),
        "not a record boundary"
    );
    // The index survives a crash: entries past the checkpoint are re-dispatched.
    drop(store);
    disk.crash();
    let store = MessageStore::open(disk.clone(), config(FlushMode::Async))
        .await
        .unwrap();
    let n = bodies(&store, "T", 0).await.len();
    for i in 0..n {
        let found = store
            .query_by_key("T", &format!("key-m{i}"), 0, i64::MAX, 10)
            .await
            .unwrap();
        assert_eq!(found.len(), 1, "key-m{i} after recovery");
    }
}

#[tokio::test]
async fn fsync_eio_fails_the_write_and_stops_the_store_until_reopen() {
    let disk = SimDisk::new(SimDiskConfig::reliable(9));
    let store = MessageStore::open(disk.clone(), config(FlushMode::Sync))
        .await
        .unwrap();
    store.put_message(message("T", 0, "before")).await.unwrap();
    disk.set_sync_eio_probability(1.0);
    let e = store
        .put_message(message("T", 0, "during"))
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::Unavailable(_)), "{e}");
    disk.set_sync_eio_probability(0.0);
    let e = store
        .put_message(message("T", 0, "after"))
        .await
        .unwrap_err();
    assert!(
        matches!(e, StoreError::Unavailable(_)),
        "a failed fsync is not retried into success: {e}"
    );
    assert!(store.failure().unwrap().contains("EIO"));
    drop(store);
    disk.crash();
    let store = MessageStore::open(disk.clone(), config(FlushMode::Sync))
        .await
        .unwrap();
    assert_eq!(bodies(&store, "T", 0).await, vec!["before".to_string()]);
    store.put_message(message("T", 0, "again")).await.unwrap();
}

#[tokio::test]
async fn group_commit_covers_concurrent_sync_appends_with_few_fsyncs() {
    let disk = SimDisk::new(SimDiskConfig {
        latency_us: Some(100..200),
        ..SimDiskConfig::reliable(10)
    });
    let store = std::sync::Arc::new(
        MessageStore::open(disk.clone(), config(FlushMode::Sync))
            .await
            .unwrap(),
    );
    let mut tasks = Vec::new();
    for i in 0..64u32 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .put_message(message("T", i % 4, &format!("m{i}")))
                .await
        }));
    }
    for t in tasks {
        let r = t.await.unwrap().unwrap();
        assert!(store.flushed_offset() >= r.end_offset());
    }
    let total: usize = futures_len(&store).await;
    assert_eq!(total, 64);
}

async fn futures_len(store: &MessageStore<SimDisk>) -> usize {
    let mut n = 0;
    for q in 0..4 {
        n += bodies(store, "T", q).await.len();
    }
    n
}

#[cfg(not(madsim))]
#[tokio::test]
async fn std_disk_store_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let disk = store::StdDisk::new(dir.path()).unwrap();
    let store = MessageStore::open(disk.clone(), config(FlushMode::Sync))
        .await
        .unwrap();
    for i in 0..50 {
        store
            .put_message(message("T", 0, &format!("m{i}")))
            .await
            .unwrap();
    }
    store.shutdown().await.unwrap();
    let store = MessageStore::open(disk, config(FlushMode::Sync))
        .await
        .unwrap();
    assert_eq!(store.max_offset("T", 0), 50);
    let got = store.get_messages("T", 0, 49, 1, |_| true).await.unwrap();
    assert_eq!(MessageRef::parse(&got.messages[0]).unwrap().body(), b"m49");
}

#[tokio::test]
async fn an_arrival_wakes_the_waiters_of_its_own_queue_only() {
    let disk = SimDisk::new(SimDiskConfig::reliable(40));
    let store = MessageStore::open(disk, config(FlushMode::Async))
        .await
        .unwrap();
    let mut q0 = store.queue_arrivals("T", 0);
    let mut q1 = store.queue_arrivals("T", 1);
    let mut other = store.queue_arrivals("U", 0);
    q0.borrow_and_update();
    q1.borrow_and_update();
    other.borrow_and_update();
    store.put_message(message("T", 1, "x")).await.unwrap();
    // Arrivals are announced once the message is readable, just after its
    // acknowledgement.
    tokio::time::timeout(Duration::from_secs(5), q1.changed())
        .await
        .expect("queue 1's waiter was not woken")
        .unwrap();
    assert!(!q0.has_changed().unwrap(), "queue 0's waiter was woken");
    assert!(
        !other.has_changed().unwrap(),
        "another topic's waiter was woken"
    );
}

/// The writer acknowledges a batch before it writes the batch's ConsumeQueue units and
/// index entries; every read waits for those, so what was acknowledged reads at once.
#[tokio::test]
async fn an_acknowledged_message_is_readable_at_once() {
    let mut disk_config = SimDiskConfig::reliable(41);
    // Every disk operation takes a millisecond, so the dispatch is still running when the
    // acknowledgement arrives.
    disk_config.latency_us = Some(1000..1001);
    let store = MessageStore::open(SimDisk::new(disk_config), config(FlushMode::Async))
        .await
        .unwrap();
    for (i, read) in ["get", "query", "time"].into_iter().enumerate() {
        let put = store
            .put_message(message("T", 2, &format!("m{i}")))
            .await
            .unwrap();
        assert_eq!(
            store.max_offset("T", 2),
            put.queue_offset,
            "the dispatch had finished before the acknowledgement: this test checks nothing"
        );
        match read {
            "get" => {
                let got = store
                    .get_messages("T", 2, put.queue_offset, 8, |_| true)
                    .await
                    .unwrap();
                assert_eq!(got.status, GetStatus::Found, "acknowledged, then not found");
                assert_eq!(got.messages.len(), 1);
            }
            "query" => {
                let found = store
                    .query_by_key("T", &format!("key-m{i}"), 0, i64::MAX, 8)
                    .await
                    .unwrap();
                assert_eq!(found.len(), 1, "acknowledged, then not found by key");
            }
            _ => {
                // Nothing was stored after it: the answer is the max offset, past it.
                let offset = store
                    .offset_by_time("T", 2, put.store_timestamp_ms + 1)
                    .await
                    .unwrap();
                assert_eq!(
                    offset,
                    put.queue_offset + 1,
                    "acknowledged, then not counted"
                );
            }
        }
        assert_eq!(store.max_offset("T", 2), put.queue_offset + 1);
    }
}
