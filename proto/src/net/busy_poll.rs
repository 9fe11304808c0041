//! Busy polling: keep a one-worker runtime polling for I/O for a while after the last
//! frame instead of parking its thread.
//!
//! Why: with one request in flight, a round trip on a small VM is dominated by waking
//! parked threads. A worker that blocks in `epoll_wait` halts its vCPU, and the next
//! frame has to wake it through the hypervisor (an IPI and a VM entry) — about as much
//! CPU and latency as the request's own work (docs/benchmarks.md, busy polling).
//! Go's runtime, and so NATS, spins briefly before it parks; Linux offers
//! `SO_BUSY_POLL` for devices with NAPI, which loopback is not. This is the same idea
//! inside tokio: a spinner task yields in a loop, and every yield makes the worker poll
//! its I/O driver with a zero timeout, so a frame that arrives is seen without a wake-up.
//!
//! The spin is bounded: [`mark`] (called for every frame read) restarts a window of
//! `window`; once a window passes without a frame the spinner sleeps until the next
//! [`mark`]. An idle process therefore costs nothing, and a busy one spins only in the
//! gaps between frames that are shorter than the window.
//!
//! Only for a runtime with **one** worker: with more, a parked worker holds the I/O
//! driver in `epoll_wait`, the spinning worker cannot poll it, and the two fight for the
//! cores (measured: two workers with a spinner ran 3.8–7.9k msg/s one in flight where
//! one worker without it ran 9.1k).
//! The binaries enforce this. Never in the simulated build: a task that yields forever
//! would stop madsim's virtual clock, so there [`mark`] is a no-op and [`spawn`] does
//! not exist.

#[cfg(not(madsim))]
pub use real::spawn;

/// Records network activity: restarts the spin window, waking the spinner if it sleeps.
#[inline]
pub fn mark() {
    #[cfg(not(madsim))]
    real::mark();
}

#[cfg(not(madsim))]
mod real {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::time::{Duration, Instant};

    use tokio::sync::Notify;

    /// What the spinner watches: frames seen (any connection), and whether it sleeps.
    pub(super) struct Activity {
        /// Set once a spinner runs: until then [`Activity::mark`] touches nothing else,
        /// so a process without busy polling pays one uncontended load per frame rather
        /// than an atomic add on a line its workers would pass back and forth.
        enabled: AtomicBool,
        frames: AtomicU64,
        /// Set while the spinner sleeps, so [`Activity::mark`] only touches `wake` then.
        sleeping: AtomicBool,
        wake: Notify,
    }

    /// The process's activity: the runtime is process-wide, so is its spinner.
    static GLOBAL: Activity = Activity::new();

    impl Activity {
        const fn new() -> Self {
            Activity {
                enabled: AtomicBool::new(false),
                frames: AtomicU64::new(0),
                sleeping: AtomicBool::new(false),
                wake: Notify::const_new(),
            }
        }

        fn mark(&self) {
            if !self.enabled.load(Ordering::Relaxed) {
                return;
            }
            // SeqCst on both sides (here: add then load; the spinner: store then load),
            // so at least one sees the other and a frame never leaves the spinner asleep.
            self.frames.fetch_add(1, Ordering::SeqCst);
            if self.sleeping.load(Ordering::SeqCst) {
                self.wake.notify_one();
            }
        }

        async fn spin(&self, window: Duration) {
            self.enabled.store(true, Ordering::SeqCst);
            let mut spinner =
                Spinner::new(window, self.frames.load(Ordering::SeqCst), Instant::now());
            loop {
                if spinner.keep_spinning(self.frames.load(Ordering::Relaxed), Instant::now()) {
                    // Lets every ready task run, then polls the I/O driver (timeout 0).
                    tokio::task::yield_now().await;
                    continue;
                }
                let notified = self.wake.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                self.sleeping.store(true, Ordering::SeqCst);
                if !spinner.keep_spinning(self.frames.load(Ordering::SeqCst), Instant::now()) {
                    notified.await;
                }
                self.sleeping.store(false, Ordering::SeqCst);
                spinner = Spinner::new(window, self.frames.load(Ordering::SeqCst), Instant::now());
            }
        }
    }

    pub(super) fn mark() {
        GLOBAL.mark();
    }

    /// The spinner's window logic, apart from clocks and atomics so it can be tested.
    #[derive(Debug)]
    struct Spinner {
        window: Duration,
        seen: u64,
        last_activity: Instant,
    }

    impl Spinner {
        fn new(window: Duration, frames: u64, now: Instant) -> Self {
            Spinner {
                window,
                seen: frames,
                last_activity: now,
            }
        }

        /// Whether to keep spinning, given the frame count and the time now.
        fn keep_spinning(&mut self, frames: u64, now: Instant) -> bool {
            if frames != self.seen {
                self.seen = frames;
                self.last_activity = now;
            }
            now.duration_since(self.last_activity) < self.window
        }
    }

    /// Starts the spinner on the current runtime, which must have one worker (see the
    /// module doc). `window` is how long it polls after the last frame.
    pub fn spawn(window: Duration) {
        assert!(
            !window.is_zero(),
            "a zero busy-poll window spins for nothing"
        );
        tokio::spawn(GLOBAL.spin(window));
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn spins_for_a_window_after_each_frame_then_stops() {
            let t0 = Instant::now();
            let ms = Duration::from_millis;
            let mut s = Spinner::new(ms(10), 0, t0);
            assert!(s.keep_spinning(0, t0 + ms(9)));
            assert!(!s.keep_spinning(0, t0 + ms(10)), "no frame for a window");
            assert!(
                s.keep_spinning(1, t0 + ms(15)),
                "a frame restarts the window"
            );
            assert!(s.keep_spinning(1, t0 + ms(24)));
            assert!(!s.keep_spinning(1, t0 + ms(25)));
        }

        #[tokio::test(flavor = "current_thread")]
        async fn sleeps_when_idle_and_a_frame_wakes_it() {
            // Its own Activity: other tests' frames must not reach this spinner.
            let activity: &'static Activity = Box::leak(Box::new(Activity::new()));
            tokio::spawn(activity.spin(Duration::from_millis(1)));
            tokio::time::sleep(Duration::from_millis(20)).await;
            assert!(activity.sleeping.load(Ordering::SeqCst), "idle: asleep");
            activity.mark();
            for _ in 0..3 {
                tokio::task::yield_now().await;
            }
            assert!(!activity.sleeping.load(Ordering::SeqCst), "a frame woke it");
        }
    }
}
