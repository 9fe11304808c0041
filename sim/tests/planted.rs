//! Proof the checkers can fail: with each planted bug switched on, the seed runner must
//! reject some seed of the first 100 (`sim run` exits 1 and names it).
//!
//! `RUSTFLAGS="--cfg madsim" CARGO_TARGET_DIR=target/sim cargo test --release -p sim
//! --features fault-injection --test planted` (`PLANTED_BASE_SEED` moves the window).
#![cfg(all(madsim, feature = "fault-injection"))]

use std::process::Command;

/// Runs `sim run` over 100 seeds with `plant`; returns its output if it failed.
fn caught(plant: &str) -> Option<String> {
    caught_with(plant, &[])
}

/// As [`caught`], with more arguments for `sim run` (a fault set, say).
fn caught_with(plant: &str, more: &[&str]) -> Option<String> {
    let base: u64 = std::env::var("PLANTED_BASE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let seeds = format!("{base}..{}", base + 100);
    let output = Command::new(env!("CARGO_BIN_EXE_sim"))
        .args([
            "run",
            "--seeds",
            &seeds,
            "--mode",
            "quorum+sync",
            "--stop-on-fail",
            "--plant",
            plant,
        ])
        .args(more)
        .output()
        .expect("the sim binary runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    println!("--plant {plant}, seeds {seeds}:\n{stdout}");
    match output.status.code() {
        Some(1) if stdout.contains("FAIL seed") => Some(stdout),
        Some(0) => None,
        other => panic!("sim run --plant {plant} ended with {other:?}:\n{stdout}"),
    }
}

#[test]
fn acknowledging_before_a_quorum_is_caught_within_100_seeds() {
    let out = caught("ack-before-quorum").expect("ack-before-quorum went unnoticed");
    assert!(out.contains("lost"), "{out}");
}

#[test]
fn skipping_the_fsync_is_caught_within_100_seeds() {
    let out = caught("skip-fsync").expect("skip-fsync went unnoticed");
    assert!(out.contains("lost"), "{out}");
}

#[test]
fn committing_an_offset_before_processing_is_caught_within_100_seeds() {
    let out = caught("early-offset-commit").expect("early-offset-commit went unnoticed");
    assert!(out.contains("undelivered to SimGroup"), "{out}");
}

#[test]
fn delivering_out_of_order_is_caught_within_100_seeds() {
    let out = caught("out-of-order-delivery").expect("out-of-order delivery went unnoticed");
    assert!(out.contains("fifo"), "{out}");
}

#[test]
fn restarting_queues_at_zero_after_a_snapshot_is_caught_within_100_seeds() {
    // Only `compact` reaches the snapshot boundary: a follower returns to a log its
    // master compacted, installs a snapshot, and must continue every queue where the
    // master's log does.
    let out = caught_with("snapshot-queues-at-zero", &["--faults", "compact"])
        .expect("restarting queues at 0 after a snapshot went unnoticed");
    // The follower's store refuses the master's next offsets in that queue (or, as
    // master, hands out offsets already taken).
    assert!(
        out.contains("did not converge") || out.contains("inconsistent"),
        "{out}"
    );
}

#[test]
fn delivering_a_half_message_is_caught_within_100_seeds() {
    let out = caught("deliver-half-message").expect("a delivered half message went unnoticed");
    assert!(out.contains("tx-uncommitted-delivered"), "{out}");
}

#[test]
fn delivering_a_delayed_message_early_is_caught_within_100_seeds() {
    let out = caught("deliver-delayed-early").expect("an early delayed message went unnoticed");
    assert!(out.contains("delayed-early"), "{out}");
}

#[test]
fn dropping_a_send_back_is_caught_within_100_seeds() {
    let out = caught("drop-send-back").expect("a dropped send-back went unnoticed");
    assert!(out.contains("sent-back-lost"), "{out}");
}

#[test]
fn delivering_a_timer_message_early_is_caught_within_100_seeds() {
    let out = caught("deliver-timers-early").expect("an early timer message went unnoticed");
    assert!(out.contains("delayed-early"), "{out}");
}
