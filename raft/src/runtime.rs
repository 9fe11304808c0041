//! `RaftRuntime`: openraft's `AsyncRuntime` on `tokio` = madsim-tokio.
//!
//! openraft 0.9's stock `TokioRuntime` names real tokio's types (`tokio::time::Instant`,
//! `rand::thread_rng`), which do not run under madsim. This runtime names madsim-tokio's
//! instead, so the same openraft code runs on real tokio in the binary and on madsim's
//! deterministic scheduler in simulation:
//! - spawn, sleep, timers and oneshots are madsim-tokio's (madsim's in simulation);
//! - `Instant` wraps madsim-tokio's instant (a real tokio instant normally, the simulated
//!   `std::time::Instant` under madsim); openraft's `Instant` trait cannot be implemented
//!   on a foreign type here, hence the newtype;
//! - the RNG behind election timeouts is madsim's seeded global RNG in simulation
//!   (`rand::thread_rng` is not deterministic there), `rand::thread_rng` otherwise.

use std::fmt;
use std::future::Future;
use std::ops::{Add, AddAssign, Sub, SubAssign};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use openraft::async_runtime::AsyncOneshotSendExt;
use openraft::{AsyncRuntime, OptionalSend};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RaftRuntime;

/// An instant of the runtime's clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RtInstant(tokio::time::Instant);

impl Add<Duration> for RtInstant {
    type Output = RtInstant;
    fn add(self, d: Duration) -> RtInstant {
        RtInstant(self.0 + d)
    }
}

impl AddAssign<Duration> for RtInstant {
    fn add_assign(&mut self, d: Duration) {
        self.0 += d;
    }
}

impl Sub<Duration> for RtInstant {
    type Output = RtInstant;
    fn sub(self, d: Duration) -> RtInstant {
        RtInstant(self.0 - d)
    }
}

impl Sub<RtInstant> for RtInstant {
    type Output = Duration;
    fn sub(self, other: RtInstant) -> Duration {
        self.0.saturating_duration_since(other.0)
    }
}

impl SubAssign<Duration> for RtInstant {
    fn sub_assign(&mut self, d: Duration) {
        self.0 -= d;
    }
}

impl openraft::Instant for RtInstant {
    fn now() -> Self {
        RtInstant(tokio::time::Instant::now())
    }
}

pub struct RtOneshotSender<T>(tokio::sync::oneshot::Sender<T>);

impl<T: OptionalSend> AsyncOneshotSendExt<T> for RtOneshotSender<T> {
    fn send(self, t: T) -> Result<(), T> {
        self.0.send(t)
    }
}

impl<T> fmt::Debug for RtOneshotSender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RtOneshotSender")
    }
}

/// A deadline passed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Elapsed;

impl fmt::Display for Elapsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("deadline elapsed")
    }
}

/// `future`, or `Err(Elapsed)` once `sleep` completes. A named type, since madsim's
/// `timeout` returns an opaque one and openraft needs to name it.
pub struct RtTimeout<T> {
    future: Pin<Box<T>>,
    sleep: Pin<Box<tokio::time::Sleep>>,
}

impl<R, T: Future<Output = R>> Future for RtTimeout<T> {
    type Output = Result<R, Elapsed>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if let Poll::Ready(value) = self.future.as_mut().poll(cx) {
            return Poll::Ready(Ok(value));
        }
        match self.sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(Elapsed)),
            Poll::Pending => Poll::Pending,
        }
    }
}

#[cfg(madsim)]
type Rng = madsim::rand::GlobalRng;
#[cfg(not(madsim))]
type Rng = rand::rngs::ThreadRng;

impl AsyncRuntime for RaftRuntime {
    type JoinError = tokio::task::JoinError;
    type JoinHandle<T: OptionalSend + 'static> = tokio::task::JoinHandle<T>;
    type Sleep = tokio::time::Sleep;
    type Instant = RtInstant;
    type TimeoutError = Elapsed;
    type Timeout<R, T: Future<Output = R> + OptionalSend> = RtTimeout<T>;
    type ThreadLocalRng = Rng;
    type OneshotSender<T: OptionalSend> = RtOneshotSender<T>;
    type OneshotReceiverError = tokio::sync::oneshot::error::RecvError;
    type OneshotReceiver<T: OptionalSend> = tokio::sync::oneshot::Receiver<T>;

    fn spawn<T>(future: T) -> Self::JoinHandle<T::Output>
    where
        T: Future + OptionalSend + 'static,
        T::Output: OptionalSend + 'static,
    {
        tokio::spawn(future)
    }

    fn sleep(duration: Duration) -> Self::Sleep {
        tokio::time::sleep(duration)
    }

    fn sleep_until(deadline: Self::Instant) -> Self::Sleep {
        tokio::time::sleep_until(deadline.0)
    }

    fn timeout<R, F: Future<Output = R> + OptionalSend>(
        duration: Duration,
        future: F,
    ) -> Self::Timeout<R, F> {
        RtTimeout {
            future: Box::pin(future),
            sleep: Box::pin(tokio::time::sleep(duration)),
        }
    }

    fn timeout_at<R, F: Future<Output = R> + OptionalSend>(
        deadline: Self::Instant,
        future: F,
    ) -> Self::Timeout<R, F> {
        RtTimeout {
            future: Box::pin(future),
            sleep: Box::pin(tokio::time::sleep_until(deadline.0)),
        }
    }

    fn is_panic(join_error: &Self::JoinError) -> bool {
        join_error.is_panic()
    }

    fn thread_rng() -> Self::ThreadLocalRng {
        #[cfg(madsim)]
        return madsim::rand::thread_rng();
        // Real tokio only: this line is not compiled into the simulation.
        #[cfg(not(madsim))]
        return rand::thread_rng();
    }

    fn oneshot<T>() -> (Self::OneshotSender<T>, Self::OneshotReceiver<T>)
    where
        T: OptionalSend,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        (RtOneshotSender(tx), rx)
    }
}
