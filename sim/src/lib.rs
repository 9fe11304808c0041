//! Deterministic whole-cluster simulation of raftmq under madsim.
//!
//! Filled by the simulator issue. The checker library (history format and checks) will
//! live in a module that is not `cfg(madsim)`, so the Jepsen harness can reuse it.
