//! The body of SEND_BATCH_MESSAGE (`MessageDecoder.encodeMessages`): messages one after
//! another, each
//!
//! ```text
//! offset size field
//!      0    4 total size        of this entry
//!      4    4 magic code        0
//!      8    4 body crc          0
//!     12    4 flag
//!     16    4 body length n, then n bytes
//!   20+n    2 properties length p, then p bytes
//! ```

use bytes::{Buf, BufMut, Bytes};

use super::command::ProtoError;

/// One message of a batch: what the producer sets per message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchEntry {
    pub flag: i32,
    pub body: Bytes,
    pub properties: String,
}

const ENTRY_FIXED_SIZE: usize = 4 + 4 + 4 + 4 + 4 + 2;

pub fn encode(entries: &[BatchEntry]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in entries {
        let size = ENTRY_FIXED_SIZE + e.body.len() + e.properties.len();
        out.put_u32(size as u32);
        out.put_u32(0);
        out.put_u32(0);
        out.put_i32(e.flag);
        out.put_u32(e.body.len() as u32);
        out.put_slice(&e.body);
        out.put_u16(e.properties.len() as u16);
        out.put_slice(e.properties.as_bytes());
    }
    out
}

pub fn decode(mut body: &[u8]) -> Result<Vec<BatchEntry>, ProtoError> {
    let bad = |reason: String| ProtoError::Malformed(format!("batch body: {reason}"));
    let mut entries = Vec::new();
    while !body.is_empty() {
        if body.len() < ENTRY_FIXED_SIZE {
            return Err(bad(format!("{} trailing bytes", body.len())));
        }
        let size = (&body[..4]).get_u32() as usize;
        if size < ENTRY_FIXED_SIZE || size > body.len() {
            return Err(bad(format!(
                "entry size {size} with {} bytes left",
                body.len()
            )));
        }
        let mut entry = &body[4..size];
        body = &body[size..];
        entry.advance(8); // magic code and body crc: unused in batches
        let flag = entry.get_i32();
        let body_len = entry.get_u32() as usize;
        if body_len + 2 > entry.len() {
            return Err(bad(format!("body length {body_len} overruns its entry")));
        }
        let message_body = Bytes::copy_from_slice(&entry[..body_len]);
        entry.advance(body_len);
        let properties_len = entry.get_u16() as usize;
        if properties_len != entry.len() {
            return Err(bad(format!(
                "properties length {properties_len} but {} bytes remain",
                entry.len()
            )));
        }
        let properties = String::from_utf8(entry.to_vec())
            .map_err(|_| bad("properties are not UTF-8".into()))?;
        entries.push(BatchEntry {
            flag,
            body: message_body,
            properties,
        });
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn round_trip() {
        let entries = vec![
            BatchEntry {
                flag: 1,
                body: Bytes::from_static(b"one"),
                properties: "KEYS\u{1}k\u{2}".into(),
            },
            BatchEntry {
                flag: 0,
                body: Bytes::new(),
                properties: String::new(),
            },
        ];
        assert_eq!(decode(&encode(&entries)).unwrap(), entries);
        assert!(decode(&encode(&entries)[..10]).is_err());
    }

    proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode(&bytes);
        }
    }
}
