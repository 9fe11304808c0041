//! What admin tools and the dashboard read of a broker: GET_TOPIC_STATS_INFO (a topic's
//! queues and their offsets), GET_CONSUMER_CONNECTION_LIST (a group's clients and
//! subscriptions) and GET_BROKER_RUNTIME_INFO (named figures), as RocketMQ's broker
//! answers them for `mqadmin topicStatus`, `consumerConnection` and `brokerStatus`.

use proto::remoting::body::{to_json, KvTable, MessageQueue, TopicOffset, TopicStatsTable};
use proto::remoting::codes::response;
use proto::remoting::{ProtoError, RemotingCommand};
use store::meta::MetaStore;
use store::Disk;

use super::transaction::Outcome;
use super::{store_error, Broker};

/// `GET_BROKER_RUNTIME_INFO` keys raftmq adds to RocketMQ's.
pub mod keys {
    /// Latency of successful sends since the broker started, in ms buckets
    /// (`metrics::buckets::Snapshot::encode`).
    pub const SEND_LATENCY_MS: &str = "raftmqSendLatencyMs";
    /// `master`, `slave`, or `single` outside a replicated group.
    pub const ROLE: &str = "raftmqRole";
    pub const TERM: &str = "raftmqTerm";
    /// Transactions this broker ended since it started, by outcome, and checks sent.
    pub const TX_COMMITTED: &str = "raftmqTransactionsCommitted";
    pub const TX_ROLLED_BACK: &str = "raftmqTransactionsRolledBack";
    pub const TX_DISCARDED: &str = "raftmqTransactionsDiscarded";
    pub const TX_CHECKS: &str = "raftmqTransactionChecks";
    /// Transactions waiting for a decision, as this master last counted them (its check
    /// round reads new half messages every `transaction.check_interval_ms`); -1 on a
    /// slave, or a master that has not counted yet.
    pub const TX_PENDING: &str = "raftmqTransactionsPending";
    /// Delayed messages (and sent-back retries) and timer messages not yet moved to
    /// their topic.
    pub const DELAYED_PENDING: &str = "raftmqDelayedPending";
    /// Timer messages alone not yet delivered to their topic (RocketMQ 5's
    /// `timerOffsetBehind` counts the same backlog its way).
    pub const TIMERS_PENDING: &str = "raftmqTimersPending";
    /// Producers connected, over all producer groups.
    pub const PRODUCERS: &str = "raftmqProducers";
}

impl<D: Disk, M: MetaStore> Broker<D, M> {
    pub(super) async fn topic_stats(
        &self,
        req: &RemotingCommand,
    ) -> Result<RemotingCommand, ProtoError> {
        let topic: String = req.ext_parse("topic")?;
        let Some(config) = self.topics.get(&topic) else {
            return Ok(RemotingCommand::response_to(
                req,
                response::TOPIC_NOT_EXIST,
                Some(format!("topic[{topic}] not exist")),
            ));
        };
        // Acknowledged sends count at once, as in GET_MAX_OFFSET.
        if let Err(e) = self.store.settled().await {
            return Ok(store_error(req, &e));
        }
        let queues = config.read_queue_nums.max(config.write_queue_nums);
        let table = TopicStatsTable {
            offset_table: (0..queues)
                .map(|queue_id| {
                    (
                        MessageQueue {
                            topic: topic.clone(),
                            broker_name: self.config.broker_name.clone(),
                            queue_id,
                        },
                        TopicOffset {
                            min_offset: self.store.min_offset(&topic, queue_id),
                            max_offset: self.store.max_offset(&topic, queue_id),
                            last_update_timestamp: 0,
                        },
                    )
                })
                .collect(),
        };
        Ok(RemotingCommand::response_to(req, response::SUCCESS, None)
            .with_body(table.to_fastjson()))
    }

    pub(super) fn consumer_connections(
        &self,
        req: &RemotingCommand,
    ) -> Result<RemotingCommand, ProtoError> {
        let group: String = req.ext_parse("consumerGroup")?;
        match self.consumers.connection(&group) {
            Some(connection) => Ok(RemotingCommand::response_to(req, response::SUCCESS, None)
                .with_body(to_json(&connection))),
            None => Ok(RemotingCommand::response_to(
                req,
                response::CONSUMER_NOT_ONLINE,
                Some(format!("the consumer group[{group}] not online")),
            )),
        }
    }

    pub(super) fn runtime_info(
        &self,
        req: &RemotingCommand,
    ) -> Result<RemotingCommand, ProtoError> {
        let (messages_in, messages_out) = self.traffic.totals();
        let store = &self.store;
        let (role, term) = match &self.replica {
            Some(r) if r.confirmed_master() => ("master", r.term()),
            Some(r) => ("slave", r.term()),
            None => ("single", 0),
        };
        let load = |n: &std::sync::atomic::AtomicU64| {
            n.load(std::sync::atomic::Ordering::Relaxed).to_string()
        };
        let ended = |o| self.transactions.ended_total(o).to_string();
        let timers_pending = self.timers_pending();
        // -1 until this replica, as master, has counted them in its current term.
        let tx_pending = match &self.replica {
            Some(r) if !r.is_master() => None,
            Some(r) => self.transactions.pending_in(r.term()),
            None => self.transactions.pending_in(0),
        }
        .map_or_else(|| "-1".to_string(), |n| n.to_string());
        let mut table = KvTable::default();
        for (key, value) in [
            (
                "brokerVersionDesc",
                format!("raftmq {}", env!("CARGO_PKG_VERSION")),
            ),
            ("msgPutTotalTodayNow", messages_in.to_string()),
            ("msgGetTotalTodayNow", messages_out.to_string()),
            (
                "commitLogMinOffset",
                store.commitlog_min_offset().to_string(),
            ),
            (
                "commitLogMaxOffset",
                store.commitlog_max_offset().to_string(),
            ),
            (
                "commitLogDiskBytes",
                store.commitlog_disk_bytes().to_string(),
            ),
            (keys::ROLE, role.to_string()),
            (keys::TERM, term.to_string()),
            (keys::SEND_LATENCY_MS, self.rpc.successful_sends().encode()),
            (keys::TX_COMMITTED, ended(Outcome::Commit)),
            (keys::TX_ROLLED_BACK, ended(Outcome::Rollback)),
            (keys::TX_DISCARDED, ended(Outcome::Discard)),
            (keys::TX_CHECKS, load(&self.transactions.checks_sent)),
            (keys::TX_PENDING, tx_pending),
            (keys::PRODUCERS, self.producers.count().to_string()),
            (
                keys::DELAYED_PENDING,
                (self.delayed_pending() + timers_pending).to_string(),
            ),
            (keys::TIMERS_PENDING, timers_pending.to_string()),
        ] {
            table.table.insert(key.to_string(), value);
        }
        Ok(RemotingCommand::response_to(req, response::SUCCESS, None).with_body(to_json(&table)))
    }
}
