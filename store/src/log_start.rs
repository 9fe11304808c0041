//! Where a replicated CommitLog begins once its oldest entries are gone.
//!
//! A Raft log whose oldest segments retention deleted, or that a follower reset to
//! install a snapshot, no longer starts at entry 1 and CommitLog offset 0. Raft must
//! then know the log id of the last entry before the first one stored — its term
//! cannot be read from the records that are left — and a replica that catches up from
//! a snapshot must know the offsets at which the log and every ConsumeQueue continue.
//! The marker says all of it; it is written durably *before* the files it describes
//! are deleted, so a crash in between leaves a marker that recovery finishes
//! (segments below `base_offset` are deleted when the store opens).
//!
//! Two slot files (`log-start/{0,1}`) hold the newest marker, as the checkpoint's do.

use serde::{Deserialize, Serialize};

use crate::disk::Disk;
use crate::error::{Result, StoreError};
use crate::record::LogPosition;
use crate::slot_file::SlotFile;
use crate::versioned;

const SLOTS: SlotFile = SlotFile {
    names: ["log-start/0", "log-start/1"],
    magic: 0x524D_514C, // "RMQL"
};

/// The layout of [`LogStart`] (see [`crate::versioned`]).
const LAYOUT_VERSION: u8 = 1;

/// The start of a replicated log after its oldest entries were deleted.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogStart {
    /// CommitLog offset of the first stored record: a segment base.
    pub base_offset: u64,
    /// Log id of the last entry before it (record index: Raft index + 1).
    pub prev: LogPosition,
    /// Queue offset each ConsumeQueue continues at: that of its first message at or
    /// after `base_offset`, or its max offset when it has none there.
    pub queues: Vec<QueueStart>,
}

/// Where one ConsumeQueue continues in a log that starts at a [`LogStart`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueStart {
    pub topic: String,
    pub queue_id: u32,
    pub offset: u64,
}

/// The newest marker and its slot sequence.
pub(crate) async fn load<D: Disk>(disk: &D) -> Result<Option<(u64, LogStart)>> {
    let Some((sequence, bytes)) = SLOTS.load(disk).await? else {
        return Ok(None);
    };
    let start =
        versioned::decode_current("the log start", LAYOUT_VERSION, &bytes).map_err(|e| {
            StoreError::Corrupt {
                file: SLOTS.names[(sequence % 2) as usize].into(),
                offset: 0,
                reason: e.to_string(),
            }
        })?;
    Ok(Some((sequence, start)))
}

/// Writes `start` durably as slot `sequence`.
pub(crate) async fn store<D: Disk>(disk: &D, sequence: u64, start: &LogStart) -> Result<()> {
    let bytes = versioned::encode(LAYOUT_VERSION, start).expect("a log start serializes");
    SLOTS.store(disk, sequence, &bytes).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk::{SimDisk, SimDiskConfig};

    fn start() -> LogStart {
        LogStart {
            base_offset: 1 << 20,
            prev: LogPosition {
                term: 3,
                leader: 2,
                index: 41,
            },
            queues: vec![QueueStart {
                topic: "Orders".into(),
                queue_id: 1,
                offset: 17,
            }],
        }
    }

    #[tokio::test]
    async fn a_log_start_reads_back_tagged_and_untagged() {
        let disk = SimDisk::new(SimDiskConfig::reliable(1));
        store(&disk, 1, &start()).await.unwrap();
        assert_eq!(load(&disk).await.unwrap(), Some((1, start())));
        // As builds before the version tag wrote it.
        let untagged = bincode::serialize(&start()).unwrap();
        SLOTS.store(&disk, 2, &untagged).await.unwrap();
        assert_eq!(load(&disk).await.unwrap(), Some((2, start())));
    }

    #[tokio::test]
    async fn a_log_start_of_an_unknown_layout_is_refused() {
        let disk = SimDisk::new(SimDiskConfig::reliable(1));
        let newer = versioned::encode(LAYOUT_VERSION + 1, &start()).unwrap();
        SLOTS.store(&disk, 1, &newer).await.unwrap();
        let e = load(&disk).await.unwrap_err().to_string();
        assert!(e.contains("layout version 2"), "{e}");
    }
}
