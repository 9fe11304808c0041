//! Integration tests of raftmq's public APIs, one binary (as RisingWave does).
//!
//! The vertical-slice issue adds the broker, name server and clients over real sockets.
//! Until then this checks the contract the crates share: the bytes the store appends are
//! the bytes a pull returns and a client decodes.

mod layout;
