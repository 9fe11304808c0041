//! What the store measures for operators: fsync latency, group-commit size and retention
//! deletions. Recorded where they happen (the CommitLog's sync, retention's deletes);
//! the broker exports them in Prometheus' text format.
//!
//! The types are `prometheus-client`'s: clones share one value, so the broker can hold
//! the same histograms the store records into.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::Histogram;

/// Seconds, from 50 µs to 5 s: a page-cache sync to a stalled disk.
const FSYNC_SECONDS_BUCKETS: [f64; 12] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.1, 0.5, 5.0,
];

/// Bytes one sync made durable, from a single small message to 16 MiB.
const GROUP_COMMIT_BYTES_BUCKETS: [f64; 10] = [
    256.0,
    1024.0,
    4096.0,
    16_384.0,
    65_536.0,
    262_144.0,
    1_048_576.0,
    4_194_304.0,
    16_777_216.0,
    67_108_864.0,
];

#[derive(Clone, Debug)]
pub struct StoreMetrics {
    /// Duration of each CommitLog sync that had bytes to make durable.
    pub fsync_seconds: Histogram,
    /// Bytes each such sync made durable: every append since the previous sync shares
    /// it (RocketMQ's group commit).
    pub group_commit_bytes: Histogram,
    /// CommitLog segments retention deleted, and their bytes.
    pub retention_deleted_segments: Counter,
    pub retention_deleted_bytes: Counter,
}

impl Default for StoreMetrics {
    fn default() -> Self {
        StoreMetrics {
            fsync_seconds: Histogram::new(FSYNC_SECONDS_BUCKETS),
            group_commit_bytes: Histogram::new(GROUP_COMMIT_BYTES_BUCKETS),
            retention_deleted_segments: Counter::default(),
            retention_deleted_bytes: Counter::default(),
        }
    }
}
