//! Helpers shared by the store's scenario tests (`store.rs`, `dispatch_faults.rs`).

#![allow(dead_code)] // each test crate uses its own subset

use bytes::Bytes;
use proto::message::StoreFields;
use proto::properties::keys;
use proto::{MessageRef, NewMessage};
use store::{Disk, FlushMode, GetStatus, LogPayload, LogRecord, MessageStore, StoreConfig};

/// Small files, so that tests cross segment and file boundaries after a few messages.
pub fn config(flush: FlushMode) -> StoreConfig {
    StoreConfig {
        flush_disk_type: flush,
        flush_interval_ms: 10,
        checkpoint_interval_ms: 50,
        commitlog_segment_size: 4096,
        consume_queue_units_per_file: 8,
        index_entries_per_file: 16,
        message_size_max: 1024,
        write_batch_size_max: 2048,
        ..StoreConfig::default()
    }
}

pub fn message(topic: &str, queue_id: u32, body: &str) -> NewMessage {
    let mut m = NewMessage::new(topic, queue_id, body.as_bytes().to_vec());
    m.properties.insert(keys::KEYS, format!("key-{body}"));
    m
}

pub async fn bodies<D: Disk>(store: &MessageStore<D>, topic: &str, queue_id: u32) -> Vec<String> {
    let mut out = Vec::new();
    let mut offset = store.min_offset(topic, queue_id);
    loop {
        let got = store
            .get_messages(topic, queue_id, offset, 64, |_| true)
            .await
            .unwrap();
        if got.status != GetStatus::Found {
            return out;
        }
        for bytes in &got.messages {
            let m = MessageRef::parse_checked(bytes).unwrap();
            assert_eq!(m.topic(), topic);
            assert_eq!(m.queue_id(), queue_id);
            out.push(String::from_utf8(m.body().to_vec()).unwrap());
        }
        offset = got.next_offset;
    }
}

/// A new Raft entry of `term` at `index`, as a leader (replica 1) proposes it: messages
/// to `T:queue_id` with `bodies`, in the stored layout with offsets not yet assigned.
pub fn entry_at(
    term: u64,
    index: u64,
    queue_id: u32,
    bodies: &[&str],
    store_timestamp_ms: i64,
) -> LogRecord {
    let encode = |body: &&str| {
        let m = NewMessage::new("T", queue_id, body.as_bytes().to_vec());
        let mut bytes = Vec::new();
        let fields = StoreFields {
            queue_offset: 0,
            physical_offset: 0,
            store_timestamp_ms,
            store_host: "10.0.0.1:10911".parse().unwrap(),
        };
        m.encode_into(&fields, &mut bytes).unwrap();
        Bytes::from(bytes)
    };
    LogRecord {
        term,
        leader: 1,
        index,
        payload: LogPayload::Messages {
            messages: bodies.iter().map(encode).collect(),
            assigned: false,
        },
    }
}
