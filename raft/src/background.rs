//! `BackgroundWrite`: at most one write of a kind running in a task of its own, for
//! writes Raft must not wait for (the state machine's periodic save, the committed
//! hint). Dropping it — openraft dropping the last handle on its owner at shutdown —
//! aborts a write in progress, so a replica reopened on the same disk never races one
//! left over from the one before. (An abort mid-write is a torn slot, as a crash
//! leaves: the other slot holds the previous value.)

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::task::AbortHandle;

#[derive(Default)]
pub(crate) struct BackgroundWrite {
    /// Shared with the running task, which clears it when done.
    running: Arc<AtomicBool>,
    task: Mutex<Option<AbortHandle>>,
}

impl BackgroundWrite {
    /// Runs `write` in a task of its own, unless one is still running.
    pub(crate) fn start(&self, write: impl Future<Output = ()> + Send + 'static) {
        if self.running.swap(true, Ordering::AcqRel) {
            return;
        }
        let running = self.running.clone();
        let task = tokio::spawn(async move {
            write.await;
            running.store(false, Ordering::Release);
        });
        *self.task.lock().expect("background write poisoned") = Some(task.abort_handle());
    }
}

impl Drop for BackgroundWrite {
    fn drop(&mut self) {
        if let Some(task) = self
            .task
            .get_mut()
            .expect("background write poisoned")
            .take()
        {
            task.abort();
        }
    }
}
