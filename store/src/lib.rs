//! raftmq's storage engine: RocketMQ's CommitLog, ConsumeQueue and index, over a `Disk`
//! seam that has a real side and a simulated side.
//!
//! Everything here is plain async Rust on `tokio` (= madsim-tokio), so the same code runs
//! in the broker and under the deterministic simulator. No sockets, no threads: the only
//! blocking call (fsync on real files) lives in [`disk::StdDisk`], which the simulated
//! build does not compile.
//!
//! # Layout
//! - [`disk`]: the `Disk`/`DiskFile` traits, `StdDisk` (real files) and `SimDisk`
//!   (in memory; loses unsynced bytes on crash, tears tails, injects EIO).
//! - [`record`]: the CommitLog record frame (magic, size, CRC32C, term, index).
//! - [`commit_log`]: segments, group-committed appends, recovery scan, retention deletes.
//! - [`consume_queue`]: per-queue 20-byte units pointing into the CommitLog.
//! - [`index`]: keys and unique ids → CommitLog offsets, by time range.
//! - [`checkpoint`]: how far recovery can trust the disk.
//! - [`retention`]: which segments to delete (a pure policy).
//! - [`slot_file`]: a small durable value in two alternating slots (checkpoint, vote).
//! - [`message_store`]: `MessageStore`, which ties them together with a writer task,
//!   a flusher, a checkpointer and retention.
//! - [`meta`]: `MetaStore` for topics, subscription groups and consumer offsets (sled in
//!   the real binary, in memory with sled's crash semantics in simulation).
//! - [`versioned`]: the version tag of the bincode records kept on disk.
//! - [`metrics`]: what the store measures for operators (fsync latency, ...).
//! - [`config`], [`error`].
//!
//! Messages are stored in RocketMQ's layout, owned by `proto::message`.

pub mod checkpoint;
pub mod commit_log;
pub mod config;
pub mod consume_queue;
pub mod disk;
pub mod error;
pub mod index;
pub mod log_start;
pub mod message_store;
pub mod meta;
pub mod metrics;
pub mod record;
pub mod retention;
pub mod slot_file;
pub mod versioned;

pub use config::{FlushMode, StoreConfig};
#[cfg(not(madsim))]
pub use disk::StdDisk;
pub use disk::{Disk, DiskFile, SimDisk, SimDiskConfig};
pub use error::{Result, StoreError};
pub use log_start::{LogStart, QueueStart};
pub use message_store::{
    GetMessages, GetStatus, LogAppended, LogPayload, LogRecord, MessageStore, Progress, PutResult,
};
pub use record::LogPosition;
