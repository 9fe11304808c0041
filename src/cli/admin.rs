//! `raftmq topic|cluster|group|query`: admin commands over `client::Admin`.

use client::{Admin, ClientConfig, MessageExt};
use proto::remoting::body::SubscriptionGroupBody;

#[derive(clap::Subcommand, Debug)]
pub enum TopicCommand {
    /// Create or update a topic on every master of a cluster.
    Create {
        #[arg(long, short = 't')]
        topic: String,
        /// Read and write queues per broker group.
        #[arg(long, short = 'q', default_value_t = 4)]
        queues: u32,
        /// Only this cluster's brokers.
        #[arg(long, short = 'c')]
        cluster: Option<String>,
        /// Mark the topic ordered.
        #[arg(long)]
        order: bool,
    },
    /// List every topic the name server knows.
    List,
    /// Show a topic's route: queues per broker group and their addresses.
    Route {
        #[arg(long, short = 't')]
        topic: String,
    },
    /// Every queue of a topic with its min and max offsets (like `mqadmin topicStatus`).
    Status {
        #[arg(long, short = 't')]
        topic: String,
    },
}

#[derive(clap::Subcommand, Debug)]
pub enum ClusterCommand {
    /// List clusters, broker groups and their replicas.
    List,
    /// Each broker's runtime figures (like `mqadmin brokerStatus`).
    Status,
}

#[derive(clap::Subcommand, Debug)]
pub enum GroupCommand {
    /// Create or change a subscription group on every master (like `mqadmin
    /// updateSubGroup`).
    Create {
        #[arg(long, short = 'g')]
        group: String,
        /// Redeliveries before a message goes to `%DLQ%group`, when the consumer does not
        /// say.
        #[arg(long, default_value_t = 16)]
        retry_max_times: i32,
        /// Whether the group may consume at all.
        #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
        consume_enable: bool,
        /// Whether the group may consume by broadcasting.
        #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
        broadcast_enable: bool,
        /// Only the masters of this cluster.
        #[arg(long, short = 'c')]
        cluster: Option<String>,
    },
    /// Every master's subscription groups.
    List {
        #[arg(long, short = 'c')]
        cluster: Option<String>,
    },
    /// Delete a subscription group on every master (like `mqadmin deleteSubGroup`).
    Delete {
        #[arg(long, short = 'g')]
        group: String,
        #[arg(long, short = 'c')]
        cluster: Option<String>,
    },
    /// Broker offset, consumer offset and lag per queue.
    Lag {
        #[arg(long, short = 'g')]
        group: String,
        #[arg(long, short = 't')]
        topic: String,
    },
    /// A group's clients online and their subscriptions (like `mqadmin
    /// consumerConnection`).
    Clients {
        #[arg(long, short = 'g')]
        group: String,
    },
    /// A replicated broker group's replicas: master, voters, learners and lag.
    Replicas {
        /// The broker group (`broker_name`).
        #[arg(long, short = 'b', default_value = "broker-a")]
        broker_name: String,
    },
    /// Add a replica to a running replicated group (start it first with
    /// `join = true`): it catches up as a learner, then becomes a voter.
    AddReplica {
        #[arg(long, short = 'b', default_value = "broker-a")]
        broker_name: String,
        /// Its replica id (1..=65535), unused in the group.
        #[arg(long)]
        id: u64,
        /// Its client address, `ip:port` (its `broker_ip1:listen_port`).
        #[arg(long)]
        broker: String,
        /// Its replica address, `ip:port` (its `replica_listen_port`).
        #[arg(long)]
        replica: String,
    },
    /// Remove a replica from a running replicated group.
    RemoveReplica {
        #[arg(long, short = 'b', default_value = "broker-a")]
        broker_name: String,
        #[arg(long)]
        id: u64,
    },
}

#[derive(clap::Subcommand, Debug)]
pub enum QueryCommand {
    /// Messages of a topic by key (or by the producer's unique id).
    Key {
        #[arg(long, short = 't')]
        topic: String,
        #[arg(long, short = 'k')]
        key: String,
        #[arg(long, default_value_t = 32)]
        max: u32,
    },
    /// A message by id: its offset msg id (store host + CommitLog offset: `offsetMsgId`
    /// in `send`'s and `consume`'s output) or, with `--topic`, the producer's msgId
    /// (unique id), like `mqadmin queryMsgById`.
    Id {
        id: String,
        /// The message's topic: lets a producer's msgId be found by its unique-id index
        /// entry when `id` is not an offset msg id of a reachable broker.
        #[arg(long, short = 't')]
        topic: Option<String>,
    },
}

pub async fn topic(cmd: TopicCommand, config: ClientConfig) -> anyhow::Result<()> {
    let admin = Admin::new(config);
    match cmd {
        TopicCommand::Create {
            topic,
            queues,
            cluster,
            order,
        } => {
            let brokers = admin
                .create_topic(&topic, queues, cluster.as_deref(), order)
                .await?;
            println!(
                "created {topic} with {queues} queues on {}",
                brokers.join(", ")
            );
        }
        TopicCommand::List => {
            for topic in admin.topic_list().await? {
                println!("{topic}");
            }
        }
        TopicCommand::Status { topic } => {
            println!(
                "{:<16} {:>5} {:>12} {:>12}",
                "broker", "queue", "min offset", "max offset"
            );
            for (q, o) in admin.topic_stats(&topic).await? {
                println!(
                    "{:<16} {:>5} {:>12} {:>12}",
                    q.broker_name, q.queue_id, o.min_offset, o.max_offset
                );
            }
        }
        TopicCommand::Route { topic } => {
            let route = admin.topic_route(&topic).await?;
            println!(
                "{:<16} {:>6} {:>6} {:>5}  addresses (id=addr)",
                "broker", "read", "write", "perm"
            );
            for q in &route.queue_datas {
                let addrs = route
                    .broker_datas
                    .iter()
                    .find(|b| b.broker_name == q.broker_name)
                    .map(|b| b.addrs_by_id())
                    .unwrap_or_default();
                println!(
                    "{:<16} {:>6} {:>6} {:>5}  {addrs}",
                    q.broker_name, q.read_queue_nums, q.write_queue_nums, q.perm
                );
            }
        }
    }
    Ok(())
}

pub async fn cluster(cmd: ClusterCommand, config: ClientConfig) -> anyhow::Result<()> {
    let admin = Admin::new(config);
    let info = admin.cluster_info().await?;
    if let ClusterCommand::Status = cmd {
        for (name, data) in &info.broker_addr_table {
            for (id, addr) in &data.broker_addrs {
                println!("{name} id {id} at {addr}");
                match admin.broker_runtime_info(addr).await {
                    Ok(table) => {
                        for (key, value) in table {
                            println!("  {key:<28} {value}");
                        }
                    }
                    Err(e) => println!("  unreachable: {e}"),
                }
            }
        }
        return Ok(());
    }
    println!("{:<20} {:<16} {:>4}  address", "cluster", "broker", "id");
    for (cluster, names) in &info.cluster_addr_table {
        for name in names {
            let Some(data) = info.broker_addr_table.get(name) else {
                continue;
            };
            for (id, addr) in &data.broker_addrs {
                println!("{cluster:<20} {name:<16} {id:>4}  {addr}");
            }
        }
    }
    Ok(())
}

pub async fn group(cmd: GroupCommand, config: ClientConfig) -> anyhow::Result<()> {
    let (group, topic) = match cmd {
        GroupCommand::Lag { group, topic } => (group, topic),
        GroupCommand::Create {
            group,
            retry_max_times,
            consume_enable,
            broadcast_enable,
            cluster,
        } => {
            let body = SubscriptionGroupBody {
                group_name: group.clone(),
                retry_max_times,
                consume_enable,
                consume_broadcast_enable: broadcast_enable,
                ..SubscriptionGroupBody::default()
            };
            let masters = Admin::new(config)
                .create_subscription_group(&body, cluster.as_deref())
                .await?;
            println!(
                "subscription group {group} created or updated on {}",
                masters.join(", ")
            );
            return Ok(());
        }
        GroupCommand::Clients { group } => {
            let c = Admin::new(config).consumer_connection(&group).await?;
            println!(
                "group {group}: {} {} {}",
                c.message_model, c.consume_type, c.consume_from_where
            );
            println!(
                "{:<48} {:<22} {:<6} version",
                "client id", "address", "lang"
            );
            for k in &c.connection_set {
                println!(
                    "{:<48} {:<22} {:<6} {}",
                    k.client_id, k.client_addr, k.language, k.version
                );
            }
            for (topic, sub) in &c.subscription_table {
                println!("subscribes {topic}: {}", sub.sub_string);
            }
            return Ok(());
        }
        GroupCommand::List { cluster } => {
            let tables = Admin::new(config)
                .subscription_groups(cluster.as_deref())
                .await?;
            println!(
                "{:<16} {:<32} {:>8} {:>10} {:>12}",
                "broker", "group", "consume", "broadcast", "retry max"
            );
            for (broker, table) in tables {
                for (name, g) in &table.subscription_group_table {
                    println!(
                        "{broker:<16} {name:<32} {:>8} {:>10} {:>12}",
                        g.consume_enable, g.consume_broadcast_enable, g.retry_max_times
                    );
                }
            }
            return Ok(());
        }
        GroupCommand::Delete { group, cluster } => {
            let masters = Admin::new(config)
                .delete_subscription_group(&group, cluster.as_deref())
                .await?;
            println!(
                "subscription group {group} deleted on {}",
                masters.join(", ")
            );
            return Ok(());
        }
        GroupCommand::Replicas { broker_name } => {
            let s = Admin::new(config).group_status(&broker_name).await?;
            println!(
                "broker group {broker_name}: term {}, master {}",
                s.term,
                s.master
                    .map_or("none".to_string(), |id| format!("replica {id}"))
            );
            println!("  voters   {:?}", s.voters);
            println!("  learners {:?}", s.learners);
            println!(
                "  log      last index {}, applied {}",
                s.last_log_index, s.last_applied_index
            );
            for (id, lag) in &s.lag {
                println!("  replica {id}: {lag} entries behind the master");
            }
            return Ok(());
        }
        GroupCommand::AddReplica {
            broker_name,
            id,
            broker,
            replica,
        } => {
            // Catching up may take a while: the master answers once it has.
            let config = ClientConfig {
                request_timeout: std::time::Duration::from_secs(600),
                ..config
            };
            Admin::new(config)
                .add_replica(&broker_name, id, &broker, &replica)
                .await?;
            println!("replica {id} ({broker}) caught up and joined {broker_name}");
            return Ok(());
        }
        GroupCommand::RemoveReplica { broker_name, id } => {
            Admin::new(config).remove_replica(&broker_name, id).await?;
            println!("replica {id} removed from {broker_name}");
            return Ok(());
        }
    };
    let rows = Admin::new(config).consumer_progress(&group, &topic).await?;
    println!(
        "{:<16} {:>5} {:>14} {:>14} {:>10}",
        "broker", "queue", "broker offset", "consumer offset", "lag"
    );
    let mut total = 0;
    for r in &rows {
        total += r.lag();
        println!(
            "{:<16} {:>5} {:>14} {:>15} {:>10}",
            r.queue.broker_name,
            r.queue.queue_id,
            r.broker_offset,
            r.consumer_offset,
            r.lag()
        );
    }
    println!("total lag: {total}");
    Ok(())
}

fn print_message(m: &MessageExt) {
    println!(
        "{}:{}@{} msgId={} offsetMsgId={} stored={} tags={} keys={} body={}",
        m.topic,
        m.queue_id,
        m.queue_offset,
        m.msg_id,
        m.offset_msg_id,
        m.store_timestamp_ms,
        m.tags.as_deref().unwrap_or("-"),
        m.keys.join(" "),
        String::from_utf8_lossy(&m.body)
    );
}

pub async fn query(cmd: QueryCommand, config: ClientConfig) -> anyhow::Result<()> {
    let admin = Admin::new(config);
    match cmd {
        QueryCommand::Key { topic, key, max } => {
            let found = admin.query_by_key(&topic, &key, max).await?;
            if found.is_empty() {
                println!("no message of {topic} with key {key}");
            }
            found.iter().for_each(print_message);
        }
        QueryCommand::Id { id, topic } => {
            let found = admin.find_by_id(&id, topic.as_deref()).await.map_err(|e| {
                // Only an id shaped like a msgId (32 hex digits) may be a unique id.
                let unique_shaped = id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit());
                let hint = if topic.is_none() && unique_shaped {
                    format!(": raftmq query id {id} -t TOPIC")
                } else {
                    String::new()
                };
                anyhow::anyhow!("{e}{hint}")
            })?;
            found.iter().for_each(print_message);
        }
    }
    Ok(())
}
