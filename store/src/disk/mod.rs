//! The `Disk` seam: every byte the store persists goes through these two traits.
//!
//! [`StdDisk`] is the real side (files under a directory). [`SimDisk`] is the simulated
//! side: in memory, seeded, and honest about crashes (see its module doc for the fault
//! model). The store is generic over `Disk`, so the same CommitLog code runs on both and
//! the simulator exercises the real recovery path.
//!
//! Names are relative paths with `/` separators (`commitlog/00000000000000000000`).
//!
//! Durability contract, shared by both sides:
//! - bytes written by [`DiskFile::append`] and length changes by [`DiskFile::truncate`]
//!   are durable only after a later [`DiskFile::sync`] on that file returns `Ok`;
//! - creating a file ([`Disk::open`] with `create`) and [`Disk::remove`] are durable when
//!   they return (the real side syncs the directory);
//! - after a failed `sync` nothing about the unsynced bytes is known: they may be lost.

use std::future::Future;
use std::io;

mod held_sync;
mod sim_disk;
#[cfg(not(madsim))]
mod std_disk;

pub use held_sync::{HeldSyncDisk, HeldSyncFile};
pub use sim_disk::{SimDisk, SimDiskConfig, SimFile};
#[cfg(not(madsim))]
pub use std_disk::{StdDisk, StdFile};

/// Capacity figures used by retention's disk-usage rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DiskSpace {
    /// What the store could fill: used plus available (a filesystem's root reserve is
    /// not counted, as in `df`).
    pub total_bytes: u64,
    /// Available to the store.
    pub free_bytes: u64,
}

impl DiskSpace {
    /// Share of the disk in use, 0.0..=1.0.
    pub fn used_ratio(&self) -> f64 {
        if self.total_bytes == 0 {
            return 0.0;
        }
        (self.total_bytes.saturating_sub(self.free_bytes)) as f64 / self.total_bytes as f64
    }
}

/// A namespace of files (a directory, or a simulated one).
pub trait Disk: Clone + Send + Sync + 'static {
    type File: DiskFile;

    /// Opens `name`. With `create`, a missing file is created (durably, empty).
    /// Without it, a missing file is `io::ErrorKind::NotFound`.
    fn open(&self, name: &str, create: bool)
        -> impl Future<Output = io::Result<Self::File>> + Send;

    /// Removes `name`, durably. Removing a missing file is `NotFound`.
    fn remove(&self, name: &str) -> impl Future<Output = io::Result<()>> + Send;

    /// Every file whose name starts with `prefix`, sorted by name.
    fn list(&self, prefix: &str) -> impl Future<Output = io::Result<Vec<String>>> + Send;

    /// The device's capacity and what is left, as `df` counts them (see [`DiskSpace`]).
    fn space(&self) -> io::Result<DiskSpace>;
}

/// An open file. Clones share the file; every method takes `&self` so a reader and the
/// single writer can use the file at once. Appends must not run concurrently with each
/// other or with `truncate` (the store has one writer per file).
pub trait DiskFile: Clone + Send + Sync + 'static {
    /// Current length, including unsynced bytes.
    fn len(&self) -> u64;

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends `data` at the end; returns the offset of its first byte.
    fn append(&self, data: &[u8]) -> impl Future<Output = io::Result<u64>> + Send;

    /// Reads up to `buf.len()` bytes at `offset`; returns how many were read, fewer only
    /// at the end of the file.
    fn read_at(
        &self,
        offset: u64,
        buf: &mut [u8],
    ) -> impl Future<Output = io::Result<usize>> + Send;

    /// Makes every earlier append and truncate of this file durable.
    fn sync(&self) -> impl Future<Output = io::Result<()>> + Send;

    /// Cuts the file to `len` bytes (`len` ≤ current length).
    fn truncate(&self, len: u64) -> impl Future<Output = io::Result<()>> + Send;

    /// A hint that the file will grow to `len` bytes: the real disk allocates the blocks
    /// now, in the background, so that appends up to there find them allocated. Changes
    /// neither [`DiskFile::len`] nor what is durable, and may be ignored (the simulated
    /// disk does).
    ///
    /// Why: on ext4 an append into unallocated blocks leaves the allocation to writeback,
    /// and while an `fdatasync` allocates (holding the inode's `i_data_sem`, reading block
    /// bitmaps) the next append that extends the file waits for it — 10–30 ms measured
    /// on a runtime worker, the 3-replica group's p99.
    fn reserve(&self, len: u64) {
        let _ = len;
    }
}

/// Reads exactly `buf.len()` bytes at `offset`, or fails with `UnexpectedEof`.
pub async fn read_exact_at<F: DiskFile>(file: &F, offset: u64, buf: &mut [u8]) -> io::Result<()> {
    let mut done = 0;
    while done < buf.len() {
        let n = file.read_at(offset + done as u64, &mut buf[done..]).await?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "read of {} bytes at {offset} hit the end after {done}",
                    buf.len()
                ),
            ));
        }
        done += n;
    }
    Ok(())
}
