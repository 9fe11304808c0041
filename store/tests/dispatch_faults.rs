//! A store whose dispatch (the ConsumeQueue and index writes after an acknowledgement)
//! fails, hangs or panics: reads of acknowledged messages answer `Unavailable`, naming
//! why, rather than leaving them out silently or waiting forever; a reopen re-dispatches
//! them from the CommitLog. They run in both builds except where noted.

mod common;

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{bodies, config, message};
use store::disk::DiskFile;
use store::{Disk, FlushMode, MessageStore, SimDisk, SimDiskConfig, StoreError};

/// How a [`QueueFaultDisk`]'s ConsumeQueue appends behave.
#[derive(Clone, Copy)]
#[repr(u8)]
enum Mode {
    Normal,
    /// Fail with an I/O error: a dispatch that fails after its batch was acknowledged.
    Fail,
    /// Never complete: a dispatch stuck on a hung disk.
    Hang,
    /// Panic: a bug in the writer mid-dispatch.
    Panic,
}

impl Mode {
    fn load(mode: &AtomicU8) -> Mode {
        match mode.load(Ordering::SeqCst) {
            0 => Mode::Normal,
            1 => Mode::Fail,
            2 => Mode::Hang,
            _ => Mode::Panic,
        }
    }
}

/// A `SimDisk` whose ConsumeQueue appends behave as its [`Mode`] says.
#[derive(Clone)]
struct QueueFaultDisk {
    inner: SimDisk,
    mode: Arc<AtomicU8>,
}

impl QueueFaultDisk {
    fn new(seed: u64) -> Self {
        QueueFaultDisk {
            inner: SimDisk::new(SimDiskConfig::reliable(seed)),
            mode: Default::default(),
        }
    }

    fn set(&self, mode: Mode) {
        self.mode.store(mode as u8, Ordering::SeqCst);
    }
}

#[derive(Clone)]
struct QueueFaultFile {
    inner: store::disk::SimFile,
    mode: Option<Arc<AtomicU8>>,
}

async fn open(disk: &QueueFaultDisk) -> MessageStore<QueueFaultDisk> {
    MessageStore::open(disk.clone(), config(FlushMode::Async))
        .await
        .unwrap()
}

/// Turns the fault on, then sends "acked" to T-0: the CommitLog append succeeds and is
/// acknowledged; the dispatch after it meets the fault.
async fn ack_into_fault(disk: &QueueFaultDisk, store: &MessageStore<QueueFaultDisk>, mode: Mode) {
    disk.set(mode);
    store
        .put_message(message("T", 0, "acked"))
        .await
        .expect("acknowledged once in the CommitLog");
}

/// T-0's bodies after the fault is gone and the store reopened (which re-dispatches).
async fn reopened_bodies(store: MessageStore<QueueFaultDisk>, disk: QueueFaultDisk) -> Vec<String> {
    drop(store);
    disk.set(Mode::Normal);
    bodies(&open(&disk).await, "T", 0).await
}

/// Reads queue T-0 and returns the `Unavailable` reason it must answer; fails the test if
/// the read waits (5 s) or answers anything else. `why` says what happened to the writer.
async fn unavailable_read<D: Disk>(store: &MessageStore<D>, why: &str) -> String {
    let read = tokio::time::timeout(
        Duration::from_secs(5),
        store.get_messages("T", 0, 0, 8, |_| true),
    )
    .await
    .unwrap_or_else(|_| panic!("a read waited for a dispatch that {why}"));
    match read {
        Err(StoreError::Unavailable(reason)) => reason,
        other => panic!("read after a dispatch that {why}: {other:?}"),
    }
}

impl Disk for QueueFaultDisk {
    type File = QueueFaultFile;

    async fn open(&self, name: &str, create: bool) -> std::io::Result<QueueFaultFile> {
        Ok(QueueFaultFile {
            inner: self.inner.open(name, create).await?,
            mode: name.starts_with("consumequeue/").then(|| self.mode.clone()),
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

impl DiskFile for QueueFaultFile {
    fn len(&self) -> u64 {
        self.inner.len()
    }

    async fn append(&self, data: &[u8]) -> std::io::Result<u64> {
        match self.mode.as_deref().map_or(Mode::Normal, Mode::load) {
            Mode::Normal => self.inner.append(data).await,
            Mode::Fail => Err(std::io::Error::other(
                "injected ConsumeQueue append failure",
            )),
            Mode::Hang => std::future::pending().await,
            Mode::Panic => panic!("injected panic in a ConsumeQueue append"),
        }
    }

    async fn read_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<usize> {
        self.inner.read_at(offset, buf).await
    }

    async fn sync(&self) -> std::io::Result<()> {
        self.inner.sync().await
    }

    async fn truncate(&self, len: u64) -> std::io::Result<()> {
        self.inner.truncate(len).await
    }
}

/// A dispatch that fails after its batch was acknowledged: reads answer `Unavailable`
/// naming it (not a view that silently lacks the message, and not a wait forever), and a
/// reopen re-dispatches the message from the CommitLog.
#[tokio::test]
async fn a_failed_dispatch_fails_reads_by_name_and_a_reopen_restores_them() {
    let disk = QueueFaultDisk::new(42);
    let store = open(&disk).await;
    store.put_message(message("T", 0, "before")).await.unwrap();
    store.settled().await.unwrap(); // its dispatch, which runs after the ack, is done
    ack_into_fault(&disk, &store, Mode::Fail).await;
    let reason = unavailable_read(&store, "had failed").await;
    assert!(
        reason.contains("dispatch failed") && reason.contains("injected"),
        "{reason}"
    );
    assert!(store.failure().is_some(), "the store still takes writes");
    assert!(store.put_message(message("T", 0, "after")).await.is_err());

    let _ = store.shutdown().await;
    assert_eq!(reopened_bodies(store, disk).await, ["before", "acked"]);
}

/// The writer stops mid-dispatch — its task aborted by `shutdown` while the disk hangs —
/// with a batch acknowledged but not in its queue: a read answers `Unavailable` saying
/// so instead of waiting forever, and a reopen re-dispatches the message.
#[cfg_attr(not(madsim), tokio::test(start_paused = true))] // shutdown's 5 s wait
#[cfg_attr(madsim, tokio::test)]
async fn a_writer_aborted_mid_dispatch_fails_reads_instead_of_hanging_them() {
    let disk = QueueFaultDisk::new(43);
    let store = open(&disk).await;
    store.put_message(message("T", 0, "before")).await.unwrap();
    store.settled().await.unwrap();
    ack_into_fault(&disk, &store, Mode::Hang).await;
    // Waits (5 s) for the hung dispatch, then checkpoints and aborts the tasks.
    let _ = store.shutdown().await;
    let reason = unavailable_read(&store, "was aborted").await;
    assert!(reason.contains("are not in their queues"), "{reason}");
    assert_eq!(reopened_bodies(store, disk).await, ["before", "acked"]);
}

/// The writer panics mid-dispatch: readers are woken with `Unavailable` (the writer's
/// drop guard), not left waiting. Not in the simulated build, where a task's panic ends
/// the simulation.
#[cfg(not(madsim))]
#[tokio::test]
async fn a_writer_that_panics_mid_dispatch_fails_reads_instead_of_hanging_them() {
    let disk = QueueFaultDisk::new(44);
    let store = open(&disk).await;
    ack_into_fault(&disk, &store, Mode::Panic).await;
    let reason = unavailable_read(&store, "panicked").await;
    assert!(
        reason.contains("writer stopped during a dispatch"),
        "{reason}"
    );
    assert!(
        store.put_message(message("T", 0, "after")).await.is_err(),
        "a store whose writer is gone takes no writes"
    );
}
