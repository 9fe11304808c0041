//! Raft replication of a broker group's CommitLog (openraft 0.9.25).
//!
//! Filled by the Raft issue: the openraft type config, an `AsyncRuntime` on madsim-tokio,
//! log storage over `store`'s CommitLog segments (the CommitLog *is* the Raft log, as in
//! RocketMQ's DLedger), the state machine, the replica transport and the election/ack modes.
//! The CommitLog record header already carries `term` and `index` for this purpose.
