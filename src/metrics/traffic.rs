//! Messages in and out, counted on the send and pull paths. Lookups borrow the topic
//! and group names: after a topic's first message nothing is allocated per request.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::RwLock;

use prometheus_client::metrics::histogram::Histogram;

/// RocketMQ 5's `message_type` label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessageType {
    Normal,
    Fifo,
    Delay,
    Transaction,
}

impl MessageType {
    const ALL: [MessageType; 4] = [
        MessageType::Normal,
        MessageType::Fifo,
        MessageType::Delay,
        MessageType::Transaction,
    ];

    pub fn label(self) -> &'static str {
        match self {
            MessageType::Normal => "normal",
            MessageType::Fifo => "fifo",
            MessageType::Delay => "delay",
            MessageType::Transaction => "transaction",
        }
    }
}

/// RocketMQ 5's `rocketmq_message_size` buckets: 1 KiB to 4 MiB.
const MESSAGE_SIZE_BUCKETS: [f64; 6] = [
    1024.0,
    4096.0,
    524_288.0,
    1_048_576.0,
    2_097_152.0,
    4_194_304.0,
];

/// What one topic took in, per message type.
#[derive(Debug)]
pub struct TopicIn {
    messages: [AtomicU64; 4],
    bytes: [AtomicU64; 4],
    sizes: [Histogram; 4],
}

impl Default for TopicIn {
    fn default() -> Self {
        TopicIn {
            messages: Default::default(),
            bytes: Default::default(),
            sizes: std::array::from_fn(|_| Histogram::new(MESSAGE_SIZE_BUCKETS)),
        }
    }
}

/// What one consumer group took from one topic.
#[derive(Debug, Default)]
pub struct GroupOut {
    pub messages: AtomicU64,
    pub bytes: AtomicU64,
}

/// A topic's intake of one message type, as read at a scrape.
pub struct InSample<'a> {
    pub topic: &'a str,
    pub message_type: MessageType,
    pub messages: u64,
    pub bytes: u64,
    pub sizes: &'a Histogram,
}

#[derive(Debug, Default)]
pub struct Traffic {
    topics: RwLock<HashMap<String, TopicIn>>,
    /// topic → consumer group → what it pulled.
    out: RwLock<HashMap<String, HashMap<String, GroupOut>>>,
}

impl Traffic {
    /// Counts messages stored in `topic`, given their body sizes.
    pub fn record_in(&self, topic: &str, message_type: MessageType, body_sizes: &[usize]) {
        let record = |stats: &TopicIn| {
            let i = message_type as usize;
            stats.messages[i].fetch_add(body_sizes.len() as u64, Ordering::Relaxed);
            let total: usize = body_sizes.iter().sum();
            stats.bytes[i].fetch_add(total as u64, Ordering::Relaxed);
            for size in body_sizes {
                stats.sizes[i].observe(*size as f64);
            }
        };
        // Counted under the read lock: the write lock only for a topic's first message.
        if let Some(stats) = self.topics.read().expect("traffic poisoned").get(topic) {
            return record(stats);
        }
        let mut topics = self.topics.write().expect("traffic poisoned");
        record(topics.entry(topic.to_string()).or_default());
    }

    /// Counts messages a pull of `group` returned from `topic` (stored bytes).
    pub fn record_out(&self, topic: &str, group: &str, messages: usize, bytes: usize) {
        let record = |stats: &GroupOut| {
            stats.messages.fetch_add(messages as u64, Ordering::Relaxed);
            stats.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
        };
        if let Some(stats) = self
            .out
            .read()
            .expect("traffic poisoned")
            .get(topic)
            .and_then(|g| g.get(group))
        {
            return record(stats);
        }
        let mut out = self.out.write().expect("traffic poisoned");
        record(
            out.entry(topic.to_string())
                .or_default()
                .entry(group.to_string())
                .or_default(),
        );
    }

    /// Messages taken in and pulled out, every topic and group together.
    pub fn totals(&self) -> (u64, u64) {
        let topics = self.topics.read().expect("traffic poisoned");
        let messages_in = topics
            .values()
            .flat_map(|t| &t.messages)
            .map(|n| n.load(Ordering::Relaxed))
            .sum();
        let out = self.out.read().expect("traffic poisoned");
        let messages_out = out
            .values()
            .flat_map(|groups| groups.values())
            .map(|g| g.messages.load(Ordering::Relaxed))
            .sum();
        (messages_in, messages_out)
    }

    /// Calls `f` with each (topic, message type) that took in messages.
    pub fn each_in(&self, mut f: impl FnMut(InSample<'_>)) {
        let topics = self.topics.read().expect("traffic poisoned");
        let mut names: Vec<&String> = topics.keys().collect();
        names.sort();
        for name in names {
            let stats = &topics[name];
            for t in MessageType::ALL {
                let i = t as usize;
                let messages = stats.messages[i].load(Ordering::Relaxed);
                if messages > 0 {
                    f(InSample {
                        topic: name,
                        message_type: t,
                        messages,
                        bytes: stats.bytes[i].load(Ordering::Relaxed),
                        sizes: &stats.sizes[i],
                    });
                }
            }
        }
    }

    /// Calls `f(topic, group, messages, bytes)` for each pair that pulled messages.
    pub fn each_out(&self, mut f: impl FnMut(&str, &str, u64, u64)) {
        let out = self.out.read().expect("traffic poisoned");
        let mut pairs: Vec<(&String, &String, &GroupOut)> = out
            .iter()
            .flat_map(|(t, groups)| groups.iter().map(move |(g, s)| (t, g, s)))
            .collect();
        pairs.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
        for (topic, group, s) in pairs {
            f(
                topic,
                group,
                s.messages.load(Ordering::Relaxed),
                s.bytes.load(Ordering::Relaxed),
            );
        }
    }
}

/// RocketMQ's `TopicValidator.isSystemTopic`, plus retry and dead-letter topics: what
/// the `is_system` label says.
pub fn is_system_topic(topic: &str) -> bool {
    const SYSTEM: [&str; 6] = [
        "TBW102",
        "SCHEDULE_TOPIC_XXXX",
        "BenchmarkTest",
        "OFFSET_MOVED_EVENT",
        "SELF_TEST_TOPIC",
        "RMQ_SYS_TRACE_TOPIC",
    ];
    SYSTEM.contains(&topic) || topic.starts_with("rmq_sys_") || topic.starts_with("RMQ_SYS_")
}

/// Retry and dead-letter topics (`%RETRY%group`, `%DLQ%group`).
pub fn is_retry_or_dlq(topic: &str) -> bool {
    topic.starts_with(proto::names::RETRY_PREFIX) || topic.starts_with(proto::names::DLQ_PREFIX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_topic_type_and_group() {
        let t = Traffic::default();
        t.record_in("A", MessageType::Normal, &[10, 20]);
        t.record_in("A", MessageType::Delay, &[5000]);
        t.record_in("B", MessageType::Normal, &[1]);
        t.record_out("A", "g1", 2, 300);
        t.record_out("A", "g1", 1, 100);
        let mut seen = Vec::new();
        t.each_in(|s| seen.push((s.topic.to_string(), s.message_type, s.messages, s.bytes)));
        assert_eq!(
            seen,
            vec![
                ("A".into(), MessageType::Normal, 2, 30),
                ("A".into(), MessageType::Delay, 1, 5000),
                ("B".into(), MessageType::Normal, 1, 1),
            ]
        );
        let mut out = Vec::new();
        t.each_out(|topic, group, m, b| out.push((topic.to_string(), group.to_string(), m, b)));
        assert_eq!(out, vec![("A".into(), "g1".into(), 3, 400)]);
    }

    #[test]
    fn system_topics_are_told_apart() {
        assert!(is_system_topic("TBW102"));
        assert!(is_system_topic("RMQ_SYS_TRANS_HALF_TOPIC"));
        assert!(!is_system_topic("orders"));
        assert!(is_retry_or_dlq("%DLQ%g"));
        assert!(!is_retry_or_dlq("orders"));
    }
}
