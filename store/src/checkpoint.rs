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

use crate::disk::{read_exact_at, Disk, DiskFile};
use crate::error::{IoContext, Result};

pub const CHECKPOINT_MAGIC: u32 = 0x524D_5143;
pub const CHECKPOINT_SIZE: usize = 40;
const _: () = assert!(CHECKPOINT_SIZE == 4 + 4 + 8 + 8 + 8 + 8);

const SLOTS: [&str; 2] = ["checkpoint/0", "checkpoint/1"];

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Checkpoint {
    pub sequence: u64,
    pub commitlog_offset: u64,
    pub dispatch_offset: u64,
    pub timestamp_ms: i64,
}

impl Checkpoint {
    fn encode(&self) -> [u8; CHECKPOINT_SIZE] {
        assert!(
            self.dispatch_offset <= self.commitlog_offset,
            "dispatch runs ahead of durable log"
        );
        let mut out = [0u8; CHECKPOINT_SIZE];
        out[0..4].copy_from_slice(&CHECKPOINT_MAGIC.to_be_bytes());
        out[8..16].copy_from_slice(&self.sequence.to_be_bytes());
        out[16..24].copy_from_slice(&self.commitlog_offset.to_be_bytes());
        out[24..32].copy_from_slice(&self.dispatch_offset.to_be_bytes());
        out[32..40].copy_from_slice(&self.timestamp_ms.to_be_bytes());
        let crc = crc32c::crc32c(&out[8..]);
        out[4..8].copy_from_slice(&crc.to_be_bytes());
        out
    }

    fn decode(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != CHECKPOINT_SIZE {
            return None;
        }
        let u64_at = |at: usize| u64::from_be_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
        let magic = u32::from_be_bytes(bytes[0..4].try_into().expect("4 bytes"));
        let crc = u32::from_be_bytes(bytes[4..8].try_into().expect("4 bytes"));
        if magic != CHECKPOINT_MAGIC || crc != crc32c::crc32c(&bytes[8..]) {
            return None;
        }
        let checkpoint = Checkpoint {
            sequence: u64_at(8),
            commitlog_offset: u64_at(16),
            dispatch_offset: u64_at(24),
            timestamp_ms: u64_at(32) as i64,
        };
        (checkpoint.dispatch_offset <= checkpoint.commitlog_offset).then_some(checkpoint)
    }
}

/// Reads the newest valid slot; a store that never wrote one starts from zero.
pub async fn load<D: Disk>(disk: &D) -> Result<Checkpoint> {
    let mut best: Option<Checkpoint> = None;
    for slot in SLOTS {
        let file = match disk.open(slot, false).await {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e).context(|| format!("open {slot}")),
        };
        if file.len() != CHECKPOINT_SIZE as u64 {
            tracing::warn!(
                slot,
                len = file.len(),
                "ignoring checkpoint slot of the wrong size"
            );
            continue;
        }
        let mut buf = [0u8; CHECKPOINT_SIZE];
        read_exact_at(&file, 0, &mut buf)
            .await
            .context(|| format!("read {slot}"))?;
        match Checkpoint::decode(&buf) {
            Some(c) if best.is_none_or(|b| c.sequence > b.sequence) => best = Some(c),
            Some(_) => {}
            None => tracing::warn!(slot, "ignoring damaged checkpoint slot"),
        }
    }
    Ok(best.unwrap_or_default())
}

/// Writes `checkpoint` durably into the slot its sequence selects, so the other slot
/// keeps the previous one until this write is synced.
pub async fn store<D: Disk>(disk: &D, checkpoint: &Checkpoint) -> Result<()> {
    let slot = SLOTS[(checkpoint.sequence % 2) as usize];
    let file = disk
        .open(slot, true)
        .await
        .context(|| format!("open {slot}"))?;
    file.truncate(0)
        .await
        .context(|| format!("truncate {slot}"))?;
    file.append(&checkpoint.encode())
        .await
        .context(|| format!("write {slot}"))?;
    file.sync().await.context(|| format!("sync {slot}"))
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
