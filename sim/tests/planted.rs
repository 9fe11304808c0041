//! Proof the checkers can fail: with a bug planted in every replica, the
//! master-power-loss scenario must be judged invalid on some seed within 100.
//!
//! `RUSTFLAGS="--cfg madsim" CARGO_TARGET_DIR=target/sim cargo test -p sim --features
//! fault-injection --test planted`
#![cfg(all(madsim, feature = "fault-injection"))]

use raftmq::config::AckMode;
use sim::checker::{check, LossAllowance};
use sim::replicated::{master_power_loss, Plant};
use store::FlushMode;

/// Runs the scenario on seeds `base..base + 100`; returns the first seed the checker
/// rejects, with its report.
fn first_caught(plant: Plant) -> Option<(u64, String)> {
    let base: u64 = std::env::var("PLANTED_BASE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    for seed in base..base + 100 {
        let runtime = madsim::runtime::Runtime::with_seed_and_config(seed, Default::default());
        let (_, history) =
            runtime.block_on(master_power_loss(FlushMode::Sync, AckMode::Quorum, plant));
        let report = check(&history, LossAllowance::None, true);
        if !report.valid {
            return Some((seed, format!("{report:?}")));
        }
    }
    None
}

#[test]
fn acknowledging_before_a_quorum_is_caught_within_100_seeds() {
    let caught = first_caught(Plant::AckBeforeQuorum);
    let Some((seed, report)) = caught else {
        panic!("ack-before-quorum went unnoticed for 100 seeds");
    };
    println!(
        "caught on seed {seed} (replay: MADSIM_TEST_SEED={seed} with the planted bug): {report}"
    );
}
