//! A consumer group's dead letters (`%DLQ%group`, readable as any topic, as RocketMQ's
//! are since 4.9.2): reading them, and the copies that send one again.
//!
//! A dead letter is not removed when it is resent (RocketMQ keeps them too, until
//! retention deletes them); resending twice delivers twice.

use crate::admin::Admin;
use crate::error::{ClientError, Result};
use crate::message::{Message, MessageExt};
use crate::pull::{PullConsumer, PullStatus};
use crate::send_back::{dlq_topic, retry_topic, RETRY_TOPIC};

/// Properties the brokers and clients set (Java's `MessageConst.STRING_HASH_SET`, and
/// RocketMQ 5's timer and DLQ ones): a resent copy carries only the application's own.
const SYSTEM_PROPERTIES: &[&str] = &[
    "KEYS",
    "TAGS",
    "WAIT",
    "DELAY",
    "RETRY_TOPIC",
    "REAL_TOPIC",
    "REAL_QID",
    "TRAN_MSG",
    "PGROUP",
    "MIN_OFFSET",
    "MAX_OFFSET",
    "BUYER_ID",
    "ORIGIN_MESSAGE_ID",
    "TRANSFER_FLAG",
    "CORRECTION_FLAG",
    "MQ2_FLAG",
    "RECONSUME_TIME",
    "MSG_REGION",
    "TRACE_ON",
    "UNIQ_KEY",
    "MAX_RECONSUME_TIMES",
    "CONSUME_START_TIME",
    "TRAN_PREPARED_QUEUE_OFFSET",
    "TRANSACTION_CHECK_TIMES",
    "CHECK_IMMUNITY_TIME_IN_SECONDS",
    "INSTANCE_ID",
    "CORRELATION_ID",
    "REPLY_TO_CLIENT",
    "TTL",
    "ARRIVE_TIME",
    "PUSH_REPLY_TIME",
    "CLUSTER",
    "MSG_TYPE",
    "__transactionId__",
    "TIMER_DELIVER_MS",
    "TIMER_DELAY_SEC",
    "TIMER_DELAY_MS",
    "TIMER_OUT_MS",
    "TIMER_ENQUEUE_MS",
    "TIMER_DEQUEUE_MS",
    "TIMER_ROLL_TIMES",
    "TIMER_DEL_UNIQKEY",
    "DLQ_ORIGIN_TOPIC",
    "DLQ_ORIGIN_MESSAGE_ID",
];

/// The topic a dead letter was first sent to.
pub fn origin_topic(dead: &MessageExt) -> &str {
    dead.properties
        .get(RETRY_TOPIC)
        .map_or(dead.topic.as_str(), String::as_str)
}

/// Up to `max` of `group`'s dead letters, oldest first per queue; none when the group
/// has no dead-letter topic.
pub async fn read(
    admin: &Admin,
    reader: &PullConsumer,
    group: &str,
    max: usize,
) -> Result<Vec<MessageExt>> {
    let stats = match admin.topic_stats(&dlq_topic(group)).await {
        Ok(stats) => stats,
        Err(ClientError::NoRoute(_)) => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut letters = Vec::new();
    for (queue, offsets) in stats {
        let mut offset = offsets.min_offset;
        while letters.len() < max && offset < offsets.max_offset {
            let batch = (max - letters.len()).min(32) as u32;
            let pulled = reader.pull(&queue, "*", offset, batch).await?;
            if pulled.status != PullStatus::Found {
                break;
            }
            offset = pulled.next_begin_offset;
            letters.extend(pulled.messages);
        }
    }
    letters.truncate(max);
    Ok(letters)
}

/// A copy of `dead` for `group` alone: sent to `%RETRY%group`, it is consumed again by
/// that group only, showing its first topic, with its retries counted from zero.
pub fn copy_for_group(dead: &MessageExt, group: &str) -> Message {
    copy_to_topic(dead, &retry_topic(group)).with_property(RETRY_TOPIC, origin_topic(dead))
}

/// A copy of `dead` (body, tags, keys, the application's properties) for `topic`: every
/// group subscribed to it gets it.
pub fn copy_to_topic(dead: &MessageExt, topic: &str) -> Message {
    let mut copy = Message::new(topic, dead.body.clone()).with_keys(dead.keys.clone());
    if let Some(tags) = &dead.tags {
        copy = copy.with_tags(tags.clone());
    }
    for (name, value) in &dead.properties {
        if !SYSTEM_PROPERTIES.contains(&name.as_str()) {
            copy = copy.with_property(name.clone(), value.clone());
        }
    }
    copy
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dead_letter() -> MessageExt {
        let properties = [
            ("RETRY_TOPIC", "Orders"),
            ("ORIGIN_MESSAGE_ID", "FIRST"),
            ("UNIQ_KEY", "AGAIN"),
            ("TAGS", "paid"),
            ("KEYS", "order-7"),
            ("tenant", "acme"),
        ];
        MessageExt {
            topic: "%DLQ%Workers".into(),
            broker_name: "broker-a".into(),
            queue_id: 0,
            queue_offset: 0,
            commitlog_offset: 0,
            body: bytes::Bytes::from_static(b"order 7"),
            tags: Some("paid".into()),
            keys: vec!["order-7".into()],
            properties: properties
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
            msg_id: "AGAIN".into(),
            offset_msg_id: String::new(),
            born_timestamp_ms: 0,
            store_timestamp_ms: 0,
            reconsume_times: 17,
        }
    }

    #[test]
    fn a_copy_for_the_group_goes_to_its_retry_topic_naming_the_first_topic() {
        let copy = copy_for_group(&dead_letter(), "Workers");
        assert_eq!(copy.topic, "%RETRY%Workers");
        assert_eq!(&copy.body[..], b"order 7");
        assert_eq!(copy.tags.as_deref(), Some("paid"));
        assert_eq!(copy.keys, vec!["order-7".to_string()]);
        let props: Vec<(&str, &str)> = copy
            .properties
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(props, vec![("RETRY_TOPIC", "Orders"), ("tenant", "acme")]);
        assert_eq!(origin_topic(&dead_letter()), "Orders");
    }

    #[test]
    fn a_copy_to_a_topic_keeps_only_the_applications_properties() {
        let copy = copy_to_topic(&dead_letter(), "Orders");
        assert_eq!(copy.topic, "Orders");
        assert_eq!(copy.properties.len(), 1, "{:?}", copy.properties);
        assert_eq!(
            copy.properties.get("tenant").map(String::as_str),
            Some("acme")
        );
    }
}
