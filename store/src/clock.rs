//! Wall-clock time for store timestamps.
//!
//! Under madsim, `SystemTime::now` reads the simulated clock (madsim intercepts
//! `clock_gettime`), so this stays deterministic in simulation; it is the one place the
//! store reads the wall clock.

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
