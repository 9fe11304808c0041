//! ConsumeQueue: the per-(topic, queue id) index into the CommitLog.
//!
//! Unit `q` of a queue describes the message with queue offset `q`; units are dense, so
//! the queue offset is the unit's position. Files are `consumequeue/{topic}/{queue
//! id}/{first queue offset:020}`, `units_per_file` units each. Units are written after
//! the CommitLog append they describe (dispatch) and synced lazily: the CommitLog is the
//! source of truth and recovery rebuilds any unit the checkpoint does not vouch for.
//!
//! ```text
//! unit (RocketMQ: CQ_STORE_UNIT_SIZE = 20)
//! offset size field
//!      0    8 commitlog offset   of the message (its PHYSICALOFFSET)
//!      8    4 size               of the message
//!     12    8 tag hash code      Java hashCode of the TAGS property, 0 without tags
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::RwLock;

use crate::disk::{read_exact_at, Disk, DiskFile};
use crate::error::{IoContext, Result, StoreError};

pub const CQ_UNIT_SIZE: usize = 20;
const _: () = assert!(CQ_UNIT_SIZE == 8 + 4 + 8);

pub const DIR: &str = "consumequeue/";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CqUnit {
    pub commitlog_offset: u64,
    pub size: u32,
    pub tag_hash: i64,
}

impl CqUnit {
    fn encode_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.commitlog_offset.to_be_bytes());
        out.extend_from_slice(&self.size.to_be_bytes());
        out.extend_from_slice(&self.tag_hash.to_be_bytes());
    }

    fn decode(bytes: &[u8]) -> Self {
        assert_eq!(bytes.len(), CQ_UNIT_SIZE);
        CqUnit {
            commitlog_offset: u64::from_be_bytes(bytes[0..8].try_into().expect("8 bytes")),
            size: u32::from_be_bytes(bytes[8..12].try_into().expect("4 bytes")),
            tag_hash: i64::from_be_bytes(bytes[12..20].try_into().expect("8 bytes")),
        }
    }
}

pub fn queue_dir(topic: &str, queue_id: u32) -> String {
    format!("{DIR}{topic}/{queue_id}/")
}

#[derive(Clone, Debug)]
struct CqFile<F> {
    first: u64,
    file: F,
}

pub struct ConsumeQueue<D: Disk> {
    disk: D,
    topic: String,
    queue_id: u32,
    units_per_file: u64,
    files: RwLock<Vec<CqFile<D::File>>>,
    /// Oldest queue offset still readable (moves with CommitLog retention).
    min_offset: AtomicU64,
    /// Next queue offset to be written: the number of units ever written.
    max_offset: AtomicU64,
    /// Units below this queue offset are durable.
    synced_offset: AtomicU64,
}

impl<D: Disk> ConsumeQueue<D> {
    /// An empty queue, for a (topic, queue id) without files yet.
    pub fn new(disk: D, topic: &str, queue_id: u32, units_per_file: u64) -> Self {
        ConsumeQueue {
            disk,
            topic: topic.to_string(),
            queue_id,
            units_per_file,
            files: RwLock::new(Vec::new()),
            min_offset: AtomicU64::new(0),
            max_offset: AtomicU64::new(0),
            synced_offset: AtomicU64::new(0),
        }
    }

    /// Opens the queue's files (`names`, sorted). A torn unit at the end is cut off; any
    /// other inconsistency is `Corrupt`, and the caller rebuilds the queue.
    pub async fn open(
        disk: D,
        topic: &str,
        queue_id: u32,
        units_per_file: u64,
        names: &[String],
    ) -> Result<Self> {
        let queue = Self::new(disk, topic, queue_id, units_per_file);
        let dir = queue_dir(topic, queue_id);
        let file_size = units_per_file * CQ_UNIT_SIZE as u64;
        let mut files = Vec::with_capacity(names.len());
        for (i, name) in names.iter().enumerate() {
            let corrupt = |reason: String| StoreError::Corrupt {
                file: name.clone(),
                offset: 0,
                reason,
            };
            let first = name
                .strip_prefix(&dir)
                .and_then(|n| n.parse::<u64>().ok())
                .filter(|f| f % units_per_file == 0)
                .ok_or_else(|| {
                    corrupt(format!(
                        "not a ConsumeQueue file name for {units_per_file} units per file"
                    ))
                })?;
            if let Some(prev) = files.last() {
                let prev: &CqFile<D::File> = prev;
                if prev.first + units_per_file != first {
                    return Err(corrupt("a ConsumeQueue file is missing before it".into()));
                }
            }
            let file = queue
                .disk
                .open(name, false)
                .await
                .context(|| format!("open {name}"))?;
            let len = file.len();
            let is_last = i + 1 == names.len();
            if !is_last && len != file_size {
                return Err(corrupt(format!(
                    "{len} bytes in a full ConsumeQueue file of {file_size}"
                )));
            }
            if len > file_size {
                return Err(corrupt(format!(
                    "{len} bytes in a ConsumeQueue file of {file_size}"
                )));
            }
            if len % CQ_UNIT_SIZE as u64 != 0 {
                let keep = len - len % CQ_UNIT_SIZE as u64;
                tracing::warn!(file = %name, len, keep, "cutting a torn ConsumeQueue unit");
                file.truncate(keep)
                    .await
                    .context(|| format!("truncate {name}"))?;
                // Truncation must be durable before units are appended in its place.
                file.sync().await.context(|| format!("sync {name}"))?;
            }
            files.push(CqFile { first, file });
        }
        if let Some(last) = files.last() {
            let max = last.first + last.file.len() / CQ_UNIT_SIZE as u64;
            queue.max_offset.store(max, Ordering::Release);
            queue.min_offset.store(files[0].first, Ordering::Release);
        }
        *queue.files.write().expect("cq files lock poisoned") = files;
        Ok(queue)
    }

    /// Makes an empty queue start at queue offset `offset`, for a queue rebuilt from a
    /// CommitLog whose oldest segments retention already deleted.
    pub fn reset_to(&self, offset: u64) {
        assert!(
            self.files
                .read()
                .expect("cq files lock poisoned")
                .is_empty(),
            "reset_to needs an empty queue"
        );
        self.min_offset.store(offset, Ordering::Release);
        self.max_offset.store(offset, Ordering::Release);
        self.synced_offset.store(offset, Ordering::Release);
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    pub fn queue_id(&self) -> u32 {
        self.queue_id
    }

    pub fn min_offset(&self) -> u64 {
        self.min_offset.load(Ordering::Acquire)
    }

    /// Queue offset the next message will get (RocketMQ's max offset: one past the last).
    pub fn max_offset(&self) -> u64 {
        self.max_offset.load(Ordering::Acquire)
    }

    fn file_name(&self, first: u64) -> String {
        format!("{}{first:020}", queue_dir(&self.topic, self.queue_id))
    }

    /// Appends units for queue offsets `max_offset()..`. One writer only.
    pub async fn append(&self, units: &[CqUnit]) -> Result<()> {
        let mut next = self.max_offset();
        let mut buf = Vec::with_capacity(units.len() * CQ_UNIT_SIZE);
        let mut rest = units;
        while !rest.is_empty() {
            let file = self.file_for_append(next).await?;
            let room = (file.first + self.units_per_file - next) as usize;
            let (now, later) = rest.split_at(room.min(rest.len()));
            buf.clear();
            for unit in now {
                unit.encode_into(&mut buf);
            }
            let at = file
                .file
                .append(&buf)
                .await
                .context(|| format!("append to {}", self.file_name(file.first)))?;
            assert_eq!(
                file.first + at / CQ_UNIT_SIZE as u64,
                next,
                "ConsumeQueue file length disagrees with max offset"
            );
            next += now.len() as u64;
            self.max_offset.store(next, Ordering::Release);
            rest = later;
        }
        Ok(())
    }

    async fn file_for_append(&self, next: u64) -> Result<CqFile<D::File>> {
        {
            let files = self.files.read().expect("cq files lock poisoned");
            if let Some(last) = files.last() {
                if next < last.first + self.units_per_file {
                    return Ok(last.clone());
                }
            }
        }
        let first = next - next % self.units_per_file;
        let name = self.file_name(first);
        let file = self
            .disk
            .open(&name, true)
            .await
            .context(|| format!("create {name}"))?;
        // A queue that starts mid-file (after a rebuild that begins past retention) pads
        // the file's head so positions stay dense.
        let pad = next - first;
        if pad > 0 && file.is_empty() {
            file.append(&vec![0u8; pad as usize * CQ_UNIT_SIZE])
                .await
                .context(|| format!("pad {name}"))?;
        }
        let cq_file = CqFile { first, file };
        let mut files = self.files.write().expect("cq files lock poisoned");
        if files.is_empty() {
            self.min_offset.store(next, Ordering::Release);
        }
        files.push(cq_file.clone());
        Ok(cq_file)
    }

    fn file_at(&self, offset: u64) -> Option<CqFile<D::File>> {
        let files = self.files.read().expect("cq files lock poisoned");
        let i = files.partition_point(|f| f.first <= offset);
        let file = files.get(i.checked_sub(1)?)?;
        (offset < file.first + self.units_per_file).then(|| file.clone())
    }

    /// Up to `max_count` units from queue offset `from`, stopping at the end of a file
    /// (call again for more).
    pub async fn read(&self, from: u64, max_count: usize) -> Result<Vec<CqUnit>> {
        let max = self.max_offset();
        if from < self.min_offset() || from >= max || max_count == 0 {
            return Ok(Vec::new());
        }
        let Some(file) = self.file_at(from) else {
            return Ok(Vec::new());
        };
        let end = max
            .min(file.first + self.units_per_file)
            .min(from + max_count as u64);
        let mut buf = vec![0u8; (end - from) as usize * CQ_UNIT_SIZE];
        read_exact_at(
            &file.file,
            (from - file.first) * CQ_UNIT_SIZE as u64,
            &mut buf,
        )
        .await
        .context(|| format!("read {} at unit {from}", self.file_name(file.first)))?;
        Ok(buf.chunks_exact(CQ_UNIT_SIZE).map(CqUnit::decode).collect())
    }

    pub async fn get(&self, offset: u64) -> Result<Option<CqUnit>> {
        Ok(self.read(offset, 1).await?.into_iter().next())
    }

    /// Recovery: drops the suffix of units that describe CommitLog offsets at or past
    /// `commitlog_offset` (they are re-dispatched from the CommitLog). Units are in
    /// CommitLog order, so the suffix is found by walking back from the end.
    pub async fn truncate_from_commitlog(&self, commitlog_offset: u64) -> Result<()> {
        let mut end = self.max_offset();
        while end > self.min_offset() {
            match self.get(end - 1).await? {
                Some(unit) if unit.commitlog_offset < commitlog_offset => break,
                _ => end -= 1,
            }
        }
        self.truncate_to(end).await
    }

    /// Recovery: drops every unit at queue offset `end` or later, durably (otherwise a
    /// crash would bring back units that point at CommitLog offsets new messages reuse).
    pub async fn truncate_to(&self, end: u64) -> Result<()> {
        assert!(end >= self.min_offset(), "truncate_to below the min offset");
        if end >= self.max_offset() {
            return Ok(());
        }
        loop {
            let (last, count) = {
                let files = self.files.read().expect("cq files lock poisoned");
                let Some(last) = files.last().cloned() else {
                    break;
                };
                (last, files.len())
            };
            let name = self.file_name(last.first);
            if last.first >= end && count > 1 {
                self.files.write().expect("cq files lock poisoned").pop();
                self.disk
                    .remove(&name)
                    .await
                    .context(|| format!("remove {name}"))?;
                continue;
            }
            let keep_units = end.saturating_sub(last.first);
            last.file
                .truncate(keep_units * CQ_UNIT_SIZE as u64)
                .await
                .context(|| format!("truncate {name}"))?;
            last.file.sync().await.context(|| format!("sync {name}"))?;
            break;
        }
        self.max_offset.store(end, Ordering::Release);
        self.synced_offset.fetch_min(end, Ordering::AcqRel);
        Ok(())
    }

    /// Makes every unit written so far durable.
    pub async fn sync(&self) -> Result<()> {
        let target = self.max_offset();
        let from = self.synced_offset.load(Ordering::Acquire);
        if target <= from {
            return Ok(());
        }
        let files: Vec<_> = self
            .files
            .read()
            .expect("cq files lock poisoned")
            .iter()
            .filter(|f| f.first + self.units_per_file > from && f.first < target)
            .cloned()
            .collect();
        for f in files {
            f.file
                .sync()
                .await
                .context(|| format!("sync {}", self.file_name(f.first)))?;
        }
        self.synced_offset.fetch_max(target, Ordering::AcqRel);
        Ok(())
    }

    /// Queue offset of the first unit whose message lies at or past CommitLog offset
    /// `commitlog_offset` (the max offset when none does). Units are in CommitLog order
    /// (a padded head reads as offset 0), so a binary search finds it.
    pub async fn first_at_or_after(&self, commitlog_offset: u64) -> Result<u64> {
        let mut lo = self.min_offset();
        let mut hi = self.max_offset();
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.get(mid).await? {
                Some(u) if u.commitlog_offset < commitlog_offset => lo = mid + 1,
                _ => hi = mid,
            }
        }
        Ok(lo)
    }

    /// Deletes every file of the queue; it must not be used afterwards (a follower
    /// resetting its store to install a snapshot).
    pub async fn remove_files(&self) -> Result<()> {
        let files = std::mem::take(&mut *self.files.write().expect("cq files lock poisoned"));
        for f in files {
            let name = self.file_name(f.first);
            self.disk
                .remove(&name)
                .await
                .context(|| format!("remove {name}"))?;
        }
        Ok(())
    }

    /// Retention: moves the min offset to the first unit whose message is still in the
    /// CommitLog (offset ≥ `commitlog_min`) and deletes files wholly below it.
    pub async fn advance_min(&self, commitlog_min: u64) -> Result<()> {
        let new_min = self.first_at_or_after(commitlog_min).await?;
        if new_min <= self.min_offset() {
            return Ok(());
        }
        self.min_offset.store(new_min, Ordering::Release);
        loop {
            let doomed = {
                let files = self.files.read().expect("cq files lock poisoned");
                match files.first() {
                    Some(f) if files.len() > 1 && f.first + self.units_per_file <= new_min => {
                        Some(f.first)
                    }
                    _ => None,
                }
            };
            let Some(first) = doomed else { return Ok(()) };
            self.files
                .write()
                .expect("cq files lock poisoned")
                .remove(0);
            let name = self.file_name(first);
            self.disk
                .remove(&name)
                .await
                .context(|| format!("remove {name}"))?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk::{SimDisk, SimDiskConfig};

    fn unit(i: u64) -> CqUnit {
        CqUnit {
            commitlog_offset: 100 + i * 10,
            size: 10,
            tag_hash: i as i64,
        }
    }

    #[tokio::test]
    async fn append_read_across_files_and_reopen() {
        let disk = SimDisk::new(SimDiskConfig::reliable(1));
        let cq = ConsumeQueue::new(disk.clone(), "T", 0, 4);
        let units: Vec<_> = (0..10).map(unit).collect();
        cq.append(&units[..3]).await.unwrap();
        cq.append(&units[3..]).await.unwrap();
        assert_eq!(cq.max_offset(), 10);
        assert_eq!(
            cq.read(2, 100).await.unwrap(),
            units[2..4].to_vec(),
            "a read stops at a file end"
        );
        assert_eq!(cq.get(9).await.unwrap(), Some(units[9]));
        assert_eq!(cq.get(10).await.unwrap(), None);
        let names = disk.list(&queue_dir("T", 0)).await.unwrap();
        assert_eq!(names.len(), 3);
        let reopened = ConsumeQueue::open(disk, "T", 0, 4, &names).await.unwrap();
        assert_eq!(reopened.max_offset(), 10);
        assert_eq!(reopened.get(5).await.unwrap(), Some(units[5]));
    }

    #[tokio::test]
    async fn truncate_from_commitlog_drops_the_suffix() {
        let disk = SimDisk::new(SimDiskConfig::reliable(1));
        let cq = ConsumeQueue::new(disk.clone(), "T", 1, 4);
        let units: Vec<_> = (0..10).map(unit).collect();
        cq.append(&units).await.unwrap();
        cq.truncate_from_commitlog(unit(5).commitlog_offset)
            .await
            .unwrap();
        assert_eq!(cq.max_offset(), 5);
        assert_eq!(disk.list(&queue_dir("T", 1)).await.unwrap().len(), 2);
        cq.truncate_to(2).await.unwrap();
        assert_eq!(cq.max_offset(), 2);
        assert_eq!(disk.list(&queue_dir("T", 1)).await.unwrap().len(), 1);
        assert_eq!(cq.get(1).await.unwrap(), Some(unit(1)));
    }

    #[tokio::test]
    async fn truncate_looks_past_an_empty_last_file() {
        // A crash can leave a new file empty (creation is durable, its units were not)
        // while the previous file still holds units to cut.
        let disk = SimDisk::new(SimDiskConfig::reliable(1));
        let cq = ConsumeQueue::new(disk.clone(), "T", 4, 4);
        cq.append(&(0..6).map(unit).collect::<Vec<_>>())
            .await
            .unwrap();
        let names = disk.list(&queue_dir("T", 4)).await.unwrap();
        disk.open(&names[1], false)
            .await
            .unwrap()
            .truncate(0)
            .await
            .unwrap();
        let reopened = ConsumeQueue::open(disk.clone(), "T", 4, 4, &names)
            .await
            .unwrap();
        reopened
            .truncate_from_commitlog(unit(3).commitlog_offset)
            .await
            .unwrap();
        assert_eq!(reopened.max_offset(), 3);
        assert_eq!(disk.list(&queue_dir("T", 4)).await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn advance_min_deletes_whole_files() {
        let disk = SimDisk::new(SimDiskConfig::reliable(1));
        let cq = ConsumeQueue::new(disk.clone(), "T", 2, 4);
        let units: Vec<_> = (0..10).map(unit).collect();
        cq.append(&units).await.unwrap();
        cq.advance_min(unit(6).commitlog_offset).await.unwrap();
        assert_eq!(cq.min_offset(), 6);
        assert_eq!(cq.read(5, 1).await.unwrap(), vec![]);
        assert_eq!(cq.get(6).await.unwrap(), Some(units[6]));
        assert_eq!(disk.list(&queue_dir("T", 2)).await.unwrap().len(), 2);
    }

    #[tokio::test]
    async fn torn_unit_is_cut_on_open_and_missing_file_is_corrupt() {
        let disk = SimDisk::new(SimDiskConfig::reliable(1));
        let cq = ConsumeQueue::new(disk.clone(), "T", 3, 4);
        cq.append(&(0..6).map(unit).collect::<Vec<_>>())
            .await
            .unwrap();
        let names = disk.list(&queue_dir("T", 3)).await.unwrap();
        disk.open(&names[1], false)
            .await
            .unwrap()
            .append(&[1, 2, 3])
            .await
            .unwrap();
        let reopened = ConsumeQueue::open(disk.clone(), "T", 3, 4, &names)
            .await
            .unwrap();
        assert_eq!(reopened.max_offset(), 6);
        assert!(
            ConsumeQueue::open(disk, "T", 3, 4, &names[1..])
                .await
                .is_ok(),
            "retention leaves a suffix"
        );
        let e =
            ConsumeQueue::open(SimDisk::new(SimDiskConfig::reliable(1)), "T", 3, 4, &names).await;
        assert!(e.is_err());
    }
}
