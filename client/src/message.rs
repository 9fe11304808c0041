//! Messages as applications send and receive them.

use std::collections::BTreeMap;

use bytes::Bytes;
use proto::properties::{holds_separator, keys, Properties};
use proto::MessageRef;

use crate::error::{ClientError, Result};

/// A message to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub topic: String,
    pub body: Bytes,
    pub tags: Option<String>,
    pub keys: Vec<String>,
    pub properties: BTreeMap<String, String>,
    /// Opaque to the broker (RocketMQ `Message.flag`).
    pub flag: i32,
}

impl Message {
    pub fn new(topic: impl Into<String>, body: impl Into<Bytes>) -> Self {
        Message {
            topic: topic.into(),
            body: body.into(),
            tags: None,
            keys: Vec::new(),
            properties: BTreeMap::new(),
            flag: 0,
        }
    }

    pub fn with_tags(mut self, tags: impl Into<String>) -> Self {
        self.tags = Some(tags.into());
        self
    }

    pub fn with_keys(mut self, keys: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.keys = keys.into_iter().map(Into::into).collect();
        self
    }

    pub fn with_property(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.properties.insert(name.into(), value.into());
        self
    }

    /// Delivered `delay_ms` after the broker takes it in (a RocketMQ 5 timer message,
    /// Java's `setDelayTimeMs`); the broker refuses a delay beyond its
    /// `timer_max_delay_sec` (3 days by default).
    pub fn with_timer_delay_ms(self, delay_ms: u64) -> Self {
        self.with_property("TIMER_DELAY_MS", delay_ms.to_string())
    }

    /// Delivered at `epoch_ms` (Java's `setDeliverTimeMs`); a time already past is
    /// delivered at once.
    pub fn with_deliver_time_ms(self, epoch_ms: i64) -> Self {
        self.with_property("TIMER_DELIVER_MS", epoch_ms.to_string())
    }

    /// The encoded property string, with `uniq_key` as UNIQ_KEY. Tags, keys and
    /// properties must not hold the characters that separate properties on the wire.
    pub(crate) fn encoded_properties(&self, uniq_key: &str) -> Result<String> {
        let fields = self.tags.iter().map(|t| ("tags", t.as_str()));
        let fields = fields.chain(self.keys.iter().map(|k| ("key", k.as_str())));
        let fields = fields.chain(self.properties.iter().flat_map(|(name, value)| {
            [
                ("property name", name.as_str()),
                ("property value", value.as_str()),
            ]
        }));
        if let Some((what, text)) = fields.into_iter().find(|(_, s)| holds_separator(s)) {
            return Err(ClientError::Invalid(format!(
                "{what} {text:?} holds \\u0001 or \\u0002, which separate a message's \
                 properties on the wire"
            )));
        }
        let mut p = Properties::new();
        if let Some(tags) = &self.tags {
            p.insert(keys::TAGS, tags.as_str());
        }
        if !self.keys.is_empty() {
            p.insert(keys::KEYS, self.keys.join(" "));
        }
        for (k, v) in &self.properties {
            p.insert(k.as_str(), v.as_str());
        }
        p.insert(keys::UNIQ_KEY, uniq_key);
        Ok(p.into_string())
    }
}

/// A received message with what the broker assigned (RocketMQ `MessageExt`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessageExt {
    pub topic: String,
    /// The broker group it was pulled from (RocketMQ's `MessageExt.brokerName`); empty
    /// when decoded outside a pull.
    pub broker_name: String,
    pub queue_id: u32,
    pub queue_offset: u64,
    pub commitlog_offset: u64,
    pub body: Bytes,
    pub tags: Option<String>,
    pub keys: Vec<String>,
    pub properties: BTreeMap<String, String>,
    /// The producer's unique id (UNIQ_KEY), or the offset id when absent.
    pub msg_id: String,
    /// Store host + CommitLog offset, as RocketMQ prints it.
    pub offset_msg_id: String,
    pub born_timestamp_ms: i64,
    pub store_timestamp_ms: i64,
    pub reconsume_times: i32,
}

impl MessageExt {
    pub fn from_ref(m: &MessageRef<'_>) -> Self {
        let properties: BTreeMap<String, String> = Properties::decode(m.properties_str())
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let offset_msg_id = m.offset_msg_id().to_string();
        MessageExt {
            topic: m.topic().to_string(),
            broker_name: String::new(),
            queue_id: m.queue_id(),
            queue_offset: m.queue_offset(),
            commitlog_offset: m.physical_offset(),
            body: Bytes::copy_from_slice(m.body()),
            tags: properties.get(keys::TAGS).cloned(),
            keys: properties
                .get(keys::KEYS)
                .map(|k| k.split(' ').map(str::to_string).collect())
                .unwrap_or_default(),
            msg_id: properties
                .get(keys::UNIQ_KEY)
                .cloned()
                .unwrap_or_else(|| offset_msg_id.clone()),
            offset_msg_id,
            properties,
            born_timestamp_ms: m.born_timestamp_ms(),
            store_timestamp_ms: m.store_timestamp_ms(),
            reconsume_times: m.reconsume_times(),
        }
    }

    /// Decodes a pull response body: messages back to back.
    pub fn decode_all(mut body: &[u8]) -> Result<Vec<MessageExt>, proto::DecodeError> {
        let mut out = Vec::new();
        while !body.is_empty() {
            let m = MessageRef::parse_checked(body)?;
            out.push(MessageExt::from_ref(&m));
            body = &body[m.total_size()..];
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn properties_encode_in_order_with_the_unique_key_last() {
        let m = Message::new("T", "b")
            .with_tags("TagA")
            .with_keys(["k1", "k2"])
            .with_property("user", "v");
        assert_eq!(
            m.encoded_properties("ID").unwrap(),
            "TAGS\u{1}TagA\u{2}KEYS\u{1}k1 k2\u{2}user\u{1}v\u{2}UNIQ_KEY\u{1}ID\u{2}"
        );
    }

    #[test]
    fn a_separator_in_tags_keys_or_properties_is_refused_with_its_field() {
        let cases = [
            (Message::new("T", "b").with_tags("a\u{1}b"), "tags"),
            (Message::new("T", "b").with_keys(["k\u{2}"]), "key"),
            (
                Message::new("T", "b").with_property("n\u{1}", "v"),
                "property name",
            ),
            (
                Message::new("T", "b").with_property("n", "v\u{2}"),
                "property value",
            ),
        ];
        for (m, field) in cases {
            match m.encoded_properties("ID") {
                Err(ClientError::Invalid(e)) => assert!(e.starts_with(field), "{e}"),
                other => panic!("{field}: expected a refusal, got {other:?}"),
            }
        }
    }
}
