//! raftmq client: Producer, PushConsumer, PullConsumer, admin calls and the route cache.
//!
//! Filled by the vertical-slice issue; it depends on `proto` only, so applications can
//! use it without pulling in the broker.
