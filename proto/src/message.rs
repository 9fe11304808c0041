//! RocketMQ's stored message layout (`MessageDecoder` in `rocketmq-common`).
//!
//! The CommitLog stores every message in exactly the bytes a RocketMQ `PULL_MESSAGE`
//! response carries, so a pull is a copy, and Java, Go and C++ clients decode what we
//! serve. All integers are big-endian. Hosts are IPv4 (4 address bytes + 4 port bytes)
//! unless the sys flag says IPv6 (16 + 4).
//!
//! ```text
//! offset size  field
//!      0    4  TOTALSIZE                  whole message, this field included
//!      4    4  MAGICCODE                  0xDAA320A7 (v1: 1-byte topic length)
//!      8    4  BODYCRC                    java CRC32 of the body & 0x7FFFFFFF
//!     12    4  QUEUEID
//!     16    4  FLAG                       user flag, opaque to the broker
//!     20    8  QUEUEOFFSET                dense offset within (topic, queue id)
//!     28    8  PHYSICALOFFSET             CommitLog offset of byte 0 of this message
//!     36    4  SYSFLAG                    compression, transaction, IPv6 bits
//!     40    8  BORNTIMESTAMP              ms since the epoch, set by the producer
//!     48    8  BORNHOST                   ip(4) + port(4)
//!     56    8  STORETIMESTAMP             ms since the epoch, set by the broker
//!     64    8  STOREHOST                  ip(4) + port(4)
//!     72    4  RECONSUMETIMES
//!     76    8  PREPARED TRANSACTION OFFSET
//!     84    4  BODY LENGTH  n
//!     88    n  BODY
//!   88+n    1  TOPIC LENGTH t             (2 bytes with MAGICCODE v2)
//!   89+n    t  TOPIC                      UTF-8
//! 89+n+t    2  PROPERTIES LENGTH p
//! 91+n+t    p  PROPERTIES                 see `properties`
//! ```
//! The offsets above hold for IPv4 hosts; [`MessageRef`] computes them from the sys flag.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use bytes::{BufMut, Bytes};

use crate::properties::{self, Properties};

/// Magic code of a message whose topic length is one byte (`MESSAGE_MAGIC_CODE`).
pub const MESSAGE_MAGIC_V1: u32 = 0xDAA3_20A7;
/// Magic code of a message whose topic length is two bytes (`MESSAGE_MAGIC_CODE_V2`).
pub const MESSAGE_MAGIC_V2: u32 = 0xDAA3_20AB;

/// Sys flag bits (`MessageSysFlag`).
pub mod sys_flag {
    pub const COMPRESSED: i32 = 0x1;
    pub const MULTI_TAGS: i32 = 0x1 << 1;
    pub const TRANSACTION_PREPARED: i32 = 0x1 << 2;
    pub const TRANSACTION_COMMIT: i32 = 0x2 << 2;
    pub const BORN_HOST_V6: i32 = 0x1 << 4;
    pub const STORE_HOST_V6: i32 = 0x1 << 5;
}

pub const OFFSET_TOTAL_SIZE: usize = 0;
pub const OFFSET_MAGIC: usize = 4;
pub const OFFSET_BODY_CRC: usize = 8;
pub const OFFSET_QUEUE_ID: usize = 12;
pub const OFFSET_FLAG: usize = 16;
pub const OFFSET_QUEUE_OFFSET: usize = 20;
pub const OFFSET_PHYSICAL_OFFSET: usize = 28;
pub const OFFSET_SYS_FLAG: usize = 36;
pub const OFFSET_BORN_TIMESTAMP: usize = 40;
pub const OFFSET_BORN_HOST: usize = 48;

const HOST_V4_SIZE: usize = 8;
const HOST_V6_SIZE: usize = 20;

/// Size of everything but body, topic and properties, for IPv4 hosts, including the
/// three length fields (body 4, topic 1, properties 2).
pub const MESSAGE_FIXED_SIZE: usize =
    4 + 4 + 4 + 4 + 4 + 8 + 8 + 4 + 8 + 8 + 8 + 8 + 4 + 8 + 4 + 1 + 2;

// The diagram above, checked: MessageDecoder.BODY_SIZE_POSITION is 84 for IPv4 hosts,
// and its MESSAGE_PHYSIC_OFFSET_POSTION and MESSAGE_STORE_TIMESTAMP_POSTION are 28 and 56.
const _: () = assert!(MESSAGE_FIXED_SIZE == 84 + 4 + 1 + 2);
const _: () = assert!(OFFSET_PHYSICAL_OFFSET == 28);
const _: () = assert!(OFFSET_BORN_HOST + HOST_V4_SIZE + 8 == 64);

/// Largest topic in bytes (RocketMQ's `TOPIC_MAX_LENGTH`, and what a v1 length byte holds).
pub const TOPIC_SIZE_MAX: usize = 127;
/// Largest encoded property string (a signed 16-bit length in the layout).
pub const PROPERTIES_SIZE_MAX: usize = i16::MAX as usize;

/// What a producer sends: everything the broker does not assign.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewMessage {
    pub topic: String,
    pub queue_id: u32,
    pub flag: i32,
    pub body: Bytes,
    pub properties: Properties,
    pub sys_flag: i32,
    pub born_timestamp_ms: i64,
    pub born_host: SocketAddr,
    pub reconsume_times: i32,
    pub prepared_transaction_offset: i64,
}

impl NewMessage {
    /// A plain message with default producer-side fields.
    pub fn new(topic: impl Into<String>, queue_id: u32, body: impl Into<Bytes>) -> Self {
        NewMessage {
            topic: topic.into(),
            queue_id,
            flag: 0,
            body: body.into(),
            properties: Properties::new(),
            sys_flag: 0,
            born_timestamp_ms: 0,
            born_host: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
            reconsume_times: 0,
            prepared_transaction_offset: 0,
        }
    }

    pub fn tags(&self) -> Option<&str> {
        self.properties.get(properties::keys::TAGS)
    }

    /// Size of the encoded message, once the broker assigns the store host `store_host`.
    pub fn encoded_size(&self, store_host: SocketAddr) -> usize {
        MESSAGE_FIXED_SIZE + host_size(self.born_host) + host_size(store_host) - 2 * HOST_V4_SIZE
            + self.body.len()
            + self.topic.len()
            + self.properties.encoded_size()
    }

    /// Checks what the layout can hold. The broker rejects a message that fails this
    /// before anything is written.
    pub fn validate(&self) -> Result<(), EncodeError> {
        if self.topic.is_empty() || self.topic.len() > TOPIC_SIZE_MAX {
            return Err(EncodeError::TopicSize(self.topic.len()));
        }
        let properties_size = self.properties.encoded_size();
        if properties_size > PROPERTIES_SIZE_MAX {
            return Err(EncodeError::PropertiesSize(properties_size));
        }
        if self.body.len() > i32::MAX as usize {
            return Err(EncodeError::BodySize(self.body.len()));
        }
        Ok(())
    }

    /// Appends the stored form of this message to `out`, with the broker-assigned
    /// fields from `store`. Returns the encoded size.
    pub fn encode_into(
        &self,
        store: &StoreFields,
        out: &mut Vec<u8>,
    ) -> Result<usize, EncodeError> {
        self.validate()?;
        let size = self.encoded_size(store.store_host);
        let start = out.len();
        out.reserve(size);
        let mut sys_flag = self.sys_flag & !(sys_flag::BORN_HOST_V6 | sys_flag::STORE_HOST_V6);
        if self.born_host.is_ipv6() {
            sys_flag |= sys_flag::BORN_HOST_V6;
        }
        if store.store_host.is_ipv6() {
            sys_flag |= sys_flag::STORE_HOST_V6;
        }
        out.extend_from_slice(&(size as u32).to_be_bytes());
        out.extend_from_slice(&MESSAGE_MAGIC_V1.to_be_bytes());
        out.extend_from_slice(&body_crc(&self.body).to_be_bytes());
        out.extend_from_slice(&self.queue_id.to_be_bytes());
        out.extend_from_slice(&self.flag.to_be_bytes());
        out.extend_from_slice(&store.queue_offset.to_be_bytes());
        out.extend_from_slice(&store.physical_offset.to_be_bytes());
        out.extend_from_slice(&sys_flag.to_be_bytes());
        out.extend_from_slice(&self.born_timestamp_ms.to_be_bytes());
        put_host(out, self.born_host);
        out.extend_from_slice(&store.store_timestamp_ms.to_be_bytes());
        put_host(out, store.store_host);
        out.extend_from_slice(&self.reconsume_times.to_be_bytes());
        out.extend_from_slice(&self.prepared_transaction_offset.to_be_bytes());
        out.extend_from_slice(&(self.body.len() as u32).to_be_bytes());
        out.extend_from_slice(&self.body);
        out.push(self.topic.len() as u8);
        out.extend_from_slice(self.topic.as_bytes());
        out.extend_from_slice(&(self.properties.encoded_size() as u16).to_be_bytes());
        self.properties.encode_into(out);
        assert_eq!(
            out.len() - start,
            size,
            "encoded size disagrees with encoded_size()"
        );
        Ok(size)
    }
}

/// The fields the broker assigns when it stores a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoreFields {
    pub queue_offset: u64,
    pub physical_offset: u64,
    pub store_timestamp_ms: i64,
    pub store_host: SocketAddr,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error("topic must be 1..={TOPIC_SIZE_MAX} bytes, got {0}")]
    TopicSize(usize),
    #[error("properties must encode to at most {PROPERTIES_SIZE_MAX} bytes, got {0}")]
    PropertiesSize(usize),
    #[error("body of {0} bytes does not fit the layout")]
    BodySize(usize),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("message needs {needed} bytes, {available} available")]
    Truncated { needed: usize, available: usize },
    #[error("bad magic code {0:#010x}")]
    BadMagic(u32),
    #[error("field {field} is inconsistent: {detail}")]
    Inconsistent { field: &'static str, detail: String },
    #[error("body CRC {stored:#x} does not match computed {computed:#x}")]
    BodyCrc { stored: u32, computed: u32 },
}

/// RocketMQ's body CRC: java.util.zip.CRC32 of the body, masked to 31 bits (`UtilAll.crc32`).
pub fn body_crc(body: &[u8]) -> u32 {
    crc32fast::hash(body) & 0x7FFF_FFFF
}

fn host_size(addr: SocketAddr) -> usize {
    if addr.is_ipv6() {
        HOST_V6_SIZE
    } else {
        HOST_V4_SIZE
    }
}

fn put_host(out: &mut impl BufMut, addr: SocketAddr) {
    match addr.ip() {
        IpAddr::V4(ip) => out.put_slice(&ip.octets()),
        IpAddr::V6(ip) => out.put_slice(&ip.octets()),
    }
    out.put_u32(u32::from(addr.port()));
}

/// A validated, zero-copy view of one stored message.
///
/// [`MessageRef::parse`] checks every length against the buffer and the total size, so
/// the accessors cannot go out of bounds.
#[derive(Clone, Copy, Debug)]
pub struct MessageRef<'a> {
    bytes: &'a [u8],
    store_timestamp_at: usize,
    store_host_at: usize,
    reconsume_at: usize,
    body_at: usize,
    body_size: usize,
    topic_at: usize,
    topic_size: usize,
    properties_at: usize,
    properties_size: usize,
}

impl<'a> MessageRef<'a> {
    /// Parses the message at the start of `bytes`. Trailing bytes are not part of it.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, DecodeError> {
        let need = |needed: usize| {
            if bytes.len() < needed {
                Err(DecodeError::Truncated {
                    needed,
                    available: bytes.len(),
                })
            } else {
                Ok(())
            }
        };
        need(OFFSET_BORN_HOST)?;
        let total = be_u32(bytes, OFFSET_TOTAL_SIZE) as usize;
        let magic = be_u32(bytes, OFFSET_MAGIC);
        let topic_len_size = match magic {
            MESSAGE_MAGIC_V1 => 1,
            MESSAGE_MAGIC_V2 => 2,
            other => return Err(DecodeError::BadMagic(other)),
        };
        need(total)?;
        let bytes = &bytes[..total];
        let flags = be_u32(bytes, OFFSET_SYS_FLAG) as i32;
        let born_host_size = if flags & sys_flag::BORN_HOST_V6 != 0 {
            HOST_V6_SIZE
        } else {
            HOST_V4_SIZE
        };
        let store_host_size = if flags & sys_flag::STORE_HOST_V6 != 0 {
            HOST_V6_SIZE
        } else {
            HOST_V4_SIZE
        };
        let store_timestamp_at = OFFSET_BORN_HOST + born_host_size;
        let store_host_at = store_timestamp_at + 8;
        let reconsume_at = store_host_at + store_host_size;
        let body_len_at = reconsume_at + 4 + 8;
        let inconsistent = |field, detail: String| DecodeError::Inconsistent { field, detail };
        if body_len_at + 4 > total {
            return Err(inconsistent(
                "TOTALSIZE",
                format!("{total} is smaller than the fixed fields"),
            ));
        }
        let body_size = be_u32(bytes, body_len_at) as usize;
        let body_at = body_len_at + 4;
        let topic_len_at = body_at
            .checked_add(body_size)
            .filter(|&at| at + topic_len_size <= total)
            .ok_or_else(|| {
                inconsistent(
                    "BODY LENGTH",
                    format!("{body_size} overruns TOTALSIZE {total}"),
                )
            })?;
        let topic_size = if topic_len_size == 1 {
            usize::from(bytes[topic_len_at])
        } else {
            usize::from(u16::from_be_bytes([
                bytes[topic_len_at],
                bytes[topic_len_at + 1],
            ]))
        };
        let topic_at = topic_len_at + topic_len_size;
        let properties_len_at = topic_at + topic_size;
        if properties_len_at + 2 > total {
            return Err(inconsistent(
                "TOPIC LENGTH",
                format!("{topic_size} overruns TOTALSIZE {total}"),
            ));
        }
        let properties_size = usize::from(u16::from_be_bytes([
            bytes[properties_len_at],
            bytes[properties_len_at + 1],
        ]));
        let properties_at = properties_len_at + 2;
        if properties_at + properties_size != total {
            return Err(inconsistent(
                "PROPERTIES LENGTH",
                format!(
                    "{properties_size} ends at {} but TOTALSIZE is {total}",
                    properties_at + properties_size
                ),
            ));
        }
        if std::str::from_utf8(&bytes[topic_at..properties_len_at]).is_err() {
            return Err(inconsistent("TOPIC", "not UTF-8".to_string()));
        }
        if std::str::from_utf8(&bytes[properties_at..total]).is_err() {
            return Err(inconsistent("PROPERTIES", "not UTF-8".to_string()));
        }
        Ok(MessageRef {
            bytes,
            store_timestamp_at,
            store_host_at,
            reconsume_at,
            body_at,
            body_size,
            topic_at,
            topic_size,
            properties_at,
            properties_size,
        })
    }

    /// Like [`MessageRef::parse`], and also checks the body CRC.
    pub fn parse_checked(bytes: &'a [u8]) -> Result<Self, DecodeError> {
        let message = Self::parse(bytes)?;
        let computed = body_crc(message.body());
        let stored = message.body_crc();
        if computed != stored {
            return Err(DecodeError::BodyCrc { stored, computed });
        }
        Ok(message)
    }

    /// The encoded message, exactly `total_size()` bytes.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }
    pub fn total_size(&self) -> usize {
        self.bytes.len()
    }
    pub fn body_crc(&self) -> u32 {
        be_u32(self.bytes, OFFSET_BODY_CRC)
    }
    pub fn queue_id(&self) -> u32 {
        be_u32(self.bytes, OFFSET_QUEUE_ID)
    }
    pub fn flag(&self) -> i32 {
        be_u32(self.bytes, OFFSET_FLAG) as i32
    }
    pub fn queue_offset(&self) -> u64 {
        be_u64(self.bytes, OFFSET_QUEUE_OFFSET)
    }
    pub fn physical_offset(&self) -> u64 {
        be_u64(self.bytes, OFFSET_PHYSICAL_OFFSET)
    }
    pub fn sys_flag(&self) -> i32 {
        be_u32(self.bytes, OFFSET_SYS_FLAG) as i32
    }
    pub fn born_timestamp_ms(&self) -> i64 {
        be_u64(self.bytes, OFFSET_BORN_TIMESTAMP) as i64
    }
    pub fn born_host(&self) -> SocketAddr {
        read_host(
            self.bytes,
            OFFSET_BORN_HOST,
            self.store_timestamp_at - OFFSET_BORN_HOST,
        )
    }
    pub fn store_timestamp_ms(&self) -> i64 {
        be_u64(self.bytes, self.store_timestamp_at) as i64
    }
    pub fn store_host(&self) -> SocketAddr {
        read_host(
            self.bytes,
            self.store_host_at,
            self.reconsume_at - self.store_host_at,
        )
    }
    pub fn reconsume_times(&self) -> i32 {
        be_u32(self.bytes, self.reconsume_at) as i32
    }
    pub fn prepared_transaction_offset(&self) -> i64 {
        be_u64(self.bytes, self.reconsume_at + 4) as i64
    }
    pub fn body(&self) -> &'a [u8] {
        &self.bytes[self.body_at..self.body_at + self.body_size]
    }
    pub fn topic(&self) -> &'a str {
        // Checked to be UTF-8 in `parse`.
        std::str::from_utf8(&self.bytes[self.topic_at..self.topic_at + self.topic_size])
            .unwrap_or_default()
    }
    /// The encoded property string.
    pub fn properties_str(&self) -> &'a str {
        let end = self.properties_at + self.properties_size;
        std::str::from_utf8(&self.bytes[self.properties_at..end]).unwrap_or_default()
    }
    pub fn property(&self, name: &str) -> Option<&'a str> {
        properties::find(self.properties_str(), name)
    }
    pub fn tags(&self) -> Option<&'a str> {
        self.property(properties::keys::TAGS)
    }
    /// The offset msgId: store host and physical offset (RocketMQ's `createMessageId`).
    pub fn offset_msg_id(&self) -> MessageId {
        MessageId {
            store_host: self.store_host(),
            physical_offset: self.physical_offset(),
        }
    }

    /// An owned copy with the producer-side fields, e.g. to re-send to a retry topic.
    pub fn to_new_message(&self) -> NewMessage {
        NewMessage {
            topic: self.topic().to_string(),
            queue_id: self.queue_id(),
            flag: self.flag(),
            body: Bytes::copy_from_slice(self.body()),
            properties: Properties::decode(self.properties_str()),
            sys_flag: self.sys_flag() & !(sys_flag::BORN_HOST_V6 | sys_flag::STORE_HOST_V6),
            born_timestamp_ms: self.born_timestamp_ms(),
            born_host: self.born_host(),
            reconsume_times: self.reconsume_times(),
            prepared_transaction_offset: self.prepared_transaction_offset(),
        }
    }
}

fn be_u32(bytes: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(bytes[at..at + 4].try_into().expect("4 bytes"))
}

fn be_u64(bytes: &[u8], at: usize) -> u64 {
    u64::from_be_bytes(bytes[at..at + 8].try_into().expect("8 bytes"))
}

fn read_host(bytes: &[u8], at: usize, size: usize) -> SocketAddr {
    let port = be_u32(bytes, at + size - 4) as u16;
    if size == HOST_V6_SIZE {
        let octets: [u8; 16] = bytes[at..at + 16].try_into().expect("16 bytes");
        SocketAddr::new(IpAddr::from(octets), port)
    } else {
        let octets: [u8; 4] = bytes[at..at + 4].try_into().expect("4 bytes");
        SocketAddr::new(IpAddr::from(octets), port)
    }
}

/// RocketMQ's offset message id: store host and CommitLog offset, printed as upper-case
/// hex (32 characters for IPv4, 56 for IPv6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MessageId {
    pub store_host: SocketAddr,
    pub physical_offset: u64,
}

impl std::fmt::Display for MessageId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Every send response carries one: hex by table into a stack buffer, not a
        // `write!` per byte.
        const HEX: &[u8; 16] = b"0123456789ABCDEF";
        let mut bytes = [0u8; HOST_V6_SIZE + 8];
        let mut rest = &mut bytes[..];
        put_host(&mut rest, self.store_host);
        rest.put_u64(self.physical_offset);
        let len = HOST_V6_SIZE + 8 - rest.len();
        let mut hex = [0u8; 2 * (HOST_V6_SIZE + 8)];
        for (i, b) in bytes[..len].iter().enumerate() {
            hex[2 * i] = HEX[usize::from(b >> 4)];
            hex[2 * i + 1] = HEX[usize::from(b & 0xF)];
        }
        f.write_str(std::str::from_utf8(&hex[..2 * len]).expect("hex digits are ASCII"))
    }
}

impl std::str::FromStr for MessageId {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let host_hex = match s.len() {
            32 => 16,
            56 => 40,
            n => return Err(format!("message id must be 32 or 56 hex digits, got {n}")),
        };
        let mut bytes = Vec::with_capacity(s.len() / 2);
        for i in (0..s.len()).step_by(2) {
            let byte = s
                .get(i..i + 2)
                .and_then(|pair| u8::from_str_radix(pair, 16).ok())
                .ok_or_else(|| format!("message id has a non-hex digit near position {i}"))?;
            bytes.push(byte);
        }
        let store_host = read_host(&bytes, 0, host_hex / 2);
        let physical_offset = be_u64(&bytes, host_hex / 2);
        Ok(MessageId {
            store_host,
            physical_offset,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::properties::keys;

    fn sample() -> NewMessage {
        let mut m = NewMessage::new("TopicTest", 3, &b"hello world"[..]);
        m.properties.insert(keys::TAGS, "TagA");
        m.properties.insert(keys::KEYS, "order-1");
        m.flag = 7;
        m.born_timestamp_ms = 1_700_000_000_000;
        m.born_host = "10.0.0.1:50000".parse().unwrap();
        m
    }

    fn store() -> StoreFields {
        StoreFields {
            queue_offset: 42,
            physical_offset: 4096,
            store_timestamp_ms: 1_700_000_000_123,
            store_host: "192.168.1.2:10911".parse().unwrap(),
        }
    }

    #[test]
    fn encode_then_parse_round_trips() {
        let m = sample();
        let mut out = Vec::new();
        let size = m.encode_into(&store(), &mut out).unwrap();
        assert_eq!(size, out.len());
        let r = MessageRef::parse_checked(&out).unwrap();
        assert_eq!(r.total_size(), size);
        assert_eq!(r.topic(), "TopicTest");
        assert_eq!(r.queue_id(), 3);
        assert_eq!(r.flag(), 7);
        assert_eq!(r.queue_offset(), 42);
        assert_eq!(r.physical_offset(), 4096);
        assert_eq!(r.store_timestamp_ms(), 1_700_000_000_123);
        assert_eq!(r.born_host(), m.born_host);
        assert_eq!(r.store_host(), store().store_host);
        assert_eq!(r.body(), b"hello world");
        assert_eq!(r.tags(), Some("TagA"));
        assert_eq!(r.property(keys::KEYS), Some("order-1"));
        assert_eq!(r.to_new_message(), m);
    }

    #[test]
    fn ipv6_hosts_round_trip() {
        let mut m = sample();
        m.born_host = "[::1]:1234".parse().unwrap();
        let mut s = store();
        s.store_host = "[fe80::1]:10911".parse().unwrap();
        let mut out = Vec::new();
        m.encode_into(&s, &mut out).unwrap();
        let r = MessageRef::parse_checked(&out).unwrap();
        assert_eq!(r.born_host(), m.born_host);
        assert_eq!(r.store_host(), s.store_host);
        assert_ne!(r.sys_flag() & sys_flag::STORE_HOST_V6, 0);
        assert_eq!(r.offset_msg_id().to_string().len(), 56);
    }

    #[test]
    fn layout_offsets_match_rocketmq() {
        let mut out = Vec::new();
        sample().encode_into(&store(), &mut out).unwrap();
        assert_eq!(be_u32(&out, 4), MESSAGE_MAGIC_V1);
        assert_eq!(be_u64(&out, 28), 4096);
        assert_eq!(be_u64(&out, 56) as i64, 1_700_000_000_123);
        assert_eq!(be_u32(&out, 84), 11);
    }

    #[test]
    fn msg_id_matches_rocketmq_format() {
        let id = MessageId {
            store_host: "192.168.1.2:10911".parse().unwrap(),
            physical_offset: 4096,
        };
        // C0A80102 (ip) 00002A9F (port 10911) 0000000000001000 (offset)
        assert_eq!(id.to_string(), "C0A8010200002A9F0000000000001000");
        assert_eq!(id.to_string().parse::<MessageId>().unwrap(), id);
        assert!("XYZ".parse::<MessageId>().is_err());
        assert!("G0A8010200002A9F0000000000001000"
            .parse::<MessageId>()
            .is_err());
    }

    #[test]
    fn rejects_what_the_layout_cannot_hold() {
        let mut m = sample();
        m.topic = "t".repeat(128);
        assert_eq!(
            m.encode_into(&store(), &mut Vec::new()),
            Err(EncodeError::TopicSize(128))
        );
        m.topic = String::new();
        assert_eq!(m.validate(), Err(EncodeError::TopicSize(0)));
    }

    #[test]
    fn parse_reports_damage() {
        let mut out = Vec::new();
        sample().encode_into(&store(), &mut out).unwrap();
        assert!(matches!(
            MessageRef::parse(&out[..50]),
            Err(DecodeError::Truncated { .. })
        ));
        let mut bad = out.clone();
        bad[4] ^= 0xFF;
        assert!(matches!(
            MessageRef::parse(&bad),
            Err(DecodeError::BadMagic(_))
        ));
        let mut bad = out.clone();
        let last_body_byte = 88 + 10;
        bad[last_body_byte] ^= 1;
        assert!(matches!(
            MessageRef::parse_checked(&bad),
            Err(DecodeError::BodyCrc { .. })
        ));
        let mut bad = out.clone();
        bad[84..88].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(matches!(
            MessageRef::parse(&bad),
            Err(DecodeError::Inconsistent { .. })
        ));
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
            let _ = MessageRef::parse(&bytes);
        }

        #[test]
        fn round_trip_any_message(
            topic in "[a-zA-Z0-9_%|-]{1,127}",
            body in proptest::collection::vec(proptest::num::u8::ANY, 0..2000),
            queue_id in 0u32..1024,
            tags in "[a-zA-Z0-9]{0,20}",
            queue_offset in proptest::num::u64::ANY,
        ) {
            let mut m = NewMessage::new(topic, queue_id, body);
            if !tags.is_empty() {
                m.properties.insert(keys::TAGS, tags);
            }
            let mut s = store();
            s.queue_offset = queue_offset;
            let mut out = Vec::new();
            m.encode_into(&s, &mut out).unwrap();
            let r = MessageRef::parse_checked(&out).unwrap();
            proptest::prop_assert_eq!(r.to_new_message(), m);
            proptest::prop_assert_eq!(r.queue_offset(), queue_offset);
        }
    }
}
