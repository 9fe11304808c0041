//! `rocketmq_rpc_latency`: how long the broker took to answer each request, by request
//! and response code, as RocketMQ 5's remoting metrics label them (lower-case constant
//! names; the number for a code without a name).

use std::collections::HashMap;
use std::sync::RwLock;

use proto::remoting::codes::{request, response};

use super::buckets::{Buckets, Snapshot};

/// Milliseconds, from 0.1 ms to 30 s: long-polling pulls are held up to 30 s.
static LATENCY_MS_BUCKETS: [f64; 16] = [
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 3000.0, 10_000.0,
    30_000.0,
];

#[derive(Debug, Default)]
pub struct RpcLatency {
    /// (request code, response code) → latency in ms.
    by_code: RwLock<HashMap<(i32, i32), Buckets>>,
}

impl RpcLatency {
    pub fn observe(&self, request_code: i32, response_code: i32, ms: f64) {
        let key = (request_code, response_code);
        if let Some(h) = self.by_code.read().expect("rpc latency poisoned").get(&key) {
            h.observe(ms);
            return;
        }
        self.by_code
            .write()
            .expect("rpc latency poisoned")
            .entry(key)
            .or_insert_with(|| Buckets::new(&LATENCY_MS_BUCKETS))
            .observe(ms);
    }

    /// Calls `f(request_code, response_code, reading)` in code order.
    pub fn each(&self, mut f: impl FnMut(String, String, Snapshot)) {
        let by_code = self.by_code.read().expect("rpc latency poisoned");
        let mut keys: Vec<&(i32, i32)> = by_code.keys().collect();
        keys.sort();
        for key in keys {
            f(
                request_name(key.0),
                response_name(key.1),
                by_code[key].snapshot(),
            );
        }
    }

    /// Latency of the sends answered SUCCESS, all send codes together.
    pub fn successful_sends(&self) -> Snapshot {
        let by_code = self.by_code.read().expect("rpc latency poisoned");
        let mut total = Snapshot::default();
        for code in [
            request::SEND_MESSAGE,
            request::SEND_MESSAGE_V2,
            request::SEND_BATCH_MESSAGE,
        ] {
            if let Some(b) = by_code.get(&(code, response::SUCCESS)) {
                total.add(&b.snapshot());
            }
        }
        total
    }
}

/// RocketMQ's `RequestCode` constant name, lower-case.
pub fn request_name(code: i32) -> String {
    let name = match code {
        request::SEND_MESSAGE => "send_message",
        request::PULL_MESSAGE => "pull_message",
        request::LITE_PULL_MESSAGE => "lite_pull_message",
        request::QUERY_MESSAGE => "query_message",
        request::QUERY_CONSUMER_OFFSET => "query_consumer_offset",
        request::UPDATE_CONSUMER_OFFSET => "update_consumer_offset",
        request::UPDATE_AND_CREATE_TOPIC => "update_and_create_topic",
        request::GET_ALL_TOPIC_CONFIG => "get_all_topic_config",
        request::GET_TOPIC_CONFIG => "get_topic_config",
        request::GET_BROKER_CONFIG => "get_broker_config",
        request::SEARCH_OFFSET_BY_TIMESTAMP => "search_offset_by_timestamp",
        request::GET_MAX_OFFSET => "get_max_offset",
        request::GET_MIN_OFFSET => "get_min_offset",
        request::VIEW_MESSAGE_BY_ID => "view_message_by_id",
        request::HEART_BEAT => "heart_beat",
        request::UNREGISTER_CLIENT => "unregister_client",
        request::CONSUMER_SEND_MSG_BACK => "consumer_send_msg_back",
        request::GET_CONSUMER_LIST_BY_GROUP => "get_consumer_list_by_group",
        request::LOCK_BATCH_MQ => "lock_batch_mq",
        request::UNLOCK_BATCH_MQ => "unlock_batch_mq",
        request::UPDATE_AND_CREATE_SUBSCRIPTIONGROUP => "update_and_create_subscriptiongroup",
        request::GET_ALL_SUBSCRIPTIONGROUP_CONFIG => "get_all_subscriptiongroup_config",
        request::DELETE_SUBSCRIPTIONGROUP => "delete_subscriptiongroup",
        request::GET_CONSUME_STATS => "get_consume_stats",
        request::SEND_MESSAGE_V2 => "send_message_v2",
        request::SEND_BATCH_MESSAGE => "send_batch_message",
        request::GET_TOPIC_STATS_INFO => "get_topic_stats_info",
        request::GET_CONSUMER_CONNECTION_LIST => "get_consumer_connection_list",
        request::GET_BROKER_RUNTIME_INFO => "get_broker_runtime_info",
        request::RAFTMQ_GROUP_STATUS => "raftmq_group_status",
        request::RAFTMQ_ADD_REPLICA => "raftmq_add_replica",
        request::RAFTMQ_REMOVE_REPLICA => "raftmq_remove_replica",
        other => return other.to_string(),
    };
    name.to_string()
}

/// RocketMQ's `ResponseCode` constant name, lower-case.
pub fn response_name(code: i32) -> String {
    let name = match code {
        response::SUCCESS => "success",
        response::SYSTEM_ERROR => "system_error",
        response::SYSTEM_BUSY => "system_busy",
        response::REQUEST_CODE_NOT_SUPPORTED => "request_code_not_supported",
        response::FLUSH_DISK_TIMEOUT => "flush_disk_timeout",
        response::SLAVE_NOT_AVAILABLE => "slave_not_available",
        response::FLUSH_SLAVE_TIMEOUT => "flush_slave_timeout",
        response::MESSAGE_ILLEGAL => "message_illegal",
        response::SERVICE_NOT_AVAILABLE => "service_not_available",
        response::VERSION_NOT_SUPPORTED => "version_not_supported",
        response::NO_PERMISSION => "no_permission",
        response::TOPIC_NOT_EXIST => "topic_not_exist",
        response::TOPIC_EXIST_ALREADY => "topic_exist_already",
        response::PULL_NOT_FOUND => "pull_not_found",
        response::PULL_RETRY_IMMEDIATELY => "pull_retry_immediately",
        response::PULL_OFFSET_MOVED => "pull_offset_moved",
        response::QUERY_NOT_FOUND => "query_not_found",
        response::SUBSCRIPTION_PARSE_FAILED => "subscription_parse_failed",
        response::SUBSCRIPTION_NOT_EXIST => "subscription_not_exist",
        response::SUBSCRIPTION_NOT_LATEST => "subscription_not_latest",
        response::SUBSCRIPTION_GROUP_NOT_EXIST => "subscription_group_not_exist",
        response::CONSUMER_NOT_ONLINE => "consumer_not_online",
        other => return other.to_string(),
    };
    name.to_string()
}
