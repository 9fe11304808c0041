//! A push consumer's failed messages go back to the broker (CONSUMER_SEND_MSG_BACK), as
//! RocketMQ's concurrent consumers send them: the broker stores a copy that comes back
//! through `%RETRY%group` after a delay growing with each reconsumption, and moves it to
//! `%DLQ%group` after the group's `maxReconsumeTimes`.

use proto::remoting::codes::request;
use proto::remoting::RemotingCommand;

use crate::message::MessageExt;

pub use proto::names::{dlq_topic, retry_topic, DLQ_PREFIX, RETRY_PREFIX};
pub use proto::properties::keys::{ORIGIN_MESSAGE_ID, RETRY_TOPIC};
/// A copy sent to a retry topic carries its reconsume times here; the producer moves it
/// into the send's header (Java's `PROPERTY_RECONSUME_TIME`).
pub const RECONSUME_TIME: &str = "RECONSUME_TIME";
/// And its bound (Java's `PROPERTY_MAX_RECONSUME_TIMES`), likewise.
pub const MAX_RECONSUME_TIMES: &str = "MAX_RECONSUME_TIMES";

/// A message read from the group's retry topic shows the topic it was sent to, as Java's
/// `resetRetryAndNamespace` does; its queue and offset stay the retry queue's.
pub fn restore_retry_topic(message: &mut MessageExt, group: &str) {
    if message.topic.strip_prefix(RETRY_PREFIX) != Some(group) {
        return;
    }
    if let Some(topic) = message.properties.get(RETRY_TOPIC) {
        message.topic = topic.clone();
    }
}

/// CONSUMER_SEND_MSG_BACK for `message` (found by its CommitLog offset on the master of
/// the broker group it was pulled from). Delay level 0 lets the broker choose
/// (3 + reconsume times); without `max_reconsume_times` the group's `retryMaxTimes`
/// applies.
pub fn send_back_request(
    message: &MessageExt,
    group: &str,
    max_reconsume_times: Option<i32>,
) -> RemotingCommand {
    let origin = message
        .properties
        .get(ORIGIN_MESSAGE_ID)
        .unwrap_or(&message.msg_id);
    let request = RemotingCommand::request(request::CONSUMER_SEND_MSG_BACK)
        .with_ext("offset", message.commitlog_offset)
        .with_ext("group", group)
        .with_ext("delayLevel", 0)
        .with_ext("originMsgId", origin)
        .with_ext("originTopic", &message.topic)
        .with_ext("unitMode", false);
    match max_reconsume_times {
        Some(n) => request.with_ext("maxReconsumeTimes", n),
        None => request,
    }
}

/// What a consumer sends to `%RETRY%group` itself when the broker would not take a
/// failed message back, as Java's `sendMessageBack` falls back to: the message with
/// its properties, its first topic and id, one more reconsumption, and the delay level
/// the broker would have chosen (3 + reconsume times). The broker sends it to
/// `%DLQ%group` instead once it has been reconsumed more than the bound.
pub fn fallback_copy(
    message: &MessageExt,
    group: &str,
    max_reconsume_times: Option<i32>,
) -> crate::message::Message {
    let origin = message
        .properties
        .get(ORIGIN_MESSAGE_ID)
        .unwrap_or(&message.msg_id)
        .clone();
    let mut copy = crate::message::Message::new(retry_topic(group), message.body.clone());
    copy.tags = message.tags.clone();
    copy.keys = message.keys.clone();
    for (name, value) in &message.properties {
        if !matches!(name.as_str(), "TAGS" | "KEYS" | "UNIQ_KEY" | "TRAN_MSG") {
            copy.properties.insert(name.clone(), value.clone());
        }
    }
    let mut copy = copy
        .with_property(RETRY_TOPIC, message.topic.as_str())
        .with_property(ORIGIN_MESSAGE_ID, origin)
        .with_property(RECONSUME_TIME, (message.reconsume_times + 1).to_string())
        .with_property("DELAY", (3 + message.reconsume_times).to_string());
    if let Some(n) = max_reconsume_times {
        copy = copy.with_property(MAX_RECONSUME_TIMES, n.to_string());
    }
    copy
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(topic: &str) -> MessageExt {
        MessageExt {
            topic: topic.into(),
            broker_name: "broker-a".into(),
            queue_id: 0,
            queue_offset: 7,
            commitlog_offset: 4096,
            body: bytes::Bytes::from_static(b"b"),
            tags: None,
            keys: Vec::new(),
            properties: Default::default(),
            msg_id: "UNIQ".into(),
            offset_msg_id: "7F00000100002A9F0000000000001000".into(),
            born_timestamp_ms: 0,
            store_timestamp_ms: 0,
            reconsume_times: 0,
        }
    }

    #[test]
    fn a_fallback_copy_counts_one_more_reconsumption_under_the_first_id() {
        let mut failed = message("Orders");
        failed.reconsume_times = 2;
        failed.tags = Some("paid".into());
        failed.properties.insert("tenant".into(), "acme".into());
        failed.properties.insert("UNIQ_KEY".into(), "UNIQ".into());
        let copy = fallback_copy(&failed, "Workers", Some(5));
        assert_eq!(copy.topic, "%RETRY%Workers");
        assert_eq!(copy.tags.as_deref(), Some("paid"));
        let props: Vec<(&str, &str)> = copy
            .properties
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            props,
            vec![
                ("DELAY", "5"),
                ("MAX_RECONSUME_TIMES", "5"),
                ("ORIGIN_MESSAGE_ID", "UNIQ"),
                ("RECONSUME_TIME", "3"),
                ("RETRY_TOPIC", "Orders"),
                ("tenant", "acme"),
            ]
        );
        assert!(!fallback_copy(&failed, "Workers", None)
            .properties
            .contains_key(MAX_RECONSUME_TIMES));
    }

    #[test]
    fn a_retried_message_shows_its_first_topic() {
        let mut retried = message("%RETRY%Workers");
        retried
            .properties
            .insert(RETRY_TOPIC.into(), "Orders".into());
        restore_retry_topic(&mut retried, "Workers");
        assert_eq!(retried.topic, "Orders");
        // Another group's retry topic, or a plain topic, is left alone.
        let mut other = message("%RETRY%Others");
        other.properties.insert(RETRY_TOPIC.into(), "Orders".into());
        restore_retry_topic(&mut other, "Workers");
        assert_eq!(other.topic, "%RETRY%Others");
        let mut plain = message("Orders");
        restore_retry_topic(&mut plain, "Workers");
        assert_eq!(plain.topic, "Orders");
    }

    #[test]
    fn a_send_back_names_the_stored_copy_and_the_first_id() {
        let first = message("Orders");
        let r = send_back_request(&first, "Workers", None);
        assert_eq!(r.code, request::CONSUMER_SEND_MSG_BACK);
        assert_eq!(r.ext("offset"), Some("4096"));
        assert_eq!(r.ext("group"), Some("Workers"));
        assert_eq!(r.ext("delayLevel"), Some("0"));
        assert_eq!(r.ext("originMsgId"), Some("UNIQ"));
        assert_eq!(r.ext("originTopic"), Some("Orders"));
        assert_eq!(r.ext("maxReconsumeTimes"), None);
        let mut again = message("Orders");
        again
            .properties
            .insert(ORIGIN_MESSAGE_ID.into(), "FIRST".into());
        let r = send_back_request(&again, "Workers", Some(3));
        assert_eq!(r.ext("originMsgId"), Some("FIRST"));
        assert_eq!(r.ext("maxReconsumeTimes"), Some("3"));
    }
}
