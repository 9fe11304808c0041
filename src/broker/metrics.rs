//! The broker's metrics, gathered at scrape time into an [`Exposition`]: RocketMQ 5's
//! names where one exists (`rocketmq_*`), raftmq's own for Raft and the store
//! (`raftmq_*`). Every sample carries `cluster`, `node_type="broker"`, `node_id` (the
//! broker name, as RocketMQ's) and `replica_id` (the Raft node id, or the broker id of a
//! broker outside a group), so the replicas of one group differ.

use openraft::ServerState;
use store::meta::MetaStore;
use store::Disk;

use super::Broker;
use crate::metrics::exposition::{labels, Exposition, Labels};
use crate::metrics::traffic::{is_retry_or_dlq, is_system_topic};

fn flag(b: bool) -> &'static str {
    if b {
        "true"
    } else {
        "false"
    }
}

fn count(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn signed(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl<D: Disk, M: MetaStore> Broker<D, M> {
    /// The labels every sample of this broker carries.
    fn node_labels(&self) -> Labels {
        let replica_id = match &self.replica {
            Some(r) => r.id,
            None => self.config.broker_id,
        };
        vec![
            ("cluster", self.config.broker_cluster_name.clone()),
            ("node_type", "broker".to_string()),
            ("node_id", self.config.broker_name.clone()),
            ("replica_id", replica_id.to_string()),
        ]
    }

    /// Adds this broker's metrics to `out`.
    pub fn collect_metrics(&self, out: &mut Exposition) {
        let node = self.node_labels();
        self.collect_traffic(&node, out);
        self.collect_consumers(&node, out);
        self.collect_store(&node, out);
        self.collect_raft(&node, out);
        self.collect_transactions(&node, out);
    }

    /// RocketMQ 5's transaction metrics, and raftmq's discards and checks.
    fn collect_transactions(&self, node: &Labels, out: &mut Exposition) {
        use super::transaction::Outcome;
        for ((topic, outcome), n) in self.transactions.ended() {
            let (name, help) = match outcome {
                Outcome::Commit => ("rocketmq_commit_messages", "Transactions committed."),
                Outcome::Rollback => ("rocketmq_rollback_messages", "Transactions rolled back."),
                Outcome::Discard => (
                    "raftmq_transaction_discarded_messages",
                    "Transactions discarded after transaction.check_max checks.",
                ),
            };
            out.counter(name, help, labels(node, &[("topic", &topic)]), n);
        }
        for (topic, n) in self.transactions.pending_by_topic() {
            out.gauge(
                "rocketmq_half_messages",
                "Half messages waiting for their producer's decision (on the master).",
                labels(node, &[("topic", &topic)]),
                count(n),
            );
        }
        if self.replica.as_ref().is_none_or(|r| r.is_master()) {
            out.gauge(
                "rocketmq_timing_messages",
                "Timer messages waiting in the timing wheel, all topics together (on the master).",
                node.clone(),
                count(self.timers_pending() as usize),
            );
        }
        out.counter(
            "raftmq_transaction_checks",
            "CHECK_TRANSACTION_STATE requests sent to producers.",
            node.clone(),
            self.transactions
                .checks_sent
                .load(std::sync::atomic::Ordering::Relaxed),
        );
    }

    fn collect_traffic(&self, node: &Labels, out: &mut Exposition) {
        self.traffic.each_in(|s| {
            let system = flag(is_system_topic(s.topic));
            let l = labels(
                node,
                &[
                    ("topic", s.topic),
                    ("message_type", s.message_type.label()),
                    ("is_system", system),
                ],
            );
            out.counter(
                "rocketmq_messages_in",
                "Messages stored.",
                l.clone(),
                s.messages,
            );
            out.counter(
                "rocketmq_throughput_in",
                "Message body bytes stored.",
                l,
                s.bytes,
            );
            let l = labels(
                node,
                &[("topic", s.topic), ("message_type", s.message_type.label())],
            );
            out.histogram(
                "rocketmq_message_size",
                "Body size of each message stored, in bytes.",
                None,
                l,
                s.sizes,
            );
        });
        self.traffic.each_out(|topic, group, messages, bytes| {
            // As RocketMQ's: retry and dead-letter topics are not counted out.
            if is_retry_or_dlq(topic) {
                return;
            }
            let l = labels(
                node,
                &[
                    ("topic", topic),
                    ("consumer_group", group),
                    ("is_system", flag(is_system_topic(topic))),
                ],
            );
            out.counter(
                "rocketmq_messages_out",
                "Messages pulled.",
                l.clone(),
                messages,
            );
            out.counter("rocketmq_throughput_out", "Stored bytes pulled.", l, bytes);
        });
        self.rpc.each(|request_code, response_code, reading| {
            let l = labels(
                node,
                &[
                    ("protocol_type", "remoting"),
                    ("request_code", &request_code),
                    ("response_code", &response_code),
                ],
            );
            out.buckets(
                "rocketmq_rpc_latency",
                "Time from a request's arrival to its response.",
                Some("milliseconds"),
                l,
                reading,
            );
        });
    }

    fn collect_consumers(&self, node: &Labels, out: &mut Exposition) {
        let topics = self.topics.all();
        out.gauge(
            "rocketmq_topic_number",
            "Topics on this broker.",
            node.clone(),
            count(topics.len()),
        );
        let groups = self.meta.groups().map(|g| g.len()).unwrap_or(0);
        out.gauge(
            "rocketmq_consumer_group_number",
            "Subscription groups on this broker.",
            node.clone(),
            count(groups),
        );
        for (group, members) in self.consumers.group_sizes() {
            out.gauge(
                "rocketmq_consumer_connections",
                "Consumer clients online, by group.",
                labels(node, &[("consumer_group", &group)]),
                count(members),
            );
        }
        // Lag: what each group has not consumed yet, summed over a topic's queues.
        let offsets = match self.all_consumer_offsets() {
            Ok(offsets) => offsets,
            Err(e) => {
                tracing::warn!(error = %e, "metrics: reading consumer offsets");
                return;
            }
        };
        let mut lag: std::collections::BTreeMap<(String, String), u64> = Default::default();
        for (group, topic, queue_id, offset) in offsets {
            let behind = self
                .store
                .max_offset(&topic, queue_id)
                .saturating_sub(offset);
            *lag.entry((group, topic)).or_default() += behind;
        }
        for ((group, topic), behind) in lag {
            let l = labels(
                node,
                &[
                    ("consumer_group", &group),
                    ("topic", &topic),
                    (
                        "is_retry",
                        flag(topic.starts_with(proto::names::RETRY_PREFIX)),
                    ),
                    ("is_system", flag(is_system_topic(&topic))),
                ],
            );
            out.gauge(
                "rocketmq_consumer_lag_messages",
                "Messages stored and not yet consumed (committed offset to max offset).",
                l,
                signed(behind),
            );
        }
    }

    fn collect_store(&self, node: &Labels, out: &mut Exposition) {
        let store = &self.store;
        let storage = labels(
            node,
            &[("storage_type", "local"), ("storage_medium", "disk")],
        );
        out.gauge_bytes(
            "rocketmq_storage_size",
            "CommitLog bytes on disk.",
            storage.clone(),
            store.commitlog_disk_bytes(),
        );
        out.gauge_bytes(
            "rocketmq_storage_flush_behind",
            "CommitLog bytes written and not yet synced.",
            storage,
            store
                .commitlog_max_offset()
                .saturating_sub(store.flushed_offset()),
        );
        let m = store.metrics();
        out.histogram(
            "raftmq_store_fsync",
            "Duration of each CommitLog sync.",
            Some("seconds"),
            node.clone(),
            &m.fsync_seconds,
        );
        out.histogram(
            "raftmq_store_group_commit",
            "Bytes each CommitLog sync made durable (every append since the last).",
            Some("bytes"),
            node.clone(),
            &m.group_commit_bytes,
        );
        out.counter(
            "raftmq_store_retention_deleted_segments",
            "CommitLog segments retention deleted.",
            node.clone(),
            m.retention_deleted_segments.get(),
        );
        out.counter(
            "raftmq_store_retention_deleted_bytes",
            "CommitLog bytes retention deleted.",
            node.clone(),
            m.retention_deleted_bytes.get(),
        );
    }

    fn collect_raft(&self, node: &Labels, out: &mut Exposition) {
        let Some(replica) = &self.replica else {
            return;
        };
        let m = replica.metrics();
        let role = match m.state {
            ServerState::Leader => "leader",
            ServerState::Follower => "follower",
            ServerState::Candidate => "candidate",
            ServerState::Learner => "learner",
            ServerState::Shutdown => "shutdown",
        };
        for r in ["leader", "follower", "candidate", "learner", "shutdown"] {
            out.gauge(
                "raftmq_raft_role",
                "1 for the replica's current Raft role.",
                labels(node, &[("role", r)]),
                i64::from(r == role),
            );
        }
        out.gauge(
            "raftmq_raft_master_confirmed",
            "1 while a quorum confirmed this replica as master (what name servers hear).",
            node.clone(),
            i64::from(replica.confirmed_master()),
        );
        out.gauge(
            "raftmq_raft_term",
            "The replica's Raft term.",
            node.clone(),
            signed(m.current_term),
        );
        out.gauge(
            "raftmq_raft_last_log_index",
            "Index of the replica's last log entry.",
            node.clone(),
            signed(m.last_log_index.unwrap_or(0)),
        );
        out.gauge(
            "raftmq_raft_applied_index",
            "Index of the last entry applied (committed and readable).",
            node.clone(),
            signed(m.last_applied.map_or(0, |l| l.index)),
        );
        if let Some(index) = replica.quorum_matched_index() {
            out.gauge(
                "raftmq_raft_quorum_matched_index",
                "On the master: the highest index a majority of voters holds.",
                node.clone(),
                signed(index),
            );
        }
        for (follower, behind) in replica.replica_lag() {
            out.gauge(
                "raftmq_raft_replication_lag_entries",
                "On the master: entries each other replica is behind.",
                labels(node, &[("follower", &follower.to_string())]),
                signed(behind),
            );
        }
        out.counter(
            "raftmq_raft_masterships",
            "Leaderships of this replica a quorum confirmed.",
            node.clone(),
            replica.masterships(),
        );
        out.counter(
            "raftmq_raft_snapshot_installs",
            "Snapshots this replica installed from a master.",
            node.clone(),
            replica.machine().snapshot_installs(),
        );
    }
}
