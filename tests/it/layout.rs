//! The store serves messages byte for byte in the layout `proto` defines.

use proto::properties::keys;
use proto::{MessageRef, NewMessage};
use store::{FlushMode, GetStatus, MessageStore, SimDisk, SimDiskConfig, StoreConfig};

#[tokio::test]
async fn stored_bytes_decode_as_sent() {
    let disk = SimDisk::new(SimDiskConfig::reliable(1));
    let config = StoreConfig {
        flush_disk_type: FlushMode::Sync,
        ..StoreConfig::default()
    };
    let store = MessageStore::open(disk, config.clone()).await.unwrap();
    let mut sent = NewMessage::new("TopicTest", 2, &b"hello"[..]);
    sent.properties.insert(keys::TAGS, "TagA");
    sent.properties.insert(keys::KEYS, "order-7");
    sent.born_timestamp_ms = 1_700_000_000_000;
    let put = store.put_message(sent.clone()).await.unwrap();

    let got = store
        .get_messages("TopicTest", 2, 0, 32, |_| true)
        .await
        .unwrap();
    assert_eq!(got.status, GetStatus::Found);
    let message = MessageRef::parse_checked(&got.messages[0]).unwrap();
    assert_eq!(message.to_new_message(), sent);
    assert_eq!(message.physical_offset(), put.physical_offset);
    assert_eq!(message.queue_offset(), put.queue_offset);
    assert_eq!(message.store_host(), config.store_host);
    assert_eq!(message.offset_msg_id(), put.msg_id);
    // The msg id names the offset the store reads by.
    let by_id = store
        .message_at(put.msg_id.physical_offset)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(by_id, got.messages[0]);
}
