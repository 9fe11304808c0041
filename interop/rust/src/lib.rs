//! Interoperability tests against third-party RocketMQ clients.
//!
//! This crate has no library code. It exists so that the third-party clients its tests
//! drive (such as the crates.io `rocketmq-client-rust`, which pulls in a large dependency
//! tree and its own tokio runtime) stay out of the dependency trees of raftmq's other
//! crates: only `cargo test -p interop-rust` builds them.
