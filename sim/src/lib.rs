//! Deterministic whole-cluster simulation of raftmq under madsim.
//!
//! Today: `tests/smoke.rs` runs the real name server, broker and client on three
//! simulated hosts (the broker on `SimDisk` and `MemMetaStore`), proving the simulation
//! seam end to end. The simulator issue grows this into the cluster struct, workloads,
//! fault schedules, checkers and the seed runner. The checker library (history format
//! and checks) will live in a module that is not `cfg(madsim)`, so the Jepsen harness can
//! reuse it.
