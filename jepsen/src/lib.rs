//! Jepsen-style harness that drives the real raftmq binaries under real faults.
//!
//! Filled by the Jepsen issue; it depends on `client` and `proto` only.
