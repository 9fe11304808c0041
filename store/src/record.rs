//! The CommitLog record frame: what each entry of a segment looks like on disk.
//!
//! A record wraps one payload (a message in RocketMQ's layout, see `proto::message`)
//! with a header that lets recovery tell a complete record from a torn or corrupt one,
//! and that already carries the Raft `term` and log `index` so the CommitLog can become
//! the Raft log (as RocketMQ's DLedger CommitLog does) without a second copy.
//!
//! ```text
//! offset size field
//!      0    4 magic      RECORD_MAGIC ("RMQ1")
//!      4    4 size       whole record, header included
//!      8    4 crc32c     CRC32C of bytes [12, size)
//!     12    1 kind       1 = message, 2 = end of segment, 3 = control
//!     13    1 flags      bit 0 CONTINUED: the Raft entry goes on in the next record
//!     14    2 leader     Raft node id of the leader that created the entry (openraft's
//!                        leader id is (term, node)); 0 outside Raft
//!     16    8 term       Raft term; 0 outside Raft
//!     24    8 index      dense record index, from 1 (the Raft log index)
//!     32    n payload    kind 1: one message (proto layout), whose PHYSICALOFFSET is
//!                        the CommitLog offset of payload byte 0;
//!                        kind 2: max store timestamp of the segment (i64 ms);
//!                        kind 3: an opaque Raft entry that is not a message (blank,
//!                        membership, consumer offsets), owned by the `raft` crate
//! ```
//! All integers are big-endian, like the message inside. A record never spans two
//! segments: when the next record does not fit, the writer closes the segment with an
//! end-of-segment record (RocketMQ writes a BLANK message for the same purpose).
//!
//! One Raft entry may carry several messages (the master packs concurrent sends into
//! one entry, so one fsync and one replication round serve them all): they are
//! consecutive message records with the entry's log id, every one but the last flagged
//! CONTINUED. Each message keeps a record of its own, so ConsumeQueues, reads by offset
//! and CRC checks are the same as for a lone message. An entry never spans segments,
//! and recovery keeps an entry whole or not at all.

/// "RMQ1".
pub const RECORD_MAGIC: u32 = 0x524D_5131;
pub const RECORD_HEADER_SIZE: usize = 32;
/// Offset of the first byte the CRC covers.
const CRC_FROM: usize = 12;
/// Payload of an end-of-segment record: the segment's max store timestamp.
pub const END_PAYLOAD_SIZE: usize = 8;
pub const END_RECORD_SIZE: usize = RECORD_HEADER_SIZE + END_PAYLOAD_SIZE;

const _: () = assert!(RECORD_HEADER_SIZE == 4 + 4 + 4 + 1 + 1 + 2 + 8 + 8);
/// Bytes the records of one entry take, given its payloads' sizes (a record each).
pub fn entry_size(payload_sizes: impl IntoIterator<Item = usize>) -> u64 {
    payload_sizes
        .into_iter()
        .map(|n| (RECORD_HEADER_SIZE + n) as u64)
        .sum()
}

/// Flag: the Raft entry this record belongs to goes on in the next record.
pub const FLAG_CONTINUED: u8 = 1;

/// The Raft log id a record carries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LogPosition {
    pub term: u64,
    /// Node id of the leader that created the entry.
    pub leader: u16,
    pub index: u64,
}
const _: () = assert!(CRC_FROM == 4 + 4 + 4);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordKind {
    Message = 1,
    EndOfSegment = 2,
    /// A Raft entry that carries no message; it takes an index like a message does.
    Control = 3,
}

impl RecordKind {
    fn from_u8(b: u8) -> Option<Self> {
        match b {
            1 => Some(RecordKind::Message),
            2 => Some(RecordKind::EndOfSegment),
            3 => Some(RecordKind::Control),
            _ => None,
        }
    }
}

/// A complete, CRC-checked record header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordHeader {
    pub kind: RecordKind,
    /// The record's Raft entry goes on in the next record ([`FLAG_CONTINUED`]).
    pub continued: bool,
    pub size: u32,
    pub term: u64,
    pub leader: u16,
    pub index: u64,
}

impl RecordHeader {
    pub fn payload_size(&self) -> usize {
        self.size as usize - RECORD_HEADER_SIZE
    }
}

/// What lies at some offset of a segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decoded {
    /// A complete record whose CRC matches.
    Record(RecordHeader),
    /// The bytes end before the record does: a torn tail, or a read too short.
    Incomplete { needed: usize },
    /// Not a valid record.
    Corrupt { reason: String },
}

/// Decodes the record at the start of `bytes`. `size_max` bounds the size field, so a
/// corrupt length cannot make the caller read gigabytes.
pub fn decode(bytes: &[u8], size_max: usize) -> Decoded {
    if bytes.len() < RECORD_HEADER_SIZE {
        return Decoded::Incomplete {
            needed: RECORD_HEADER_SIZE,
        };
    }
    let magic = be_u32(bytes, 0);
    if magic != RECORD_MAGIC {
        return Decoded::Corrupt {
            reason: format!("bad record magic {magic:#010x}"),
        };
    }
    let size = be_u32(bytes, 4) as usize;
    if size < RECORD_HEADER_SIZE || size > size_max {
        return Decoded::Corrupt {
            reason: format!("record size {size} outside {RECORD_HEADER_SIZE}..={size_max}"),
        };
    }
    if bytes.len() < size {
        return Decoded::Incomplete { needed: size };
    }
    let stored = be_u32(bytes, 8);
    let computed = crc32c::crc32c(&bytes[CRC_FROM..size]);
    if stored != computed {
        return Decoded::Corrupt {
            reason: format!("record crc32c {stored:#010x} != computed {computed:#010x}"),
        };
    }
    let Some(kind) = RecordKind::from_u8(bytes[12]) else {
        return Decoded::Corrupt {
            reason: format!("unknown record kind {}", bytes[12]),
        };
    };
    if kind == RecordKind::EndOfSegment && size != END_RECORD_SIZE {
        return Decoded::Corrupt {
            reason: format!("end-of-segment record of size {size}"),
        };
    }
    let flags = bytes[13];
    let continued = match (flags, kind) {
        (0, _) => false,
        (FLAG_CONTINUED, RecordKind::Message) => true,
        _ => {
            return Decoded::Corrupt {
                reason: format!("flags {flags:#04x} on a {kind:?} record"),
            }
        }
    };
    Decoded::Record(RecordHeader {
        kind,
        continued,
        size: size as u32,
        term: be_u64(bytes, 16),
        leader: u16::from_be_bytes([bytes[14], bytes[15]]),
        index: be_u64(bytes, 24),
    })
}

/// Appends a header with a zero CRC for a payload of `payload_size`; the caller writes
/// the payload right after and then calls [`seal`]. Returns the record's start in `out`.
pub fn begin(out: &mut Vec<u8>, kind: RecordKind, payload_size: usize, at: LogPosition) -> usize {
    begin_part(out, kind, false, payload_size, at)
}

/// [`begin`] for a record of a Raft entry that may go on in the next record.
pub fn begin_part(
    out: &mut Vec<u8>,
    kind: RecordKind,
    continued: bool,
    payload_size: usize,
    at: LogPosition,
) -> usize {
    assert!(
        !continued || kind == RecordKind::Message,
        "only message records continue an entry"
    );
    let start = out.len();
    let size = u32::try_from(RECORD_HEADER_SIZE + payload_size).expect("record size fits u32");
    out.extend_from_slice(&RECORD_MAGIC.to_be_bytes());
    out.extend_from_slice(&size.to_be_bytes());
    out.extend_from_slice(&0u32.to_be_bytes());
    let flags = if continued { FLAG_CONTINUED } else { 0 };
    out.extend_from_slice(&[kind as u8, flags]);
    out.extend_from_slice(&at.leader.to_be_bytes());
    out.extend_from_slice(&at.term.to_be_bytes());
    out.extend_from_slice(&at.index.to_be_bytes());
    start
}

/// Fills in the CRC of the record that starts at `start` and ends at `out.len()`.
pub fn seal(out: &mut [u8], start: usize) {
    let size = be_u32(out, start + 4) as usize;
    assert_eq!(
        out.len() - start,
        size,
        "record payload size differs from its header"
    );
    let crc = crc32c::crc32c(&out[start + CRC_FROM..start + size]);
    out[start + 8..start + 12].copy_from_slice(&crc.to_be_bytes());
    // Pair the write with a read-back check, as recovery will see it.
    debug_assert!(matches!(
        decode(&out[start..], usize::MAX),
        Decoded::Record(_)
    ));
}

/// Appends a complete end-of-segment record.
/// `last` is the log id of the segment's last record, which recovery continues from.
pub fn encode_end(out: &mut Vec<u8>, last: LogPosition, max_store_timestamp_ms: i64) {
    let at = last;
    let start = begin(out, RecordKind::EndOfSegment, END_PAYLOAD_SIZE, at);
    out.extend_from_slice(&max_store_timestamp_ms.to_be_bytes());
    seal(out, start);
}

pub fn end_max_timestamp_ms(record: &[u8]) -> i64 {
    be_u64(record, RECORD_HEADER_SIZE) as i64
}

fn be_u32(bytes: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(bytes[at..at + 4].try_into().expect("4 bytes"))
}

fn be_u64(bytes: &[u8], at: usize) -> u64 {
    u64::from_be_bytes(bytes[at..at + 8].try_into().expect("8 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let at = LogPosition {
            term: 3,
            leader: 2,
            index: 9,
        };
        let start = begin(&mut out, RecordKind::Message, payload.len(), at);
        out.extend_from_slice(payload);
        seal(&mut out, start);
        out
    }

    #[test]
    fn round_trip() {
        let r = record(b"payload");
        let Decoded::Record(h) = decode(&r, 1 << 20) else {
            panic!("not a record")
        };
        assert_eq!(
            h,
            RecordHeader {
                kind: RecordKind::Message,
                continued: false,
                size: 39,
                term: 3,
                leader: 2,
                index: 9
            }
        );
        assert_eq!(h.payload_size(), 7);
        let mut end = Vec::new();
        let last = LogPosition {
            term: 1,
            leader: 2,
            index: 5,
        };
        encode_end(&mut end, last, 1234);
        assert_eq!(end.len(), END_RECORD_SIZE);
        let Decoded::Record(h) = decode(&end, 1 << 20) else {
            panic!("not a record")
        };
        assert_eq!(h.kind, RecordKind::EndOfSegment);
        assert_eq!((h.term, h.leader, h.index), (1, 2, 5));
        assert_eq!(end_max_timestamp_ms(&end), 1234);
    }

    #[test]
    fn detects_torn_and_corrupt() {
        let r = record(b"payload");
        assert_eq!(
            decode(&r[..10], 1 << 20),
            Decoded::Incomplete {
                needed: RECORD_HEADER_SIZE
            }
        );
        assert_eq!(
            decode(&r[..35], 1 << 20),
            Decoded::Incomplete { needed: 39 }
        );
        for i in 0..r.len() {
            let mut bad = r.clone();
            bad[i] ^= 0x10;
            assert!(
                !matches!(decode(&bad, 1 << 20), Decoded::Record(_)),
                "flip at {i} undetected"
            );
        }
        assert!(matches!(decode(&r, 38), Decoded::Corrupt { .. }));
        // Unknown flags, and CONTINUED on anything but a message, are corrupt.
        let mut out = Vec::new();
        let at = LogPosition::default();
        let start = begin_part(&mut out, RecordKind::Message, true, 3, at);
        out.extend_from_slice(b"abc");
        seal(&mut out, start);
        assert!(matches!(decode(&out, 1 << 20), Decoded::Record(h) if h.continued));
        for (kind, flags) in [(RecordKind::Message, 2u8), (RecordKind::Control, 1)] {
            let mut bad = out.clone();
            bad[12] = kind as u8;
            bad[13] = flags;
            let crc = crc32c::crc32c(&bad[CRC_FROM..]);
            bad[8..12].copy_from_slice(&crc.to_be_bytes());
            assert!(matches!(decode(&bad, 1 << 20), Decoded::Corrupt { .. }));
        }
        assert!(matches!(
            decode(&[0u8; 64], 1 << 20),
            Decoded::Corrupt { .. }
        ));
    }
}
