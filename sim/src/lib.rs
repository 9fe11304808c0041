//! Deterministic whole-cluster simulation of raftmq under madsim. The history format,
//! the durability modes and the checkers it judges a run by are the `history` crate's,
//! shared with the Jepsen harness.
//!
//! # Layout
//! In both builds:
//! - `outcome`: what one seed found, as `sim replay` reports it.
//! - `campaign`: many seeds per mode, resumable, failures grouped by signature.
//!
//! Simulated build only:
//! - `cluster`: name servers and Raft broker groups on simulated hosts, as a struct.
//! - `workload`: producers, consumer hosts, the final read of every replica;
//!   `transactions`: the transactional producers; `retries`: the consumer group that
//!   fails messages and sends them back; `settle`: waiting, before the final
//!   reads, for what the brokers move by themselves (transactions, delayed messages).
//! - `swarm` and `nemesis`: the faults a seed turns on, and injecting them;
//!   `compaction`: deleting the oldest log on demand, so followers need snapshots.
//! - `scenario`: one seed start to end (safety phase, liveness phase, verdict).
//! - `plant`: the planted bugs (`fault-injection` builds).
//! - `trace`: the event trace `sim replay --trace` writes.
//! - `nodes`, `replicated`: the smaller scenarios of `tests/crash.rs` and
//!   `tests/replicated.rs`.

pub mod campaign;
pub mod outcome;

#[cfg(madsim)]
pub mod cluster;
#[cfg(madsim)]
pub mod compaction;
#[cfg(madsim)]
pub mod nemesis;
#[cfg(madsim)]
pub mod nodes;
#[cfg(madsim)]
pub mod plant;
#[cfg(madsim)]
pub mod replicated;
#[cfg(madsim)]
pub mod retries;
#[cfg(madsim)]
pub mod scenario;
#[cfg(madsim)]
pub mod settle;
#[cfg(madsim)]
pub mod swarm;
#[cfg(madsim)]
pub mod trace;
#[cfg(madsim)]
pub mod transactions;
#[cfg(madsim)]
pub mod workload;
