//! The checkpoint: how far recovery can trust what is on disk without scanning it.
//!
//! Two slots (`checkpoint/0`, `checkpoint/1`) are written alternately, each holding one
//! CRC-protected record, so a crash while writing one leaves the other intact (RocketMQ
//! keeps a single `checkpoint` file in a memory map; two slots avoid a torn one).
//!
//! ```text
//! offset size field
//!      0    4 magic            CHECKPOINT_MAGIC ("RMQC")
//!      4    4 crc32c           of bytes [8, 40)
//!      8    8 sequence         bumped by every write; the higher valid slot wins
//!     16    8 commitlog_offset every CommitLog byte below it was synced
//!     24    8 dispatch_offset  ConsumeQueue and index entries of every record below it
//!                              were synced; never above commitlog_offset
//!     32    8 timestamp_ms     when it was written
//! ```

use crate::disk::Disk;
use crate::error::Result;
use crate::slot_file::{SlotFile, SLOT_HEADER_SIZE};

pub const CHECKPOINT_MAGIC: u32 = 0x524D_5143;
pub const CHECKPOINT_SIZE: usize = 40;
const _: () = assert!(CHECKPOINT_SIZE == SLOT_HEADER_SIZE + 8 + 8 + 8);

const SLOTS: SlotFile = SlotFile {
    names: ["checkpoint/0", "checkpoint/1"],
    magic: CHECKPOINT_MAGIC,
};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Checkpoint {
    pub sequence: u64,
    pub commitlog_offset: u64,
    pub dispatch_offset: u64,
    pub timestamp_ms: i64,
}

impl Checkpoint {
    fn encode_payload(&self) -> [u8; 24] {
        assert!(
            self.dispatch_offset <= self.commitlog_offset,
            "dispatch runs ahead of durable log"
        );
        let mut out = [0u8; 24];
        out[0..8].copy_from_slice(&self.commitlog_offset.to_be_bytes());
        out[8..16].copy_from_slice(&self.dispatch_offset.to_be_bytes());
        out[16..24].copy_from_slice(&self.timestamp_ms.to_be_bytes());
        out
    }

    fn decode(sequence: u64, payload: &[u8]) -> Option<Self> {
        let u64_at = |at: usize| {
            Some(u64::from_be_bytes(
                payload.get(at..at + 8)?.try_into().ok()?,
            ))
        };
        if payload.len() != 24 {
            return None;
        }
        let checkpoint = Checkpoint {
            sequence,
            commitlog_offset: u64_at(0)?,
            dispatch_offset: u64_at(8)?,
            timestamp_ms: u64_at(16)? as i64,
        };
        (checkpoint.dispatch_offset <= checkpoint.commitlog_offset).then_some(checkpoint)
    }
}

/// Reads the newest valid slot; a store that never wrote one starts from zero.
pub async fn load<D: Disk>(disk: &D) -> Result<Checkpoint> {
    let Some((sequence, payload)) = SLOTS.load(disk).await? else {
        return Ok(Checkpoint::default());
    };
    match Checkpoint::decode(sequence, &payload) {
        Some(checkpoint) => Ok(checkpoint),
        None => {
            tracing::warn!(
                sequence,
                "ignoring a checkpoint whose fields are inconsistent"
            );
            Ok(Checkpoint::default())
        }
    }
}

/// Writes `checkpoint` durably into the slot its sequence selects, so the other slot
/// keeps the previous one until this write is synced.
pub async fn store<D: Disk>(disk: &D, checkpoint: &Checkpoint) -> Result<()> {
    SLOTS
        .store(disk, checkpoint.sequence, &checkpoint.encode_payload())
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk::{SimDisk, SimDiskConfig};

    #[tokio::test]
    async fn newest_valid_slot_wins_and_survives_a_torn_write() {
        let disk = SimDisk::new(SimDiskConfig::reliable(1));
        assert_eq!(load(&disk).await.unwrap(), Checkpoint::default());
        let c1 = Checkpoint {
            sequence: 1,
            commitlog_offset: 100,
            dispatch_offset: 50,
            timestamp_ms: 7,
        };
        let c2 = Checkpoint {
            sequence: 2,
            commitlog_offset: 200,
            dispatch_offset: 200,
            timestamp_ms: 8,
        };
        store(&disk, &c1).await.unwrap();
        store(&disk, &c2).await.unwrap();
        assert_eq!(load(&disk).await.unwrap(), c2);
        // Damage the newer slot: the older one is used.
        disk.corrupt("checkpoint/0", 20, 0xFF).unwrap();
        assert_eq!(load(&disk).await.unwrap(), c1);
    }
}
