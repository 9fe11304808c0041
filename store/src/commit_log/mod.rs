//! The CommitLog: every message of every topic, in arrival order, in fixed-size segments.
//!
//! A segment (RocketMQ: `MappedFile`) is the file `commitlog/{base offset:020}` and holds
//! the records (see `record`) whose offsets lie in `[base, base + segment_size)`. Offsets
//! are global byte positions, so the offset of a message names its segment and its place
//! in it. A record never spans segments: the writer closes a full segment with an
//! end-of-segment record and continues at the next base.
//!
//! One writer appends (`append` takes the writer lock); any number of readers read
//! concurrently up to [`CommitLog::write_offset`], which the writer publishes only after
//! the bytes are in the file. [`CommitLog::sync`] makes everything written so far durable
//! and advances [`CommitLog::flushed_offset`]; it syncs segments in offset order, so a
//! durable byte in one segment implies every earlier segment is durable and closed.
//!
//! Recovery ([`CommitLog::open`]) scans from the checkpoint, keeps every complete record,
//! truncates a torn or corrupt tail (logging offset and reason), and refuses to start when
//! a record below the checkpoint's durable offset is damaged.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::RwLock;

use bytes::Bytes;

use crate::checkpoint::Checkpoint;
use crate::disk::{read_exact_at, Disk, DiskFile};
use crate::error::{IoContext, Result, StoreError};
use crate::metrics::StoreMetrics;
use crate::record::{
    self, Decoded, LogPosition, RecordHeader, RecordKind, END_RECORD_SIZE, RECORD_HEADER_SIZE,
};

const DIR: &str = "commitlog/";
/// Bytes read at a time while scanning a segment.
const SCAN_CHUNK_SIZE: usize = 1 << 20;
/// How far ahead of the write offset the active segment's blocks are reserved (see
/// [`DiskFile::reserve`]); renewed when half of it is written. Bounded so a store does
/// not hold a whole 1 GiB segment of disk it has not written.
const RESERVE_AHEAD_BYTES: u64 = 32 << 20;

pub fn segment_name(base: u64) -> String {
    format!("{DIR}{base:020}")
}

/// Something that can be stored as a record's payload.
pub trait RecordPayload {
    fn payload_size(&self) -> usize;
    /// Appends exactly `payload_size()` bytes; `payload_offset` is the CommitLog offset
    /// the first of them will have (a message stores it as its PHYSICALOFFSET).
    fn encode_payload(&self, payload_offset: u64, out: &mut Vec<u8>);
    fn store_timestamp_ms(&self) -> i64;
    /// The record's kind: a message unless said otherwise.
    fn kind(&self) -> RecordKind {
        RecordKind::Message
    }
    /// The Raft log id the record must carry. `None` takes the next index and the log's
    /// current term (a store that is not replicated).
    fn log_id(&self) -> Option<LogPosition> {
        None
    }
    /// Whether the record's Raft entry goes on in the next payload (same log id). An
    /// entry is kept within one segment, and an append never ends inside one.
    fn continued(&self) -> bool {
        false
    }
}

/// Where one appended record landed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AppendedRecord {
    /// CommitLog offset of the payload (the message's physical offset).
    pub payload_offset: u64,
    pub payload_size: u32,
    pub at: LogPosition,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Appended {
    pub records: Vec<AppendedRecord>,
    /// `write_offset` after this append: a sync that reaches it makes all of it durable.
    pub end_offset: u64,
}

/// One record found by recovery or a scan.
#[derive(Clone, Copy, Debug)]
pub struct ScannedRecord<'a> {
    pub header: RecordHeader,
    pub payload_offset: u64,
    pub payload: &'a [u8],
}

#[derive(Clone, Debug)]
struct Segment<F> {
    base: u64,
    file: F,
    /// Newest store timestamp, known once the segment is closed by an end record.
    max_store_timestamp_ms: Option<i64>,
}

/// What retention needs to know about a segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentInfo {
    pub base: u64,
    pub size: u64,
    /// `None` for the active (last) segment.
    pub max_store_timestamp_ms: Option<i64>,
}

struct Writer {
    buf: Vec<u8>,
    /// Index of the last record written (0 before the first).
    last_index: u64,
    term: u64,
    /// Leader node id of the last record.
    leader: u16,
    /// Max store timestamp in the active segment.
    active_max_timestamp_ms: i64,
    /// Whether the last segment is open for appends (false when it was closed by an end
    /// record, or when there is none).
    active_open: bool,
    /// CommitLog offset up to which the active segment's blocks were reserved.
    reserved_to: u64,
}

pub struct CommitLog<D: Disk> {
    disk: D,
    segment_size: u64,
    record_size_max: usize,
    segments: RwLock<Vec<Segment<D::File>>>,
    write_offset: AtomicU64,
    flushed_offset: AtomicU64,
    writer: tokio::sync::Mutex<Writer>,
    /// Held by `sync` and by `truncate_from`, so a sync never publishes a flushed offset
    /// for bytes a truncation removed.
    sync_lock: tokio::sync::Mutex<()>,
    /// Where the most recent records start, by index (see `tail_map`).
    tail: std::sync::Mutex<TailMap>,
    metrics: StoreMetrics,
}

impl<D: Disk> CommitLog<D> {
    /// End of the written log: readers may read below it.
    pub fn write_offset(&self) -> u64 {
        self.write_offset.load(Ordering::Acquire)
    }

    /// What this log measured (see [`StoreMetrics`]).
    pub fn metrics(&self) -> &StoreMetrics {
        &self.metrics
    }

    /// Every byte below it is durable.
    pub fn flushed_offset(&self) -> u64 {
        self.flushed_offset.load(Ordering::Acquire)
    }

    /// Offset of the oldest byte still stored.
    pub fn min_offset(&self) -> u64 {
        let segments = self.segments.read().expect("segments lock poisoned");
        segments
            .first()
            .map_or_else(|| self.write_offset(), |s| s.base)
    }

    pub fn segment_size(&self) -> u64 {
        self.segment_size
    }

    /// Index of the last record written.
    pub async fn last_index(&self) -> u64 {
        self.writer.lock().await.last_index
    }

    /// The most bytes of records one Raft entry may take: it must fit in a segment
    /// beside the end-of-segment record.
    pub fn entry_size_max(&self) -> u64 {
        self.segment_size - END_RECORD_SIZE as u64
    }

    /// Appends one record per payload, in order, with one disk write per touched
    /// segment. Not durable until [`CommitLog::sync`] reaches `end_offset`.
    pub async fn append<P: RecordPayload>(&self, payloads: &[P]) -> Result<Appended> {
        assert!(
            payloads.last().is_none_or(|p| !p.continued()),
            "an append must not end inside a Raft entry"
        );
        let mut writer = self.writer.lock().await;
        let writer = &mut *writer;
        let mut pos = self.write_offset();
        let mut records = Vec::with_capacity(payloads.len());
        writer.buf.clear();
        let mut batch_start = pos;
        if !writer.active_open {
            self.create_segment(pos).await?;
            writer.active_open = true;
            writer.active_max_timestamp_ms = i64::MIN;
        }
        // Whether the previous payload's entry goes on in this one.
        let mut in_entry = false;
        let mut entry_starts = Vec::new();
        for (i, payload) in payloads.iter().enumerate() {
            let size = RECORD_HEADER_SIZE + payload.payload_size();
            assert!(
                size <= self.record_size_max,
                "caller must reject records over record_size_max"
            );
            // An entry's records stay in one segment: room is judged for all of them.
            let entry_size = if in_entry {
                0
            } else {
                let more = payloads[i..].iter().position(|p| !p.continued());
                let parts = &payloads[i..=i + more.expect("an entry ends in its append")];
                let entry_size = record::entry_size(parts.iter().map(|p| p.payload_size()));
                assert!(
                    entry_size <= self.entry_size_max(),
                    "caller must keep an entry within entry_size_max"
                );
                entry_size
            };
            let segment_end = self.segment_base(pos) + self.segment_size;
            if !in_entry && pos + entry_size + END_RECORD_SIZE as u64 > segment_end {
                let last = LogPosition {
                    term: writer.term,
                    leader: writer.leader,
                    index: writer.last_index,
                };
                record::encode_end(&mut writer.buf, last, writer.active_max_timestamp_ms);
                self.write_to_segment(batch_start, &writer.buf).await?;
                self.close_segment(batch_start, writer.active_max_timestamp_ms);
                writer.buf.clear();
                pos = segment_end;
                batch_start = pos;
                self.write_offset.store(pos, Ordering::Release);
                self.create_segment(pos).await?;
                tracing::debug!(file = %segment_name(pos), "rolled to a new CommitLog segment");
                writer.active_max_timestamp_ms = i64::MIN;
            }
            let at = match payload.log_id() {
                Some(at) if in_entry => {
                    assert_eq!(
                        (at.index, at.term, at.leader),
                        (writer.last_index, writer.term, writer.leader),
                        "an entry's records share its log id"
                    );
                    at
                }
                Some(at) => {
                    assert_eq!(
                        at.index,
                        writer.last_index + 1,
                        "a Raft append must continue the log (truncate first)"
                    );
                    assert!(at.term >= writer.term, "Raft terms never go back in a log");
                    at
                }
                None => LogPosition {
                    term: writer.term,
                    leader: writer.leader,
                    index: writer.last_index + 1,
                },
            };
            writer.last_index = at.index;
            writer.term = at.term;
            writer.leader = at.leader;
            let start = record::begin_part(
                &mut writer.buf,
                payload.kind(),
                payload.continued(),
                payload.payload_size(),
                at,
            );
            if !in_entry {
                entry_starts.push((pos, at));
            }
            in_entry = payload.continued();
            let payload_offset = pos + RECORD_HEADER_SIZE as u64;
            payload.encode_payload(payload_offset, &mut writer.buf);
            record::seal(&mut writer.buf, start);
            writer.active_max_timestamp_ms = writer
                .active_max_timestamp_ms
                .max(payload.store_timestamp_ms());
            records.push(AppendedRecord {
                payload_offset,
                payload_size: payload.payload_size() as u32,
                at,
            });
            pos += size as u64;
        }
        if !writer.buf.is_empty() {
            self.write_to_segment(batch_start, &writer.buf).await?;
        }
        assert_eq!(pos, batch_start + writer.buf.len() as u64);
        self.reserve_ahead(writer, pos);
        {
            let mut tail = self.tail.lock().expect("tail lock poisoned");
            for (offset, at) in entry_starts {
                tail.push(offset, at);
            }
        }
        self.write_offset.store(pos, Ordering::Release);
        Ok(Appended {
            records,
            end_offset: pos,
        })
    }

    /// Keeps the active segment's blocks reserved up to [`RESERVE_AHEAD_BYTES`] past
    /// `pos` (never past the segment's end), asking again once half of that is written.
    fn reserve_ahead(&self, writer: &mut Writer, pos: u64) {
        let end = self.segment_base(pos) + self.segment_size;
        let target = (pos + RESERVE_AHEAD_BYTES).min(end);
        let behind = target.saturating_sub(writer.reserved_to);
        if behind == 0 || (behind < RESERVE_AHEAD_BYTES / 2 && target < end) {
            return;
        }
        if let Some(segment) = self.segment_at(pos) {
            segment.file.reserve(target - segment.base);
            writer.reserved_to = target;
        }
    }

    fn segment_base(&self, offset: u64) -> u64 {
        offset - offset % self.segment_size
    }

    async fn create_segment(&self, base: u64) -> Result<()> {
        assert_eq!(base % self.segment_size, 0, "segment base must be aligned");
        let name = segment_name(base);
        let file = self
            .disk
            .open(&name, true)
            .await
            .context(|| format!("create {name}"))?;
        assert!(file.is_empty(), "new segment {name} is not empty");
        let mut segments = self.segments.write().expect("segments lock poisoned");
        if let Some(last) = segments.last() {
            assert_eq!(
                last.base + self.segment_size,
                base,
                "segments must be contiguous"
            );
        }
        segments.push(Segment {
            base,
            file,
            max_store_timestamp_ms: None,
        });
        Ok(())
    }

    fn close_segment(&self, offset: u64, max_store_timestamp_ms: i64) {
        let base = self.segment_base(offset);
        let mut segments = self.segments.write().expect("segments lock poisoned");
        let segment = segments
            .iter_mut()
            .rfind(|s| s.base == base)
            .expect("closing segment exists");
        segment.max_store_timestamp_ms = Some(max_store_timestamp_ms);
    }

    async fn write_to_segment(&self, offset: u64, bytes: &[u8]) -> Result<()> {
        let segment = self.segment_at(offset).expect("writer's segment exists");
        let at = segment
            .file
            .append(bytes)
            .await
            .context(|| format!("append to {}", segment_name(segment.base)))?;
        assert_eq!(
            segment.base + at,
            offset,
            "segment length disagrees with write offset"
        );
        Ok(())
    }

    fn segment_at(&self, offset: u64) -> Option<Segment<D::File>> {
        let segments = self.segments.read().expect("segments lock poisoned");
        let i = segments.partition_point(|s| s.base <= offset);
        let segment = segments.get(i.checked_sub(1)?)?;
        (offset < segment.base + self.segment_size).then(|| segment.clone())
    }

    /// Reads the payload of the message record whose payload starts at `offset` and is
    /// `size` bytes, checking the record's CRC. `None` when the offset is no longer (or
    /// not yet) stored.
    pub async fn read(&self, offset: u64, size: u32) -> Result<Option<Bytes>> {
        if offset < RECORD_HEADER_SIZE as u64 || offset + u64::from(size) > self.write_offset() {
            return Ok(None);
        }
        let record_offset = offset - RECORD_HEADER_SIZE as u64;
        let Some(segment) = self.segment_at(record_offset) else {
            return Ok(None);
        };
        let name = || segment_name(segment.base);
        let mut buf = vec![0u8; RECORD_HEADER_SIZE + size as usize];
        read_exact_at(&segment.file, record_offset - segment.base, &mut buf)
            .await
            .context(|| format!("read {} at {record_offset}", name()))?;
        match record::decode(&buf, self.record_size_max) {
            Decoded::Record(h)
                if h.kind == RecordKind::Message && h.payload_size() == size as usize =>
            {
                Ok(Some(Bytes::from(buf).slice(RECORD_HEADER_SIZE..)))
            }
            Decoded::Record(h) => Err(StoreError::Corrupt {
                file: name(),
                offset: record_offset,
                reason: format!(
                    "expected a message of {size} bytes, found {:?} of {}",
                    h.kind,
                    h.payload_size()
                ),
            }),
            Decoded::Incomplete { needed } => Err(StoreError::Corrupt {
                file: name(),
                offset: record_offset,
                reason: format!("record needs {needed} bytes but the caller named {size}"),
            }),
            Decoded::Corrupt { reason } => Err(StoreError::Corrupt {
                file: name(),
                offset: record_offset,
                reason,
            }),
        }
    }

    /// Reads the message whose payload starts at `offset` without knowing its size (a
    /// lookup by msg id): the record header gives it.
    pub async fn read_unsized(&self, offset: u64) -> Result<Option<Bytes>> {
        if offset < RECORD_HEADER_SIZE as u64 || offset >= self.write_offset() {
            return Ok(None);
        }
        let record_offset = offset - RECORD_HEADER_SIZE as u64;
        let Some(segment) = self.segment_at(record_offset) else {
            return Ok(None);
        };
        let mut header = [0u8; RECORD_HEADER_SIZE];
        read_exact_at(&segment.file, record_offset - segment.base, &mut header)
            .await
            .context(|| format!("read {} at {record_offset}", segment_name(segment.base)))?;
        let size = u32::from_be_bytes(header[4..8].try_into().expect("4 bytes")) as usize;
        if !(RECORD_HEADER_SIZE..=self.record_size_max).contains(&size) {
            return Err(StoreError::Corrupt {
                file: segment_name(segment.base),
                offset: record_offset,
                reason: format!("no record starts here (size field {size})"),
            });
        }
        self.read(offset, (size - RECORD_HEADER_SIZE) as u32).await
    }

    /// Makes everything written so far durable; returns the new flushed offset.
    /// Segments are synced in order (see the module doc).
    pub async fn sync(&self) -> Result<u64> {
        let _sync = self.sync_lock.lock().await;
        let target = self.write_offset();
        let from = self.flushed_offset();
        if target <= from {
            return Ok(from);
        }
        let files: Vec<_> = {
            let segments = self.segments.read().expect("segments lock poisoned");
            segments
                .iter()
                .filter(|s| s.base + self.segment_size > from && s.base < target)
                .map(|s| (s.base, s.file.clone()))
                .collect()
        };
        let started = tokio::time::Instant::now();
        for (base, file) in files {
            file.sync()
                .await
                .context(|| format!("sync {}", segment_name(base)))?;
        }
        self.metrics
            .fsync_seconds
            .observe(started.elapsed().as_secs_f64());
        self.metrics
            .group_commit_bytes
            .observe((target - from) as f64);
        self.flushed_offset.fetch_max(target, Ordering::AcqRel);
        Ok(target)
    }

    /// Segments, oldest first, for retention.
    pub fn segment_infos(&self) -> Vec<SegmentInfo> {
        let segments = self.segments.read().expect("segments lock poisoned");
        let last = segments.len().saturating_sub(1);
        segments
            .iter()
            .enumerate()
            .map(|(i, s)| SegmentInfo {
                base: s.base,
                size: s.file.len(),
                max_store_timestamp_ms: if i == last {
                    None
                } else {
                    s.max_store_timestamp_ms
                },
            })
            .collect()
    }

    /// Deletes the `count` oldest segments, never the last one. Returns the new min offset.
    pub async fn delete_oldest_segments(&self, count: usize) -> Result<u64> {
        let doomed: Vec<(u64, u64)> = {
            let segments = self.segments.read().expect("segments lock poisoned");
            let count = count.min(segments.len().saturating_sub(1));
            segments[..count]
                .iter()
                .map(|s| (s.base, s.file.len()))
                .collect()
        };
        for (base, bytes) in doomed {
            // Unlink from the list first, so no reader picks a file that is going away.
            self.segments
                .write()
                .expect("segments lock poisoned")
                .retain(|s| s.base != base);
            let name = segment_name(base);
            self.disk
                .remove(&name)
                .await
                .context(|| format!("remove {name}"))?;
            tracing::info!(file = %name, "retention deleted a CommitLog segment");
            self.metrics.retention_deleted_segments.inc();
            self.metrics.retention_deleted_bytes.inc_by(bytes);
        }
        Ok(self.min_offset())
    }

    /// Visits every message record with payload offset in `[from, to)`, in order. Used to
    /// rebuild a damaged ConsumeQueue. Records must already be known valid (below the
    /// write offset); damage is reported as an error.
    pub async fn scan(
        &self,
        from: u64,
        to: u64,
        mut visit: impl FnMut(ScannedRecord<'_>) -> Result<()>,
    ) -> Result<()> {
        let segments: Vec<_> = self
            .segments
            .read()
            .expect("segments lock poisoned")
            .clone();
        for segment in segments
            .iter()
            .filter(|s| s.base + self.segment_size > from && s.base < to)
        {
            let mut reader = SegmentReader::new(segment, self.record_size_max);
            loop {
                match reader.next().await? {
                    Step::Record { header, offset } => {
                        let payload_offset = offset + RECORD_HEADER_SIZE as u64;
                        if payload_offset >= to {
                            return Ok(());
                        }
                        if header.kind == RecordKind::Message && payload_offset >= from {
                            visit(ScannedRecord {
                                header,
                                payload_offset,
                                payload: reader.payload(offset, &header),
                            })?;
                        }
                    }
                    Step::Eof { .. } => break,
                    Step::Invalid { offset, reason } => {
                        return Err(StoreError::Corrupt {
                            file: segment_name(segment.base),
                            offset,
                            reason,
                        })
                    }
                }
            }
        }
        Ok(())
    }
}

mod raft_log;
pub use raft_log::LogRecordRead;
mod reader;
use reader::{SegmentReader, Step};
mod tail_map;
use tail_map::TailMap;
mod recovery;
#[cfg(test)]
mod tests;
