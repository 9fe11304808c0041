//! Jepsen-style testing of the real raftmq binaries: real processes, real faults (kill,
//! pause, partitions and packet loss in network namespaces), a recorded history judged
//! by the checkers of the `history` crate (the simulator's too), and a report.
//!
//! # Layout
//! - [`opts`]: what a run tests.
//! - [`broker_config`]: the config file each broker replica reads.
//! - [`provision`]: the binaries under test (built by cargo, or given).
//! - [`net`]: network namespaces and nft partitions, or loopback.
//! - [`cluster`]: the name server and broker processes; kill, pause, restart, status.
//! - [`nemesis`]: the fault schedule.
//! - [`lazyfs`]: the FUSE filesystem that loses unsynced writes (power loss).
//! - [`workload`]: producers, the consumer group, the final reads.
//! - [`recorder`]: the shared history.
//! - [`runner`]: one run, start to end.
//! - [`report`]: `results.json` and `report.html`.

pub mod broker_config;
pub mod cluster;
pub mod lazyfs;
pub mod nemesis;
pub mod net;
pub mod opts;
pub mod provision;
pub mod recorder;
pub mod report;
pub mod runner;
pub mod workload;
