//! Age retention after a Raft truncation reopened a closed segment: the segment's END
//! record, written when it closes again, must still carry the newest message it holds.
//! Written as the lowest possible timestamp, retention took a seconds-old segment for
//! older than `file_reserved_hours` and deleted it on a follower.

mod common;

use bytes::Bytes;
use store::{Disk, FlushMode, LogPayload, LogRecord, MessageStore, SimDisk, SimDiskConfig};

/// A message entry stored now: its segment is seconds old.
fn message(index: u64) -> LogRecord {
    common::entry_at(1, index, 0, &[&format!("m{index}")], proto::clock::now_ms())
}

/// An entry without messages (a blank or membership entry), 200 bytes of payload.
fn control(index: u64) -> LogRecord {
    LogRecord {
        term: 1,
        leader: 1,
        index,
        payload: LogPayload::Control(Bytes::from(vec![7u8; 200])),
    }
}

async fn segments(disk: &SimDisk) -> usize {
    disk.list("commitlog/").await.unwrap().len()
}

/// Appends control entries from `index` until the log has `count` segment files;
/// returns the next index and the log's end.
async fn controls_until(
    store: &MessageStore<SimDisk>,
    disk: &SimDisk,
    mut index: u64,
    count: usize,
) -> (u64, u64) {
    let mut end = 0;
    while segments(disk).await < count {
        end = store
            .append_log(vec![control(index)])
            .await
            .unwrap()
            .end_offset;
        index += 1;
    }
    (index, end)
}

#[tokio::test]
async fn retention_keeps_a_segment_a_truncation_reopened() {
    let disk = SimDisk::new(SimDiskConfig::reliable(7));
    let config = store::StoreConfig {
        file_reserved_hours: 72,
        ..common::config(FlushMode::Sync)
    };
    let segment = config.commitlog_segment_size;
    let store = MessageStore::open_replicated(disk.clone(), config)
        .await
        .unwrap();
    // Segment 0: young messages, then control entries until the log rolls, so the new
    // segment holds no message (its writer has seen no timestamp yet).
    let mut index = 1;
    loop {
        let appended = store.append_log(vec![message(index)]).await.unwrap();
        index += 1;
        if appended.end_offset > segment / 2 {
            break;
        }
    }
    let last_message = index - 1;
    index = controls_until(&store, &disk, index, 2).await.0;
    store.append_log(vec![control(index)]).await.unwrap();
    // A new leader's log conflicts from the last message on: the cut reopens segment 0.
    store.truncate_log(last_message).await.unwrap();
    assert_eq!(
        segments(&disk).await,
        1,
        "the cut removed the second segment"
    );
    // Control entries only, until segment 0 closes again.
    let (_, end) = controls_until(&store, &disk, last_message, 2).await;

    // Everything is committed: only age could delete segment 0 now.
    store.restore_committed(end).await.unwrap();
    store.clean_now().await.unwrap();
    // A replicated store's retention moves the log start (Raft then purges below it).
    assert_eq!(
        store.log_start().map(|s| s.base_offset),
        None,
        "retention gave up a segment of messages seconds old"
    );
    assert_eq!(store.commitlog_min_offset(), 0);
}
