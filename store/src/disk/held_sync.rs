//! `HeldSyncDisk`: another disk whose syncs can be held until released, and are
//! counted, for tests and benches of what waits for an fsync. A held sync is what a
//! loaded disk does for 30–400 ms; a write path that must not wait for one (dispatch,
//! Raft's apply and core loop) is checked by holding syncs and seeing it go on. The
//! counts give group commit's messages per fsync (`cargo bench -p store`).

use std::collections::BTreeMap;
use std::io;
use std::sync::{Arc, Mutex};

use proto::watch;

use super::{Disk, DiskFile, DiskSpace};

/// Whether syncs are held, and how many are waiting.
#[derive(Clone, Copy, Debug, Default)]
struct Gate {
    held: bool,
    waiting: usize,
}

/// Successful syncs, by file name.
type SyncCounts = Arc<Mutex<BTreeMap<String, u64>>>;

/// Wraps a disk; everything passes through, except that `sync` waits while syncs are
/// held, and is counted. Clones share the gate and the counts.
#[derive(Clone)]
pub struct HeldSyncDisk<D> {
    inner: D,
    gate: Arc<watch::Sender<Gate>>,
    counts: SyncCounts,
}

#[derive(Clone)]
pub struct HeldSyncFile<F> {
    inner: F,
    name: Arc<str>,
    gate: Arc<watch::Sender<Gate>>,
    counts: SyncCounts,
}

impl<D: Disk> HeldSyncDisk<D> {
    pub fn new(inner: D) -> Self {
        HeldSyncDisk {
            inner,
            gate: Arc::new(watch::channel(Gate::default()).0),
            counts: SyncCounts::default(),
        }
    }

    /// Successful syncs so far of the files whose names start with `prefix`.
    pub fn syncs(&self, prefix: &str) -> u64 {
        let counts = self.counts.lock().expect("sync counts poisoned");
        counts
            .range(prefix.to_string()..)
            .take_while(|(name, _)| name.starts_with(prefix))
            .map(|(_, n)| n)
            .sum()
    }

    /// Holds every sync from now on (those running and to come) until `release`.
    pub fn hold(&self) {
        self.gate.send_modify(|g| g.held = true);
    }

    pub fn release(&self) {
        self.gate.send_modify(|g| g.held = false);
    }

    /// Returns once some sync is waiting at the gate.
    pub async fn until_a_sync_waits(&self) {
        let mut rx = self.gate.subscribe();
        rx.wait_for(|g| g.waiting > 0)
            .await
            .expect("the gate lives as long as the disk");
    }
}

impl<D: Disk> Disk for HeldSyncDisk<D> {
    type File = HeldSyncFile<D::File>;

    async fn open(&self, name: &str, create: bool) -> io::Result<Self::File> {
        Ok(HeldSyncFile {
            inner: self.inner.open(name, create).await?,
            name: name.into(),
            gate: self.gate.clone(),
            counts: self.counts.clone(),
        })
    }

    async fn remove(&self, name: &str) -> io::Result<()> {
        self.inner.remove(name).await
    }

    async fn list(&self, prefix: &str) -> io::Result<Vec<String>> {
        self.inner.list(prefix).await
    }

    fn space(&self) -> io::Result<DiskSpace> {
        self.inner.space()
    }
}

impl<F: DiskFile> DiskFile for HeldSyncFile<F> {
    fn len(&self) -> u64 {
        self.inner.len()
    }

    async fn append(&self, data: &[u8]) -> io::Result<u64> {
        self.inner.append(data).await
    }

    async fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read_at(offset, buf).await
    }

    async fn sync(&self) -> io::Result<()> {
        let mut rx = self.gate.subscribe();
        if rx.borrow().held {
            self.gate.send_modify(|g| g.waiting += 1);
            let _ = rx.wait_for(|g| !g.held).await;
            self.gate.send_modify(|g| g.waiting -= 1);
        }
        self.inner.sync().await?;
        let mut counts = self.counts.lock().expect("sync counts poisoned");
        *counts.entry(self.name.to_string()).or_default() += 1;
        Ok(())
    }

    async fn truncate(&self, len: u64) -> io::Result<()> {
        self.inner.truncate(len).await
    }

    fn reserve(&self, len: u64) {
        self.inner.reserve(len)
    }
}
