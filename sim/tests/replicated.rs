//! A 3-replica Raft group whose master loses power twice while a producer streams sends
//! (`sim::replicated::master_power_loss`), judged by `history::checker`; the replicas must
//! also converge to byte-identical logs.
//!
//! - `quorum + sync`: nothing acknowledged is lost;
//! - `leader + sync`: at most an acknowledged tail is lost (what the new master had not
//!   received), and its size is printed;
//! - `quorum + async` (ignored by default): Raft assumes a replica's log survives what
//!   it acknowledged, and `flush = async` gives that up on power loss, so a replica that
//!   comes back with a shorter log can help elect a master without entries a quorum
//!   had acknowledged. Run it to see what a seed loses; README's mode table says so.
//!
//! `RUSTFLAGS="--cfg madsim" CARGO_TARGET_DIR=target/sim cargo test -p sim --test
//! replicated` (`MADSIM_TEST_NUM=100` for more seeds; a failure prints the seed,
//! `MADSIM_TEST_SEED=<seed>` replays it).
#![cfg(madsim)]

use history::checker::{check, LossAllowance};
use history::history::F;
use history::mode::{Ack, Flush, Mode};
use history::stall::write_stall_ms;
use sim::replicated::{master_faults, master_power_loss, MasterFault, Plant, MESSAGES};

fn mode(ack: Ack, flush: Flush) -> Mode {
    Mode { ack, flush }
}

#[madsim::test]
async fn quorum_sync_loses_nothing_when_the_master_loses_power() {
    let (seed, history) = master_power_loss(mode(Ack::Quorum, Flush::Sync), Plant::None).await;
    let report = check(&history, LossAllowance::None, true);
    assert!(report.valid, "seed {seed}: {report:?}");
    assert!(
        report.acknowledged > MESSAGES / 2,
        "seed {seed}: {report:?}"
    );
    println!(
        "seed {seed}: acknowledged {} of {MESSAGES}",
        report.acknowledged
    );
}

#[madsim::test]
#[ignore = "async flush gives up Raft's durability on power loss; run it to measure"]
async fn quorum_async_under_power_loss() {
    let (seed, history) = master_power_loss(mode(Ack::Quorum, Flush::Async), Plant::None).await;
    let report = check(&history, LossAllowance::Tail, true);
    println!("seed {seed}: {report:?}");
}

#[madsim::test]
async fn leader_ack_loses_at_most_an_acknowledged_tail() {
    let (seed, history) = master_power_loss(mode(Ack::Leader, Flush::Sync), Plant::None).await;
    let report = check(&history, LossAllowance::Tail, true);
    assert!(report.valid, "seed {seed}: {report:?}");
    println!(
        "seed {seed}: leader ack lost an acknowledged tail of {} sends",
        report.lost_tail
    );
}

/// A master that stops answering (SIGSTOP) for 2–3 s, longer than a send's timeout
/// (2 s here): the send waiting on it is given up once the name servers name the new
/// master, and retried there (`client::ClientError::MasterMoved`), so writes resume
/// after about an election, while the old master is still paused. Without that, each
/// pause stops writes for at least the send timeout. Over random seeds about one pause
/// in a hundred still stops writes past the bound (a slow election), so `scripts/test`
/// plays a fixed seed that fails without the mechanism; `MADSIM_TEST_NUM=50` shows the
/// spread.
#[madsim::test]
async fn writes_resume_while_the_master_is_still_paused() {
    let (seed, history) = master_faults(
        mode(Ack::Quorum, Flush::Sync),
        Plant::None,
        MasterFault::Pause,
    )
    .await;
    let report = check(&history, LossAllowance::None, true);
    assert!(report.valid, "seed {seed}: {report:?}");
    let events = history.events();
    let last_invoke = events
        .iter()
        .filter(|e| e.f == F::Send)
        .map(|e| e.time_ms)
        .max()
        .unwrap_or(0);
    // Pauses the producer went on sending through for the bound below (it may finish
    // its sends before a pause, or during one).
    let pauses: Vec<i64> = events
        .iter()
        .filter(|e| e.f == F::Fault && e.time_ms + 1_500 < last_invoke)
        .map(|e| e.time_ms)
        .collect();
    for at in pauses {
        let stall = write_stall_ms(events, at, None);
        println!("seed {seed}: writes stopped for {stall:?} ms after a master paused");
        assert!(
            stall.is_some_and(|ms| ms < 1_900),
            "seed {seed}: writes stopped for {stall:?} ms after the master paused at {at} ms"
        );
    }
}
