//! `SimDisk`: an in-memory disk that is honest about crashes. Deterministic for a seed.
//!
//! # Fault model
//!
//! Every file keeps two images: what the process sees (`data`, the page cache) and what
//! survives a crash (`durable`, the platter). [`DiskFile::sync`] copies the first onto the
//! second. On [`SimDisk::crash`]:
//! - every byte appended since the file's last successful sync is lost, and a truncate
//!   that was not synced is undone, except that
//! - with probability `torn_tail_probability`, a random-length prefix of the unsynced
//!   appended tail survives (a torn write: some sectors reached the disk, some did not),
//!   and with probability `torn_garbage_probability` its last bytes are garbage (a sector
//!   written half-way);
//! - file creation and removal are durable at once (the real disk syncs the directory);
//! - handles opened before the crash fail with "stale handle" from then on, as a killed
//!   process's descriptors would.
//!
//! `sync` fails with EIO with probability `sync_eio_probability`. After a failed sync the
//! unsynced bytes stay volatile: a crash loses them, so a caller must not treat them as
//! durable (PostgreSQL's "fsyncgate" lesson: a failed fsync is not retried into success).
//!
//! Operations can take simulated time (`latency_us`), slept on the runtime's timer, so
//! under madsim they interleave with other nodes deterministically.
//!
//! Not modelled: misdirected writes, bit rot in synced data (tests corrupt files through
//! [`SimDisk::corrupt`] instead), reordering of syncs across files, and a directory
//! entry that is lost after creation.

use std::collections::BTreeMap;
use std::io;
use std::ops::Range;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::{Disk, DiskFile, DiskSpace};

/// What `SimDisk` injects. All probabilities are in 0.0..=1.0.
#[derive(Clone, Debug)]
pub struct SimDiskConfig {
    pub seed: u64,
    /// On crash, chance that a prefix of a file's unsynced tail survives.
    pub torn_tail_probability: f64,
    /// Chance that a surviving torn tail ends in garbage bytes.
    pub torn_garbage_probability: f64,
    /// Chance that one `sync` fails with EIO.
    pub sync_eio_probability: f64,
    /// Simulated duration of each operation, drawn uniformly from this range.
    pub latency_us: Option<Range<u64>>,
    /// Reported size of the device, for retention's usage ratio.
    pub capacity_bytes: u64,
}

impl SimDiskConfig {
    /// No faults: crashes lose only unsynced bytes, cleanly.
    pub fn reliable(seed: u64) -> Self {
        SimDiskConfig {
            seed,
            torn_tail_probability: 0.0,
            torn_garbage_probability: 0.0,
            sync_eio_probability: 0.0,
            latency_us: None,
            capacity_bytes: 1 << 40,
        }
    }
}

#[derive(Clone, Debug)]
pub struct SimDisk {
    state: Arc<Mutex<State>>,
}

#[derive(Debug)]
struct State {
    config: SimDiskConfig,
    rng: StdRng,
    files: BTreeMap<String, Arc<Mutex<FileImage>>>,
    /// Bumped by every crash; handles from an older generation are stale.
    generation: u64,
    crashes: u64,
    eio_injected: u64,
}

#[derive(Debug, Default)]
struct FileImage {
    /// What the process sees.
    data: Vec<u8>,
    /// What survives a crash.
    durable: Vec<u8>,
    /// `data[..diverged_at] == durable[..diverged_at]`; beyond it the two may differ.
    diverged_at: usize,
    /// The largest length [`DiskFile::reserve`] asked for, kept only so tests can see
    /// what the store reserves: reserving has no effect here.
    reserved: u64,
}

impl SimDisk {
    pub fn new(config: SimDiskConfig) -> Self {
        let rng = StdRng::seed_from_u64(config.seed);
        SimDisk {
            state: Arc::new(Mutex::new(State {
                config,
                rng,
                files: BTreeMap::new(),
                generation: 0,
                crashes: 0,
                eio_injected: 0,
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().expect("SimDisk state poisoned")
    }

    /// Power loss: every file reverts to its durable image, maybe with a torn tail (see
    /// the module doc). Handles opened before become stale.
    pub fn crash(&self) {
        let mut state = self.lock();
        state.generation += 1;
        state.crashes += 1;
        let torn_p = state.config.torn_tail_probability;
        let garbage_p = state.config.torn_garbage_probability;
        let images: Vec<_> = state.files.values().cloned().collect();
        for image in images {
            let mut image = image.lock().expect("file image poisoned");
            let mut survivor = image.durable.clone();
            let appended_only = image.diverged_at == image.durable.len();
            let tail_len = image.data.len().saturating_sub(image.diverged_at);
            if appended_only && tail_len > 0 && state.rng.gen_bool(torn_p) {
                let keep = state.rng.gen_range(1..=tail_len);
                let start = image.diverged_at;
                survivor.extend_from_slice(&image.data[start..start + keep]);
                if state.rng.gen_bool(garbage_p) {
                    let garbage = state.rng.gen_range(1..=keep.min(16));
                    let len = survivor.len();
                    for byte in &mut survivor[len - garbage..] {
                        *byte = state.rng.gen();
                    }
                }
            }
            image.data = survivor.clone();
            image.durable = survivor;
            image.diverged_at = image.data.len();
        }
    }

    /// Changes the EIO probability of `sync`, e.g. to switch faults off in a liveness phase.
    pub fn set_sync_eio_probability(&self, probability: f64) {
        self.lock().config.sync_eio_probability = probability;
    }

    /// Changes the probability of torn tails on crash.
    pub fn set_torn_tail_probability(&self, probability: f64) {
        self.lock().config.torn_tail_probability = probability;
    }

    /// Flips the bits of `mask` in the byte at `offset` of `name`, in both images, as bit
    /// rot would. For tests of corruption in synced data.
    pub fn corrupt(&self, name: &str, offset: u64, mask: u8) -> io::Result<()> {
        let image = self
            .lock()
            .files
            .get(name)
            .cloned()
            .ok_or_else(|| not_found(name))?;
        let mut image = image.lock().expect("file image poisoned");
        let at = offset as usize;
        if at >= image.data.len() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "corrupt beyond end of file",
            ));
        }
        image.data[at] ^= mask;
        if at < image.durable.len() {
            image.durable[at] ^= mask;
        }
        Ok(())
    }

    /// How many syncs failed with injected EIO.
    pub fn eio_injected(&self) -> u64 {
        self.lock().eio_injected
    }

    /// Bytes of `name` that are durable now.
    pub fn durable_len(&self, name: &str) -> Option<u64> {
        let image = self.lock().files.get(name).cloned()?;
        let len = image.lock().expect("file image poisoned").durable.len() as u64;
        Some(len)
    }

    /// The most bytes of `name` reserved since it was created or last truncated (see
    /// [`DiskFile::reserve`]; the simulated disk only records it).
    pub fn reserved_len(&self, name: &str) -> Option<u64> {
        let image = self.lock().files.get(name).cloned()?;
        let reserved = image.lock().expect("file image poisoned").reserved;
        Some(reserved)
    }

    async fn delay(&self) {
        let latency = {
            let mut state = self.lock();
            match state.config.latency_us.clone() {
                Some(range) if !range.is_empty() => Some(state.rng.gen_range(range)),
                _ => None,
            }
        };
        if let Some(us) = latency {
            tokio::time::sleep(Duration::from_micros(us)).await;
        }
    }
}

fn not_found(name: &str) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, format!("{name}: no such file"))
}

impl Disk for SimDisk {
    type File = SimFile;

    async fn open(&self, name: &str, create: bool) -> io::Result<SimFile> {
        self.delay().await;
        let mut state = self.lock();
        let image = match state.files.get(name) {
            Some(image) => image.clone(),
            None if create => {
                let image = Arc::new(Mutex::new(FileImage::default()));
                state.files.insert(name.to_string(), image.clone());
                image
            }
            None => return Err(not_found(name)),
        };
        Ok(SimFile {
            disk: self.clone(),
            image,
            generation: state.generation,
            name: Arc::from(name),
        })
    }

    async fn remove(&self, name: &str) -> io::Result<()> {
        self.delay().await;
        self.lock()
            .files
            .remove(name)
            .map(|_| ())
            .ok_or_else(|| not_found(name))
    }

    async fn list(&self, prefix: &str) -> io::Result<Vec<String>> {
        self.delay().await;
        let state = self.lock();
        Ok(state
            .files
            .keys()
            .filter(|name| name.starts_with(prefix))
            .cloned()
            .collect())
    }

    fn space(&self) -> io::Result<DiskSpace> {
        let state = self.lock();
        let used: u64 = state
            .files
            .values()
            .map(|image| image.lock().expect("file image poisoned").data.len() as u64)
            .sum();
        let total = state.config.capacity_bytes;
        Ok(DiskSpace {
            total_bytes: total,
            free_bytes: total.saturating_sub(used),
        })
    }
}

/// A handle to a file on a [`SimDisk`].
#[derive(Clone, Debug)]
pub struct SimFile {
    disk: SimDisk,
    image: Arc<Mutex<FileImage>>,
    generation: u64,
    name: Arc<str>,
}

impl SimFile {
    /// The image, unless a crash made this handle stale.
    fn image(&self) -> io::Result<MutexGuard<'_, FileImage>> {
        if self.disk.lock().generation != self.generation {
            return Err(io::Error::other(format!(
                "{}: stale handle after a crash",
                self.name
            )));
        }
        Ok(self.image.lock().expect("file image poisoned"))
    }
}

impl DiskFile for SimFile {
    fn len(&self) -> u64 {
        self.image.lock().expect("file image poisoned").data.len() as u64
    }

    async fn append(&self, data: &[u8]) -> io::Result<u64> {
        self.disk.delay().await;
        let mut image = self.image()?;
        let offset = image.data.len() as u64;
        image.data.extend_from_slice(data);
        Ok(offset)
    }

    async fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        self.disk.delay().await;
        let image = self.image()?;
        let start = (offset as usize).min(image.data.len());
        let n = buf.len().min(image.data.len() - start);
        buf[..n].copy_from_slice(&image.data[start..start + n]);
        Ok(n)
    }

    async fn sync(&self) -> io::Result<()> {
        self.disk.delay().await;
        let fail = {
            let mut state = self.disk.lock();
            let p = state.config.sync_eio_probability;
            let fail = p > 0.0 && state.rng.gen_bool(p);
            if fail {
                state.eio_injected += 1;
            }
            fail
        };
        if fail {
            return Err(io::Error::other(format!(
                "{}: injected EIO on fsync",
                self.name
            )));
        }
        let mut image = self.image()?;
        let from = image.diverged_at;
        image.durable.truncate(from);
        let FileImage { data, durable, .. } = &mut *image;
        durable.extend_from_slice(&data[from..]);
        image.diverged_at = image.durable.len();
        Ok(())
    }

    async fn truncate(&self, len: u64) -> io::Result<()> {
        self.disk.delay().await;
        let mut image = self.image()?;
        assert!(
            len <= image.data.len() as u64,
            "truncate may only shorten a file"
        );
        image.data.truncate(len as usize);
        image.diverged_at = image.diverged_at.min(len as usize);
        image.reserved = image.reserved.min(len);
        Ok(())
    }

    fn reserve(&self, len: u64) {
        let mut image = self.image.lock().expect("file image poisoned");
        image.reserved = image.reserved.max(len);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn unsynced_bytes_are_lost_on_crash() {
        let disk = SimDisk::new(SimDiskConfig::reliable(1));
        let f = disk.open("f", true).await.unwrap();
        f.append(b"durable").await.unwrap();
        f.sync().await.unwrap();
        f.append(b"-volatile").await.unwrap();
        assert_eq!(f.len(), 16);
        disk.crash();
        assert!(
            f.append(b"x").await.is_err(),
            "old handles are stale after a crash"
        );
        let f = disk.open("f", false).await.unwrap();
        let mut buf = vec![0; 32];
        let n = f.read_at(0, &mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"durable");
    }

    #[tokio::test]
    async fn unsynced_truncate_is_undone_on_crash() {
        let disk = SimDisk::new(SimDiskConfig::reliable(1));
        let f = disk.open("f", true).await.unwrap();
        f.append(b"abcdef").await.unwrap();
        f.sync().await.unwrap();
        f.truncate(2).await.unwrap();
        f.append(b"XY").await.unwrap();
        disk.crash();
        let f = disk.open("f", false).await.unwrap();
        let mut buf = vec![0; 32];
        let n = f.read_at(0, &mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"abcdef");
        // And once synced, the truncate holds.
        f.truncate(2).await.unwrap();
        f.append(b"XY").await.unwrap();
        f.sync().await.unwrap();
        disk.crash();
        let f = disk.open("f", false).await.unwrap();
        let n = f.read_at(0, &mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"abXY");
    }

    #[tokio::test]
    async fn torn_tail_keeps_a_prefix_of_unsynced_bytes() {
        let mut config = SimDiskConfig::reliable(7);
        config.torn_tail_probability = 1.0;
        let disk = SimDisk::new(config);
        let f = disk.open("f", true).await.unwrap();
        f.append(b"base").await.unwrap();
        f.sync().await.unwrap();
        f.append(b"0123456789").await.unwrap();
        disk.crash();
        let f = disk.open("f", false).await.unwrap();
        let mut buf = vec![0; 32];
        let n = f.read_at(0, &mut buf).await.unwrap();
        assert!(n > 4 && n <= 14, "a torn prefix survives: {n}");
        assert_eq!(&buf[..n], &b"base0123456789"[..n]);
    }

    #[tokio::test]
    async fn sync_can_fail_with_eio_and_then_nothing_is_durable() {
        let mut config = SimDiskConfig::reliable(3);
        config.sync_eio_probability = 1.0;
        let disk = SimDisk::new(config);
        let f = disk.open("f", true).await.unwrap();
        f.append(b"data").await.unwrap();
        assert!(f.sync().await.is_err());
        assert_eq!(disk.eio_injected(), 1);
        disk.crash();
        assert_eq!(disk.open("f", false).await.unwrap().len(), 0);
    }

    #[tokio::test]
    async fn same_seed_same_crash() {
        async fn run(seed: u64) -> Vec<u8> {
            let mut config = SimDiskConfig::reliable(seed);
            config.torn_tail_probability = 0.5;
            config.torn_garbage_probability = 0.5;
            let disk = SimDisk::new(config);
            let f = disk.open("f", true).await.unwrap();
            f.append(&[9u8; 100]).await.unwrap();
            disk.crash();
            let f = disk.open("f", false).await.unwrap();
            let mut buf = vec![0; 100];
            let n = f.read_at(0, &mut buf).await.unwrap();
            buf.truncate(n);
            buf
        }
        for seed in 0..20 {
            assert_eq!(run(seed).await, run(seed).await);
        }
    }

    #[tokio::test]
    async fn list_space_remove() {
        let mut config = SimDiskConfig::reliable(1);
        config.capacity_bytes = 100;
        let disk = SimDisk::new(config);
        disk.open("a/1", true)
            .await
            .unwrap()
            .append(&[0; 30])
            .await
            .unwrap();
        disk.open("a/2", true).await.unwrap();
        disk.open("b/1", true).await.unwrap();
        assert_eq!(disk.list("a/").await.unwrap(), vec!["a/1", "a/2"]);
        assert_eq!(disk.space().unwrap().free_bytes, 70);
        disk.remove("a/1").await.unwrap();
        assert!(disk.remove("a/1").await.is_err());
        assert_eq!(disk.space().unwrap().free_bytes, 100);
    }
}
