//! Validation of topic and group names (RocketMQ's `TopicValidator`).

/// Prefix of a consumer group's retry topic, `%RETRY%group`.
pub const RETRY_PREFIX: &str = "%RETRY%";
/// Prefix of a consumer group's dead-letter topic, `%DLQ%group`.
pub const DLQ_PREFIX: &str = "%DLQ%";
/// Where the broker keeps delayed messages until due, a queue per delay level.
pub const SCHEDULE_TOPIC: &str = "SCHEDULE_TOPIC_XXXX";
/// Where the broker keeps transactions' half messages until they end.
pub const HALF_TOPIC: &str = "RMQ_SYS_TRANS_HALF_TOPIC";
/// Where the broker keeps timer messages (`TIMER_DELIVER_MS` and the like) until due:
/// the queues of its timing wheel.
pub const TIMER_TOPIC: &str = "rmq_sys_wheel_timer";

/// `%RETRY%group`: where the group's sent-back messages return.
pub fn retry_topic(group: &str) -> String {
    format!("{RETRY_PREFIX}{group}")
}

/// `%DLQ%group`: where the group's messages go after their last retry.
pub fn dlq_topic(group: &str) -> String {
    format!("{DLQ_PREFIX}{group}")
}

/// Longest topic or group name, in bytes.
pub const NAME_SIZE_MAX: usize = 127;

/// Checks a topic or group name: 1..=127 characters from `[%|a-zA-Z0-9_-]`. The error
/// says what is wrong, for the client to show.
pub fn validate_name(kind: &str, name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err(format!("{kind} name is empty"));
    }
    if name.len() > NAME_SIZE_MAX {
        return Err(format!(
            "{kind} name is {} bytes, longer than {NAME_SIZE_MAX}",
            name.len()
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '%' | '|' | '_' | '-')))
    {
        return Err(format!(
            "{kind} name {name:?} contains {c:?}; allowed are letters, digits and %|_-"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_rocketmq_names_and_rejects_others() {
        validate_name("topic", "TopicTest").unwrap();
        validate_name("topic", "%RETRY%group_1").unwrap();
        assert!(validate_name("topic", "").is_err());
        assert!(validate_name("topic", "a/b").unwrap_err().contains("'/'"));
        assert!(validate_name("topic", &"x".repeat(128)).is_err());
        assert!(validate_name("topic", "naïve").is_err());
    }
}
