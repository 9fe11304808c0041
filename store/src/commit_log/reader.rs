//! `SegmentReader`: a segment's records in order, through a bounded buffer.

use super::*;

pub(super) enum Step {
    Record { header: RecordHeader, offset: u64 },
    Eof { offset: u64 },
    Invalid { offset: u64, reason: String },
}

/// Reads a segment's records in order through a bounded buffer.
pub(super) struct SegmentReader<'a, F> {
    segment: &'a Segment<F>,
    record_size_max: usize,
    buf: Vec<u8>,
    /// CommitLog offset of `buf[0]`.
    buf_start: u64,
    /// CommitLog offset of the next record.
    pos: u64,
}

impl<'a, F: DiskFile> SegmentReader<'a, F> {
    pub(super) fn new(segment: &'a Segment<F>, record_size_max: usize) -> Self {
        SegmentReader {
            segment,
            record_size_max,
            buf: Vec::new(),
            buf_start: segment.base,
            pos: segment.base,
        }
    }

    /// A reader whose first record starts at `pos` inside the segment.
    pub(super) fn starting_at(segment: &'a Segment<F>, record_size_max: usize, pos: u64) -> Self {
        assert!(pos >= segment.base, "reader starts inside its segment");
        SegmentReader {
            segment,
            record_size_max,
            buf: Vec::new(),
            buf_start: pos,
            pos,
        }
    }

    pub(super) fn position(&self) -> u64 {
        self.pos
    }

    pub(super) fn payload(&self, offset: u64, header: &RecordHeader) -> &[u8] {
        let at = (offset - self.buf_start) as usize + RECORD_HEADER_SIZE;
        &self.buf[at..at + header.payload_size()]
    }

    pub(super) async fn next(&mut self) -> Result<Step> {
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
