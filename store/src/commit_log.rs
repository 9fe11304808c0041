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
use crate::record::{self, Decoded, RecordHeader, RecordKind, END_RECORD_SIZE, RECORD_HEADER_SIZE};

const DIR: &str = "commitlog/";
/// Bytes read at a time while scanning a segment.
const SCAN_CHUNK_SIZE: usize = 1 << 20;

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
}

/// Where one appended record landed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AppendedRecord {
    /// CommitLog offset of the payload (the message's physical offset).
    pub payload_offset: u64,
    pub payload_size: u32,
    pub index: u64,
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
    /// Max store timestamp in the active segment.
    active_max_timestamp_ms: i64,
    /// Whether the last segment is open for appends (false when it was closed by an end
    /// record, or when there is none).
    active_open: bool,
}

pub struct CommitLog<D: Disk> {
    disk: D,
    segment_size: u64,
    record_size_max: usize,
    segments: RwLock<Vec<Segment<D::File>>>,
    write_offset: AtomicU64,
    flushed_offset: AtomicU64,
    writer: tokio::sync::Mutex<Writer>,
}

impl<D: Disk> CommitLog<D> {
    /// Opens the CommitLog on `disk`, recovering as the module doc describes: records
    /// from the segment holding the checkpoint's `dispatch_offset` on are validated.
    /// The caller re-dispatches them with [`CommitLog::scan`].
    pub async fn open(
        disk: D,
        segment_size: u64,
        record_size_max: usize,
        checkpoint: &Checkpoint,
    ) -> Result<Self> {
        let mut segments = load_segments(&disk, segment_size).await?;
        // The first record of the log has index 1; after retention deleted the oldest
        // segments, the first record left starts wherever it starts.
        let first_index_known = segments.first().is_none_or(|s| s.base == 0);
        let mut recovery = Recovery {
            last_index: first_index_known.then_some(0),
            term: 0,
            end: 0,
            closed: false,
        };
        if let Some(last) = segments.last() {
            recovery.end = last.base;
        }
        // Segments wholly before the scan start are trusted; scanning starts with the
        // segment that holds the dispatch offset.
        let scan_from = checkpoint.dispatch_offset;
        let first_scanned = segments
            .iter()
            .rposition(|s| s.base <= scan_from)
            .unwrap_or(0);
        // Segments before the scanned ones are below the checkpoint: each must end with
        // a valid end record, which also gives the index and term that the scan continues.
        for segment in &mut segments[..first_scanned] {
            let end = read_end_record(segment, segment_size).await?;
            recovery.last_index = Some(end.index);
            recovery.term = end.term;
        }
        let mut truncate_at = None;
        for i in first_scanned..segments.len() {
            let is_last = i + 1 == segments.len();
            let outcome = scan_segment(&segments[i], record_size_max, &mut recovery).await?;
            match outcome {
                SegmentEnd::Closed {
                    max_store_timestamp_ms,
                } => {
                    segments[i].max_store_timestamp_ms = Some(max_store_timestamp_ms);
                    recovery.closed = is_last;
                }
                SegmentEnd::Eof { offset } if is_last => recovery.end = offset,
                SegmentEnd::Eof { offset } => {
                    truncate_at =
                        Some((i, offset, "segment ends without an end record".to_string()))
                }
                SegmentEnd::Invalid { offset, reason } => truncate_at = Some((i, offset, reason)),
            }
            if truncate_at.is_some() {
                break;
            }
        }
        if let Some((i, offset, reason)) = truncate_at {
            let name = segment_name(segments[i].base);
            if offset < checkpoint.commitlog_offset {
                return Err(StoreError::Corrupt {
                    file: name,
                    offset,
                    reason,
                });
            }
            let dropped: u64 = segments[i..].iter().map(|s| s.file.len()).sum::<u64>()
                - (offset - segments[i].base);
            tracing::warn!(file = %name, offset, dropped_bytes = dropped, %reason, "truncating the CommitLog's torn tail");
            let segment = &segments[i];
            segment
                .file
                .truncate(offset - segment.base)
                .await
                .context(|| format!("truncate {name}"))?;
            for later in segments.drain(i + 1..) {
                let later_name = segment_name(later.base);
                disk.remove(&later_name)
                    .await
                    .context(|| format!("remove {later_name}"))?;
            }
            recovery.end = offset;
            recovery.closed = false;
        }
        if recovery.closed {
            let last = segments.last().expect("a closed segment exists");
            recovery.end = last.base + segment_size;
        }
        if recovery.end < checkpoint.commitlog_offset {
            return Err(StoreError::Corrupt {
                file: DIR.to_string(),
                offset: recovery.end,
                reason: format!(
                    "the log ends before the checkpoint's durable offset {}",
                    checkpoint.commitlog_offset
                ),
            });
        }
        // What recovery read may sit in the page cache only (a killed process, not a
        // power loss): make it durable before trusting it as flushed.
        for segment in &segments[first_scanned.min(segments.len())..] {
            segment
                .file
                .sync()
                .await
                .context(|| format!("sync {}", segment_name(segment.base)))?;
        }
        let active_open = !recovery.closed && !segments.is_empty();
        let active_max_timestamp_ms = i64::MIN;
        Ok(CommitLog {
            disk,
            segment_size,
            record_size_max,
            segments: RwLock::new(segments),
            write_offset: AtomicU64::new(recovery.end),
            flushed_offset: AtomicU64::new(recovery.end),
            writer: tokio::sync::Mutex::new(Writer {
                buf: Vec::new(),
                last_index: recovery.last_index.unwrap_or(0),
                term: recovery.term,
                active_max_timestamp_ms,
                active_open,
            }),
        })
    }

    /// End of the written log: readers may read below it.
    pub fn write_offset(&self) -> u64 {
        self.write_offset.load(Ordering::Acquire)
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

    /// Appends one record per payload, in order, with one disk write per touched
    /// segment. Not durable until [`CommitLog::sync`] reaches `end_offset`.
    pub async fn append<P: RecordPayload>(&self, payloads: &[P]) -> Result<Appended> {
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
        for payload in payloads {
            let size = RECORD_HEADER_SIZE + payload.payload_size();
            assert!(
                size <= self.record_size_max,
                "caller must reject records over record_size_max"
            );
            let segment_end = self.segment_base(pos) + self.segment_size;
            if pos + (size + END_RECORD_SIZE) as u64 > segment_end {
                record::encode_end(
                    &mut writer.buf,
                    writer.term,
                    writer.last_index,
                    writer.active_max_timestamp_ms,
                );
                self.write_to_segment(batch_start, &writer.buf).await?;
                self.close_segment(batch_start, writer.active_max_timestamp_ms);
                writer.buf.clear();
                pos = segment_end;
                batch_start = pos;
                self.write_offset.store(pos, Ordering::Release);
                self.create_segment(pos).await?;
                writer.active_max_timestamp_ms = i64::MIN;
            }
            writer.last_index += 1;
            let start = record::begin(
                &mut writer.buf,
                RecordKind::Message,
                payload.payload_size(),
                writer.term,
                writer.last_index,
            );
            let payload_offset = pos + RECORD_HEADER_SIZE as u64;
            payload.encode_payload(payload_offset, &mut writer.buf);
            record::seal(&mut writer.buf, start);
            writer.active_max_timestamp_ms = writer
                .active_max_timestamp_ms
                .max(payload.store_timestamp_ms());
            records.push(AppendedRecord {
                payload_offset,
                payload_size: payload.payload_size() as u32,
                index: writer.last_index,
            });
            pos += size as u64;
        }
        if !writer.buf.is_empty() {
            self.write_to_segment(batch_start, &writer.buf).await?;
        }
        assert_eq!(pos, batch_start + writer.buf.len() as u64);
        self.write_offset.store(pos, Ordering::Release);
        Ok(Appended {
            records,
            end_offset: pos,
        })
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
        for (base, file) in files {
            file.sync()
                .await
                .context(|| format!("sync {}", segment_name(base)))?;
        }
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
        let doomed: Vec<u64> = {
            let segments = self.segments.read().expect("segments lock poisoned");
            let count = count.min(segments.len().saturating_sub(1));
            segments[..count].iter().map(|s| s.base).collect()
        };
        for base in doomed {
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

async fn load_segments<D: Disk>(disk: &D, segment_size: u64) -> Result<Vec<Segment<D::File>>> {
    let names = disk.list(DIR).await.context(|| format!("list {DIR}"))?;
    let mut segments: Vec<Segment<D::File>> = Vec::with_capacity(names.len());
    for name in names {
        let base = name[DIR.len()..]
            .parse::<u64>()
            .ok()
            .filter(|b| b % segment_size == 0 && name.len() == DIR.len() + 20)
            .ok_or_else(|| StoreError::UnexpectedFile {
                file: name.clone(),
                reason: format!("not a CommitLog segment name for segment size {segment_size}"),
            })?;
        if let Some(prev) = segments.last() {
            if prev.base + segment_size != base {
                return Err(StoreError::Corrupt {
                    file: name,
                    offset: base,
                    reason: format!(
                        "segment {} is missing",
                        segment_name(prev.base + segment_size)
                    ),
                });
            }
        }
        let file = disk
            .open(&name, false)
            .await
            .context(|| format!("open {name}"))?;
        if file.len() > segment_size {
            return Err(StoreError::Corrupt {
                file: name,
                offset: base + segment_size,
                reason: format!(
                    "segment is {} bytes, larger than the segment size",
                    file.len()
                ),
            });
        }
        segments.push(Segment {
            base,
            file,
            max_store_timestamp_ms: None,
        });
    }
    Ok(segments)
}

/// Reads the end-of-segment record that closes `segment`, and notes its max timestamp.
async fn read_end_record<F: DiskFile>(
    segment: &mut Segment<F>,
    segment_size: u64,
) -> Result<RecordHeader> {
    let name = segment_name(segment.base);
    let len = segment.file.len();
    let corrupt = |reason: String| StoreError::Corrupt {
        file: name.clone(),
        offset: segment.base + len,
        reason,
    };
    if len < END_RECORD_SIZE as u64 || len > segment_size {
        return Err(corrupt(format!(
            "closed segment of {len} bytes cannot end with an end record"
        )));
    }
    let mut buf = [0u8; END_RECORD_SIZE];
    read_exact_at(&segment.file, len - END_RECORD_SIZE as u64, &mut buf)
        .await
        .context(|| format!("read end of {name}"))?;
    match record::decode(&buf, END_RECORD_SIZE) {
        Decoded::Record(h) if h.kind == RecordKind::EndOfSegment => {
            segment.max_store_timestamp_ms = Some(record::end_max_timestamp_ms(&buf));
            Ok(h)
        }
        other => Err(corrupt(format!(
            "closed segment does not end with an end record: {other:?}"
        ))),
    }
}

struct Recovery {
    /// Index of the last record seen; `None` before the first record of a log whose
    /// start retention deleted.
    last_index: Option<u64>,
    term: u64,
    end: u64,
    closed: bool,
}

enum SegmentEnd {
    Closed { max_store_timestamp_ms: i64 },
    Eof { offset: u64 },
    Invalid { offset: u64, reason: String },
}

async fn scan_segment<F: DiskFile>(
    segment: &Segment<F>,
    record_size_max: usize,
    recovery: &mut Recovery,
) -> Result<SegmentEnd> {
    let mut reader = SegmentReader::new(segment, record_size_max);
    loop {
        let (header, offset) = match reader.next().await? {
            Step::Record { header, offset } => (header, offset),
            Step::Eof { offset } => return Ok(SegmentEnd::Eof { offset }),
            Step::Invalid { offset, reason } => return Ok(SegmentEnd::Invalid { offset, reason }),
        };
        let invalid = |reason: String| Ok(SegmentEnd::Invalid { offset, reason });
        if header.term < recovery.term {
            return invalid(format!("term {} after term {}", header.term, recovery.term));
        }
        match header.kind {
            RecordKind::EndOfSegment => {
                if recovery.last_index.is_some_and(|last| header.index != last) {
                    return invalid(format!(
                        "end record names index {} after index {:?}",
                        header.index, recovery.last_index
                    ));
                }
                if reader.position() != segment.base + segment.file.len() {
                    return invalid("bytes follow the end-of-segment record".to_string());
                }
                let payload = reader.payload(offset, &header);
                let max_store_timestamp_ms =
                    i64::from_be_bytes(payload.try_into().expect("end payload is 8 bytes"));
                return Ok(SegmentEnd::Closed {
                    max_store_timestamp_ms,
                });
            }
            RecordKind::Message => {
                if recovery
                    .last_index
                    .is_some_and(|last| header.index != last + 1)
                {
                    return invalid(format!(
                        "record index {} after index {:?}",
                        header.index, recovery.last_index
                    ));
                }
                let payload_offset = offset + RECORD_HEADER_SIZE as u64;
                let payload = reader.payload(offset, &header);
                match proto::MessageRef::parse(payload) {
                    Ok(m) if m.physical_offset() == payload_offset => {}
                    Ok(m) => {
                        return invalid(format!(
                            "message names physical offset {} at {payload_offset}",
                            m.physical_offset()
                        ))
                    }
                    Err(e) => return invalid(format!("message layout: {e}")),
                }
                recovery.last_index = Some(header.index);
                recovery.term = header.term;
            }
        }
    }
}

enum Step {
    Record { header: RecordHeader, offset: u64 },
    Eof { offset: u64 },
    Invalid { offset: u64, reason: String },
}

/// Reads a segment's records in order through a bounded buffer.
struct SegmentReader<'a, F> {
    segment: &'a Segment<F>,
    record_size_max: usize,
    buf: Vec<u8>,
    /// CommitLog offset of `buf[0]`.
    buf_start: u64,
    /// CommitLog offset of the next record.
    pos: u64,
}

impl<'a, F: DiskFile> SegmentReader<'a, F> {
    fn new(segment: &'a Segment<F>, record_size_max: usize) -> Self {
        SegmentReader {
            segment,
            record_size_max,
            buf: Vec::new(),
            buf_start: segment.base,
            pos: segment.base,
        }
    }

    fn position(&self) -> u64 {
        self.pos
    }

    fn payload(&self, offset: u64, header: &RecordHeader) -> &[u8] {
        let at = (offset - self.buf_start) as usize + RECORD_HEADER_SIZE;
        &self.buf[at..at + header.payload_size()]
    }

    async fn next(&mut self) -> Result<Step> {
        let file_end = self.segment.base + self.segment.file.len();
        loop {
            let at = (self.pos - self.buf_start) as usize;
            let available = self.buf.get(at..).unwrap_or_default();
            match record::decode(available, self.record_size_max) {
                Decoded::Record(header) => {
                    let offset = self.pos;
                    self.pos += u64::from(header.size);
                    return Ok(Step::Record { header, offset });
                }
                Decoded::Corrupt { reason } => {
                    return Ok(Step::Invalid {
                        offset: self.pos,
                        reason,
                    })
                }
                Decoded::Incomplete { needed } => {
                    let left = file_end - self.pos;
                    if left == 0 {
                        return Ok(Step::Eof { offset: self.pos });
                    }
                    if left < needed as u64 {
                        return Ok(Step::Invalid {
                            offset: self.pos,
                            reason: format!("torn record: needs {needed} bytes, {left} remain"),
                        });
                    }
                    assert!(
                        available.len() < needed,
                        "decode asked for bytes it already has"
                    );
                    let size = (needed.max(SCAN_CHUNK_SIZE) as u64).min(left) as usize;
                    self.buf.resize(size, 0);
                    read_exact_at(
                        &self.segment.file,
                        self.pos - self.segment.base,
                        &mut self.buf,
                    )
                    .await
                    .context(|| {
                        format!("scan {} at {}", segment_name(self.segment.base), self.pos)
                    })?;
                    self.buf_start = self.pos;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk::{SimDisk, SimDiskConfig};

    /// A payload of `n` bytes of `byte`; not a RocketMQ message, so these tests open the
    /// log without scanning (recovery checks the message layout).
    struct Raw(u8, usize);

    impl RecordPayload for Raw {
        fn payload_size(&self) -> usize {
            self.1
        }
        fn encode_payload(&self, _payload_offset: u64, out: &mut Vec<u8>) {
            out.extend(std::iter::repeat_n(self.0, self.1));
        }
        fn store_timestamp_ms(&self) -> i64 {
            i64::from(self.0)
        }
    }

    async fn empty_log(disk: &SimDisk, segment_size: u64) -> CommitLog<SimDisk> {
        CommitLog::open(disk.clone(), segment_size, 256, &Checkpoint::default())
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn appends_roll_segments_with_end_records_and_read_back() {
        let disk = SimDisk::new(SimDiskConfig::reliable(1));
        let log = empty_log(&disk, 512).await;
        let mut appended = Vec::new();
        for i in 0..20u8 {
            let a = log.append(&[Raw(i, 60 + usize::from(i))]).await.unwrap();
            appended.push(a.records[0]);
        }
        assert_eq!(log.last_index().await, 20);
        let segments = log.segment_infos();
        assert!(segments.len() > 3, "small segments roll");
        for s in &segments[..segments.len() - 1] {
            assert!(
                s.max_store_timestamp_ms.is_some(),
                "closed segments carry their max timestamp"
            );
            assert!(s.size <= 512);
        }
        for (i, r) in appended.iter().enumerate() {
            let bytes = log
                .read(r.payload_offset, r.payload_size)
                .await
                .unwrap()
                .unwrap();
            assert!(bytes.iter().all(|&b| b == i as u8));
            assert_eq!(
                log.read_unsized(r.payload_offset).await.unwrap().unwrap(),
                bytes
            );
            assert_eq!(r.index, i as u64 + 1);
        }
        // A wrong size or an offset that is not a record start is an error, not garbage.
        assert!(log
            .read(appended[3].payload_offset, appended[3].payload_size + 1)
            .await
            .is_err());
        assert!(log.read(appended[3].payload_offset + 4, 10).await.is_err());
        // Past the end: nothing.
        assert_eq!(log.read(log.write_offset() + 100, 10).await.unwrap(), None);
        assert_eq!(log.sync().await.unwrap(), log.write_offset());
        assert_eq!(log.flushed_offset(), log.write_offset());
    }

    #[tokio::test]
    async fn scan_visits_records_in_order_across_segments() {
        let disk = SimDisk::new(SimDiskConfig::reliable(2));
        let log = empty_log(&disk, 512).await;
        let batch: Vec<Raw> = (0..12u8).map(|i| Raw(i, 100)).collect();
        let appended = log.append(&batch).await.unwrap();
        assert_eq!(appended.records.len(), 12);
        let mut seen = Vec::new();
        log.scan(0, log.write_offset(), |r| {
            seen.push((r.payload_offset, r.payload[0]));
            Ok(())
        })
        .await
        .unwrap();
        let expected: Vec<(u64, u8)> = appended
            .records
            .iter()
            .map(|r| r.payload_offset)
            .zip(0..12u8)
            .collect();
        assert_eq!(seen, expected);
    }

    #[tokio::test]
    async fn retention_deletes_a_prefix_but_never_the_last_segment() {
        let disk = SimDisk::new(SimDiskConfig::reliable(3));
        let log = empty_log(&disk, 512).await;
        for i in 0..20u8 {
            log.append(&[Raw(i, 100)]).await.unwrap();
        }
        let count = log.segment_infos().len();
        let min = log.delete_oldest_segments(usize::MAX).await.unwrap();
        assert_eq!(log.segment_infos().len(), 1);
        assert_eq!(min, (count as u64 - 1) * 512);
        assert_eq!(disk.list(DIR).await.unwrap().len(), 1);
        assert_eq!(
            log.read(100, 10).await.unwrap(),
            None,
            "deleted data reads as absent"
        );
    }

    #[tokio::test]
    async fn a_missing_middle_segment_is_reported_by_name() {
        let disk = SimDisk::new(SimDiskConfig::reliable(4));
        let log = empty_log(&disk, 512).await;
        for i in 0..20u8 {
            log.append(&[Raw(i, 100)]).await.unwrap();
        }
        log.sync().await.unwrap();
        disk.remove(&segment_name(1024)).await.unwrap();
        let e = CommitLog::open(disk.clone(), 512, 256, &Checkpoint::default())
            .await
            .err()
            .unwrap();
        assert!(e.to_string().contains(&segment_name(1024)), "{e}");
    }
}
