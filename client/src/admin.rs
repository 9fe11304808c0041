//! Admin calls (RocketMQ `mqadmin`): topics, subscription groups, routes, clusters,
//! consumer progress and message queries.

use std::collections::BTreeMap;
use std::sync::Arc;

use proto::net::rpc::RpcError;
use proto::remoting::body::{
    from_json, perm, to_json, ClusterInfo, ConsumeStats, ConsumerConnection, GroupStatus, KvTable,
    MessageQueue, SubscriptionGroupBody, SubscriptionGroupWrapper, TopicList, TopicOffset,
    TopicRouteData, TopicStatsTable,
};
use proto::remoting::codes::{request, response};
use proto::remoting::RemotingCommand;
use proto::MessageId;

use crate::config::ClientConfig;
use crate::error::{ClientError, Result};
use crate::instance::ClientInstance;
use crate::message::MessageExt;

/// Pause before asking the name servers for a group's master again after the one
/// asked had stepped down (re-registration after an election takes a few ms).
const MASTER_RETRY_PAUSE: std::time::Duration = std::time::Duration::from_millis(100);

pub struct Admin {
    instance: Arc<ClientInstance>,
}

/// One row of consumer progress (`mqadmin consumerProgress`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueProgress {
    pub queue: MessageQueue,
    pub broker_offset: u64,
    pub consumer_offset: u64,
}

impl QueueProgress {
    pub fn lag(&self) -> u64 {
        self.broker_offset.saturating_sub(self.consumer_offset)
    }
}

impl Admin {
    pub fn new(config: ClientConfig) -> Self {
        Admin {
            instance: ClientInstance::new(config, None),
        }
    }

    pub async fn cluster_info(&self) -> Result<ClusterInfo> {
        let response = self
            .namesrv_ok(RemotingCommand::request(request::GET_BROKER_CLUSTER_INFO))
            .await?;
        Ok(from_json(&response.body)?)
    }

    pub async fn topic_list(&self) -> Result<Vec<String>> {
        let response = self
            .namesrv_ok(RemotingCommand::request(
                request::GET_ALL_TOPIC_LIST_FROM_NAMESERVER,
            ))
            .await?;
        Ok(from_json::<TopicList>(&response.body)?.topic_list)
    }

    pub async fn topic_route(&self, topic: &str) -> Result<TopicRouteData> {
        self.instance.refresh_route(topic).await
    }

    async fn namesrv_ok(&self, request: RemotingCommand) -> Result<RemotingCommand> {
        let response = self.instance.invoke_namesrv(request).await?;
        if response.code != response::SUCCESS {
            return Err(ClientError::Broker {
                addr: "name server".into(),
                code: response.code,
                remark: response.remark.unwrap_or_default(),
            });
        }
        Ok(response)
    }

    /// Creates (or updates) `topic` with `queue_nums` read and write queues on every
    /// master of `cluster` (every master when `cluster` is `None`).
    pub async fn create_topic(
        &self,
        topic: &str,
        queue_nums: u32,
        cluster: Option<&str>,
        order: bool,
    ) -> Result<Vec<String>> {
        proto::names::validate_name("topic", topic).map_err(ClientError::Invalid)?;
        self.invoke_on_masters(cluster, || {
            RemotingCommand::request(request::UPDATE_AND_CREATE_TOPIC)
                .with_ext("topic", topic)
                .with_ext("defaultTopic", "TBW102")
                .with_ext("readQueueNums", queue_nums)
                .with_ext("writeQueueNums", queue_nums)
                .with_ext("perm", perm::READ_WRITE)
                .with_ext("topicFilterType", "SINGLE_TAG")
                .with_ext("topicSysFlag", 0)
                .with_ext("order", order)
        })
        .await
    }

    /// Every broker group (in `cluster`, when named) with its master's address, if one
    /// is registered: a group without one may be electing it.
    async fn groups(&self, cluster: Option<&str>) -> Result<BTreeMap<String, Option<String>>> {
        let info = self.cluster_info().await?;
        let groups: BTreeMap<_, _> = info
            .broker_addr_table
            .iter()
            .filter(|(name, _)| {
                cluster.is_none_or(|c| {
                    info.cluster_addr_table
                        .get(c)
                        .is_some_and(|names| names.contains(*name))
                })
            })
            .map(|(name, data)| (name.clone(), data.master_addr().map(str::to_string)))
            .collect();
        if groups.is_empty() {
            return Err(ClientError::Invalid(format!(
                "no broker group in cluster {}",
                cluster.unwrap_or("(any)")
            )));
        }
        Ok(groups)
    }

    /// Sends the request `make` builds to every group's master (in `cluster`, when
    /// named), as `mqadmin`'s cluster-wide updates do, waiting for a group that is
    /// electing one; returns the masters' addresses.
    async fn invoke_on_masters(
        &self,
        cluster: Option<&str>,
        make: impl Fn() -> RemotingCommand,
    ) -> Result<Vec<String>> {
        let mut done = Vec::new();
        for (group, master) in self.groups(cluster).await? {
            done.push(self.invoke_on_master(&group, master, &make).await?.0);
        }
        Ok(done)
    }

    /// An idempotent request to broker group `group`'s master (at `addr` first, when
    /// given); returns the address that took it and its response. Mastership can move
    /// between asking the name servers and the request (an election in a replica
    /// group): no master registered, "not master" or a lost connection is retried at
    /// the master the name servers then name, for up to the request timeout, as
    /// producers re-route their sends.
    async fn invoke_on_master(
        &self,
        group: &str,
        mut addr: Option<String>,
        make: &impl Fn() -> RemotingCommand,
    ) -> Result<(String, RemotingCommand)> {
        let deadline = tokio::time::Instant::now() + self.instance.config.request_timeout;
        loop {
            let e = match addr.take() {
                None => match self.group_master(group).await {
                    Ok(master) => {
                        addr = Some(master);
                        continue;
                    }
                    Err(e) => e,
                },
                Some(master) => match self.instance.invoke_ok(&master, make()).await {
                    Ok(response) => return Ok((master, response)),
                    Err(e) => e,
                },
            };
            let moved = match &e {
                ClientError::NoMaster(_) => true,
                ClientError::Broker { code, .. } => *code == response::SERVICE_NOT_AVAILABLE,
                ClientError::Rpc(RpcError::Connect { .. } | RpcError::Closed(_)) => true,
                _ => false,
            };
            if !moved || tokio::time::Instant::now() >= deadline {
                return Err(e);
            }
            tracing::debug!(%group, error = %e, "master moved; asking the name servers again");
            tokio::time::sleep(MASTER_RETRY_PAUSE).await;
        }
    }

    /// Creates or changes a subscription group on every master (in `cluster`, when
    /// named), as `mqadmin updateSubGroup` does; returns the masters' addresses.
    pub async fn create_subscription_group(
        &self,
        config: &SubscriptionGroupBody,
        cluster: Option<&str>,
    ) -> Result<Vec<String>> {
        proto::names::validate_name("subscription group", &config.group_name)
            .map_err(ClientError::Invalid)?;
        self.invoke_on_masters(cluster, || {
            RemotingCommand::request(request::UPDATE_AND_CREATE_SUBSCRIPTIONGROUP)
                .with_body(to_json(config))
        })
        .await
    }

    /// Every master's subscription groups, by broker group.
    pub async fn subscription_groups(
        &self,
        cluster: Option<&str>,
    ) -> Result<Vec<(String, SubscriptionGroupWrapper)>> {
        let make = || RemotingCommand::request(request::GET_ALL_SUBSCRIPTIONGROUP_CONFIG);
        let mut out = Vec::new();
        for (name, master) in self.groups(cluster).await? {
            let (_, reply) = self.invoke_on_master(&name, master, &make).await?;
            out.push((name, from_json(&reply.body)?));
        }
        Ok(out)
    }

    /// Deletes a subscription group on every master (in `cluster`, when named).
    pub async fn delete_subscription_group(
        &self,
        group: &str,
        cluster: Option<&str>,
    ) -> Result<Vec<String>> {
        self.invoke_on_masters(cluster, || {
            RemotingCommand::request(request::DELETE_SUBSCRIPTIONGROUP).with_ext("groupName", group)
        })
        .await
    }

    /// The master address of broker group `broker_name`, from the name servers.
    pub async fn group_master(&self, broker_name: &str) -> Result<String> {
        let info = self.cluster_info().await?;
        info.broker_addr_table
            .get(broker_name)
            .and_then(|b| b.master_addr())
            .map(str::to_string)
            .ok_or_else(|| ClientError::NoMaster(broker_name.to_string()))
    }

    /// A replicated group's members, roles and lag, as its master sees them.
    pub async fn group_status(&self, broker_name: &str) -> Result<GroupStatus> {
        let make = || RemotingCommand::request(request::RAFTMQ_GROUP_STATUS);
        let (_, response) = self.invoke_on_master(broker_name, None, &make).await?;
        Ok(from_json(&response.body)?)
    }

    /// Adds a replica to a running replicated group: the master makes it a learner,
    /// waits until it has caught up, then a voter.
    pub async fn add_replica(
        &self,
        broker_name: &str,
        replica_id: u64,
        broker_addr: &str,
        replica_addr: &str,
    ) -> Result<()> {
        self.membership_change(broker_name, || {
            RemotingCommand::request(request::RAFTMQ_ADD_REPLICA)
                .with_ext("replicaId", replica_id)
                .with_ext("brokerAddr", broker_addr)
                .with_ext("replicaAddr", replica_addr)
        })
        .await
    }

    /// Removes a replica from a running replicated group.
    pub async fn remove_replica(&self, broker_name: &str, replica_id: u64) -> Result<()> {
        self.membership_change(broker_name, || {
            RemotingCommand::request(request::RAFTMQ_REMOVE_REPLICA)
                .with_ext("replicaId", replica_id)
        })
        .await
    }

    /// Sends a membership change to the group's master, again at the new master when
    /// mastership moves meanwhile: each step (learner, catch-up, voter) is idempotent.
    async fn membership_change(
        &self,
        broker_name: &str,
        request: impl Fn() -> RemotingCommand,
    ) -> Result<()> {
        self.invoke_on_master(broker_name, None, &request)
            .await
            .map(drop)
    }

    /// Broker and consumer offsets of `group` on every queue of `topic`.
    pub async fn consumer_progress(&self, group: &str, topic: &str) -> Result<Vec<QueueProgress>> {
        let route = self.instance.refresh_route(topic).await?;
        let mut rows = Vec::new();
        for broker in &route.broker_datas {
            let Some(addr) = broker.master_addr() else {
                continue;
            };
            let request = RemotingCommand::request(request::GET_CONSUME_STATS)
                .with_ext("consumerGroup", group)
                .with_ext("topic", topic);
            let response = self.instance.invoke_ok(addr, request).await?;
            rows.extend(progress_rows(&response)?);
        }
        rows.sort_by(|a, b| a.queue.cmp(&b.queue));
        Ok(rows)
    }

    /// Broker and consumer offsets of `group` on every queue it has committed on or
    /// subscribes to, every topic, from every broker master of the cluster.
    pub async fn consumer_progress_all(&self, group: &str) -> Result<Vec<QueueProgress>> {
        let make = || {
            RemotingCommand::request(request::GET_CONSUME_STATS).with_ext("consumerGroup", group)
        };
        let mut rows = Vec::new();
        for response in self.ask_masters_about_group(make).await? {
            rows.extend(progress_rows(&response)?);
        }
        rows.sort_by(|a, b| a.queue.cmp(&b.queue));
        Ok(rows)
    }

    /// The answers of every broker master of the cluster to a request about a consumer
    /// group, leaving out those where the group is unknown (CONSUMER_NOT_ONLINE).
    async fn ask_masters_about_group(
        &self,
        make: impl Fn() -> RemotingCommand,
    ) -> Result<Vec<RemotingCommand>> {
        let info = self.cluster_info().await?;
        let mut answers = Vec::new();
        for data in info.broker_addr_table.values() {
            let Some(addr) = data.master_addr() else {
                continue;
            };
            let response = self.instance.invoke(addr, make()).await?;
            match response.code {
                response::CONSUMER_NOT_ONLINE => {}
                response::SUCCESS => answers.push(response),
                code => {
                    return Err(ClientError::Broker {
                        addr: addr.to_string(),
                        code,
                        remark: response.remark.unwrap_or_default(),
                    })
                }
            }
        }
        Ok(answers)
    }

    /// Every queue of `topic` with its min and max offsets, from each broker group's
    /// master (`mqadmin topicStatus`).
    pub async fn topic_stats(&self, topic: &str) -> Result<Vec<(MessageQueue, TopicOffset)>> {
        let route = self.instance.refresh_route(topic).await?;
        let mut rows = Vec::new();
        for broker in &route.broker_datas {
            let Some(addr) = broker.master_addr() else {
                continue;
            };
            let request =
                RemotingCommand::request(request::GET_TOPIC_STATS_INFO).with_ext("topic", topic);
            let response = self.instance.invoke_ok(addr, request).await?;
            let stats: TopicStatsTable = from_json(&response.body)?;
            rows.extend(stats.offset_table);
        }
        rows.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(rows)
    }

    /// `group`'s clients and subscriptions, from every broker master of the cluster
    /// that has a member online (`mqadmin consumerConnection`). Clients heartbeat every
    /// broker, so the answers overlap; each client is listed once.
    pub async fn consumer_connection(&self, group: &str) -> Result<ConsumerConnection> {
        let make = || {
            RemotingCommand::request(request::GET_CONSUMER_CONNECTION_LIST)
                .with_ext("consumerGroup", group)
        };
        let mut merged: Option<ConsumerConnection> = None;
        for response in self.ask_masters_about_group(make).await? {
            let found: ConsumerConnection = from_json(&response.body)?;
            match &mut merged {
                None => merged = Some(found),
                Some(all) => {
                    for c in found.connection_set {
                        if !all
                            .connection_set
                            .iter()
                            .any(|k| k.client_id == c.client_id)
                        {
                            all.connection_set.push(c);
                        }
                    }
                    for (topic, sub) in found.subscription_table {
                        all.subscription_table.entry(topic).or_insert(sub);
                    }
                }
            }
        }
        let mut connection = merged.ok_or_else(|| {
            ClientError::NotFound(format!("consumer group {group}: no client online"))
        })?;
        connection
            .connection_set
            .sort_by(|a, b| a.client_id.cmp(&b.client_id));
        Ok(connection)
    }

    /// A broker's runtime figures (`mqadmin brokerStatus`), by name.
    pub async fn broker_runtime_info(&self, addr: &str) -> Result<BTreeMap<String, String>> {
        let response = self
            .instance
            .invoke_ok(
                addr,
                RemotingCommand::request(request::GET_BROKER_RUNTIME_INFO),
            )
            .await?;
        let table: KvTable = from_json(&response.body)?;
        Ok(table.table)
    }

    /// A numeric runtime key (GET_BROKER_RUNTIME_INFO) summed over every broker group's
    /// master; `None` if a master did not answer, lacks the key, or reports it negative
    /// (not counted yet).
    pub async fn runtime_sum(&self, key: &str) -> Option<u64> {
        let cluster = self.cluster_info().await.ok()?;
        let mut total = 0;
        for data in cluster.broker_addr_table.values() {
            let addr = data.master_addr()?;
            let info = self.broker_runtime_info(addr).await.ok()?;
            let n: i64 = info.get(key)?.parse().ok()?;
            total += u64::try_from(n).ok()?;
        }
        Some(total)
    }

    /// Waits until every master reports zero for each of `keys` (numeric runtime keys
    /// such as a count of what it still has to move), for at most `bound`. A master
    /// counts what its last round read, so zero must be seen twice, `round` apart.
    /// Returns `Some(0)` once settled, else what was still pending at the bound (`None`:
    /// a master did not say).
    pub async fn await_runtime_zero(
        &self,
        keys: &[&str],
        bound: std::time::Duration,
        round: std::time::Duration,
    ) -> Option<u64> {
        let deadline = tokio::time::Instant::now() + bound;
        let mut zero_seen = 0;
        loop {
            let mut pending = Some(0);
            for key in keys {
                let n = self.runtime_sum(key).await;
                pending = pending.zip(n).map(|(a, b)| a + b);
            }
            zero_seen = if pending == Some(0) { zero_seen + 1 } else { 0 };
            if zero_seen >= 2 {
                return Some(0);
            }
            if tokio::time::Instant::now() >= deadline {
                return pending;
            }
            tokio::time::sleep(round).await;
        }
    }

    /// Messages of `topic` with key (or unique id) `key`, from every broker group.
    pub async fn query_by_key(&self, topic: &str, key: &str, max: u32) -> Result<Vec<MessageExt>> {
        let route = self.instance.refresh_route(topic).await?;
        let mut found = Vec::new();
        for broker in &route.broker_datas {
            let Some(addr) = broker.master_addr() else {
                continue;
            };
            let request = RemotingCommand::request(request::QUERY_MESSAGE)
                .with_ext("topic", topic)
                .with_ext("key", key)
                .with_ext("maxNum", max)
                .with_ext("beginTimestamp", 0)
                .with_ext("endTimestamp", i64::MAX);
            let response = self.instance.invoke(addr, request).await?;
            match response.code {
                response::SUCCESS => {
                    found.extend(MessageExt::decode_all(&response.body).map_err(|e| {
                        ClientError::Invalid(format!("undecodable query result from {addr}: {e}"))
                    })?)
                }
                response::QUERY_NOT_FOUND => {}
                code => {
                    return Err(ClientError::Broker {
                        addr: addr.to_string(),
                        code,
                        remark: response.remark.unwrap_or_default(),
                    })
                }
            }
        }
        Ok(found)
    }

    /// Messages with id `id`, found as `mqadmin queryMsgById` finds them: as an offset
    /// msg id first; when that fails and `topic` is given, as a producer's msgId (unique
    /// id) in `topic`'s key index. Both ids are 32 hex digits, so only a lookup tells
    /// them apart.
    pub async fn find_by_id(&self, id: &str, topic: Option<&str>) -> Result<Vec<MessageExt>> {
        let as_offset_id = match self.view_by_id(id).await {
            Ok(message) if topic.is_none_or(|t| message.topic == t) => return Ok(vec![message]),
            // A message of another topic: `id` decoded to a real store host and offset
            // by chance; it is the topic's unique id that is meant.
            Ok(message) => format!("it names a message of {}", message.topic),
            Err(e) => e.to_string(),
        };
        let Some(topic) = topic else {
            return Err(ClientError::NotFound(format!(
                "{id} as an offset msg id (store host + CommitLog offset): {as_offset_id}; \
                 for a producer's msgId (unique id) give its topic"
            )));
        };
        // Unique ids are indexed as producers write them: upper-case hex.
        let unique = id.to_ascii_uppercase();
        let found: Vec<MessageExt> = self
            .query_by_key(topic, &unique, 32)
            .await
            .map_err(|e| {
                ClientError::NotFound(format!(
                    "{id}: as an offset msg id: {as_offset_id}; as a unique id of {topic}: {e}"
                ))
            })?
            .into_iter()
            .filter(|m| m.msg_id == unique)
            .collect();
        if found.is_empty() {
            return Err(ClientError::NotFound(format!(
                "{id}: no message of {topic} has this unique id, and as an offset msg id: \
                 {as_offset_id}"
            )));
        }
        Ok(found)
    }

    /// The message with offset msg id `id` (store host + CommitLog offset).
    pub async fn view_by_id(&self, id: &str) -> Result<MessageExt> {
        let parsed: MessageId = id.parse().map_err(ClientError::Invalid)?;
        let addr = parsed.store_host.to_string();
        let request = RemotingCommand::request(request::VIEW_MESSAGE_BY_ID)
            .with_ext("offset", parsed.physical_offset);
        let response = self.instance.invoke_ok(&addr, request).await?;
        MessageExt::decode_all(&response.body)
            .ok()
            .and_then(|mut v| v.pop())
            .ok_or_else(|| {
                ClientError::Invalid(format!("broker {addr} returned no message for {id}"))
            })
    }
}

/// The rows of a GET_CONSUME_STATS answer.
fn progress_rows(response: &RemotingCommand) -> Result<Vec<QueueProgress>> {
    let stats: ConsumeStats = from_json(&response.body)?;
    Ok(stats
        .offset_table
        .into_iter()
        .map(|(queue, o)| QueueProgress {
            queue,
            broker_offset: o.broker_offset,
            consumer_offset: o.consumer_offset,
        })
        .collect())
}
