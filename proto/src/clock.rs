//! Wall-clock milliseconds, as RocketMQ's wire and storage formats carry them (born and
//! store timestamps, heartbeats).
//!
//! The one place raftmq reads the wall clock. Under madsim, `SystemTime::now` reads the
//! simulated clock (madsim intercepts `clock_gettime`), so this stays deterministic in
//! simulation.

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
