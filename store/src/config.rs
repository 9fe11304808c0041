//! Store configuration. Field names follow RocketMQ's `MessageStoreConfig` where one
//! exists, in snake case and with units last.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::error::{Result, StoreError};

/// When a write is acknowledged relative to fsync (RocketMQ `flushDiskType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FlushMode {
    /// Acknowledge after an fsync that covers the write; concurrent writes share one
    /// fsync (group commit). RocketMQ: SYNC_FLUSH.
    Sync,
    /// Acknowledge once written to the page cache; a flusher syncs every
    /// `flush_interval_ms`. RocketMQ: ASYNC_FLUSH.
    Async,
}

/// As the TOML and the flags spell it.
impl std::fmt::Display for FlushMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            FlushMode::Sync => "sync",
            FlushMode::Async => "async",
        })
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    pub flush_disk_type: FlushMode,
    /// Async flush: how often the flusher syncs the CommitLog (RocketMQ default 500).
    pub flush_interval_ms: u64,
    /// Sync flush: how long a write waits for its fsync before FLUSH_DISK_TIMEOUT.
    pub sync_flush_timeout_ms: u64,
    /// How often ConsumeQueues and the index are synced and a checkpoint is written.
    pub checkpoint_interval_ms: u64,
    /// Size of one CommitLog segment (RocketMQ `mappedFileSizeCommitLog`, 1 GiB).
    pub commitlog_segment_size: u64,
    /// Units per ConsumeQueue file (RocketMQ: 300,000 units of 20 bytes).
    pub consume_queue_units_per_file: u64,
    /// Entries per key-index file.
    pub index_entries_per_file: u64,
    /// Largest message accepted, encoded (RocketMQ `maxMessageSize`, 4 MiB).
    pub message_size_max: usize,
    /// Most bytes the writer puts in one batch (one disk write).
    pub write_batch_size_max: usize,
    /// Retention: segments whose newest message is older than this are deleted.
    pub file_reserved_hours: u64,
    /// Retention: above this share of the disk in use, the oldest segments are deleted.
    pub disk_max_used_space_ratio: f64,
    /// How often retention runs.
    pub clean_interval_ms: u64,
    /// The address written into each message's STOREHOST (and so into msg ids).
    pub store_host: SocketAddr,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            flush_disk_type: FlushMode::Async,
            flush_interval_ms: 500,
            sync_flush_timeout_ms: 5_000,
            checkpoint_interval_ms: 1_000,
            commitlog_segment_size: 1 << 30,
            consume_queue_units_per_file: 300_000,
            index_entries_per_file: 1 << 20,
            message_size_max: 4 << 20,
            write_batch_size_max: 4 << 20,
            file_reserved_hours: 72,
            disk_max_used_space_ratio: 0.75,
            clean_interval_ms: 10_000,
            store_host: SocketAddr::from(([127, 0, 0, 1], 10911)),
        }
    }
}

impl StoreConfig {
    /// Checks the fields against each other; the error names the field.
    pub fn validate(&self) -> Result<()> {
        let bad = |field: &str, why: String| Err(StoreError::Config(format!("{field}: {why}")));
        let record_max = self.message_size_max as u64 + crate::record::RECORD_HEADER_SIZE as u64;
        if self.commitlog_segment_size < record_max + crate::record::END_RECORD_SIZE as u64 {
            return bad(
                "commitlog_segment_size",
                format!(
                    "{} cannot hold one message of message_size_max {}",
                    self.commitlog_segment_size, self.message_size_max
                ),
            );
        }
        if self.message_size_max == 0 {
            return bad("message_size_max", "must be positive".into());
        }
        if self.write_batch_size_max < self.message_size_max {
            return bad(
                "write_batch_size_max",
                "must be at least message_size_max".into(),
            );
        }
        if self.consume_queue_units_per_file == 0 {
            return bad("consume_queue_units_per_file", "must be positive".into());
        }
        if self.index_entries_per_file == 0 {
            return bad("index_entries_per_file", "must be positive".into());
        }
        if !(0.0..=1.0).contains(&self.disk_max_used_space_ratio) {
            return bad(
                "disk_max_used_space_ratio",
                format!("{} is not in 0.0..=1.0", self.disk_max_used_space_ratio),
            );
        }
        for (field, value) in [
            ("flush_interval_ms", self.flush_interval_ms),
            ("sync_flush_timeout_ms", self.sync_flush_timeout_ms),
            ("checkpoint_interval_ms", self.checkpoint_interval_ms),
            ("clean_interval_ms", self.clean_interval_ms),
        ] {
            if value == 0 {
                return bad(field, "must be positive".into());
            }
        }
        Ok(())
    }

    /// The largest record the CommitLog accepts.
    pub fn record_size_max(&self) -> usize {
        self.message_size_max + crate::record::RECORD_HEADER_SIZE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid_and_errors_name_the_field() {
        StoreConfig::default().validate().unwrap();
        let c = StoreConfig {
            commitlog_segment_size: 1024,
            ..StoreConfig::default()
        };
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("commitlog_segment_size"));
        let c = StoreConfig {
            disk_max_used_space_ratio: 1.5,
            ..StoreConfig::default()
        };
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("disk_max_used_space_ratio"));
    }
}
