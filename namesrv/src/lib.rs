//! raftmq name server: the route table (a plain struct) and its server.
//!
//! Filled by the vertical-slice issue.
