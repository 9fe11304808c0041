//! Tag subscription expressions: `*`, `TagA`, `TagA || TagB`.

use std::collections::BTreeSet;

/// A parsed subscription (RocketMQ `SubscriptionData` for expression type TAG).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TagFilter {
    /// `None` subscribes to every tag.
    tags: Option<BTreeSet<String>>,
    expression: String,
}

impl TagFilter {
    pub fn parse(expression: &str) -> Self {
        let trimmed = expression.trim();
        if trimmed.is_empty() || trimmed == "*" {
            return TagFilter {
                tags: None,
                expression: "*".into(),
            };
        }
        let tags: BTreeSet<String> = trimmed
            .split("||")
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_string)
            .collect();
        if tags.is_empty() {
            return TagFilter {
                tags: None,
                expression: "*".into(),
            };
        }
        TagFilter {
            tags: Some(tags),
            expression: trimmed.to_string(),
        }
    }

    pub fn expression(&self) -> &str {
        &self.expression
    }

    pub fn tags(&self) -> Vec<String> {
        self.tags.iter().flatten().cloned().collect()
    }

    /// Tag hash codes, as the broker filters by them.
    pub fn codes(&self) -> Vec<i32> {
        self.tags
            .iter()
            .flatten()
            .map(|t| proto::hash::java_string_hash(t) as i32)
            .collect()
    }

    /// Whether a message with `tag` matches (the client re-checks after the broker's
    /// hash filter, since hashes can collide).
    pub fn matches(&self, tag: Option<&str>) -> bool {
        match &self.tags {
            None => true,
            Some(tags) => tag.is_some_and(|t| tags.contains(t)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rocketmq_expressions() {
        assert!(TagFilter::parse("*").matches(None));
        let f = TagFilter::parse(" TagA || TagB ");
        assert!(f.matches(Some("TagA")));
        assert!(f.matches(Some("TagB")));
        assert!(!f.matches(Some("TagC")));
        assert!(!f.matches(None));
        assert_eq!(f.tags(), vec!["TagA", "TagB"]);
        assert_eq!(f.codes()[0], 2_598_919);
        assert_eq!(TagFilter::parse("").expression(), "*");
    }
}
