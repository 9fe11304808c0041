//! Recovery: opening a CommitLog after any crash (see the module doc of `commit_log`).

use super::reader::{SegmentReader, Step};
use super::*;
use crate::log_start::LogStart;

impl<D: Disk> CommitLog<D> {
    /// Opens the CommitLog on `disk`, recovering as the module doc describes: records
    /// from the segment holding the checkpoint's `dispatch_offset` on are validated.
    /// The caller re-dispatches them with [`CommitLog::scan`].
    ///
    /// Four phases: trust the segments below the checkpoint by their end records, scan
    /// the rest, truncate a torn tail, and open again a segment closed for an entry the
    /// crash took.
    pub async fn open(
        disk: D,
        segment_size: u64,
        record_size_max: usize,
        checkpoint: &mut Checkpoint,
        start: Option<&LogStart>,
    ) -> Result<Self> {
        let mut segments = load_segments(&disk, segment_size).await?;
        let mut recovery = Recovery::at_log_start(&segments, start);
        // Segments wholly before the scan start are trusted; scanning starts with the
        // segment that holds the dispatch offset.
        let scan_from = checkpoint.dispatch_offset;
        let first_scanned = segments
            .iter()
            .rposition(|s| s.base <= scan_from)
            .unwrap_or(0);
        trust_closed_segments(&mut segments[..first_scanned], segment_size, &mut recovery).await?;
        let torn =
            scan_segments(&mut segments, first_scanned, record_size_max, &mut recovery).await?;
        if let Some(torn) = torn {
            truncate_torn_tail(&disk, &mut segments, torn, checkpoint, &mut recovery).await?;
        }
        let reopened_max_timestamp_ms =
            reopen_segment_closed_for_lost_entry(&disk, &mut segments, checkpoint, &mut recovery)
                .await?;
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
        // The active segment's newest message so far: its end record must name it when
        // the segment closes, or retention would take the segment for empty (and old)
        // and delete its messages (regression test: store/tests/replicated.rs,
        // `a_segment_closed_right_after_a_restart_keeps_its_messages_from_retention`).
        let active_max_timestamp_ms = match reopened_max_timestamp_ms {
            Some(ms) => ms,
            None if active_open => recovery.segment_max_timestamp_ms,
            None => i64::MIN,
        };
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
                leader: recovery.leader,
                active_max_timestamp_ms,
                active_open,
                reserved_to: 0,
            }),
            sync_lock: tokio::sync::Mutex::new(()),
            tail: std::sync::Mutex::new(recovery.tail),
            metrics: StoreMetrics::default(),
        })
    }
}

impl Recovery {
    /// The state before the first segment is read. The first record of the log has
    /// index 1, or follows the start marker's `prev` when the log begins there
    /// (segments below a marker stay until Raft purges them); after retention deleted
    /// the oldest segments of a plain store, the first record left starts wherever it
    /// starts.
    fn at_log_start<F>(segments: &[Segment<F>], start: Option<&LogStart>) -> Self {
        let start_base = start.map_or(0, |s| s.base_offset);
        let prev = start.map(|s| s.prev).unwrap_or_default();
        let (last_index, term, leader) = match segments.first() {
            None => (Some(prev.index), prev.term, prev.leader),
            Some(s) if s.base == start_base => (Some(prev.index), prev.term, prev.leader),
            Some(s) if s.base == 0 => (Some(0), 0, 0),
            Some(_) => (None, 0, 0),
        };
        Recovery {
            last_index,
            term,
            leader,
            end: segments.last().map_or(start_base, |last| last.base),
            closed: false,
            tail: TailMap::default(),
            open_entry: None,
            segment_max_timestamp_ms: i64::MIN,
        }
    }
}

/// Phase 1: segments below the checkpoint are not scanned. Each must end with a valid
/// end record, which also gives the index and term the scan continues from.
async fn trust_closed_segments<F: DiskFile>(
    segments: &mut [Segment<F>],
    segment_size: u64,
    recovery: &mut Recovery,
) -> Result<()> {
    for segment in segments {
        let end = read_end_record(segment, segment_size).await?;
        recovery.last_index = Some(end.index);
        recovery.term = end.term;
        recovery.leader = end.leader;
    }
    Ok(())
}

/// Where the valid log ends before its files do: segment `segment`, at `offset`.
struct Torn {
    segment: usize,
    offset: u64,
    reason: String,
}

/// Phase 2: validates every record from segment `first` on. Returns where the log is
/// torn, if it is.
async fn scan_segments<F: DiskFile>(
    segments: &mut [Segment<F>],
    first: usize,
    record_size_max: usize,
    recovery: &mut Recovery,
) -> Result<Option<Torn>> {
    for i in first..segments.len() {
        let is_last = i + 1 == segments.len();
        let torn = |offset, reason| {
            Some(Torn {
                segment: i,
                offset,
                reason,
            })
        };
        match scan_segment(&segments[i], record_size_max, recovery).await? {
            SegmentEnd::Closed {
                max_store_timestamp_ms,
            } => {
                segments[i].max_store_timestamp_ms = Some(max_store_timestamp_ms);
                recovery.closed = is_last;
            }
            SegmentEnd::Eof { offset } if is_last => recovery.end = offset,
            SegmentEnd::Eof { offset } => {
                return Ok(torn(offset, "segment ends without an end record".into()))
            }
            SegmentEnd::Invalid { offset, reason } => return Ok(torn(offset, reason)),
        }
    }
    Ok(None)
}

/// Phase 3: cuts the log where it is torn, removing every later segment. A tear below
/// the checkpoint's durable offset is corruption, not a torn write.
async fn truncate_torn_tail<D: Disk>(
    disk: &D,
    segments: &mut Vec<Segment<D::File>>,
    torn: Torn,
    checkpoint: &Checkpoint,
    recovery: &mut Recovery,
) -> Result<()> {
    let Torn {
        segment: i,
        offset,
        reason,
    } = torn;
    let name = segment_name(segments[i].base);
    if offset < checkpoint.commitlog_offset {
        return Err(StoreError::Corrupt {
            file: name,
            offset,
            reason,
        });
    }
    let dropped: u64 =
        segments[i..].iter().map(|s| s.file.len()).sum::<u64>() - (offset - segments[i].base);
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
    Ok(())
}

/// Phase 4: an end record with no record after it (or only an empty segment, its first
/// record torn away) means the entry that rolled the log to the next segment is gone.
/// Replicas must lay entries out by the entries alone — a replica that never received
/// that entry has the segment still open — so the segment is opened again (regression
/// test: store/tests/replicated.rs,
/// `a_segment_closed_for_an_entry_a_crash_took_is_opened_again`). Returns the reopened
/// segment's newest message timestamp, which its end record named.
async fn reopen_segment_closed_for_lost_entry<D: Disk>(
    disk: &D,
    segments: &mut Vec<Segment<D::File>>,
    checkpoint: &mut Checkpoint,
    recovery: &mut Recovery,
) -> Result<Option<i64>> {
    if segments.len() > 1 && segments.last().is_some_and(|s| s.file.len() == 0) {
        let empty = segments.pop().expect("checked above");
        let name = segment_name(empty.base);
        disk.remove(&name)
            .await
            .context(|| format!("remove {name}"))?;
        tracing::warn!(file = %name, "removed an empty segment after a closed one");
        recovery.closed = true;
    }
    if !recovery.closed {
        return Ok(None);
    }
    let last = segments.last_mut().expect("a closed segment exists");
    let len = last.file.len();
    let open_len = len - END_RECORD_SIZE as u64;
    let name = segment_name(last.base);
    // The checkpoint may name the end record durable: it comes down first, so a
    // crash after the cut never finds the log short of it.
    if checkpoint.commitlog_offset > last.base + open_len {
        checkpoint.sequence += 1;
        checkpoint.commitlog_offset = last.base + open_len;
        checkpoint.dispatch_offset = checkpoint.dispatch_offset.min(checkpoint.commitlog_offset);
        crate::checkpoint::store(disk, checkpoint).await?;
    }
    last.file
        .truncate(open_len)
        .await
        .context(|| format!("truncate {name}"))?;
    last.file.sync().await.context(|| format!("sync {name}"))?;
    tracing::warn!(file = %name, "opened again a segment closed for an entry that is gone");
    recovery.end = last.base + open_len;
    recovery.closed = false;
    Ok(last.max_store_timestamp_ms.take())
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
pub(super) async fn read_end_record<F: DiskFile>(
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
    leader: u16,
    end: u64,
    closed: bool,
    /// Start offsets of the entries scanned.
    tail: TailMap,
    /// The entry whose records are being read, when its last record is still to come.
    open_entry: Option<OpenEntry>,
    /// Newest message store timestamp in the segment being scanned.
    segment_max_timestamp_ms: i64,
}

/// An entry of several records, not yet read to its end.
struct OpenEntry {
    /// Offset of its first record: where the log ends if the rest is missing.
    offset: u64,
    /// What recovery knew before the entry.
    last_index: Option<u64>,
    term: u64,
    leader: u16,
}

impl Recovery {
    /// Drops an entry whose last record never made it (a torn append): entries are kept
    /// whole or not at all. Returns where the log now ends.
    fn abandon_open_entry(&mut self) -> Option<u64> {
        let open = self.open_entry.take()?;
        if let Some(index) = self.last_index {
            self.tail.truncate_from(index);
        }
        self.last_index = open.last_index;
        self.term = open.term;
        self.leader = open.leader;
        Some(open.offset)
    }
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
    recovery.segment_max_timestamp_ms = i64::MIN;
    loop {
        let (header, offset) = match reader.next().await? {
            Step::Record { header, offset } => (header, offset),
            Step::Eof { offset } => {
                return Ok(match recovery.abandon_open_entry() {
                    Some(offset) => SegmentEnd::Invalid {
                        offset,
                        reason: "the last entry ends before its final record".into(),
                    },
                    None => SegmentEnd::Eof { offset },
                })
            }
            Step::Invalid { offset, reason } => {
                let offset = recovery.abandon_open_entry().unwrap_or(offset);
                return Ok(SegmentEnd::Invalid { offset, reason });
            }
        };
        let invalid = |recovery: &mut Recovery, reason: String| {
            let offset = recovery.abandon_open_entry().unwrap_or(offset);
            Ok(SegmentEnd::Invalid { offset, reason })
        };
        if header.term < recovery.term {
            let reason = format!("term {} after term {}", header.term, recovery.term);
            return invalid(recovery, reason);
        }
        match header.kind {
            RecordKind::EndOfSegment if recovery.open_entry.is_some() => {
                return invalid(recovery, "an entry's records end the segment".into());
            }
            RecordKind::EndOfSegment => {
                if recovery.last_index.is_some_and(|last| header.index != last) {
                    return invalid(
                        recovery,
                        format!(
                            "end record names index {} after index {:?}",
                            header.index, recovery.last_index
                        ),
                    );
                }
                if reader.position() != segment.base + segment.file.len() {
                    return invalid(recovery, "bytes follow the end-of-segment record".into());
                }
                let payload = reader.payload(offset, &header);
                let max_store_timestamp_ms =
                    i64::from_be_bytes(payload.try_into().expect("end payload is 8 bytes"));
                return Ok(SegmentEnd::Closed {
                    max_store_timestamp_ms,
                });
            }
            RecordKind::Message | RecordKind::Control => {
                let continues = recovery.open_entry.is_some();
                if continues
                    && (Some(header.index), header.term, header.leader)
                        != (recovery.last_index, recovery.term, recovery.leader)
                {
                    let reason = format!(
                        "record of entry {} (term {}) inside entry {:?} (term {})",
                        header.index, header.term, recovery.last_index, recovery.term
                    );
                    return invalid(recovery, reason);
                }
                if !continues
                    && recovery
                        .last_index
                        .is_some_and(|last| header.index != last + 1)
                {
                    let reason = format!(
                        "record index {} after index {:?}",
                        header.index, recovery.last_index
                    );
                    return invalid(recovery, reason);
                }
                let payload_offset = offset + RECORD_HEADER_SIZE as u64;
                let payload = reader.payload(offset, &header);
                match proto::MessageRef::parse(payload) {
                    _ if header.kind == RecordKind::Control => {}
                    Ok(m) if m.physical_offset() == payload_offset => {
                        recovery.segment_max_timestamp_ms = recovery
                            .segment_max_timestamp_ms
                            .max(m.store_timestamp_ms());
                    }
                    Ok(m) => {
                        let reason = format!(
                            "message names physical offset {} at {payload_offset}",
                            m.physical_offset()
                        );
                        return invalid(recovery, reason);
                    }
                    Err(e) => return invalid(recovery, format!("message layout: {e}")),
                }
                if !continues && header.continued {
                    recovery.open_entry = Some(OpenEntry {
                        offset,
                        last_index: recovery.last_index,
                        term: recovery.term,
                        leader: recovery.leader,
                    });
                } else if !header.continued {
                    recovery.open_entry = None;
                }
                recovery.last_index = Some(header.index);
                recovery.term = header.term;
                recovery.leader = header.leader;
                let at = LogPosition {
                    term: header.term,
                    leader: header.leader,
                    index: header.index,
                };
                if !continues {
                    recovery.tail.push(offset, at);
                }
            }
        }
    }
}
