//! Dispatch: what a stored message adds to its ConsumeQueue and to the key index.
//!
//! Three paths store messages — the writer (a plain store), `append_log` (a replicated
//! one) and recovery (re-dispatching the CommitLog after a crash) — and all three must
//! turn a message into the same unit and the same index entries, or a queue read after
//! recovery would differ from the one written live. They all go through
//! [`dispatch_message`], over the few fields of [`MessageView`].

use std::collections::BTreeMap;
use std::sync::Arc;

use proto::properties::keys;
use proto::{MessageRef, NewMessage};

use crate::consume_queue::{ConsumeQueue, CqUnit};
use crate::disk::Disk;
use crate::error::Result;
use crate::index::{key_hash, IndexEntry, KeyIndex};

/// The fields of a stored message that dispatch reads.
#[derive(Clone, Copy, Debug)]
pub(super) struct MessageView<'a> {
    pub topic: &'a str,
    pub queue_id: u32,
    /// What the ConsumeQueue unit holds besides the message's place: see [`tag_code`].
    pub tag_code: i64,
    /// `KEYS`: keys separated by `KEY_SEPARATOR`.
    pub keys: Option<&'a str>,
    pub uniq_key: Option<&'a str>,
    pub store_timestamp_ms: i64,
}

impl<'a> MessageView<'a> {
    /// A message the writer is about to store, stamped at `store_timestamp_ms`.
    pub fn of_new(message: &'a NewMessage, store_timestamp_ms: i64) -> Self {
        MessageView {
            topic: &message.topic,
            queue_id: message.queue_id,
            tag_code: tag_code(
                &message.topic,
                message.tags(),
                message.properties.get(keys::TIMER_OUT_MS),
            ),
            keys: message.properties.get(keys::KEYS),
            uniq_key: message.properties.get(keys::UNIQ_KEY),
            store_timestamp_ms,
        }
    }

    /// A message in the stored layout.
    pub fn of_stored(message: &MessageRef<'a>) -> Self {
        MessageView {
            topic: message.topic(),
            queue_id: message.queue_id(),
            tag_code: tag_code(
                message.topic(),
                message.tags(),
                message.property(keys::TIMER_OUT_MS),
            ),
            keys: message.property(keys::KEYS),
            uniq_key: message.property(keys::UNIQ_KEY),
            store_timestamp_ms: message.store_timestamp_ms(),
        }
    }
}

/// The unit's third field: the Java hash of the message's tag (0 without one), which a
/// pull filters on; in the timer topic, the message's delivery time in epoch ms
/// (`TIMER_OUT_MS`, 0 if missing or malformed), so the timing wheel reads when its
/// queues' messages are due from the units alone, as Java's schedule topic does.
fn tag_code(topic: &str, tags: Option<&str>, timer_out_ms: Option<&str>) -> i64 {
    if topic == proto::names::TIMER_TOPIC {
        return timer_out_ms.and_then(|ms| ms.parse().ok()).unwrap_or(0);
    }
    tags.map_or(0, proto::hash::java_string_hash)
}

/// Where a message's payload landed in the CommitLog.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct StoredAt {
    pub commitlog_offset: u64,
    pub size: u32,
}

/// Turns one stored message into its ConsumeQueue unit and, when `index` is given,
/// appends its index entries there (one per key, and one for its unique key).
pub(super) fn dispatch_message(
    message: &MessageView<'_>,
    at: StoredAt,
    index: Option<&mut Vec<IndexEntry>>,
) -> CqUnit {
    if let Some(out) = index {
        let entry = |key: &str| IndexEntry {
            key_hash: key_hash(message.topic, key),
            commitlog_offset: at.commitlog_offset,
            store_timestamp_ms: message.store_timestamp_ms,
            size: at.size,
        };
        if let Some(keys) = message.keys {
            out.extend(
                keys.split(keys::KEY_SEPARATOR)
                    .filter(|k| !k.is_empty())
                    .map(entry),
            );
        }
        if let Some(uniq) = message.uniq_key {
            out.push(entry(uniq));
        }
    }
    CqUnit {
        commitlog_offset: at.commitlog_offset,
        size: at.size,
        tag_hash: message.tag_code,
    }
}

/// The units and index entries of a batch of freshly appended messages, written
/// together: one ConsumeQueue append per queue, one index append.
#[derive(Default)]
pub(super) struct DispatchBatch<'a> {
    units: BTreeMap<(&'a str, u32), Vec<CqUnit>>,
    entries: Vec<IndexEntry>,
}

impl<'a> DispatchBatch<'a> {
    pub fn add(&mut self, message: &MessageView<'a>, at: StoredAt) {
        let unit = dispatch_message(message, at, Some(&mut self.entries));
        self.units
            .entry((message.topic, message.queue_id))
            .or_default()
            .push(unit);
    }

    /// Appends the units to their queues (`queue` finds or creates one), then the index
    /// entries.
    pub async fn write<D: Disk>(
        self,
        queue: impl Fn(&str, u32) -> Arc<ConsumeQueue<D>>,
        index: &KeyIndex<D>,
    ) -> Result<()> {
        for ((topic, queue_id), units) in self.units {
            queue(topic, queue_id).append(&units).await?;
        }
        index.add(&self.entries).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view<'a>(keys: Option<&'a str>, uniq: Option<&'a str>) -> MessageView<'a> {
        MessageView {
            topic: "T",
            queue_id: 3,
            tag_code: tag_code("T", Some("TagA"), None),
            keys,
            uniq_key: uniq,
            store_timestamp_ms: 42,
        }
    }

    const AT: StoredAt = StoredAt {
        commitlog_offset: 1000,
        size: 120,
    };

    #[test]
    fn a_unit_carries_the_offset_size_and_java_hash_of_the_tag() {
        let unit = dispatch_message(&view(None, None), AT, None);
        assert_eq!(
            unit,
            CqUnit {
                commitlog_offset: 1000,
                size: 120,
                tag_hash: proto::hash::java_string_hash("TagA"),
            }
        );
        assert_eq!(tag_code("T", None, Some("5")), 0);
    }

    #[test]
    fn a_timer_unit_carries_the_delivery_time() {
        let timer = proto::names::TIMER_TOPIC;
        assert_eq!(
            tag_code(timer, Some("TagA"), Some("1700000000123")),
            1_700_000_000_123
        );
        assert_eq!(tag_code(timer, None, Some("soon")), 0);
        assert_eq!(tag_code(timer, None, None), 0);
    }

    #[test]
    fn every_key_and_the_unique_key_get_an_entry_and_empty_keys_none() {
        let mut entries = Vec::new();
        let keys = format!("k1{0}{0}k2", keys::KEY_SEPARATOR);
        dispatch_message(&view(Some(&keys), Some("U")), AT, Some(&mut entries));
        let hashes: Vec<_> = entries.iter().map(|e| e.key_hash).collect();
        assert_eq!(
            hashes,
            [key_hash("T", "k1"), key_hash("T", "k2"), key_hash("T", "U")]
        );
        assert!(entries
            .iter()
            .all(|e| e.commitlog_offset == 1000 && e.size == 120 && e.store_timestamp_ms == 42));
    }

    #[test]
    fn a_batch_groups_units_by_queue_in_order() {
        let mut batch = DispatchBatch::default();
        let other = MessageView {
            queue_id: 4,
            ..view(None, None)
        };
        batch.add(&view(None, Some("a")), AT);
        batch.add(
            &other,
            StoredAt {
                commitlog_offset: 1120,
                size: 10,
            },
        );
        batch.add(
            &view(None, None),
            StoredAt {
                commitlog_offset: 1130,
                size: 10,
            },
        );
        let offsets: Vec<(u32, Vec<u64>)> = batch
            .units
            .iter()
            .map(|((_, q), us)| (*q, us.iter().map(|u| u.commitlog_offset).collect()))
            .collect();
        assert_eq!(offsets, [(3, vec![1000, 1130]), (4, vec![1120])]);
        assert_eq!(batch.entries.len(), 1);
    }
}
