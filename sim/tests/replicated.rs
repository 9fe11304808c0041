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
use history::mode::{Ack, Flush, Mode};
use sim::replicated::{master_power_loss, Plant, MESSAGES};

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
