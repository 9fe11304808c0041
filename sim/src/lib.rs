//! Deterministic whole-cluster simulation of raftmq under madsim, and the history format
//! and checkers it shares with the Jepsen harness.
//!
//! # Layout
//! - [`history`]: the JSONL history (Jepsen's invoke/ok/fail/info vocabulary).
//! - [`mode`]: durability modes as `quorum+sync` etc., and what each may lose.
//! - [`checker`]: lost, unexpected, failed-but-read, recovered, duplicated, inconsistent
//!   offsets, FIFO, diverged and undelivered checks over a history. Pure and not
//!   `cfg(madsim)`, so the Jepsen harness uses it too.
//! - [`inspect`]: a trace as a readable timeline (`sim inspect`; either build).
//!
//! Simulated build only:
//! - `cluster`: name servers and Raft broker groups on simulated hosts, as a struct.
//! - `workload`: producers, consumer hosts, the final read of every replica.
//! - `swarm` and `nemesis`: the faults a seed turns on, and injecting them;
//!   `compaction`: deleting the oldest log on demand, so followers need snapshots.
//! - `scenario`: one seed start to end (safety phase, liveness phase, verdict).
//! - `plant`: the planted bugs (`fault-injection` builds).
//! - `trace`: the event trace `sim replay --trace` writes.
//! - `nodes`, `replicated`: the smaller scenarios of `tests/crash.rs` and
//!   `tests/replicated.rs`.

pub mod checker;
#[cfg(madsim)]
pub mod cluster;
#[cfg(madsim)]
pub mod compaction;
pub mod history;
pub mod inspect;
pub mod mode;
#[cfg(madsim)]
pub mod nemesis;
#[cfg(madsim)]
pub mod nodes;
#[cfg(madsim)]
pub mod plant;
#[cfg(madsim)]
pub mod replicated;
#[cfg(madsim)]
pub mod scenario;
#[cfg(madsim)]
pub mod swarm;
#[cfg(madsim)]
pub mod trace;
#[cfg(madsim)]
pub mod workload;
