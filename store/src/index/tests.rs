//! Unit tests of the key index.

use super::*;
use crate::disk::{HeldSyncDisk, SimDisk, SimDiskConfig};
use std::sync::Arc;

/// The writer (`add`, on the dispatch path) does not wait while `sync` waits for the
/// disk; and what it added meanwhile is synced by the next `sync`, not taken for
/// synced by this one.
#[tokio::test]
async fn add_goes_on_while_a_sync_waits_for_the_disk() {
    let sim = SimDisk::new(SimDiskConfig::reliable(1));
    let disk = HeldSyncDisk::new(sim.clone());
    let index = Arc::new(KeyIndex::open(disk.clone(), 1000, 0).await.unwrap());
    index.add(&[entry("a", 1, 1)]).await.unwrap();
    disk.hold();
    let syncing = tokio::spawn({
        let index = index.clone();
        async move { index.sync().await }
    });
    disk.until_a_sync_waits().await;
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        index.add(&[entry("b", 2, 2)]),
    )
    .await
    .expect("add waited for a sync")
    .unwrap();
    disk.release();
    syncing.await.unwrap().unwrap();
    let synced = || async { index.state.lock().await.active.as_ref().unwrap().synced };
    assert!(
        !synced().await,
        "an entry added during the sync was taken for synced"
    );
    index.sync().await.unwrap();
    assert!(synced().await);
    assert_eq!(
        sim.durable_len(&log_name(1)),
        Some(2 * INDEX_ENTRY_SIZE as u64)
    );
}

fn entry(key: &str, offset: u64, ts: i64) -> IndexEntry {
    IndexEntry {
        key_hash: key_hash("T", key),
        commitlog_offset: offset,
        store_timestamp_ms: ts,
        size: 10,
    }
}

/// Sorting in slices then merging gives what one sort gives, across several slices.
#[tokio::test]
async fn sorting_in_slices_matches_one_sort() {
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let entries: Vec<IndexEntry> = (0..(SEAL_SLICE_ENTRIES * 3 + 123) as u64)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            IndexEntry {
                key_hash: x % 5000,
                commitlog_offset: i,
                store_timestamp_ms: 0,
                size: 1,
            }
        })
        .collect();
    let mut want = entries.clone();
    want.sort();
    assert_eq!(sort_in_slices(&entries).await, want);
    assert!(sort_in_slices(&[]).await.is_empty());
}

/// Keys whose hashes share a slot share a chain; a lookup returns only its own
/// hash's entries, newest first.
#[test]
fn chains_separate_hashes_that_share_a_slot() {
    let mut chains = Chains::with_capacity(4);
    assert_eq!(chains.slots.len(), 4);
    let at = |hash: u64, offset: u64| IndexEntry {
        key_hash: hash,
        commitlog_offset: offset,
        store_timestamp_ms: 0,
        size: 1,
    };
    // 1, 5 and 9 share slot 1; 2 has slot 2 to itself.
    for (offset, hash) in [1u64, 5, 2, 1, 9, 5, 1].into_iter().enumerate() {
        chains.push(at(hash, offset as u64));
    }
    let offsets = |hash| -> Vec<u64> { chains.get(hash).map(|e| e.commitlog_offset).collect() };
    assert_eq!(offsets(1), vec![6, 3, 0]);
    assert_eq!(offsets(5), vec![5, 1]);
    assert_eq!(offsets(9), vec![4]);
    assert_eq!(offsets(2), vec![2]);
    assert!(offsets(13).is_empty());
    assert!(offsets(3).is_empty());
}

#[tokio::test]
async fn lookup_spans_sealed_and_active_files_with_time_range() {
    let disk = SimDisk::new(SimDiskConfig::reliable(1));
    let index = KeyIndex::open(disk.clone(), 4, u64::MAX).await.unwrap();
    let entries: Vec<_> = (0..10)
        .map(|i| entry(if i % 2 == 0 { "even" } else { "odd" }, i * 100, i as i64))
        .collect();
    index.add(&entries).await.unwrap();
    // The second file may still be sealing: its entries are found meanwhile.
    let meanwhile = index
        .lookup(key_hash("T", "even"), 0, 100, 100)
        .await
        .unwrap();
    assert_eq!(
        meanwhile
            .iter()
            .map(|e| e.commitlog_offset)
            .collect::<Vec<_>>(),
        vec![800, 600, 400, 200, 0]
    );
    // `sync` does not wait for the seal (it syncs the log being sealed instead);
    // the seal finishes on its own, and the next `sync` takes it in.
    index.sync().await.unwrap();
    let sorted_files = || async {
        let names = disk.list(DIR).await.unwrap();
        names.iter().filter(|n| n.ends_with(SORTED_SUFFIX)).count()
    };
    tokio::time::timeout(std::time::Duration::from_secs(10), async {
        while sorted_files().await < 2 {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
    })
    .await
    .expect("the second seal finished");
    index.sync().await.unwrap();
    assert!(index.state.lock().await.sealing.is_none());
    let even = index
        .lookup(key_hash("T", "even"), 0, 100, 100)
        .await
        .unwrap();
    assert_eq!(
        even.iter().map(|e| e.commitlog_offset).collect::<Vec<_>>(),
        vec![800, 600, 400, 200, 0]
    );
    let ranged = index.lookup(key_hash("T", "odd"), 3, 7, 100).await.unwrap();
    assert_eq!(
        ranged
            .iter()
            .map(|e| e.commitlog_offset)
            .collect::<Vec<_>>(),
        vec![700, 500, 300]
    );
    assert_eq!(
        index
            .lookup(key_hash("T", "none"), 0, 100, 100)
            .await
            .unwrap(),
        vec![]
    );
    // Reopen: the same answers.
    index.sync().await.unwrap();
    let reopened = KeyIndex::open(disk.clone(), 4, u64::MAX).await.unwrap();
    assert_eq!(
        reopened
            .lookup(key_hash("T", "even"), 0, 100, 100)
            .await
            .unwrap(),
        even
    );
    // Retention drops whole sealed files.
    reopened.delete_below(800).await.unwrap();
    let left = reopened
        .lookup(key_hash("T", "even"), 0, 100, 100)
        .await
        .unwrap();
    assert_eq!(
        left.iter().map(|e| e.commitlog_offset).collect::<Vec<_>>(),
        vec![800]
    );
}

#[tokio::test]
async fn open_cuts_entries_to_be_redispatched_and_torn_ones() {
    let disk = SimDisk::new(SimDiskConfig::reliable(1));
    let index = KeyIndex::open(disk.clone(), 100, u64::MAX).await.unwrap();
    index
        .add(&(0..5).map(|i| entry("k", i * 100, 0)).collect::<Vec<_>>())
        .await
        .unwrap();
    disk.open(&log_name(0), false)
        .await
        .unwrap()
        .append(&[7; 20])
        .await
        .unwrap();
    let reopened = KeyIndex::open(disk.clone(), 100, 300).await.unwrap();
    let found = reopened
        .lookup(key_hash("T", "k"), 0, 0, 100)
        .await
        .unwrap();
    assert_eq!(found.len(), 3);
    assert_eq!(
        disk.open(&log_name(0), false).await.unwrap().len(),
        3 * INDEX_ENTRY_SIZE as u64
    );
}
