//! raftmq: a RocketMQ-style message broker whose broker groups replicate their CommitLog
//! through Raft, and whose whole cluster also runs under a deterministic simulator.
//!
//! # Layout
//! - [`broker`]: one broker replica serving RocketMQ's remoting protocol over `store`.
//! - [`config`]: the broker's TOML configuration.
//! - [`dev`]: `raftmq dev`, a name server and a broker in one process.
//! - [`cli`]: the `raftmq` command line (admin, send, consume, bench).
//! - [`dashboard`]: `raftmq dashboard`, web pages over a cluster's admin API.
//! - [`metrics`]: Prometheus metrics; [`http`]: their endpoint and the name-server
//!   address server.
//!
//! The other crates: `proto` (wire format), `store` (CommitLog and friends), `raft` (the
//! group's Raft replication), `client`, `namesrv`, `history` (the history format and
//! checkers), `sim` (the deterministic simulator) and `jepsen` (fault runs of the real
//! binaries).

pub mod broker;
#[cfg(not(madsim))]
pub mod cli;
pub mod config;
#[cfg(not(madsim))]
pub mod dashboard;
#[cfg(not(madsim))]
pub mod dev;
#[cfg(not(madsim))]
pub mod http;
pub mod metrics;

pub use broker::{start as start_broker, Broker, RunningBroker};
pub use config::BrokerConfig;
