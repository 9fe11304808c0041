//! A replicated store whose truncation of a conflicting tail fails half-way: the store
//! stops taking entries, and a reopen after a crash recovers a log that matches its
//! checkpoint, whichever part of the cut reached the disk.

mod common;

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

use proto::MessageRef;
use store::disk::DiskFile;
use store::{
    Disk, FlushMode, LogPayload, LogPosition, LogRecord, MessageStore, SimDisk, SimDiskConfig,
    StoreError,
};

/// Which operation a [`FaultDisk`] fails.
#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Fault {
    None,
    /// `sync` of a CommitLog segment: the cut stays in the page cache only.
    CommitLogSync,
    /// `truncate` of a ConsumeQueue file: the CommitLog's cut is durable already.
    QueueTruncate,
}

#[derive(Clone)]
struct FaultDisk {
    inner: SimDisk,
    fault: Arc<AtomicU8>,
}

#[derive(Clone)]
struct FaultFile {
    inner: store::disk::SimFile,
    /// The disk's fault, and whether this file is a CommitLog segment or a ConsumeQueue
    /// file.
    fault: Arc<AtomicU8>,
    commitlog: bool,
    queue: bool,
}

impl FaultDisk {
    fn new(seed: u64) -> Self {
        FaultDisk {
            inner: SimDisk::new(SimDiskConfig::reliable(seed)),
            fault: Arc::new(AtomicU8::new(Fault::None as u8)),
        }
    }

    fn set(&self, fault: Fault) {
        self.fault.store(fault as u8, Ordering::SeqCst);
    }
}

impl FaultFile {
    fn is(&self, fault: Fault) -> bool {
        self.fault.load(Ordering::SeqCst) == fault as u8
    }
}

impl Disk for FaultDisk {
    type File = FaultFile;

    async fn open(&self, name: &str, create: bool) -> std::io::Result<FaultFile> {
        Ok(FaultFile {
            inner: self.inner.open(name, create).await?,
            fault: self.fault.clone(),
            commitlog: name.starts_with("commitlog/"),
            queue: name.starts_with("consumequeue/"),
        })
    }

    async fn remove(&self, name: &str) -> std::io::Result<()> {
        self.inner.remove(name).await
    }

    async fn list(&self, prefix: &str) -> std::io::Result<Vec<String>> {
        self.inner.list(prefix).await
    }

    fn space(&self) -> std::io::Result<store::disk::DiskSpace> {
        self.inner.space()
    }
}

impl DiskFile for FaultFile {
    fn len(&self) -> u64 {
        self.inner.len()
    }

    async fn append(&self, data: &[u8]) -> std::io::Result<u64> {
        self.inner.append(data).await
    }

    async fn read_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<usize> {
        self.inner.read_at(offset, buf).await
    }

    async fn sync(&self) -> std::io::Result<()> {
        if self.commitlog && self.is(Fault::CommitLogSync) {
            return Err(std::io::Error::other("injected CommitLog sync failure"));
        }
        self.inner.sync().await
    }

    async fn truncate(&self, len: u64) -> std::io::Result<()> {
        if self.queue && self.is(Fault::QueueTruncate) {
            return Err(std::io::Error::other(
                "injected ConsumeQueue truncate failure",
            ));
        }
        self.inner.truncate(len).await
    }
}

fn entry(index: u64) -> LogRecord {
    common::entry_at(1, index, 0, &[&format!("m{index}")], 1)
}

async fn open(disk: &FaultDisk) -> MessageStore<FaultDisk> {
    MessageStore::open_replicated(disk.clone(), common::config(FlushMode::Sync))
        .await
        .unwrap()
}

/// A store holding entries 1..=50 durably, with a checkpoint that claims all of them.
async fn fifty_entries(disk: &FaultDisk) -> MessageStore<FaultDisk> {
    let store = open(disk).await;
    let appended = store
        .append_log((1..=50).map(entry).collect())
        .await
        .unwrap();
    store.wait_durable(appended.end_offset).await.unwrap();
    store.checkpoint_now().await.unwrap();
    store
}

/// The failed store refuses new entries, naming why.
async fn assert_stopped(store: &MessageStore<FaultDisk>) {
    assert!(store.failure().is_some(), "the store kept running");
    match store.append_log(vec![entry(11)]).await {
        Err(StoreError::Unavailable(reason)) => assert!(reason.contains("injected"), "{reason}"),
        other => panic!("an entry after a failed truncation: {other:?}"),
    }
}

/// Reopens after a crash and returns the index of the last entry and the bodies of the
/// messages of entries 1..=10, which no truncation may touch.
async fn reopened(disk: &FaultDisk) -> (LogPosition, Vec<String>) {
    disk.set(Fault::None);
    disk.inner.crash();
    let store = MessageStore::open_replicated(disk.clone(), common::config(FlushMode::Sync))
        .await
        .expect("recovery refused the log a failed truncation left");
    let last = store.last_log_id().await;
    let kept = store.read_log(1, 11, usize::MAX).await.unwrap();
    let bodies = kept
        .iter()
        .map(|r| match &r.payload {
            LogPayload::Messages { messages, .. } => {
                let m = MessageRef::parse(&messages[0]).unwrap();
                String::from_utf8(m.body().to_vec()).unwrap()
            }
            LogPayload::Control(_) => panic!("a control entry"),
        })
        .collect();
    (last, bodies)
}

fn first_ten() -> Vec<String> {
    (1..=10).map(|i| format!("m{i}")).collect()
}

/// The cut reached the page cache, its sync failed: the store stops (and with it the
/// checkpointer, so no later checkpoint claims the cut bytes); a crash leaves a log
/// recovery accepts.
#[tokio::test]
async fn a_truncation_whose_sync_fails_stops_the_store() {
    let disk = FaultDisk::new(21);
    let store = fifty_entries(&disk).await;
    disk.set(Fault::CommitLogSync);
    store.truncate_log(11).await.expect_err("the sync failed");
    disk.set(Fault::None);
    assert_stopped(&store).await;
    drop(store);
    let (last, bodies) = reopened(&disk).await;
    // The removal of later segments was durable at once; the unsynced cut within the
    // segment holding entry 11 is undone: the log ends at that segment's last entry.
    assert!((11..50).contains(&last.index), "last entry {}", last.index);
    assert_eq!(bodies, first_ten());
}

/// The CommitLog's cut is durable, then cutting a ConsumeQueue fails: the checkpoint
/// came down before the cut, so recovery does not find the log short of it.
#[tokio::test]
async fn a_truncation_lowers_the_checkpoint_before_it_cuts() {
    let disk = FaultDisk::new(22);
    let store = fifty_entries(&disk).await;
    disk.set(Fault::QueueTruncate);
    store
        .truncate_log(11)
        .await
        .expect_err("the queue's cut failed");
    disk.set(Fault::None);
    assert_stopped(&store).await;
    drop(store);
    let (last, bodies) = reopened(&disk).await;
    assert_eq!(last.index, 10, "the CommitLog's cut was durable");
    assert_eq!(bodies, first_ten());
}
