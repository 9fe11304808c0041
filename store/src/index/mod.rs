//! Key index: message keys and unique ids → CommitLog offsets, queryable by time range.
//!
//! RocketMQ's `IndexFile` is an on-disk hash table written in place. Our `Disk` is
//! append-only, so the index is a small LSM instead (same semantics, own format):
//! - the *active* file `index/{first commitlog offset:020}.log` is an append-only log of
//!   entries, mirrored in memory by a hash map;
//! - when it holds `entries_per_file` entries it is *sealed*: rewritten sorted by key
//!   hash as `index/{first:020}.sst`, after which the log is removed. Lookups in a sealed
//!   file binary-search it with reads; nothing of it stays in memory. Sealing runs in a
//!   task of its own and yields between slices of its sorting (inline, sorting a million
//!   entries and syncing 32 MiB stalled the write path for 270–370 ms); until it is done
//!   its entries stay in memory for lookups, and `sync` syncs its log. A crash meanwhile
//!   leaves the log, which `open` seals again.
//!
//! Entries are hints. A query reads each candidate message from the CommitLog and keeps
//! it only if its topic and key match and its store time is in range, so hash
//! collisions, entries left over from a truncated CommitLog tail and duplicates from
//! re-dispatch after a crash never reach a caller. Like RocketMQ, the indexed key is
//! `topic#key`, for each key in `KEYS` and for `UNIQ_KEY`.
//!
//! ```text
//! entry
//! offset size field
//!      0    8 key hash           FNV-1a 64 of "topic#key"
//!      8    8 commitlog offset   of the message
//!     16    8 store timestamp    ms
//!     24    4 size               of the message
//!     28    4 crc32c             of bytes [0, 28)
//! ```

use std::sync::Mutex;

use crate::disk::{read_exact_at, Disk, DiskFile};
use crate::error::{IoContext, Result, StoreError};

pub const INDEX_ENTRY_SIZE: usize = 32;
const _: () = assert!(INDEX_ENTRY_SIZE == 8 + 8 + 8 + 4 + 4);

const DIR: &str = "index/";
const LOG_SUFFIX: &str = ".log";
const SORTED_SUFFIX: &str = ".sst";

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct IndexEntry {
    pub key_hash: u64,
    pub commitlog_offset: u64,
    pub store_timestamp_ms: i64,
    pub size: u32,
}

impl IndexEntry {
    fn encode_into(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(&self.key_hash.to_be_bytes());
        out.extend_from_slice(&self.commitlog_offset.to_be_bytes());
        out.extend_from_slice(&self.store_timestamp_ms.to_be_bytes());
        out.extend_from_slice(&self.size.to_be_bytes());
        let crc = crc32c::crc32c(&out[start..]);
        out.extend_from_slice(&crc.to_be_bytes());
    }

    /// `None` when the CRC does not match (a torn write).
    fn decode(b: &[u8]) -> Option<Self> {
        assert_eq!(b.len(), INDEX_ENTRY_SIZE);
        let crc = u32::from_be_bytes(b[28..32].try_into().expect("4 bytes"));
        if crc != crc32c::crc32c(&b[..28]) {
            return None;
        }
        Some(IndexEntry {
            key_hash: u64::from_be_bytes(b[0..8].try_into().expect("8 bytes")),
            commitlog_offset: u64::from_be_bytes(b[8..16].try_into().expect("8 bytes")),
            store_timestamp_ms: i64::from_be_bytes(b[16..24].try_into().expect("8 bytes")),
            size: u32::from_be_bytes(b[24..28].try_into().expect("4 bytes")),
        })
    }
}

/// FNV-1a 64 of `topic#key`: stable across processes, unlike std's seeded hasher.
pub fn key_hash(topic: &str, key: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in topic
        .bytes()
        .chain(std::iter::once(b'#'))
        .chain(key.bytes())
    {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

struct Sealed<F> {
    first: u64,
    file: F,
    count: u64,
}

/// The active log's entries in memory as hash chains, the way RocketMQ's IndexFile
/// links slot → newest entry → previous entry: one `Vec` push per entry, and a fixed
/// table of slot heads indexed by the key hash's low bits. Keys whose hashes share a
/// slot share a chain, and lookups skip the other hashes. The table is a plain array
/// sized once (4 MiB for the default million entries per file): no hashing and no
/// rehash on the append path, and a smaller, cache-friendlier footprint than a map
/// from hash to head (which cost ≈ 6 % of the broker's CPU per message).
struct Chains {
    entries: Vec<IndexEntry>,
    /// For each entry, the position of the previous entry in its slot's chain.
    prev: Vec<u32>,
    /// Per slot, the position of its newest entry (`NO_ENTRY`: none).
    slots: Vec<u32>,
}

const NO_ENTRY: u32 = u32::MAX;

impl Chains {
    fn with_capacity(capacity: u64) -> Self {
        let capacity = capacity.min(1 << 20) as usize;
        Chains {
            entries: Vec::with_capacity(capacity),
            prev: Vec::with_capacity(capacity),
            slots: vec![NO_ENTRY; capacity.max(1).next_power_of_two()],
        }
    }

    fn slot(&self, hash: u64) -> usize {
        debug_assert!(self.slots.len().is_power_of_two());
        (hash as usize) & (self.slots.len() - 1)
    }

    fn push(&mut self, entry: IndexEntry) {
        let at = u32::try_from(self.entries.len()).expect("an index file holds under 4G entries");
        assert_ne!(at, NO_ENTRY, "an index file holds under 4G entries");
        let slot = self.slot(entry.key_hash);
        let prev = std::mem::replace(&mut self.slots[slot], at);
        self.entries.push(entry);
        self.prev.push(prev);
    }

    /// Entries with `hash`, newest first.
    fn get(&self, hash: u64) -> impl Iterator<Item = IndexEntry> + '_ {
        let mut at = self.slots[self.slot(hash)];
        std::iter::from_fn(move || {
            while at != NO_ENTRY {
                let entry = self.entries[at as usize];
                at = self.prev[at as usize];
                if entry.key_hash == hash {
                    return Some(entry);
                }
            }
            None
        })
    }
}

struct Active<F> {
    first: u64,
    file: F,
    entries: Chains,
    count: u64,
    synced: bool,
}

/// A full log being sealed by its own task.
struct Sealing<F> {
    /// Its entries, for lookups until the sealed file takes over.
    entries: std::sync::Arc<Chains>,
    /// The full log, for `sync` to make its entries durable without waiting for the seal.
    log: F,
    done: tokio::sync::oneshot::Receiver<Result<Sealed<F>>>,
    /// Aborted when the index is dropped, so a store reopened on the same disk (after
    /// a simulated crash, or a restart in one process) never races a seal left over
    /// from the one before; `open` seals that log again.
    task: tokio::task::JoinHandle<()>,
}

struct State<F> {
    sealed: Vec<Sealed<F>>,
    sealing: Option<Sealing<F>>,
    active: Option<Active<F>>,
}

pub struct KeyIndex<D: Disk> {
    disk: D,
    entries_per_file: u64,
    state: tokio::sync::Mutex<State<D::File>>,
    /// Sealed-file handles for readers, so lookups do not wait for the writer.
    readers: Mutex<Vec<(u64, D::File, u64)>>,
}

impl<D: Disk> Drop for KeyIndex<D> {
    fn drop(&mut self) {
        if let Some(sealing) = self.state.get_mut().sealing.take() {
            sealing.task.abort();
        }
    }
}

/// What lookups read of the sealed files, without the writer's lock.
fn reader_handles<F: Clone>(sealed: &[Sealed<F>]) -> Vec<(u64, F, u64)> {
    sealed
        .iter()
        .map(|s| (s.first, s.file.clone(), s.count))
        .collect()
}

fn log_name(first: u64) -> String {
    format!("{DIR}{first:020}{LOG_SUFFIX}")
}

fn sorted_name(first: u64) -> String {
    format!("{DIR}{first:020}{SORTED_SUFFIX}")
}

impl<D: Disk> KeyIndex<D> {
    /// Opens the index. Entries of the active log at or past `redispatch_from` are cut,
    /// since recovery re-dispatches those records.
    pub async fn open(disk: D, entries_per_file: u64, redispatch_from: u64) -> Result<Self> {
        let names = disk.list(DIR).await.context(|| format!("list {DIR}"))?;
        let mut logs = Vec::new();
        let mut sorted = Vec::new();
        for name in &names {
            let stem = &name[DIR.len()..];
            let parsed = |suffix: &str| {
                stem.strip_suffix(suffix)
                    .and_then(|s| s.parse::<u64>().ok())
            };
            if let Some(first) = parsed(LOG_SUFFIX) {
                logs.push(first);
            } else if let Some(first) = parsed(SORTED_SUFFIX) {
                sorted.push(first);
            } else {
                return Err(StoreError::UnexpectedFile {
                    file: name.clone(),
                    reason: "not an index file".into(),
                });
            }
        }
        let mut state = State {
            sealed: Vec::new(),
            sealing: None,
            active: None,
        };
        for first in sorted {
            let name = sorted_name(first);
            let file = disk
                .open(&name, false)
                .await
                .context(|| format!("open {name}"))?;
            if logs.contains(&first) {
                // Crashed while sealing: the log is complete, the sorted copy may not be.
                disk.remove(&name)
                    .await
                    .context(|| format!("remove {name}"))?;
                continue;
            }
            let count = file.len() / INDEX_ENTRY_SIZE as u64;
            state.sealed.push(Sealed { first, file, count });
        }
        for (i, first) in logs.iter().copied().enumerate() {
            let active = load_log(&disk, first, redispatch_from, entries_per_file).await?;
            if i + 1 < logs.len() {
                // Only the newest log can be active; an older one was being sealed.
                let sealed = seal(disk.clone(), active.first, &active.entries.entries).await?;
                state.sealed.push(sealed);
            } else {
                state.active = Some(active);
            }
        }
        state.sealed.sort_by_key(|s| s.first);
        let readers = reader_handles(&state.sealed);
        Ok(KeyIndex {
            disk,
            entries_per_file,
            state: tokio::sync::Mutex::new(state),
            readers: Mutex::new(readers),
        })
    }

    /// Adds entries (in CommitLog order). One writer only.
    pub async fn add(&self, entries: &[IndexEntry]) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut state = self.state.lock().await;
        self.settle(&mut state, false).await?;
        let mut buf = Vec::with_capacity(entries.len() * INDEX_ENTRY_SIZE);
        let mut rest = entries;
        while !rest.is_empty() {
            if state.active.is_none() {
                let first = rest[0].commitlog_offset;
                let name = log_name(first);
                let file = self
                    .disk
                    .open(&name, true)
                    .await
                    .context(|| format!("create {name}"))?;
                state.active = Some(Active {
                    first,
                    file,
                    entries: Chains::with_capacity(self.entries_per_file),
                    count: 0,
                    synced: true,
                });
            }
            let active = state.active.as_mut().expect("active log exists");
            let room = (self.entries_per_file - active.count) as usize;
            let (now, later) = rest.split_at(room.min(rest.len()));
            buf.clear();
            for e in now {
                e.encode_into(&mut buf);
            }
            active
                .file
                .append(&buf)
                .await
                .context(|| format!("append to {}", log_name(active.first)))?;
            for e in now {
                active.entries.push(*e);
            }
            active.count += now.len() as u64;
            active.synced = false;
            if active.count == self.entries_per_file {
                // One seal at a time (the next file fills a million entries later, or
                // sooner only in tests).
                self.settle(&mut state, true).await?;
                let full = state.active.take().expect("active log exists");
                let entries = std::sync::Arc::new(full.entries);
                let (tx, done) = tokio::sync::oneshot::channel();
                let (disk, first, task_entries) = (self.disk.clone(), full.first, entries.clone());
                let task = tokio::spawn(async move {
                    let _ = tx.send(seal(disk, first, &task_entries.entries).await);
                });
                state.sealing = Some(Sealing {
                    entries,
                    log: full.file,
                    done,
                    task,
                });
            }
            rest = later;
        }
        Ok(())
    }

    /// Candidate entries for `hash` with store time in `[begin_ms, end_ms]`, newest first,
    /// deduplicated by CommitLog offset. At most `max` of them.
    pub async fn lookup(
        &self,
        hash: u64,
        begin_ms: i64,
        end_ms: i64,
        max: usize,
    ) -> Result<Vec<IndexEntry>> {
        let mut found: Vec<IndexEntry> = Vec::new();
        {
            let state = self.state.lock().await;
            if let Some(active) = &state.active {
                found.extend(active.entries.get(hash));
            }
            if let Some(sealing) = &state.sealing {
                found.extend(sealing.entries.get(hash));
            }
        }
        let readers = self.readers.lock().expect("index readers poisoned").clone();
        for (first, file, count) in readers.iter().rev() {
            found.extend(lookup_sorted(file, *first, *count, hash).await?);
        }
        found.retain(|e| (begin_ms..=end_ms).contains(&e.store_timestamp_ms));
        found.sort_by_key(|e| std::cmp::Reverse(e.commitlog_offset));
        found.dedup_by_key(|e| e.commitlog_offset);
        found.truncate(max);
        Ok(found)
    }

    /// Takes in a finished seal: its sorted file replaces its in-memory entries. With
    /// `wait`, waits for one in progress.
    async fn settle(&self, state: &mut State<D::File>, wait: bool) -> Result<()> {
        let Some(sealing) = state.sealing.as_mut() else {
            return Ok(());
        };
        let outcome = if wait {
            (&mut sealing.done).await.ok()
        } else {
            match sealing.done.try_recv() {
                Err(tokio::sync::oneshot::error::TryRecvError::Empty) => return Ok(()),
                Ok(outcome) => Some(outcome),
                Err(tokio::sync::oneshot::error::TryRecvError::Closed) => None,
            }
        };
        state.sealing = None;
        let sealed = outcome
            .ok_or_else(|| StoreError::Unavailable("the index seal task stopped".into()))??;
        state.sealed.push(sealed);
        state.sealed.sort_by_key(|s| s.first);
        *self.readers.lock().expect("index readers poisoned") = reader_handles(&state.sealed);
        Ok(())
    }

    /// Makes every entry added so far durable.
    ///
    /// The lock is held only to pick the files: an `fdatasync` takes 30–400 ms on a
    /// loaded disk, and `add` (dispatch, which a replicated store's acknowledgements wait
    /// for) must not wait that long — it did, once per checkpoint interval, and that was
    /// the 3-replica group's p99.
    pub async fn sync(&self) -> Result<()> {
        let (sealing, active) = {
            let mut state = self.state.lock().await;
            self.settle(&mut state, false).await?;
            let sealing = state.sealing.as_ref().map(|s| s.log.clone());
            let active = state
                .active
                .as_ref()
                .filter(|a| !a.synced)
                .map(|a| (a.first, a.file.clone(), a.count));
            (sealing, active)
        };
        // A seal in progress has not made its entries durable yet: its log has them
        // (and `open` seals a log left behind again). Its file may be removed meanwhile
        // by the seal; syncing an unlinked file is harmless.
        if let Some(log) = sealing {
            log.sync()
                .await
                .context(|| "sync the index log being sealed".to_string())?;
        }
        if let Some((first, file, count)) = active {
            file.sync()
                .await
                .context(|| format!("sync {}", log_name(first)))?;
            let mut state = self.state.lock().await;
            if let Some(active) = state.active.as_mut() {
                // Only if nothing was appended since: those entries are not synced yet.
                if active.first == first && active.count == count {
                    active.synced = true;
                }
            }
        }
        Ok(())
    }

    /// Deletes every index file (a follower resetting its store to install a snapshot).
    pub async fn clear(&self) -> Result<()> {
        let mut state = self.state.lock().await;
        self.settle(&mut state, true).await?;
        let mut names: Vec<String> = state.sealed.iter().map(|s| sorted_name(s.first)).collect();
        names.extend(state.active.as_ref().map(|a| log_name(a.first)));
        state.sealed.clear();
        state.active = None;
        self.readers.lock().expect("index readers poisoned").clear();
        for name in names {
            self.disk
                .remove(&name)
                .await
                .context(|| format!("remove {name}"))?;
        }
        Ok(())
    }

    /// Retention: deletes sealed files whose entries all lie below `commitlog_min`.
    pub async fn delete_below(&self, commitlog_min: u64) -> Result<()> {
        let mut state = self.state.lock().await;
        self.settle(&mut state, true).await?;
        let active_first = state.active.as_ref().map(|a| a.first);
        let mut keep = Vec::new();
        let sealed = std::mem::take(&mut state.sealed);
        for (i, s) in sealed.iter().enumerate() {
            // A sealed file's entries end where the next file begins.
            let next_first = sealed.get(i + 1).map(|n| n.first).or(active_first);
            if next_first.is_some_and(|n| n <= commitlog_min) {
                let name = sorted_name(s.first);
                self.disk
                    .remove(&name)
                    .await
                    .context(|| format!("remove {name}"))?;
            } else {
                keep.push(i);
            }
        }
        state.sealed = sealed
            .into_iter()
            .enumerate()
            .filter(|(i, _)| keep.contains(i))
            .map(|(_, s)| s)
            .collect();
        *self.readers.lock().expect("index readers poisoned") = reader_handles(&state.sealed);
        Ok(())
    }
}

async fn load_log<D: Disk>(
    disk: &D,
    first: u64,
    redispatch_from: u64,
    entries_per_file: u64,
) -> Result<Active<D::File>> {
    let name = log_name(first);
    let file = disk
        .open(&name, false)
        .await
        .context(|| format!("open {name}"))?;
    let mut buf = vec![0u8; file.len() as usize];
    read_exact_at(&file, 0, &mut buf)
        .await
        .context(|| format!("read {name}"))?;
    let mut entries = Chains::with_capacity(entries_per_file);
    let mut count = 0u64;
    for chunk in buf.chunks_exact(INDEX_ENTRY_SIZE) {
        match IndexEntry::decode(chunk) {
            Some(e) if e.commitlog_offset < redispatch_from => {
                entries.push(e);
                count += 1;
            }
            _ => break,
        }
    }
    let keep = count * INDEX_ENTRY_SIZE as u64;
    if keep < file.len() {
        tracing::info!(file = %name, keep, len = file.len(), "cutting index entries that recovery re-dispatches");
        file.truncate(keep)
            .await
            .context(|| format!("truncate {name}"))?;
        file.sync().await.context(|| format!("sync {name}"))?;
    }
    Ok(Active {
        first,
        file,
        entries,
        count,
        synced: true,
    })
}

/// Entries sorted or merged between yields while sealing: a few milliseconds of work,
/// so the task sharing a runtime worker with the store's writer never holds it long.
const SEAL_SLICE_ENTRIES: usize = 1 << 16;

/// `entries` sorted, in slices: runs of `SEAL_SLICE_ENTRIES` sorted one at a time, then
/// merged, yielding to the runtime between slices.
async fn sort_in_slices(entries: &[IndexEntry]) -> Vec<IndexEntry> {
    let mut runs: Vec<Vec<IndexEntry>> = Vec::new();
    for chunk in entries.chunks(SEAL_SLICE_ENTRIES) {
        let mut run = chunk.to_vec();
        run.sort_unstable();
        runs.push(run);
        tokio::task::yield_now().await;
    }
    // K-way merge: the heap holds each run's next entry.
    let mut heads: std::collections::BinaryHeap<std::cmp::Reverse<(IndexEntry, usize, usize)>> =
        runs.iter()
            .enumerate()
            .filter_map(|(r, run)| run.first().map(|e| std::cmp::Reverse((*e, r, 0))))
            .collect();
    let mut sorted = Vec::with_capacity(entries.len());
    while let Some(std::cmp::Reverse((entry, r, i))) = heads.pop() {
        sorted.push(entry);
        if let Some(next) = runs[r].get(i + 1) {
            heads.push(std::cmp::Reverse((*next, r, i + 1)));
        }
        if sorted.len() % SEAL_SLICE_ENTRIES == 0 {
            tokio::task::yield_now().await;
        }
    }
    debug_assert!(sorted.is_sorted());
    sorted
}

/// Writes a full log's entries sorted by key hash as a sealed file, durably, then
/// removes the log.
async fn seal<D: Disk>(disk: D, first: u64, entries: &[IndexEntry]) -> Result<Sealed<D::File>> {
    let sorted = sort_in_slices(entries).await;
    let mut buf = Vec::with_capacity(sorted.len() * INDEX_ENTRY_SIZE);
    for (i, e) in sorted.iter().enumerate() {
        e.encode_into(&mut buf);
        if (i + 1) % SEAL_SLICE_ENTRIES == 0 {
            tokio::task::yield_now().await;
        }
    }
    let name = sorted_name(first);
    let file = disk
        .open(&name, true)
        .await
        .context(|| format!("create {name}"))?;
    file.append(&buf)
        .await
        .context(|| format!("write {name}"))?;
    file.sync().await.context(|| format!("sync {name}"))?;
    let log = log_name(first);
    disk.remove(&log)
        .await
        .context(|| format!("remove {log}"))?;
    Ok(Sealed {
        first,
        file,
        count: sorted.len() as u64,
    })
}

async fn lookup_sorted<F: DiskFile>(
    file: &F,
    first: u64,
    count: u64,
    hash: u64,
) -> Result<Vec<IndexEntry>> {
    let name = sorted_name(first);
    let read = |i: u64| read_entry(file, &name, i);
    // First entry with key_hash >= hash.
    let (mut lo, mut hi) = (0u64, count);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if read(mid).await?.key_hash < hash {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    let mut out = Vec::new();
    let mut i = lo;
    while i < count {
        let e = read(i).await?;
        if e.key_hash != hash {
            break;
        }
        out.push(e);
        i += 1;
    }
    Ok(out)
}

async fn read_entry<F: DiskFile>(file: &F, name: &str, i: u64) -> Result<IndexEntry> {
    let mut buf = [0u8; INDEX_ENTRY_SIZE];
    let offset = i * INDEX_ENTRY_SIZE as u64;
    read_exact_at(file, offset, &mut buf)
        .await
        .context(|| format!("read {name}"))?;
    IndexEntry::decode(&buf).ok_or_else(|| StoreError::Corrupt {
        file: name.to_string(),
        offset,
        reason: "index entry crc mismatch".into(),
    })
}

#[cfg(test)]
mod tests;
