//! Helpers shared by the replica tests.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use openraft::{Config, Raft};
use raft::types::{GroupRaft, GroupRequest, OffsetUpdate};

/// Short timeouts, so elections take a few hundred (simulated) milliseconds.
pub fn config() -> Arc<Config> {
    let config = Config {
        heartbeat_interval: 50,
        election_timeout_min: 150,
        election_timeout_max: 300,
        ..Config::default()
    };
    Arc::new(config.validate().unwrap())
}

/// The id among `candidates` that is its own leader, waiting up to 10 s for one.
pub async fn leader_among(rafts: &BTreeMap<u64, Raft<GroupRaft>>, candidates: &[u64]) -> u64 {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        for id in candidates {
            if rafts[id].metrics().borrow().current_leader == Some(*id) {
                return *id;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no leader among {candidates:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until `raft` applied `index`. A polling loop rather than openraft's
/// `Raft::wait`, whose unbiased `tokio::select!` draws from an RNG madsim does not seed.
pub async fn wait_applied_index(raft: &Raft<GroupRaft>, index: u64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let applied = raft.metrics().borrow().last_applied.map_or(0, |l| l.index);
        if applied >= index {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "index {index} not applied (at {applied})"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A small entry for tests of Raft itself: consumer group "G"'s offset `i` in queue 0.
#[allow(dead_code)] // Not every test file writes such entries.
pub fn request(i: u8) -> GroupRequest {
    GroupRequest::ConsumerOffsets(vec![OffsetUpdate {
        group: "G".into(),
        topic: "T".into(),
        queue_id: 0,
        offset: u64::from(i),
    }])
}
