//! Topic administration, consume stats and message queries.

use bytes::BytesMut;
use proto::remoting::body::{perm, to_json, ConsumeStats, MessageQueue, OffsetWrapper};
use proto::remoting::codes::response;
use proto::remoting::{ProtoError, RemotingCommand};
use store::meta::{MetaStore, TopicConfig};
use store::Disk;

use super::write::put_error;
use super::{ok, store_error, Broker};

/// Most queues a topic may have on one broker.
const QUEUE_NUMS_MAX: u32 = 1024;

impl<D: Disk, M: MetaStore> Broker<D, M> {
    pub(super) async fn create_topic(
        &self,
        req: &RemotingCommand,
    ) -> Result<RemotingCommand, ProtoError> {
        let topic: String = req.ext_parse("topic")?;
        let read: u32 = req.ext_parse("readQueueNums")?;
        let write: u32 = req.ext_parse("writeQueueNums")?;
        let perm_bits: u32 = req.ext_parse_opt("perm")?.unwrap_or(perm::READ_WRITE);
        let order = req.ext_bool("order").unwrap_or(false);
        if let Err(e) = proto::names::validate_name("topic", &topic) {
            return Ok(RemotingCommand::response_to(
                req,
                response::SYSTEM_ERROR,
                Some(e),
            ));
        }
        for (field, n) in [("readQueueNums", read), ("writeQueueNums", write)] {
            if n == 0 || n > QUEUE_NUMS_MAX {
                return Ok(RemotingCommand::response_to(
                    req,
                    response::SYSTEM_ERROR,
                    Some(format!("{field} {n} is not in 1..={QUEUE_NUMS_MAX}")),
                ));
            }
        }
        let config = TopicConfig {
            topic_name: topic.clone(),
            read_queue_nums: read,
            write_queue_nums: write,
            perm: perm_bits,
            order,
        };
        if let Err(e) = self.put_topic(config).await {
            return Ok(put_error(req, &e));
        }
        tracing::info!(%topic, read, write, "topic created or updated");
        self.register_all().await;
        Ok(ok(req))
    }

    /// GET_BROKER_CONFIG: RocketMQ answers with its config as `key=value` lines; tools
    /// (and `raftmq bench`) read the flush and replication mode from it.
    pub(super) fn broker_config(&self, req: &RemotingCommand) -> RemotingCommand {
        let flush = match self.config.flush_disk_type {
            store::FlushMode::Sync => "SYNC_FLUSH",
            store::FlushMode::Async => "ASYNC_FLUSH",
        };
        let c = &self.config;
        // RocketMQ's role names: SYNC_MASTER waits for a slave, ASYNC_MASTER does not.
        let (broker_id, role, replication) = match (&self.replica, &c.replication) {
            (Some(replica), Some(r)) => {
                let master = replica.confirmed_master();
                let role = match (master, r.ack) {
                    (false, _) => "SLAVE",
                    (true, crate::config::AckMode::Quorum) => "SYNC_MASTER",
                    (true, crate::config::AckMode::Leader) => "ASYNC_MASTER",
                };
                let described = format!(
                    "{} replicas, election {}, ack {} (replica {})",
                    replica.status().voters.len() + replica.status().learners.len(),
                    r.election,
                    r.ack,
                    replica.id
                );
                (if master { 0 } else { replica.id }, role, described)
            }
            _ => (
                c.broker_id,
                "ASYNC_MASTER",
                "none (single replica)".to_string(),
            ),
        };
        let text = format!(
            "brokerClusterName={}\nbrokerName={}\nbrokerId={broker_id}\nbrokerRole={role}\nflushDiskType={flush}\nreplication={replication}\nlistenPort={}\nautoCreateTopicEnable={}\n",
            c.broker_cluster_name, c.broker_name, c.listen_port, c.auto_create_topic_enable
        );
        ok(req).with_body(text.into_bytes())
    }

    pub(super) fn all_topic_config(
        &self,
        req: &RemotingCommand,
    ) -> Result<RemotingCommand, ProtoError> {
        Ok(ok(req).with_body(to_json(&self.topics.wrapper())))
    }

    /// GET_TOPIC_CONFIG: one topic's config, as Java's `TopicConfig` (the 5.x broker
    /// answers a `TopicConfigAndQueueMapping`, whose extra mapping fields are optional).
    pub(super) fn topic_config(
        &self,
        req: &RemotingCommand,
    ) -> Result<RemotingCommand, ProtoError> {
        let topic: String = req.ext_parse("topic")?;
        match self.topics.get(&topic) {
            Some(config) => Ok(ok(req).with_body(to_json(&super::topics::body(config)))),
            None => Ok(RemotingCommand::response_to(
                req,
                response::TOPIC_NOT_EXIST,
                Some(format!("No topic in this broker. topic: {topic}")),
            )),
        }
    }

    pub(super) async fn consume_stats(
        &self,
        req: &RemotingCommand,
    ) -> Result<RemotingCommand, ProtoError> {
        let group: String = req.ext_parse("consumerGroup")?;
        // Acknowledged sends count in the lag at once.
        if let Err(e) = self.store.settled().await {
            return Ok(store_error(req, &e));
        }
        let topic_filter: Option<String> = req.ext_parse_opt("topic")?;
        let mut stats = ConsumeStats::default();
        for topic in self.topics.all() {
            if topic_filter
                .as_ref()
                .is_some_and(|t| *t != topic.topic_name)
            {
                continue;
            }
            for queue_id in 0..topic.read_queue_nums {
                let committed = match self.consumer_offset(&group, &topic.topic_name, queue_id) {
                    Ok(Some(offset)) => offset,
                    Ok(None) if !self.consumers.subscribes(&group, &topic.topic_name) => continue,
                    Ok(None) => 0,
                    Err(e) => return Ok(store_error(req, &e)),
                };
                stats.offset_table.push((
                    MessageQueue {
                        topic: topic.topic_name.clone(),
                        broker_name: self.config.broker_name.clone(),
                        queue_id,
                    },
                    OffsetWrapper {
                        broker_offset: self.store.max_offset(&topic.topic_name, queue_id),
                        consumer_offset: committed,
                        pull_offset: committed,
                        last_timestamp: 0,
                    },
                ));
            }
        }
        if stats.offset_table.is_empty() {
            return Ok(RemotingCommand::response_to(
                req,
                response::CONSUMER_NOT_ONLINE,
                Some(format!(
                    "consumer group {group} has no offsets on this broker"
                )),
            ));
        }
        Ok(ok(req).with_body(stats.to_fastjson()))
    }

    pub(super) async fn query_message(
        &self,
        req: &RemotingCommand,
    ) -> Result<RemotingCommand, ProtoError> {
        let topic: String = req.ext_parse("topic")?;
        let key: String = req.ext_parse("key")?;
        let max: usize = req.ext_parse_opt("maxNum")?.unwrap_or(32);
        let begin: i64 = req.ext_parse_opt("beginTimestamp")?.unwrap_or(0);
        let end: i64 = req.ext_parse_opt("endTimestamp")?.unwrap_or(i64::MAX);
        match self
            .store
            .query_by_key(&topic, &key, begin, end, max.min(64))
            .await
        {
            Ok(found) if found.is_empty() => Ok(RemotingCommand::response_to(
                req,
                response::QUERY_NOT_FOUND,
                Some(format!("no message of topic {topic} with key {key}")),
            )),
            Ok(found) => {
                let mut body = BytesMut::new();
                for m in &found {
                    body.extend_from_slice(m);
                }
                Ok(ok(req)
                    .with_ext("indexLastUpdateTimestamp", proto::clock::now_ms())
                    .with_ext(
                        "indexLastUpdatePhyoffset",
                        self.store.commitlog_max_offset(),
                    )
                    .with_body(body.freeze()))
            }
            Err(e) => Ok(store_error(req, &e)),
        }
    }

    pub(super) async fn view_message(
        &self,
        req: &RemotingCommand,
    ) -> Result<RemotingCommand, ProtoError> {
        let offset: u64 = req.ext_parse("offset")?;
        match self.store.message_at(offset).await {
            Ok(Some(message)) => Ok(ok(req).with_body(message)),
            Ok(None) => Ok(RemotingCommand::response_to(
                req,
                response::SYSTEM_ERROR,
                Some(format!("no message at CommitLog offset {offset}")),
            )),
            Err(e) => Ok(store_error(req, &e)),
        }
    }
}
