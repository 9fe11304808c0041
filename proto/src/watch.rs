//! A watch channel (tokio's `sync::watch` API, the part raftmq uses) whose receivers are
//! woken in the order they started waiting.
//!
//! tokio's watch spreads its waiting receivers over eight `Notify`s, picking one with
//! tokio's thread RNG, which tokio seeds from a process-wide counter; a send wakes the
//! eight in turn. So which receiver runs first after a send depended on how many threads
//! had used that RNG before: two runs of one simulated seed in one process (madsim's
//! determinism check, `MADSIM_TEST_NUM` running seeds one after another) woke the same
//! receivers in different orders and diverged — a server's accept loop and connections
//! stopping in another order on shutdown, group-commit waiters on a flush. Here every
//! receiver waits on one `Notify`, whose waiters are woken in the order they registered.
//! (openraft's metrics are still tokio's watch; raftmq waits on them from one task per
//! replica, the role watch, except under `fixed` + `quorum`, which the simulator does
//! not run, where each write waits for its learners.)
//!
//! Semantics follow tokio's: a receiver has seen the version it last borrowed with
//! `borrow_and_update`, `changed` or `wait_for`; `changed` and `wait_for` fail once the
//! sender is gone. (tokio's `send`, which stores nothing when no receiver is left, is
//! left out: raftmq always stores, with `send_replace`, `send_modify` or
//! `send_if_modified`.)

use std::fmt;
use std::ops::Deref;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard};

use tokio::sync::Notify;

/// The sender is gone: no value will change any more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecvError;

impl fmt::Display for RecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the watch channel's sender is gone")
    }
}

impl std::error::Error for RecvError {}

struct Shared<T> {
    value: RwLock<T>,
    /// Bumped on every change, under the value's write lock.
    version: AtomicU64,
    closed: AtomicBool,
    changed: Notify,
}

impl<T> Shared<T> {
    fn read(&self) -> RwLockReadGuard<'_, T> {
        self.value.read().unwrap_or_else(|e| e.into_inner())
    }

    fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }
}

/// The value as borrowed; hold it briefly (it blocks senders) and never across an
/// `.await`.
pub struct Ref<'a, T>(RwLockReadGuard<'a, T>);

impl<T> Deref for Ref<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

pub struct Sender<T> {
    shared: Arc<Shared<T>>,
}

pub struct Receiver<T> {
    shared: Arc<Shared<T>>,
    seen_version: u64,
}

/// A channel holding `init`, and its first receiver.
pub fn channel<T>(init: T) -> (Sender<T>, Receiver<T>) {
    let sender = Sender::new(init);
    let receiver = sender.subscribe();
    (sender, receiver)
}

impl<T> Sender<T> {
    /// A channel holding `init`, with no receiver yet.
    pub fn new(init: T) -> Self {
        Sender {
            shared: Arc::new(Shared {
                value: RwLock::new(init),
                version: AtomicU64::new(0),
                closed: AtomicBool::new(false),
                changed: Notify::new(),
            }),
        }
    }

    pub fn subscribe(&self) -> Receiver<T> {
        Receiver {
            seen_version: self.shared.version(),
            shared: self.shared.clone(),
        }
    }

    pub fn borrow(&self) -> Ref<'_, T> {
        Ref(self.shared.read())
    }

    /// Stores `value` (receivers or not), wakes the receivers, returns the old value.
    pub fn send_replace(&self, value: T) -> T {
        let mut old = Some(value);
        self.send_modify(|current| old = Some(std::mem::replace(current, old.take().unwrap())));
        old.expect("send_modify ran the closure")
    }

    /// Changes the value in place and wakes the receivers.
    pub fn send_modify(&self, modify: impl FnOnce(&mut T)) {
        self.send_if_modified(|value| {
            modify(value);
            true
        });
    }

    /// Changes the value in place; wakes the receivers only if `modify` says it changed
    /// it, and returns what it said.
    pub fn send_if_modified(&self, modify: impl FnOnce(&mut T) -> bool) -> bool {
        {
            let mut value = self.shared.value.write().unwrap_or_else(|e| e.into_inner());
            if !modify(&mut value) {
                return false;
            }
            self.shared.version.fetch_add(1, Ordering::AcqRel);
        }
        self.shared.changed.notify_waiters();
        true
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        self.shared.closed.store(true, Ordering::Release);
        self.shared.changed.notify_waiters();
    }
}

impl<T: fmt::Debug> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sender")
            .field("value", &*self.shared.read())
            .finish()
    }
}

impl<T> Receiver<T> {
    /// The current value, leaving it unseen if it is new.
    pub fn borrow(&self) -> Ref<'_, T> {
        Ref(self.shared.read())
    }

    /// The current value, marked seen.
    pub fn borrow_and_update(&mut self) -> Ref<'_, T> {
        let value = self.shared.read();
        self.seen_version = self.shared.version();
        Ref(value)
    }

    /// Whether the value changed since this receiver last saw it.
    pub fn has_changed(&self) -> Result<bool, RecvError> {
        if self.shared.closed.load(Ordering::Acquire) {
            return Err(RecvError);
        }
        Ok(self.shared.version() != self.seen_version)
    }

    /// Waits until the value changes from the one this receiver last saw, and marks the
    /// new one seen; fails once the sender is gone.
    pub async fn changed(&mut self) -> Result<(), RecvError> {
        changed(&self.shared, &mut self.seen_version).await
    }

    /// Waits until `ready` holds for the value (looking at the current one first), and
    /// returns that value — the one `ready` saw — marked seen; fails once the sender is
    /// gone.
    pub async fn wait_for(
        &mut self,
        mut ready: impl FnMut(&T) -> bool,
    ) -> Result<Ref<'_, T>, RecvError> {
        let shared = &*self.shared;
        loop {
            {
                let value = shared.read();
                self.seen_version = shared.version();
                if ready(&value) {
                    return Ok(Ref(value));
                }
            }
            changed(shared, &mut self.seen_version).await?;
        }
    }
}

/// [`Receiver::changed`] on the receiver's parts, so `wait_for` can keep a borrow of the
/// value it returns.
async fn changed<T>(shared: &Shared<T>, seen_version: &mut u64) -> Result<(), RecvError> {
    loop {
        // Registered before looking, so a send between the look and the wait is not
        // missed (`notify_waiters` wakes only waiters registered before it).
        let mut notified = pin!(shared.changed.notified());
        notified.as_mut().enable();
        let version = shared.version();
        if version != *seen_version {
            *seen_version = version;
            return Ok(());
        }
        if shared.closed.load(Ordering::Acquire) {
            return Err(RecvError);
        }
        notified.await;
    }
}

impl<T> Clone for Receiver<T> {
    fn clone(&self) -> Self {
        Receiver {
            shared: self.shared.clone(),
            seen_version: self.seen_version,
        }
    }
}

impl<T: fmt::Debug> fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receiver")
            .field("value", &*self.shared.read())
            .field("seen_version", &self.seen_version)
            .finish()
    }
}

#[cfg(all(test, not(madsim)))]
mod tests {
    use std::sync::Mutex;
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn a_receiver_sees_each_change_once_and_an_error_after_the_sender_goes() {
        let (tx, mut rx) = channel(0u64);
        assert_eq!(*rx.borrow(), 0);
        assert_eq!(rx.has_changed(), Ok(false));
        tx.send_replace(1);
        assert_eq!(rx.has_changed(), Ok(true));
        rx.changed().await.unwrap();
        assert_eq!(*rx.borrow(), 1);
        assert_eq!(rx.has_changed(), Ok(false));
        let waiting = tokio::spawn(async move {
            rx.changed().await.unwrap();
            let seen = *rx.borrow_and_update();
            (seen, rx.changed().await)
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(!tx.send_if_modified(|_| false), "no change, no wake-up");
        tx.send_replace(2);
        tokio::time::sleep(Duration::from_millis(10)).await;
        drop(tx);
        assert_eq!(waiting.await.unwrap(), (2, Err(RecvError)));
    }

    #[tokio::test]
    async fn wait_for_looks_at_the_current_value_first() {
        let (tx, mut rx) = channel(5u64);
        assert_eq!(*rx.wait_for(|v| *v >= 5).await.unwrap(), 5);
        let waiting = tokio::spawn(async move { *rx.wait_for(|v| *v >= 7).await.unwrap() });
        for v in 6..=8 {
            tx.send_modify(|x| *x = v);
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(waiting.await.unwrap(), 7);
    }

    #[tokio::test]
    async fn send_replace_stores_without_receivers_and_returns_the_old_value() {
        let tx = Sender::new(1u64);
        assert_eq!(tx.send_replace(3), 1);
        assert_eq!(*tx.borrow(), 3);
        let rx = tx.subscribe();
        assert_eq!(
            rx.has_changed(),
            Ok(false),
            "a new receiver has seen the value"
        );
    }

    /// The point of this channel: waiters are woken in the order they started waiting
    /// (and run in that order on tokio's current-thread runtime; madsim picks among the
    /// woken with its seeded RNG). tokio's own watch fails this.
    #[tokio::test(flavor = "current_thread")]
    async fn receivers_are_woken_in_the_order_they_started_waiting() {
        let tx = Sender::new(0u64);
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for i in 0..16 {
            let mut rx = tx.subscribe();
            let order = order.clone();
            tasks.push(tokio::spawn(async move {
                rx.changed().await.unwrap();
                order.lock().unwrap().push(i);
            }));
            tokio::task::yield_now().await;
        }
        tx.send_replace(1);
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(*order.lock().unwrap(), (0..16).collect::<Vec<_>>());
    }
}
