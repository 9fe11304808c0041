//! The history format, the durability modes and the checkers that the simulator (`sim`)
//! and the Jepsen harness (`jepsen`) share. Pure: no runtime, no I/O, no broker crates;
//! each harness turns what its clients saw into [`history::History`] events and its
//! modes into the broker's configuration itself.
//!
//! # Layout
//! - [`history`]: the JSONL history (Jepsen's invoke/ok/fail/info vocabulary).
//! - [`mode`]: durability modes as `quorum+sync` etc., and what each may lose.
//! - [`checker`]: the invariants a history must hold, one a file (lost, unexpected,
//!   failed but read, inconsistent offsets, FIFO, diverged, undelivered), composed into
//!   one [`checker::Report`].
//! - [`inspect`]: a simulator trace as a readable timeline (`sim inspect`).
//! - [`stall`]: how long writes stopped around each fault.
//! - [`transaction`]: the transactional workload's values, which name their decision;
//!   [`delayed`]: the delayed sends' values, which name their delay.

pub mod checker;
pub mod delayed;
pub mod history;
pub mod inspect;
pub mod mode;
pub mod stall;
pub mod transaction;
