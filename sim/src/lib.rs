//! Deterministic whole-cluster simulation of raftmq under madsim, and the history format
//! and checkers it shares with the Jepsen harness.
//!
//! # Layout
//! - [`history`]: the JSONL history (Jepsen's invoke/ok/fail/info vocabulary).
//! - [`mode`]: durability modes as `quorum+sync` etc., and what each may lose.
//! - [`checker`]: lost, unexpected, failed-but-read, recovered, duplicated, inconsistent
//!   offsets and FIFO checks over a history. Pure and not `cfg(madsim)`, so the Jepsen
//!   harness uses it too.
//! - [`nodes`] (simulated build only): name server and reader hosts every scenario uses.
//! - [`replicated`] (simulated build only): a 3-replica Raft group on simulated hosts
//!   and its master-power-loss scenario.
//! - `tests/smoke.rs`, `tests/crash.rs`, `tests/replicated.rs`, `tests/planted.rs`: the
//!   real name server, broker and client on simulated hosts (simulated build only).
//!
//! The simulator issue grows this into the cluster struct, workloads, fault schedules
//! and the seed runner.

pub mod checker;
#[cfg(madsim)]
pub mod cluster;
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
