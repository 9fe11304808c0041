//! raftmq
