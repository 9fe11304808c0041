//! Request and response codes, as RocketMQ defines them (`RequestCode`, `ResponseCode`).

/// Request codes raftmq serves or sends.
pub mod request {
    pub const SEND_MESSAGE: i32 = 10;
    pub const PULL_MESSAGE: i32 = 11;
    /// The 5.x client's lite pull consumer pulls with this code; Java's broker serves it
    /// as PULL_MESSAGE.
    pub const LITE_PULL_MESSAGE: i32 = 361;
    pub const QUERY_MESSAGE: i32 = 12;
    pub const QUERY_CONSUMER_OFFSET: i32 = 14;
    pub const UPDATE_CONSUMER_OFFSET: i32 = 15;
    pub const UPDATE_AND_CREATE_TOPIC: i32 = 17;
    pub const GET_ALL_TOPIC_CONFIG: i32 = 21;
    /// One topic's config (5.x admin tools ask it before GET_CONSUME_STATS).
    pub const GET_TOPIC_CONFIG: i32 = 351;
    pub const GET_BROKER_CONFIG: i32 = 26;
    /// A broker's runtime figures as a `KVTable` (`mqadmin brokerStatus`).
    pub const GET_BROKER_RUNTIME_INFO: i32 = 28;
    pub const SEARCH_OFFSET_BY_TIMESTAMP: i32 = 29;
    pub const GET_MAX_OFFSET: i32 = 30;
    pub const GET_MIN_OFFSET: i32 = 31;
    pub const VIEW_MESSAGE_BY_ID: i32 = 33;
    pub const HEART_BEAT: i32 = 34;
    pub const UNREGISTER_CLIENT: i32 = 35;
    pub const CONSUMER_SEND_MSG_BACK: i32 = 36;
    /// A producer's decision on a half message: oneway, never answered.
    pub const END_TRANSACTION: i32 = 37;
    pub const GET_CONSUMER_LIST_BY_GROUP: i32 = 38;
    /// The broker asks a producer of the group how a pending transaction ended:
    /// oneway, on the producer's own connection; the answer is an END_TRANSACTION.
    pub const CHECK_TRANSACTION_STATE: i32 = 39;
    pub const NOTIFY_CONSUMER_IDS_CHANGED: i32 = 40;
    pub const LOCK_BATCH_MQ: i32 = 41;
    pub const UNLOCK_BATCH_MQ: i32 = 42;
    pub const REGISTER_BROKER: i32 = 103;
    pub const UNREGISTER_BROKER: i32 = 104;
    pub const GET_ROUTEINFO_BY_TOPIC: i32 = 105;
    pub const GET_BROKER_CLUSTER_INFO: i32 = 106;
    pub const UPDATE_AND_CREATE_SUBSCRIPTIONGROUP: i32 = 200;
    pub const GET_ALL_SUBSCRIPTIONGROUP_CONFIG: i32 = 201;
    /// A topic's queues with their min and max offsets (`mqadmin topicStatus`).
    pub const GET_TOPIC_STATS_INFO: i32 = 202;
    /// A consumer group's clients and subscriptions (`mqadmin consumerConnection`).
    pub const GET_CONSUMER_CONNECTION_LIST: i32 = 203;
    pub const GET_ALL_TOPIC_LIST_FROM_NAMESERVER: i32 = 206;
    pub const DELETE_SUBSCRIPTIONGROUP: i32 = 207;
    pub const GET_CONSUME_STATS: i32 = 208;
    pub const SEND_MESSAGE_V2: i32 = 310;
    pub const SEND_BATCH_MESSAGE: i32 = 320;
    /// raftmq's own, for replicated broker groups (not in RocketMQ): the group's
    /// members, roles and lag; adding and removing a replica. Sent to the master.
    pub const RAFTMQ_GROUP_STATUS: i32 = 9101;
    pub const RAFTMQ_ADD_REPLICA: i32 = 9102;
    pub const RAFTMQ_REMOVE_REPLICA: i32 = 9103;
}

/// Response codes.
pub mod response {
    pub const SUCCESS: i32 = 0;
    pub const SYSTEM_ERROR: i32 = 1;
    pub const SYSTEM_BUSY: i32 = 2;
    pub const REQUEST_CODE_NOT_SUPPORTED: i32 = 3;
    pub const FLUSH_DISK_TIMEOUT: i32 = 10;
    pub const SLAVE_NOT_AVAILABLE: i32 = 11;
    pub const FLUSH_SLAVE_TIMEOUT: i32 = 12;
    pub const MESSAGE_ILLEGAL: i32 = 13;
    pub const SERVICE_NOT_AVAILABLE: i32 = 14;
    pub const VERSION_NOT_SUPPORTED: i32 = 15;
    pub const NO_PERMISSION: i32 = 16;
    pub const TOPIC_NOT_EXIST: i32 = 17;
    pub const TOPIC_EXIST_ALREADY: i32 = 18;
    pub const PULL_NOT_FOUND: i32 = 19;
    pub const PULL_RETRY_IMMEDIATELY: i32 = 20;
    pub const PULL_OFFSET_MOVED: i32 = 21;
    pub const QUERY_NOT_FOUND: i32 = 22;
    pub const SUBSCRIPTION_PARSE_FAILED: i32 = 23;
    pub const SUBSCRIPTION_NOT_EXIST: i32 = 24;
    pub const SUBSCRIPTION_NOT_LATEST: i32 = 25;
    pub const SUBSCRIPTION_GROUP_NOT_EXIST: i32 = 26;
    pub const CONSUMER_NOT_ONLINE: i32 = 206;
}

/// Which client library sent a command (`LanguageCode`).
pub mod language {
    pub const JAVA: u8 = 0;
    pub const CPP: u8 = 1;
    pub const GO: u8 = 9;
    pub const RUST: u8 = 12;

    pub fn name(code: u8) -> &'static str {
        match code {
            0 => "JAVA",
            1 => "CPP",
            2 => "DOTNET",
            3 => "PYTHON",
            4 => "DELPHI",
            5 => "ERLANG",
            6 => "RUBY",
            7 => "OTHER",
            8 => "HTTP",
            9 => "GO",
            10 => "PHP",
            11 => "OMS",
            12 => "RUST",
            _ => "OTHER",
        }
    }

    pub fn code(name: &str) -> u8 {
        (0..=12).find(|&c| self::name(c) == name).unwrap_or(7)
    }
}
