//! raftmq: a RocketMQ-style message broker whose broker groups replicate their CommitLog
//! through Raft, and whose whole cluster also runs under a deterministic simulator.
//!
//! This root package will hold the broker server, its configuration and the binaries
//! (`raftmq-namesrv`, `raftmq-broker`, `raftmq`). Today the foundation is in place:
//!
//! # Layout
//! - `proto`: RocketMQ's message layout (and, next, the remoting protocol).
//! - `store`: CommitLog, ConsumeQueue, key index, checkpoint, retention and `MetaStore`,
//!   over a `Disk` seam with a real side and a simulated, crash-honest side.
//! - `raft`, `client`, `namesrv`, `sim`, `jepsen`: crates that later work fills.
//!
//! See `DESIGN.md` in the shared folder for the architecture.

pub use proto;
pub use store;
