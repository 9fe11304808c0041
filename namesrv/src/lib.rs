//! raftmq's name server: a nearly stateless route registry.
//!
//! Brokers register with every name server every 30 s; a broker not heard from for
//! 120 s is dropped. Name servers never talk to each other; clients ask any of them.
//!
//! # Layout
//! - [`route_table`]: `RouteTable`, a plain struct with the registration and routing
//!   rules, unit-tested without a runtime.
//! - [`server`]: the remoting service over it and the expiry task.

pub mod route_table;
pub mod server;

pub use route_table::{RouteStats, RouteTable};
pub use server::{start, start_server, NameServer};
