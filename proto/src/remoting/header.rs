//! Typed request headers for the commands whose fields the broker reads and the client
//! writes. Each parses from a command's ext fields (naming any missing or bad field)
//! and writes itself back.

use super::codes::request;
use super::command::{ProtoError, RemotingCommand};
use super::lenient;
use super::ExtFields;

/// SEND_MESSAGE (long names) and SEND_MESSAGE_V2 / SEND_BATCH_MESSAGE (one letter each).
///
/// Generic over its strings: the broker parses one borrowing from the request's ext
/// fields (`&str`) and the producer builds one from what it holds, so a send allocates
/// none of them; `String` where an owned header is wanted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SendMessageHeader<S = String> {
    pub producer_group: S,
    pub topic: S,
    pub default_topic: S,
    pub default_topic_queue_nums: u32,
    pub queue_id: i32,
    pub sys_flag: i32,
    pub born_timestamp: i64,
    pub flag: i32,
    pub properties: S,
    pub reconsume_times: i32,
    pub unit_mode: bool,
    pub batch: bool,
    pub max_reconsume_times: Option<i32>,
}

/// V1 field names in V2 order (`SendMessageRequestHeaderV2`: a..n).
const V2_FIELDS: [(&str, &str); 13] = [
    ("a", "producerGroup"),
    ("b", "topic"),
    ("c", "defaultTopic"),
    ("d", "defaultTopicQueueNums"),
    ("e", "queueId"),
    ("f", "sysFlag"),
    ("g", "bornTimestamp"),
    ("h", "flag"),
    ("i", "properties"),
    ("j", "reconsumeTimes"),
    ("k", "unitMode"),
    ("l", "maxReconsumeTimes"),
    ("m", "batch"),
];

/// A send's header values by field, gathered in one pass over the ext fields (this is
/// on every send's path; looking each field up by name cost a scan of the fields per
/// field). SEND_MESSAGE uses the long names; V2 and batch sends use the letters and, as
/// Java's broker does, fall back to a long name when the letter is absent. A name given
/// twice keeps its last value, as `RemotingCommand::ext` does.
struct SendFields<'a> {
    short: [Option<&'a str>; V2_FIELDS.len()],
    long: [Option<&'a str>; V2_FIELDS.len()],
}

impl<'a> SendFields<'a> {
    fn gather(cmd: &'a RemotingCommand) -> Self {
        let v2 = cmd.code != request::SEND_MESSAGE;
        let mut fields = SendFields {
            short: [None; V2_FIELDS.len()],
            long: [None; V2_FIELDS.len()],
        };
        for (name, value) in cmd.ext_fields.iter() {
            let slot = if name.len() == 1 {
                if !v2 {
                    continue;
                }
                &mut fields.short
            } else {
                &mut fields.long
            };
            if let Some(i) = V2_FIELDS
                .iter()
                .position(|(short, long)| name == *short || name == *long)
            {
                slot[i] = Some(value);
            }
        }
        fields
    }

    fn raw(&self, long: &'static str) -> Option<&'a str> {
        let i = V2_FIELDS
            .iter()
            .position(|(_, l)| *l == long)
            .expect("a send header field");
        self.short[i].or(self.long[i])
    }

    fn opt<T: std::str::FromStr>(&self, long: &'static str) -> Result<Option<T>, ProtoError>
    where
        T::Err: std::fmt::Display,
    {
        let Some(value) = self.raw(long) else {
            return Ok(None);
        };
        value
            .trim()
            .parse()
            .map(Some)
            .map_err(|e: T::Err| ProtoError::BadField {
                field: long,
                value: value.to_string(),
                reason: e.to_string(),
            })
    }

    /// A boolean field as Java's broker reads it ([`lenient::java_bool`]).
    fn bool_opt(&self, long: &'static str) -> Option<bool> {
        self.raw(long).map(lenient::java_bool)
    }

    fn req_str(&self, long: &'static str) -> Result<&'a str, ProtoError> {
        self.raw(long)
            .map(str::trim)
            .ok_or(ProtoError::MissingField(long))
    }

    fn req<T: std::str::FromStr>(&self, long: &'static str) -> Result<T, ProtoError>
    where
        T::Err: std::fmt::Display,
    {
        self.opt(long)?.ok_or(ProtoError::MissingField(long))
    }
}

impl<'a> SendMessageHeader<&'a str> {
    /// The header of `cmd`, borrowing its strings (trimmed, as numbers are).
    pub fn parse(cmd: &'a RemotingCommand) -> Result<Self, ProtoError> {
        let c = SendFields::gather(cmd);
        Ok(SendMessageHeader {
            producer_group: c.req_str("producerGroup")?,
            topic: c.req_str("topic")?,
            default_topic: c.raw("defaultTopic").map_or("TBW102", str::trim),
            default_topic_queue_nums: c.opt("defaultTopicQueueNums")?.unwrap_or(4),
            queue_id: c.req("queueId")?,
            sys_flag: c.opt("sysFlag")?.unwrap_or(0),
            born_timestamp: c.opt("bornTimestamp")?.unwrap_or(0),
            flag: c.opt("flag")?.unwrap_or(0),
            properties: c.raw("properties").unwrap_or_default(),
            reconsume_times: c.opt("reconsumeTimes")?.unwrap_or(0),
            unit_mode: c.bool_opt("unitMode").unwrap_or(false),
            batch: c
                .bool_opt("batch")
                .unwrap_or(cmd.code == request::SEND_BATCH_MESSAGE),
            max_reconsume_times: c.opt("maxReconsumeTimes")?,
        })
    }

    pub fn to_owned_header(&self) -> SendMessageHeader {
        SendMessageHeader {
            producer_group: self.producer_group.to_string(),
            topic: self.topic.to_string(),
            default_topic: self.default_topic.to_string(),
            default_topic_queue_nums: self.default_topic_queue_nums,
            queue_id: self.queue_id,
            sys_flag: self.sys_flag,
            born_timestamp: self.born_timestamp,
            flag: self.flag,
            properties: self.properties.to_string(),
            reconsume_times: self.reconsume_times,
            unit_mode: self.unit_mode,
            batch: self.batch,
            max_reconsume_times: self.max_reconsume_times,
        }
    }
}

impl<S: AsRef<str>> SendMessageHeader<S> {
    /// A SEND_MESSAGE_V2 (or SEND_BATCH_MESSAGE when `batch`) request.
    pub fn to_command(&self) -> RemotingCommand {
        let code = if self.batch {
            request::SEND_BATCH_MESSAGE
        } else {
            request::SEND_MESSAGE_V2
        };
        let mut ext = ExtFields::with_capacity(V2_FIELDS.len());
        ext.push_str("a", self.producer_group.as_ref());
        ext.push_str("b", self.topic.as_ref());
        ext.push_str("c", self.default_topic.as_ref());
        ext.push_int("d", self.default_topic_queue_nums);
        ext.push_int("e", self.queue_id);
        ext.push_int("f", self.sys_flag);
        ext.push_int("g", self.born_timestamp);
        ext.push_int("h", self.flag);
        ext.push_str("i", self.properties.as_ref());
        ext.push_int("j", self.reconsume_times);
        ext.push_str("k", if self.unit_mode { "true" } else { "false" });
        ext.push_str("m", if self.batch { "true" } else { "false" });
        if let Some(max) = self.max_reconsume_times {
            ext.push_int("l", max);
        }
        let mut c = RemotingCommand::request(code);
        c.ext_fields = ext;
        c
    }
}

/// PullSysFlag bits.
pub mod pull_flag {
    pub const COMMIT_OFFSET: i32 = 0x1;
    pub const SUSPEND: i32 = 0x1 << 1;
    pub const SUBSCRIPTION: i32 = 0x1 << 2;
    pub const CLASS_FILTER: i32 = 0x1 << 3;
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PullMessageHeader {
    pub consumer_group: String,
    pub topic: String,
    pub queue_id: u32,
    pub queue_offset: u64,
    pub max_msg_nums: u32,
    pub sys_flag: i32,
    pub commit_offset: i64,
    pub suspend_timeout_millis: u64,
    pub subscription: Option<String>,
    pub sub_version: i64,
    pub expression_type: Option<String>,
}

impl PullMessageHeader {
    pub fn parse(c: &RemotingCommand) -> Result<Self, ProtoError> {
        Ok(PullMessageHeader {
            consumer_group: c.ext_parse("consumerGroup")?,
            topic: c.ext_parse("topic")?,
            queue_id: c.ext_parse("queueId")?,
            queue_offset: c.ext_parse("queueOffset")?,
            max_msg_nums: c.ext_parse("maxMsgNums")?,
            sys_flag: c.ext_parse_opt("sysFlag")?.unwrap_or(0),
            commit_offset: c.ext_parse_opt("commitOffset")?.unwrap_or(0),
            suspend_timeout_millis: c.ext_parse_opt("suspendTimeoutMillis")?.unwrap_or(0),
            subscription: c.ext("subscription").map(str::to_string),
            sub_version: c.ext_parse_opt("subVersion")?.unwrap_or(0),
            expression_type: c.ext("expressionType").map(str::to_string),
        })
    }

    pub fn to_command(&self) -> RemotingCommand {
        let mut c = RemotingCommand::request(request::PULL_MESSAGE)
            .with_ext("consumerGroup", &self.consumer_group)
            .with_ext("topic", &self.topic)
            .with_ext("queueId", self.queue_id)
            .with_ext("queueOffset", self.queue_offset)
            .with_ext("maxMsgNums", self.max_msg_nums)
            .with_ext("sysFlag", self.sys_flag)
            .with_ext("commitOffset", self.commit_offset)
            .with_ext("suspendTimeoutMillis", self.suspend_timeout_millis)
            .with_ext("subVersion", self.sub_version);
        if let Some(s) = &self.subscription {
            c = c.with_ext("subscription", s);
        }
        if let Some(t) = &self.expression_type {
            c = c.with_ext("expressionType", t);
        }
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v2_send_header_round_trips_through_letters() {
        let h = SendMessageHeader {
            producer_group: "PG".into(),
            topic: "T".into(),
            default_topic: "TBW102".into(),
            default_topic_queue_nums: 4,
            queue_id: 2,
            sys_flag: 0,
            born_timestamp: 1_700_000_000_000,
            flag: 0,
            properties: "TAGS\u{1}A\u{2}".into(),
            reconsume_times: 0,
            unit_mode: false,
            batch: false,
            max_reconsume_times: Some(16),
        };
        let c = h.to_command();
        assert_eq!(c.ext("b"), Some("T"));
        assert_eq!(SendMessageHeader::parse(&c).unwrap().to_owned_header(), h);
    }

    #[test]
    fn v1_send_header_and_missing_fields() {
        let c = RemotingCommand::request(request::SEND_MESSAGE)
            .with_ext("producerGroup", "PG")
            .with_ext("topic", "T")
            .with_ext("queueId", 1);
        let h = SendMessageHeader::parse(&c).unwrap();
        assert_eq!(h.queue_id, 1);
        let missing =
            RemotingCommand::request(request::SEND_MESSAGE).with_ext("producerGroup", "PG");
        assert_eq!(
            SendMessageHeader::parse(&missing),
            Err(ProtoError::MissingField("topic"))
        );
    }

    /// As librocketmq writes a SEND_MESSAGE: booleans as "0"/"1", some numbers as JSON
    /// numbers (which the frame decoder turns into their text).
    #[test]
    fn cpp_client_send_header_parses() {
        let c = RemotingCommand::request(request::SEND_MESSAGE)
            .with_ext("producerGroup", "pg")
            .with_ext("topic", "T")
            .with_ext("queueId", 0)
            .with_ext("defaultTopicQueueNums", 4)
            .with_ext("reconsumeTimes", "0")
            .with_ext("unitMode", "0")
            .with_ext("batch", "0");
        let h = SendMessageHeader::parse(&c).unwrap();
        assert!(!h.unit_mode && !h.batch);
        let batch = c.with_ext("batch", "1").with_ext("unitMode", "TRUE");
        let h = SendMessageHeader::parse(&batch).unwrap();
        assert!(h.unit_mode && h.batch);
    }

    #[test]
    fn pull_header_round_trips() {
        let h = PullMessageHeader {
            consumer_group: "G".into(),
            topic: "T".into(),
            queue_id: 3,
            queue_offset: 10,
            max_msg_nums: 32,
            sys_flag: pull_flag::SUSPEND | pull_flag::COMMIT_OFFSET,
            commit_offset: 9,
            suspend_timeout_millis: 15_000,
            subscription: Some("TagA || TagB".into()),
            sub_version: 1,
            expression_type: Some("TAG".into()),
        };
        assert_eq!(PullMessageHeader::parse(&h.to_command()).unwrap(), h);
    }
}
