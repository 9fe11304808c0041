//! `PeerBackoff`: a replication stream leaves a peer it could not reach alone for a while
//! before dialing it again.
//!
//! openraft 0.9 would do this itself after an `Unreachable` error, but it waits out its
//! backoff in an unbiased `tokio::select!`, which draws from tokio's thread RNG, and tokio
//! seeds that RNG from a process-wide counter. Two simulated runs of one seed in one
//! process (madsim's determinism check; tests run one after another) then took different
//! branches where a timer and an event were ready at once, and diverged (seed
//! 1795819807132521170 of the `raft` tests). So the transport reports an unreachable peer
//! to openraft as a network error (no backoff there) and backs off here, on madsim's
//! clock: after a peer could not be reached, the stream's next request waits until
//! [`UNREACHABLE_BACKOFF`] has passed before it dials, or, when its time runs out first,
//! fails at the end of its time without dialing. Votes do not back off (openraft's do not
//! either): a candidate asks every peer in every round.

use std::time::Duration;

use tokio::time::Instant;

/// How long a stream leaves an unreachable peer alone: openraft's default backoff.
pub const UNREACHABLE_BACKOFF: Duration = Duration::from_millis(500);

/// What a request to the peer does first.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Wait {
    /// Dial now, with the whole time.
    Go,
    /// Wait this long, then dial with what is left of the time.
    Then(Duration),
    /// The backoff outlasts the request's time: wait all of it and fail.
    Fail,
}

#[derive(Debug, Default)]
pub(crate) struct PeerBackoff {
    /// When the peer may be dialed again; `None` when the last request reached it.
    until: Option<Instant>,
}

impl PeerBackoff {
    /// What a request with `ttl` to spend, starting at `now`, does first.
    pub(crate) fn plan(&self, now: Instant, ttl: Duration) -> Wait {
        match self.until {
            Some(until) if until > now => {
                let wait = until - now;
                if wait < ttl {
                    Wait::Then(wait)
                } else {
                    Wait::Fail
                }
            }
            _ => Wait::Go,
        }
    }

    /// Records how a request that ended at `now` went: a peer that could not be reached
    /// starts a backoff; anything else (an answer, a timeout) ends it.
    pub(crate) fn record(&mut self, now: Instant, unreachable: bool) {
        self.until = unreachable.then(|| now + UNREACHABLE_BACKOFF);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_millis(50);

    #[test]
    fn a_stream_waits_out_the_backoff_after_an_unreachable_peer_only() {
        let start = Instant::now();
        let mut backoff = PeerBackoff::default();
        assert_eq!(backoff.plan(start, TTL), Wait::Go, "nothing failed yet");

        backoff.record(start, true);
        assert_eq!(
            backoff.plan(start, TTL),
            Wait::Fail,
            "500 ms to wait, 50 ms to spend"
        );
        let near_end = start + UNREACHABLE_BACKOFF - Duration::from_millis(20);
        assert_eq!(
            backoff.plan(near_end, TTL),
            Wait::Then(Duration::from_millis(20))
        );
        assert_eq!(backoff.plan(start + UNREACHABLE_BACKOFF, TTL), Wait::Go);

        // Unreachable again: a new backoff from then.
        let later = start + UNREACHABLE_BACKOFF;
        backoff.record(later, true);
        assert_eq!(backoff.plan(later + TTL, TTL), Wait::Fail);

        // A timeout or an answer ends it.
        backoff.record(later + TTL, false);
        assert_eq!(backoff.plan(later + TTL, TTL), Wait::Go);
    }
}
