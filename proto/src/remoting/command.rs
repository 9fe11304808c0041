//! `RemotingCommand` and its frame.
//!
//! ```text
//! frame
//! offset size field
//!      0    4 length          of everything after this field (big-endian)
//!      4    4 header info     serialize type << 24 | header length (24 bits)
//!      8    h header          JSON (type 0) or ROCKETMQ binary (type 1)
//!    8+h    . body            length - 4 - h bytes
//!
//! ROCKETMQ binary header
//!      0    2 code            i16
//!      2    1 language        LanguageCode
//!      3    2 version         i16
//!      5    4 opaque          matches a response to its request
//!      9    4 flag            bit 0: response, bit 1: oneway
//!     13    4 remark length r, then r bytes of UTF-8
//!   17+r    4 ext length e, then e bytes of (u16 key length, key, u32 value length, value)*
//! ```
//! Decoding is split as in mini-redis: [`check_frame`] says whether a whole frame is
//! buffered (without allocating), then [`RemotingCommand::decode`] parses it. Every
//! length is checked against the frame; nothing allocates beyond the frame's size.

use std::collections::BTreeMap;
use std::str::FromStr;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize};

use super::codes::language;
use super::ExtFields;

/// Largest frame accepted (RocketMQ's default `maxFrameLength` is 16 MiB).
pub const FRAME_SIZE_MAX: usize = 16 << 20;

pub const FLAG_RESPONSE: i32 = 1;
pub const FLAG_ONEWAY: i32 = 1 << 1;

/// How the header is encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SerializeType {
    Json = 0,
    RocketMq = 1,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtoError {
    #[error("frame of {0} bytes exceeds the {FRAME_SIZE_MAX}-byte limit")]
    FrameTooLarge(usize),
    #[error("malformed frame: {0}")]
    Malformed(String),
    #[error("request is missing header field {0:?}")]
    MissingField(&'static str),
    #[error("header field {field:?} has bad value {value:?}: {reason}")]
    BadField {
        field: &'static str,
        value: String,
        reason: String,
    },
}

fn malformed(reason: impl Into<String>) -> ProtoError {
    ProtoError::Malformed(reason.into())
}

/// One request or response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemotingCommand {
    pub code: i32,
    pub language: u8,
    pub version: i32,
    pub opaque: i32,
    pub flag: i32,
    pub remark: Option<String>,
    pub ext_fields: ExtFields,
    pub body: Bytes,
    /// How this command's header was (or will be) encoded. Responses use the request's.
    pub serialize_type: SerializeType,
}

/// Version raftmq announces (RocketMQ 4.9.x's `V4_9_4` ordinal, 399 in Java clients).
pub const VERSION: i32 = 399;

/// Says whether `buf` starts with a whole frame; returns its total size (length field
/// included). Errors when the length is outside the protocol's bounds.
pub fn check_frame(buf: &[u8]) -> Result<Option<usize>, ProtoError> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let length = u32::from_be_bytes(buf[..4].try_into().expect("4 bytes")) as usize;
    if length > FRAME_SIZE_MAX {
        return Err(ProtoError::FrameTooLarge(length));
    }
    if length < 4 {
        return Err(malformed(format!(
            "frame length {length} cannot hold the header length"
        )));
    }
    Ok((buf.len() >= 4 + length).then_some(4 + length))
}

#[derive(Serialize, Deserialize)]
struct JsonHeader {
    code: i32,
    #[serde(default)]
    language: Option<String>,
    #[serde(default)]
    version: i32,
    #[serde(default)]
    opaque: i32,
    #[serde(default)]
    flag: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    remark: Option<String>,
    #[serde(rename = "extFields", default, skip_serializing_if = "Option::is_none")]
    ext_fields: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(
        rename = "serializeTypeCurrentRPC",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    serialize_type_current_rpc: Option<String>,
}

impl RemotingCommand {
    pub fn request(code: i32) -> Self {
        RemotingCommand {
            code,
            language: language::RUST,
            version: VERSION,
            opaque: 0,
            flag: 0,
            remark: None,
            ext_fields: ExtFields::new(),
            body: Bytes::new(),
            serialize_type: SerializeType::RocketMq,
        }
    }

    /// A oneway request a server sends to a client on the client's own connection
    /// (NOTIFY_CONSUMER_IDS_CHANGED, CHECK_TRANSACTION_STATE): its header in JSON, as
    /// Java's broker sends its own requests, since the C++ client reads no other.
    pub fn server_request(code: i32) -> Self {
        RemotingCommand {
            flag: FLAG_ONEWAY,
            serialize_type: SerializeType::Json,
            ..RemotingCommand::request(code)
        }
    }

    /// A response to `request` with `code` (0 = SUCCESS) and an optional remark.
    pub fn response_to(request: &RemotingCommand, code: i32, remark: Option<String>) -> Self {
        RemotingCommand {
            code,
            language: language::RUST,
            version: VERSION,
            opaque: request.opaque,
            flag: FLAG_RESPONSE,
            remark,
            ext_fields: ExtFields::new(),
            body: Bytes::new(),
            serialize_type: request.serialize_type,
        }
    }

    pub fn is_response(&self) -> bool {
        self.flag & FLAG_RESPONSE != 0
    }

    pub fn is_oneway(&self) -> bool {
        self.flag & FLAG_ONEWAY != 0
    }

    pub fn with_body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }

    pub fn with_ext(mut self, key: &'static str, value: impl std::fmt::Display) -> Self {
        self.ext_fields.insert(key, value);
        self
    }

    /// A header field, if present.
    pub fn ext(&self, key: &str) -> Option<&str> {
        self.ext_fields.get(key)
    }

    /// A required header field, parsed.
    pub fn ext_parse<T: FromStr>(&self, key: &'static str) -> Result<T, ProtoError>
    where
        T::Err: std::fmt::Display,
    {
        let value = self.ext(key).ok_or(ProtoError::MissingField(key))?;
        value
            .trim()
            .parse()
            .map_err(|e: T::Err| ProtoError::BadField {
                field: key,
                value: value.to_string(),
                reason: e.to_string(),
            })
    }

    /// An optional header field, parsed when present.
    pub fn ext_parse_opt<T: FromStr>(&self, key: &'static str) -> Result<Option<T>, ProtoError>
    where
        T::Err: std::fmt::Display,
    {
        match self.ext(key) {
            None => Ok(None),
            Some(_) => self.ext_parse(key).map(Some),
        }
    }

    /// An optional boolean header field, read as Java's broker reads it
    /// ([`super::lenient::java_bool`]): never an error.
    pub fn ext_bool(&self, key: &str) -> Option<bool> {
        self.ext(key).map(super::lenient::java_bool)
    }

    /// Parses one whole frame (as [`check_frame`] measured it).
    pub fn decode(frame: &[u8]) -> Result<Self, ProtoError> {
        Self::decode_frame(Bytes::copy_from_slice(frame))
    }

    /// Like [`RemotingCommand::decode`], taking the frame by value so the body is a
    /// slice of it rather than a copy (the receive path).
    pub fn decode_frame(frame: Bytes) -> Result<Self, ProtoError> {
        let mut buf = &frame[..];
        if buf.len() < 8 {
            return Err(malformed("frame shorter than its fixed fields"));
        }
        let length = buf.get_u32() as usize;
        if length != buf.len() {
            return Err(malformed(format!(
                "length field {length} but {} bytes follow",
                buf.len()
            )));
        }
        let header_info = buf.get_u32();
        let serialize = (header_info >> 24) as u8;
        let header_length = (header_info & 0x00FF_FFFF) as usize;
        if header_length > buf.len() {
            return Err(malformed(format!(
                "header length {header_length} exceeds the frame"
            )));
        }
        let header = &buf[..header_length];
        let mut command = match serialize {
            0 => decode_json_header(header)?,
            1 => decode_binary_header(header)?,
            other => return Err(malformed(format!("unknown serialize type {other}"))),
        };
        command.body = frame.slice(8 + header_length..);
        Ok(command)
    }

    /// Appends the frame to `out`, encoding the header in place.
    pub fn encode(&self, out: &mut BytesMut) {
        out.reserve(8 + 64 + self.ext_fields.len() * 32 + self.body.len());
        self.encode_head(out);
        out.put_slice(&self.body);
    }

    /// Appends the frame up to its body (whose length the length field counts): the
    /// caller writes `self.body` right after, saving the copy of a large body.
    pub fn encode_head(&self, out: &mut BytesMut) {
        let start = out.len();
        out.reserve(8 + 64 + self.ext_fields.len() * 32);
        out.put_u32(0); // length, set below
        out.put_u32(0); // serialize type and header length, set below
        let header_start = out.len();
        match self.serialize_type {
            SerializeType::Json => out.put_slice(&self.encode_json_header()),
            SerializeType::RocketMq => self.encode_binary_header(out),
        }
        let header_length = out.len() - header_start;
        let length = (out.len() - start - 4 + self.body.len()) as u32;
        let info = ((self.serialize_type as u32) << 24) | header_length as u32;
        out[start..start + 4].copy_from_slice(&length.to_be_bytes());
        out[start + 4..start + 8].copy_from_slice(&info.to_be_bytes());
    }

    pub fn to_frame(&self) -> BytesMut {
        let mut out = BytesMut::new();
        self.encode(&mut out);
        out
    }

    fn encode_json_header(&self) -> Vec<u8> {
        let header = JsonHeader {
            code: self.code,
            language: Some(language::name(self.language).to_string()),
            version: self.version,
            opaque: self.opaque,
            flag: self.flag,
            remark: self.remark.clone(),
            ext_fields: (!self.ext_fields.is_empty()).then(|| {
                self.ext_fields
                    .iter()
                    .map(|(k, v)| (k.to_string(), serde_json::Value::String(v.to_string())))
                    .collect()
            }),
            serialize_type_current_rpc: Some("JSON".to_string()),
        };
        serde_json::to_vec(&header).expect("a header always serializes")
    }

    fn encode_binary_header(&self, out: &mut BytesMut) {
        let remark = self.remark.as_deref().unwrap_or_default().as_bytes();
        out.put_i16(self.code as i16);
        out.put_u8(self.language);
        out.put_i16(self.version as i16);
        out.put_i32(self.opaque);
        out.put_i32(self.flag);
        out.put_u32(remark.len() as u32);
        out.put_slice(remark);
        let ext_at = out.len();
        out.put_u32(0); // ext length, set below
        for (k, v) in self.ext_fields.iter() {
            out.put_u16(k.len() as u16);
            out.put_slice(k.as_bytes());
            out.put_u32(v.len() as u32);
            out.put_slice(v.as_bytes());
        }
        let ext_length = (out.len() - ext_at - 4) as u32;
        out[ext_at..ext_at + 4].copy_from_slice(&ext_length.to_be_bytes());
    }
}

fn decode_json_header(header: &[u8]) -> Result<RemotingCommand, ProtoError> {
    let parsed: JsonHeader =
        serde_json::from_slice(header).map_err(|e| malformed(format!("JSON header: {e}")))?;
    let mut ext_fields = ExtFields::new();
    for (k, v) in parsed.ext_fields.unwrap_or_default() {
        // Clients write every field as a string; tolerate numbers and booleans too.
        match v {
            serde_json::Value::String(s) => ext_fields.insert_decoded(&k, &s),
            serde_json::Value::Null => continue,
            other => ext_fields.insert_decoded(&k, &other.to_string()),
        }
    }
    Ok(RemotingCommand {
        code: parsed.code,
        language: parsed
            .language
            .as_deref()
            .map_or(language::JAVA, language::code),
        version: parsed.version,
        opaque: parsed.opaque,
        flag: parsed.flag,
        remark: parsed.remark,
        ext_fields,
        body: Bytes::new(),
        serialize_type: SerializeType::Json,
    })
}

fn take<'a>(buf: &mut &'a [u8], n: usize, what: &str) -> Result<&'a [u8], ProtoError> {
    if buf.len() < n {
        return Err(malformed(format!(
            "{what} needs {n} bytes, {} remain",
            buf.len()
        )));
    }
    let (head, rest) = buf.split_at(n);
    *buf = rest;
    Ok(head)
}

fn utf8(bytes: &[u8], what: &str) -> Result<String, ProtoError> {
    String::from_utf8(bytes.to_vec()).map_err(|_| malformed(format!("{what} is not UTF-8")))
}

fn decode_binary_header(header: &[u8]) -> Result<RemotingCommand, ProtoError> {
    let mut buf = header;
    let fixed = take(&mut buf, 13, "binary header")?;
    let mut fixed = fixed;
    let code = i32::from(fixed.get_i16());
    let language = fixed.get_u8();
    let version = i32::from(fixed.get_i16());
    let opaque = fixed.get_i32();
    let flag = fixed.get_i32();
    let remark_length = take(&mut buf, 4, "remark length")?.get_u32() as usize;
    let remark = take(&mut buf, remark_length, "remark")?;
    let remark = (!remark.is_empty())
        .then(|| utf8(remark, "remark"))
        .transpose()?;
    let ext_length = take(&mut buf, 4, "ext fields length")?.get_u32() as usize;
    let mut ext = take(&mut buf, ext_length, "ext fields")?;
    if !buf.is_empty() {
        return Err(malformed(format!(
            "{} bytes after the ext fields",
            buf.len()
        )));
    }
    // A field takes at least 6 bytes: room for what the frame can hold, no more.
    let mut ext_fields = ExtFields::with_capacity((ext.len() / 6).min(32));
    while !ext.is_empty() {
        let key_length = take(&mut ext, 2, "ext key length")?.get_u16() as usize;
        let key = take(&mut ext, key_length, "ext key")?;
        let key = std::str::from_utf8(key).map_err(|_| malformed("ext key is not UTF-8"))?;
        let value_length = take(&mut ext, 4, "ext value length")?.get_u32() as usize;
        let value = take(&mut ext, value_length, "ext value")?;
        let value = std::str::from_utf8(value).map_err(|_| malformed("ext value is not UTF-8"))?;
        ext_fields.insert_decoded(key, value);
    }
    Ok(RemotingCommand {
        code,
        language,
        version,
        opaque,
        flag,
        remark,
        ext_fields,
        body: Bytes::new(),
        serialize_type: SerializeType::RocketMq,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample(serialize_type: SerializeType) -> RemotingCommand {
        let mut c = RemotingCommand::request(10)
            .with_ext("topic", "TopicTest")
            .with_ext("queueId", 3);
        c.opaque = 42;
        c.remark = Some("hello".into());
        c.serialize_type = serialize_type;
        c.with_body(&b"body bytes"[..])
    }

    #[test]
    fn both_header_types_round_trip() {
        for t in [SerializeType::Json, SerializeType::RocketMq] {
            let c = sample(t);
            let frame = c.to_frame();
            assert_eq!(check_frame(&frame).unwrap(), Some(frame.len()));
            assert_eq!(check_frame(&frame[..frame.len() - 1]).unwrap(), None);
            assert_eq!(RemotingCommand::decode(&frame).unwrap(), c);
        }
    }

    #[test]
    fn accepts_a_java_style_json_header() {
        // As Java's RemotingCommand writes it with fastjson; no serializeTypeCurrentRPC.
        let header = br#"{"code":105,"extFields":{"topic":"TopicTest"},"flag":0,"language":"JAVA","opaque":7,"version":399}"#;
        let mut frame = BytesMut::new();
        frame.put_u32((4 + header.len()) as u32);
        frame.put_u32(header.len() as u32);
        frame.put_slice(header);
        let c = RemotingCommand::decode(&frame).unwrap();
        assert_eq!(c.code, 105);
        assert_eq!(c.opaque, 7);
        assert_eq!(c.language, language::JAVA);
        assert_eq!(c.ext("topic"), Some("TopicTest"));
        assert_eq!(c.serialize_type, SerializeType::Json);
    }

    #[test]
    fn rejects_bad_frames_with_reasons() {
        let mut huge = BytesMut::new();
        huge.put_u32(2 << 30);
        assert_eq!(check_frame(&huge), Err(ProtoError::FrameTooLarge(2 << 30)));
        let mut frame = sample(SerializeType::RocketMq).to_frame();
        frame[4] = 7; // serialize type 7
        assert!(RemotingCommand::decode(&frame)
            .unwrap_err()
            .to_string()
            .contains("serialize type"));
        let c = RemotingCommand::request(11).with_ext("queueId", "x");
        let e = c.ext_parse::<u32>("queueId").unwrap_err();
        assert!(e.to_string().contains("queueId"));
        assert_eq!(
            c.ext_parse::<u32>("maxMsgNums"),
            Err(ProtoError::MissingField("maxMsgNums"))
        );
    }

    proptest! {
        /// The decoder never panics and never allocates beyond its frame: any input is a
        /// frame, not yet a frame, or an error.
        #[test]
        fn decoder_survives_random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            if let Ok(Some(n)) = check_frame(&bytes) {
                let _ = RemotingCommand::decode(&bytes[..n]);
            }
            let _ = RemotingCommand::decode(&bytes);
        }

        #[test]
        fn decoder_survives_mutated_frames(flips in proptest::collection::vec((0usize..200, any::<u8>()), 1..8), json in any::<bool>()) {
            let t = if json { SerializeType::Json } else { SerializeType::RocketMq };
            let mut frame = sample(t).to_frame().to_vec();
            for (at, b) in flips {
                let n = frame.len();
                frame[at % n] ^= b;
            }
            if let Ok(Some(n)) = check_frame(&frame) {
                let _ = RemotingCommand::decode(&frame[..n]);
            }
        }

        #[test]
        fn any_command_round_trips(code in any::<i16>(), opaque in any::<i32>(), json in any::<bool>(),
                                   ext in proptest::collection::btree_map("[a-zA-Z]{1,8}", "[ -~]{0,16}", 0..6),
                                   body in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut c = RemotingCommand::request(i32::from(code));
            c.opaque = opaque;
            c.ext_fields = ext.into_iter().collect();
            c.body = Bytes::from(body);
            c.serialize_type = if json { SerializeType::Json } else { SerializeType::RocketMq };
            prop_assert_eq!(RemotingCommand::decode(&c.to_frame()).unwrap(), c);
        }
    }
}
