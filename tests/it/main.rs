//! Integration tests of raftmq's public APIs, one binary (as RisingWave does): real
//! sockets on 127.0.0.1 with ephemeral ports.

mod bad_input;
mod bench;
mod client_dialects;
mod cluster;
mod config;
mod dashboard;
mod footprint;
mod group;
mod groups;
mod layout;
mod logs;
mod metrics;
mod name_servers;
mod nsaddr;
mod replication;
mod retry;
mod roundtrip;
mod stats;
mod timer;
mod transaction;
mod visibility;
