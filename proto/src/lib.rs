//! The wire format of raftmq: RocketMQ's message layout, remoting frames, request codes
//! and headers, and (feature `io`) remoting over TCP.
//!
//! `proto` owns the message layout so that the bytes the store appends are the bytes a
//! pull returns and a RocketMQ client decodes (DESIGN.md §2). It is pure: no I/O, no
//! runtime, and every decoder returns an error value instead of panicking on bad input.
//!
//! # Layout
//! - [`message`]: RocketMQ's `MessageDecoder` layout (encode, zero-copy decode, msg ids).
//! - [`properties`]: the `name\u{1}value\u{2}` property string and well-known keys.
//! - [`remoting`]: RocketMQ's remoting frames (JSON and binary headers), request and
//!   response codes, and the JSON bodies (route data, heartbeats) with fastjson quirks.
//! - [`names`]: topic and group name validation.
//! - `net` (feature `io`): remoting over TCP: framed streams, server loop, RPC client.
//! - `watch` (feature `watch`, part of `io`): tokio's watch channel, but waking
//!   receivers in a fixed order, so simulated runs replay exactly.
//! - [`clock`]: wall-clock milliseconds (the simulated clock under madsim).
//! - [`hash`]: Java's `String.hashCode`, which RocketMQ uses as the tag code.

pub mod clock;
pub mod hash;
pub mod message;
pub mod names;
#[cfg(feature = "io")]
pub mod net;
pub mod properties;
pub mod remoting;
#[cfg(feature = "watch")]
pub mod watch;

pub use message::{
    DecodeError, MessageId, MessageRef, NewMessage, StoreFields, MESSAGE_FIXED_SIZE,
    MESSAGE_MAGIC_V1, MESSAGE_MAGIC_V2,
};
pub use properties::Properties;
