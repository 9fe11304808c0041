//! A small durable value kept in two slot files written alternately, so a crash while
//! writing one leaves the other intact. The checkpoint and Raft's vote use it.
//!
//! ```text
//! offset size field
//!      0    4 magic     the owner's
//!      4    4 crc32c    of bytes [8, len)
//!      8    8 sequence  bumped by every write; the higher valid slot wins
//!     16    n payload   the owner's encoding
//! ```

use crate::disk::{read_exact_at, Disk, DiskFile};
use crate::error::{IoContext, Result};

pub const SLOT_HEADER_SIZE: usize = 16;
/// Slots are small (a vote, a checkpoint, consumer offsets); a larger file is damage.
const SLOT_SIZE_MAX: u64 = 64 << 20;

#[derive(Clone, Copy, Debug)]
pub struct SlotFile {
    pub names: [&'static str; 2],
    pub magic: u32,
}

impl SlotFile {
    /// The payload of the newest valid slot and its sequence; `None` when neither slot
    /// holds one. A damaged slot is skipped with a warning.
    pub async fn load<D: Disk>(&self, disk: &D) -> Result<Option<(u64, Vec<u8>)>> {
        let mut best: Option<(u64, Vec<u8>)> = None;
        for slot in self.names {
            let file = match disk.open(slot, false).await {
                Ok(file) => file,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e).context(|| format!("open {slot}")),
            };
            let len = file.len();
            if !(SLOT_HEADER_SIZE as u64..=SLOT_SIZE_MAX).contains(&len) {
                tracing::warn!(slot, len, "ignoring a slot of impossible size");
                continue;
            }
            let mut buf = vec![0u8; len as usize];
            read_exact_at(&file, 0, &mut buf)
                .await
                .context(|| format!("read {slot}"))?;
            match self.decode(&buf) {
                Some((seq, payload)) if best.as_ref().is_none_or(|(b, _)| seq > *b) => {
                    best = Some((seq, payload.to_vec()))
                }
                Some(_) => {}
                None => tracing::warn!(slot, "ignoring a damaged slot"),
            }
        }
        Ok(best)
    }

    /// Writes `payload` durably into the slot `sequence` selects, so the other slot keeps
    /// the previous value until this write is synced.
    pub async fn store<D: Disk>(&self, disk: &D, sequence: u64, payload: &[u8]) -> Result<()> {
        let slot = self.names[(sequence % 2) as usize];
        let file = disk
            .open(slot, true)
            .await
            .context(|| format!("open {slot}"))?;
        file.truncate(0)
            .await
            .context(|| format!("truncate {slot}"))?;
        file.append(&self.encode(sequence, payload))
            .await
            .context(|| format!("write {slot}"))?;
        file.sync().await.context(|| format!("sync {slot}"))
    }

    pub fn encode(&self, sequence: u64, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(SLOT_HEADER_SIZE + payload.len());
        out.extend_from_slice(&self.magic.to_be_bytes());
        out.extend_from_slice(&[0; 4]);
        out.extend_from_slice(&sequence.to_be_bytes());
        out.extend_from_slice(payload);
        assert!(out.len() as u64 <= SLOT_SIZE_MAX, "slot payload too large");
        let crc = crc32c::crc32c(&out[8..]);
        out[4..8].copy_from_slice(&crc.to_be_bytes());
        out
    }

    fn decode<'a>(&self, bytes: &'a [u8]) -> Option<(u64, &'a [u8])> {
        let magic = u32::from_be_bytes(bytes.get(0..4)?.try_into().ok()?);
        let crc = u32::from_be_bytes(bytes.get(4..8)?.try_into().ok()?);
        let sequence = u64::from_be_bytes(bytes.get(8..16)?.try_into().ok()?);
        (magic == self.magic && crc == crc32c::crc32c(&bytes[8..]))
            .then(|| (sequence, &bytes[SLOT_HEADER_SIZE..]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk::{SimDisk, SimDiskConfig};

    const SLOTS: SlotFile = SlotFile {
        names: ["t/0", "t/1"],
        magic: 0x5445_5354,
    };

    #[tokio::test]
    async fn newest_valid_slot_wins_and_survives_a_damaged_one() {
        let disk = SimDisk::new(SimDiskConfig::reliable(1));
        assert_eq!(SLOTS.load(&disk).await.unwrap(), None);
        SLOTS.store(&disk, 1, b"one").await.unwrap();
        SLOTS.store(&disk, 2, b"two!").await.unwrap();
        assert_eq!(
            SLOTS.load(&disk).await.unwrap(),
            Some((2, b"two!".to_vec()))
        );
        disk.corrupt("t/0", 17, 0xFF).unwrap();
        assert_eq!(SLOTS.load(&disk).await.unwrap(), Some((1, b"one".to_vec())));
    }
}
