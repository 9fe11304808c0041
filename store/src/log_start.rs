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

const SLOTS: SlotFile = SlotFile {
    names: ["log-start/0", "log-start/1"],
    magic: 0x524D_514C, // "RMQL"
};

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
    let start = bincode::deserialize(&bytes).map_err(|e| StoreError::Corrupt {
        file: SLOTS.names[(sequence % 2) as usize].into(),
        offset: 0,
        reason: format!("log start: {e}"),
    })?;
    Ok(Some((sequence, start)))
}

/// Writes `start` durably as slot `sequence`.
pub(crate) async fn store<D: Disk>(disk: &D, sequence: u64, start: &LogStart) -> Result<()> {
    let bytes = bincode::serialize(start).expect("a log start serializes");
    SLOTS.store(disk, sequence, &bytes).await
}
