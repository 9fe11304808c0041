//! Raft replication of a broker group's CommitLog (openraft 0.9.25).
//!
//! # Layout
//! - [`runtime`]: `RaftRuntime`, openraft's `AsyncRuntime` on madsim-tokio, so openraft
//!   runs on real tokio in the binary and deterministically under madsim.
//! - [`types`]: the openraft type configuration of a broker group.
//! - [`mem`]: in-memory log storage and state machine for tests.
//! - [`router`]: an in-process network between `Raft` instances, for tests.
//! - [`transport`]: openraft's RPCs between replicas over TCP (bincode in remoting
//!   frames), on the replica port.
//!
//! - [`log_store`]: openraft's log storage on `store`'s CommitLog (the CommitLog *is* the
//!   Raft log, as in RocketMQ's DLedger: its record header carries `term` and `index`).
//! - [`state_machine`]: applying committed entries (messages become readable, consumer
//!   offsets and topic configs change), saving the applied state, snapshots;
//!   `applied`: the state and the pure function that applies one entry to it.
//! - `entry_cache`, `background`: the newest entries in memory; writes Raft must not
//!   wait for.
//! - [`buggify`]: FoundationDB-style buggify points the simulator turns on.

mod applied;
mod background;
pub mod buggify;
mod entry_cache;
mod entry_codec;
pub mod log_store;
pub mod mem;
pub mod router;
pub mod runtime;
pub mod state_machine;
pub mod transport;
pub mod types;
