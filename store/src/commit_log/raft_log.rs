//! The CommitLog seen as a Raft log: records by index, and truncation of a conflicting
//! tail. Appends with explicit `(term, index)` go through [`CommitLog::append`] (see
//! `RecordPayload::log_id`); this module adds what Raft needs beyond appending.
//!
//! Every Raft entry takes one index: a control record, or one or more consecutive
//! message records with the same log id (all but the last flagged CONTINUED).
//! End-of-segment records take none. So the records with index `i` are Raft entry `i`.

use super::*;

/// One entry read back by index: the header of its first record, and the payload of
/// each of its records.
#[derive(Clone, Debug)]
pub struct LogRecordRead {
    pub header: RecordHeader,
    pub payloads: Vec<Bytes>,
}

/// Drops a last entry read only in part (its records run past what was read).
fn whole_entries(mut entries: Vec<LogRecordRead>) -> Vec<LogRecordRead> {
    if entries.last().is_some_and(|e| e.header.continued) {
        entries.pop();
    }
    entries
}

impl<D: Disk> CommitLog<D> {
    /// Where the (already validated) entry whose first record starts at `offset` ends:
    /// after its last record.
    async fn entry_end_at(&self, offset: u64) -> Result<u64> {
        let segment = self
            .segment_at(offset)
            .expect("a located record has a segment");
        let mut reader = SegmentReader::starting_at(&segment, self.record_size_max, offset);
        loop {
            match reader.next().await? {
                Step::Record { header, .. } if !header.continued => return Ok(reader.position()),
                Step::Record { .. } => {}
                Step::Eof { offset } | Step::Invalid { offset, .. } => {
                    return Err(StoreError::Corrupt {
                        file: segment_name(segment.base),
                        offset,
                        reason: "an entry ends before its last record".into(),
                    })
                }
            }
        }
    }

    /// Log id of the last record; index 0 for an empty log.
    pub async fn last_log_id(&self) -> LogPosition {
        let writer = self.writer.lock().await;
        LogPosition {
            term: writer.term,
            leader: writer.leader,
            index: writer.last_index,
        }
    }

    /// Header of the first record still stored (retention may have deleted older ones).
    pub async fn first_record(&self) -> Result<Option<RecordHeader>> {
        let first = self
            .segments
            .read()
            .expect("segments lock poisoned")
            .first()
            .cloned();
        let Some(segment) = first else {
            return Ok(None);
        };
        let mut reader = SegmentReader::new(&segment, self.record_size_max);
        match reader.next().await? {
            Step::Record { header, .. } if header.kind != RecordKind::EndOfSegment => {
                Ok(Some(header))
            }
            Step::Invalid { offset, reason } => Err(StoreError::Corrupt {
                file: segment_name(segment.base),
                offset,
                reason,
            }),
            _ => Ok(None),
        }
    }

    /// Record offset and log id of the record with `index`, if stored. `last_index` is
    /// the writer's, passed in because callers may hold the writer lock.
    async fn locate(&self, index: u64, last_index: u64) -> Result<Option<(u64, LogPosition)>> {
        if index == 0 || index > last_index {
            return Ok(None);
        }
        if let Some(found) = self.tail.lock().expect("tail lock poisoned").get(index) {
            return Ok(Some(found));
        }
        // Older than the tail map: find the newest segment starting at or before it.
        let segments: Vec<_> = self
            .segments
            .read()
            .expect("segments lock poisoned")
            .clone();
        for segment in segments.iter().rev() {
            let mut reader = SegmentReader::new(segment, self.record_size_max);
            let mut first = true;
            loop {
                let step = reader.next().await?;
                // An empty segment (recovery cut a torn first record): look further back
                // (store/tests/replicated.rs,
                // `a_segment_closed_for_an_entry_a_crash_took_is_opened_again`).
                if std::mem::take(&mut first) && matches!(step, Step::Eof { .. }) {
                    break;
                }
                match step {
                    Step::Record { header, .. } if header.kind == RecordKind::EndOfSegment => {
                        return Ok(None)
                    }
                    Step::Record { header, .. } if header.index > index => break,
                    Step::Record { header, offset } if header.index == index => {
                        let at = LogPosition {
                            term: header.term,
                            leader: header.leader,
                            index,
                        };
                        return Ok(Some((offset, at)));
                    }
                    Step::Record { .. } => {}
                    Step::Eof { .. } => return Ok(None),
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
        Ok(None)
    }

    /// The records with indexes in `[from, to)`, in order, stopping early once
    /// `max_bytes` are read (at least one record is returned when any is stored).
    pub async fn read_records(
        &self,
        from: u64,
        to: u64,
        max_bytes: usize,
    ) -> Result<Vec<LogRecordRead>> {
        let mut out = Vec::new();
        let last_index = self.last_log_id().await.index;
        let end = self.write_offset();
        let Some((mut pos, _)) = self.locate(from, last_index).await? else {
            return Ok(out);
        };
        let (mut expected, mut bytes) = (from, 0usize);
        while expected < to && pos < end {
            let Some(segment) = self.segment_at(pos) else {
                break;
            };
            let mut reader = SegmentReader::starting_at(&segment, self.record_size_max, pos);
            loop {
                let (header, offset) = match reader.next().await? {
                    Step::Record { header, offset } if offset < end => (header, offset),
                    Step::Record { .. } | Step::Eof { .. } => return Ok(whole_entries(out)),
                    Step::Invalid { offset, reason } => {
                        return Err(StoreError::Corrupt {
                            file: segment_name(segment.base),
                            offset,
                            reason,
                        })
                    }
                };
                if header.kind == RecordKind::EndOfSegment {
                    pos = segment.base + self.segment_size;
                    break;
                }
                let payload = Bytes::copy_from_slice(reader.payload(offset, &header));
                bytes += header.size as usize;
                // A later record of the entry being read.
                if let Some(entry) = out.last_mut().filter(|e| e.header.continued) {
                    if (header.index, header.term) != (entry.header.index, entry.header.term) {
                        return Err(StoreError::Corrupt {
                            file: segment_name(segment.base),
                            offset,
                            reason: format!(
                                "record of entry {} inside entry {}",
                                header.index, entry.header.index
                            ),
                        });
                    }
                    entry.payloads.push(payload);
                    entry.header.continued = header.continued;
                } else if header.index != expected {
                    return Err(StoreError::Corrupt {
                        file: segment_name(segment.base),
                        offset,
                        reason: format!("record index {} where {expected} belongs", header.index),
                    });
                } else {
                    out.push(LogRecordRead {
                        header,
                        payloads: vec![payload],
                    });
                }
                if header.continued {
                    continue;
                }
                expected += 1;
                if expected >= to || bytes >= max_bytes {
                    return Ok(out);
                }
            }
        }
        Ok(whole_entries(out))
    }

    /// Log id of the last entry of the closed segment at `base` (its end record names
    /// it): what retention records as the log's `prev` before deleting up to the next.
    pub async fn closed_segment_last(&self, base: u64) -> Result<LogPosition> {
        let mut segment = self
            .segments
            .read()
            .expect("segments lock poisoned")
            .iter()
            .find(|s| s.base == base)
            .cloned()
            .ok_or_else(|| StoreError::Corrupt {
                file: segment_name(base),
                offset: base,
                reason: "no such segment".into(),
            })?;
        let end = super::recovery::read_end_record(&mut segment, self.segment_size).await?;
        Ok(LogPosition {
            term: end.term,
            leader: end.leader,
            index: end.index,
        })
    }

    /// Deletes every segment and makes the log empty, continuing at `base` (a segment
    /// base) after entry `prev`: a follower that installs a snapshot taken where the
    /// leader's log now starts.
    pub async fn reset(&self, base: u64, prev: LogPosition) -> Result<()> {
        assert_eq!(
            base % self.segment_size,
            0,
            "a log starts at a segment base"
        );
        let mut writer = self.writer.lock().await;
        let _sync = self.sync_lock.lock().await;
        let doomed: Vec<u64> = {
            let mut segments = self.segments.write().expect("segments lock poisoned");
            segments.drain(..).map(|s| s.base).collect()
        };
        self.remove_segments(doomed).await?;
        writer.last_index = prev.index;
        writer.term = prev.term;
        writer.leader = prev.leader;
        writer.active_open = false;
        writer.active_max_timestamp_ms = i64::MIN;
        writer.reserved_to = 0;
        *self.tail.lock().expect("tail lock poisoned") = TailMap::default();
        self.write_offset.store(base, Ordering::Release);
        self.flushed_offset.store(base, Ordering::Release);
        tracing::info!(
            base,
            prev_index = prev.index,
            "the CommitLog now starts empty here"
        );
        Ok(())
    }

    /// Removes the files of segments already unlinked from the list, newest first (a
    /// crash in between leaves the oldest ones: still a contiguous log).
    async fn remove_segments(&self, bases: Vec<u64>) -> Result<()> {
        for base in bases.into_iter().rev() {
            let name = segment_name(base);
            self.disk
                .remove(&name)
                .await
                .context(|| format!("remove {name}"))?;
        }
        Ok(())
    }

    /// Log id of entry `index`, if stored.
    pub async fn log_id_at(&self, index: u64) -> Result<Option<LogPosition>> {
        let last_index = self.last_log_id().await.index;
        Ok(self.locate(index, last_index).await?.map(|(_, at)| at))
    }

    /// Where the record(s) of entry `index` start, if stored.
    pub async fn record_offset(&self, index: u64) -> Result<Option<u64>> {
        let last_index = self.last_log_id().await.index;
        Ok(self
            .locate(index, last_index)
            .await?
            .map(|(offset, _)| offset))
    }

    /// Where `truncate_from(index)` would cut the log (`None`: no entry `index`), so a
    /// caller can make its own records safe for the cut before it happens.
    pub async fn cut_offset(&self, index: u64) -> Result<Option<u64>> {
        let last_index = self.writer.lock().await.last_index;
        Ok(self
            .cut_at(index, last_index)
            .await?
            .map(|(offset, _)| offset))
    }

    /// The cut offset for `index` and the position of the entry before it.
    async fn cut_at(&self, index: u64, last_index: u64) -> Result<Option<(u64, LogPosition)>> {
        let Some((start, _)) = self.locate(index, last_index).await? else {
            return Ok(None);
        };
        Ok(Some(match self.locate(index - 1, last_index).await? {
            Some((prev_offset, at)) => (self.entry_end_at(prev_offset).await?, at),
            None => (start, LogPosition::default()),
        }))
    }

    /// Removes the record with `index` and every later one (Raft: a follower's
    /// conflicting, uncommitted tail), durably. Returns the CommitLog offset the log now
    /// ends at, or `None` when the log has no record `index`.
    ///
    /// The log is cut right after record `index - 1`, not at the start of record
    /// `index`: when the removed record had rolled the segment, the end-of-segment record
    /// goes too, so the layout is again exactly what appending `..index` produces — the
    /// bytes a leader that never saw the removed records has. Replicas must agree on
    /// every offset.
    pub async fn truncate_from(&self, index: u64) -> Result<Option<u64>> {
        let mut writer = self.writer.lock().await;
        let _sync = self.sync_lock.lock().await;
        let Some((offset, prev)) = self.cut_at(index, writer.last_index).await? else {
            return Ok(None);
        };
        let base = self.segment_base(offset);
        let (doomed, reopened_max_timestamp_ms): (Vec<u64>, Option<i64>) = {
            let mut segments = self.segments.write().expect("segments lock poisoned");
            let doomed = segments
                .iter()
                .filter(|s| s.base > base)
                .map(|s| s.base)
                .collect();
            segments.retain(|s| s.base <= base);
            let reopened = segments
                .last_mut()
                .and_then(|last| last.max_store_timestamp_ms.take());
            (doomed, reopened)
        };
        self.remove_segments(doomed).await?;
        let segment = self.segment_at(offset).expect("truncated segment exists");
        let name = segment_name(base);
        segment
            .file
            .truncate(offset - base)
            .await
            .context(|| format!("truncate {name}"))?;
        segment
            .file
            .sync()
            .await
            .context(|| format!("sync {name}"))?;
        tracing::info!(file = %name, offset, index, "truncated a conflicting Raft log tail");
        writer.last_index = index - 1;
        writer.term = prev.term;
        writer.leader = prev.leader;
        writer.active_open = true;
        // A cut into a segment that was closed reopens it: its next END record must
        // still carry the newest message it held, or retention would take it for as old
        // as no message at all (`retention_keeps_a_segment_a_truncation_reopened`). The
        // messages cut may have been newer: an upper bound only keeps it longer.
        if let Some(max) = reopened_max_timestamp_ms {
            writer.active_max_timestamp_ms = writer.active_max_timestamp_ms.max(max);
        }
        // The truncation freed the blocks reserved past `offset`.
        writer.reserved_to = offset;
        self.tail
            .lock()
            .expect("tail lock poisoned")
            .truncate_from(index);
        self.write_offset.store(offset, Ordering::Release);
        self.flushed_offset.fetch_min(offset, Ordering::AcqRel);
        Ok(Some(offset))
    }
}
