//! Raft's apply and its core loop do not wait for an fsync: the periodic save of the
//! applied state and the write of the committed hint run in tasks of their own (each
//! once stalled every write of the group once a second for the length of an fsync), and
//! a failed save still fails the state machine, at the next apply.

use std::sync::Arc;
use std::time::Duration;

use openraft::storage::{RaftLogStorage, RaftStateMachine};
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId, Vote};
use raft::log_store::LogStore;
use raft::state_machine::GroupMachine;
use raft::types::GroupRaft;
use store::disk::HeldSyncDisk;
use store::{Disk, MessageStore, SimDisk, SimDiskConfig, StoreConfig};

/// Longer than the state machine's and the committed hint's save interval (1 s).
const SAVE_DUE: Duration = Duration::from_millis(1_100);
/// Far longer than an apply takes, far shorter than forever.
const PROMPTLY: Duration = Duration::from_secs(5);

fn blank(index: u64) -> Entry<GroupRaft> {
    Entry {
        log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
        payload: EntryPayload::Blank,
    }
}

#[tokio::test]
async fn apply_and_save_committed_go_on_while_a_sync_is_held() {
    let sim = SimDisk::new(SimDiskConfig::reliable(1));
    let disk = HeldSyncDisk::new(sim.clone());
    let config = StoreConfig {
        checkpoint_interval_ms: 60_000,
        ..StoreConfig::default()
    };
    let store = Arc::new(
        MessageStore::open_replicated(disk.clone(), config)
            .await
            .unwrap(),
    );
    let mut log = LogStore::open(store.clone(), disk.clone()).await.unwrap();
    let mut machine = GroupMachine::open(store.clone(), disk.clone())
        .await
        .unwrap();
    let saved = || {
        ["raft/machine-0", "raft/machine-1"]
            .iter()
            .filter_map(|slot| sim.durable_len(slot))
            .count()
    };
    assert_eq!(saved(), 0);

    // A save is due: the apply that starts it returns while its fsync is held, and so
    // does the next one.
    tokio::time::sleep(SAVE_DUE).await;
    disk.hold();
    let applied = tokio::time::timeout(PROMPTLY, machine.apply([blank(1)])).await;
    assert_eq!(
        applied.expect("apply waited for the save").unwrap().len(),
        1
    );
    tokio::time::timeout(PROMPTLY, disk.until_a_sync_waits())
        .await
        .expect("the save started");
    tokio::time::timeout(PROMPTLY, machine.apply([blank(2)]))
        .await
        .expect("apply waited for the save")
        .unwrap();
    // The committed hint is due at once (never written yet).
    tokio::time::timeout(PROMPTLY, log.save_committed(Some(blank(2).log_id)))
        .await
        .expect("save_committed waited for its write")
        .unwrap();
    assert_eq!(saved(), 0, "nothing was written while syncs were held");

    disk.release();
    tokio::time::timeout(PROMPTLY, async {
        while saved() == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the save finished once the sync was released");

    // A save that fails fails the next apply (fail-stop, as when saves ran inline).
    sim.set_sync_eio_probability(1.0);
    tokio::time::sleep(SAVE_DUE).await;
    let mut index = 3;
    let error = tokio::time::timeout(PROMPTLY, async {
        loop {
            if let Err(e) = machine.apply([blank(index)]).await {
                return e;
            }
            index += 1;
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("a failed save failed an apply");
    assert!(
        error.to_string().contains("saving the applied state"),
        "{error}"
    );
}

/// The sequence number in a slot file (layout in `store::slot_file`: magic, crc32c,
/// sequence, payload).
async fn slot_sequence(disk: &SimDisk, name: &str) -> Option<u64> {
    let file = disk.open(name, false).await.ok()?;
    let mut header = [0u8; 16];
    store::disk::read_exact_at(&file, 0, &mut header)
        .await
        .ok()?;
    Some(u64::from_be_bytes(header[8..16].try_into().unwrap()))
}

/// A failed write of the committed hint does not stop openraft, so a vote write can
/// follow it: that write must go to the slot the failed one damaged, never over the
/// slot holding the last vote written whole — else a crash tearing it leaves no vote
/// at all, and a replica that forgot its vote can vote twice in a term.
#[tokio::test]
async fn a_vote_written_after_a_failed_write_never_overwrites_the_last_whole_vote() {
    let sim = SimDisk::new(SimDiskConfig::reliable(2));
    let config = StoreConfig {
        checkpoint_interval_ms: 60_000,
        ..StoreConfig::default()
    };
    let store = Arc::new(
        MessageStore::open_replicated(sim.clone(), config.clone())
            .await
            .unwrap(),
    );
    let mut log = LogStore::open(store.clone(), sim.clone()).await.unwrap();
    let whole = Vote::new(1, 1);
    log.save_vote(&whole).await.unwrap();

    sim.set_sync_eio_probability(1.0);
    log.save_committed(Some(blank(0).log_id)).await.unwrap();
    // The hint's write runs (and fails) in its own task.
    tokio::time::sleep(Duration::from_millis(100)).await;
    sim.set_sync_eio_probability(0.0);
    log.save_vote(&Vote::new(2, 2)).await.unwrap();

    // The power fails while that vote is written: its slot is torn.
    let slots = ["raft/vote-0", "raft/vote-1"];
    let mut newest: Option<(u64, &str)> = None;
    for slot in slots {
        if let Some(sequence) = slot_sequence(&sim, slot).await {
            if newest.is_none_or(|(s, _)| sequence > s) {
                newest = Some((sequence, slot));
            }
        }
    }
    let (_, torn) = newest.expect("a vote slot was written");
    sim.corrupt(torn, 20, 0xFF).unwrap();
    drop(log);
    drop(store);
    sim.crash();

    let store = Arc::new(
        MessageStore::open_replicated(sim.clone(), config)
            .await
            .unwrap(),
    );
    let mut log = LogStore::open(store, sim.clone()).await.unwrap();
    assert_eq!(
        log.read_vote().await.unwrap(),
        Some(whole),
        "the last vote written whole was lost"
    );
}
