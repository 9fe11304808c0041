//! Validation of topic and group names (RocketMQ's `TopicValidator`).

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
