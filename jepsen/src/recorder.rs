//! The run's history, shared by every client task: times are milliseconds since the
//! test began.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use history::history::History;

#[derive(Clone)]
pub struct Recorder {
    start: Instant,
    history: Arc<Mutex<History>>,
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder {
            start: Instant::now(),
            history: Arc::default(),
        }
    }
}

impl Recorder {
    pub fn now_ms(&self) -> i64 {
        self.start.elapsed().as_millis() as i64
    }

    /// The history, stamped now: `record(|h, t| h.send_invoke(t, ...))`.
    pub fn record(&self, f: impl FnOnce(&mut History, i64)) {
        let t = self.now_ms();
        f(&mut self.lock(), t);
    }

    pub fn lock(&self) -> MutexGuard<'_, History> {
        self.history.lock().expect("history poisoned")
    }
}
