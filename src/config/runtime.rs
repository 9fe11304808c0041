//! How the binaries' runtime is shaped: worker threads and busy polling.

/// Bound on `busy_poll_us` (1 s): longer is a typo, not a tuning.
pub const BUSY_POLL_US_MAX: u64 = 1_000_000;

/// The worker count to run with, given `worker_threads` (0: one per core) and
/// `busy_poll_us` (0: off). Busy polling needs exactly one worker (see
/// `proto::net::busy_poll`), so 0 then means 1 and more than 1 is an error.
pub fn effective_workers(worker_threads: usize, busy_poll_us: u64) -> anyhow::Result<usize> {
    if busy_poll_us > BUSY_POLL_US_MAX {
        anyhow::bail!("busy_poll_us: {busy_poll_us} is more than {BUSY_POLL_US_MAX}");
    }
    match (busy_poll_us, worker_threads) {
        (0, n) => Ok(n),
        (_, 0 | 1) => Ok(1),
        (_, n) => anyhow::bail!(
            "busy_poll_us: {busy_poll_us} needs worker_threads = 1 (or 0), not {n}: \
             with more workers a parked one holds the I/O driver and the spinner cannot poll it"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_polling_runs_on_one_worker_and_says_why_not_more() {
        assert_eq!(effective_workers(0, 0).unwrap(), 0);
        assert_eq!(effective_workers(3, 0).unwrap(), 3);
        assert_eq!(effective_workers(0, 200).unwrap(), 1);
        assert_eq!(effective_workers(1, 200).unwrap(), 1);
        let e = effective_workers(2, 200).unwrap_err().to_string();
        assert!(
            e.contains("busy_poll_us") && e.contains("worker_threads"),
            "{e}"
        );
        let e = effective_workers(1, BUSY_POLL_US_MAX + 1)
            .unwrap_err()
            .to_string();
        assert!(e.contains("busy_poll_us"), "{e}");
    }
}
