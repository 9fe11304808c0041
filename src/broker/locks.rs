//! Queue locks for orderly consumption (RocketMQ `RebalanceLockManager`): one client of a
//! group holds a queue at a time; a lock lapses 60 s after its last renewal.

use std::collections::BTreeMap;
use std::sync::Mutex;

use proto::remoting::body::MessageQueue;

/// RocketMQ's `REBALANCE_LOCK_MAX_LIVE_TIME`.
pub const LOCK_LIFETIME_MS: i64 = 60_000;

#[derive(Default)]
pub struct QueueLocks {
    /// (group, queue) → (client id, last renewal).
    locks: Mutex<BTreeMap<(String, MessageQueue), (String, i64)>>,
}

impl QueueLocks {
    /// Locks (or renews) each queue for `client_id`; returns the queues it now holds.
    pub fn lock(
        &self,
        group: &str,
        client_id: &str,
        queues: &[MessageQueue],
        now_ms: i64,
    ) -> Vec<MessageQueue> {
        let mut locks = self.locks.lock().expect("locks poisoned");
        let mut held = Vec::new();
        for queue in queues {
            let key = (group.to_string(), queue.clone());
            let free = match locks.get(&key) {
                None => true,
                Some((owner, renewed)) => owner == client_id || now_ms - renewed > LOCK_LIFETIME_MS,
            };
            if free {
                locks.insert(key, (client_id.to_string(), now_ms));
                held.push(queue.clone());
            }
        }
        held
    }

    /// Frees every queue `client_id` holds in `group`: it unregistered, so it consumes
    /// nothing any more, and its successor need not wait out the lifetime. (A client
    /// that merely lost its connection keeps its locks until they lapse: it may still be
    /// consuming.)
    pub fn release_client(&self, group: &str, client_id: &str) -> usize {
        let mut locks = self.locks.lock().expect("locks poisoned");
        let before = locks.len();
        locks.retain(|(g, _), (owner, _)| !(g == group && owner == client_id));
        before - locks.len()
    }

    pub fn unlock(&self, group: &str, client_id: &str, queues: &[MessageQueue]) {
        let mut locks = self.locks.lock().expect("locks poisoned");
        for queue in queues {
            let key = (group.to_string(), queue.clone());
            if locks.get(&key).is_some_and(|(owner, _)| owner == client_id) {
                locks.remove(&key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_owner_at_a_time_until_expiry() {
        let locks = QueueLocks::default();
        let q = vec![MessageQueue {
            topic: "T".into(),
            broker_name: "b".into(),
            queue_id: 0,
        }];
        assert_eq!(locks.lock("G", "a", &q, 0), q);
        assert!(locks.lock("G", "b", &q, 1000).is_empty());
        assert_eq!(locks.release_client("other", "a"), 0);
        assert_eq!(locks.release_client("G", "a"), q.len());
        assert_eq!(
            locks.lock("G", "b", &q, 1000),
            q,
            "freed when its owner left"
        );
        assert_eq!(locks.release_client("G", "b"), q.len());
        assert_eq!(locks.lock("G", "a", &q, 1000), q);
        assert_eq!(locks.lock("G", "a", &q, 2000), q, "renewal");
        assert_eq!(
            locks.lock("G", "b", &q, 2000 + LOCK_LIFETIME_MS + 1),
            q,
            "expired"
        );
        locks.unlock("G", "a", &q);
        assert!(
            locks
                .lock("G", "a", &q, 2000 + LOCK_LIFETIME_MS + 2)
                .is_empty(),
            "a stranger cannot unlock"
        );
        locks.unlock("G", "b", &q);
        assert_eq!(locks.lock("G2", "a", &q, 0), q, "groups are independent");
    }
}
