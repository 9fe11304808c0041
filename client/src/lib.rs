//! raftmq's client: producers, consumers and admin calls over RocketMQ's remoting
//! protocol. It depends on `proto` only, so applications use it without the broker.
//!
//! # Layout
//! - [`producer`]: `Producer` (sync, oneway, batch, ordered with a selector).
//! - [`push`]: `PushConsumer` (clustering or broadcasting, concurrent or orderly).
//! - [`pull`]: `PullConsumer` (explicit queue and offset) and the pull call itself.
//! - [`transaction`]: `TransactionProducer` (half messages, local transactions,
//!   check-back).
//! - [`admin`]: topics, routes, clusters, consumer progress, queries.
//! - [`instance`]: what clients of one process share (connections, route cache).
//! - [`dead_letter`]: reading a group's dead letters and resending them.
//! - [`send_back`]: a push consumer's failed messages back to the broker, and
//!   `%RETRY%` / `%DLQ%` topic names.
//! - [`rebalance`], [`filter`], [`message`], [`config`], [`error`].
//!
//! Name servers come from [`ClientConfig::namesrv_addrs`] or `NAMESRV_ADDR`.

pub mod admin;
pub mod config;
pub mod dead_letter;
pub mod error;
pub mod filter;
pub mod instance;
pub mod message;
pub mod nsaddr;
#[cfg(feature = "fault-injection")]
pub mod plant;
pub mod producer;
pub mod pull;
pub mod push;
pub mod rebalance;
pub mod send_back;
pub mod transaction;

pub use admin::Admin;
pub use config::ClientConfig;
pub use error::{ClientError, Result};
pub use message::{Message, MessageExt};
pub use producer::{Producer, SendResult, SendStatus};
pub use proto::remoting::body::MessageQueue;
pub use pull::{PullConsumer, PullResult, PullStatus};
pub use push::{ConsumeFromWhere, ConsumeResult, MessageModel, PushConsumer, PushConsumerBuilder};
pub use transaction::{
    LocalTransactionState, TransactionChecker, TransactionProducer, TransactionSendResult,
};
