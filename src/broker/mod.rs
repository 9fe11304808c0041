//! The broker: one replica of a broker group, serving RocketMQ's remoting protocol over a
//! `MessageStore`.
//!
//! # Layout
//! - this file: `Broker`, `start`, and the request dispatch;
//! - [`send`], [`pull`], [`offsets`], [`admin`], [`clients`]: one file per family of
//!   request codes;
//! - [`stats`]: topic stats, consumer connections and runtime figures for admin tools;
//! - [`topics`], [`consumers`], [`locks`]: the broker's state besides the store;
//! - [`register`]: registration with every name server;
//! - [`metrics`]: what the broker exports to Prometheus, gathered at scrape time;
//! - [`park`]: messages kept in a system queue until moved on (`REAL_TOPIC`), and
//!   parking a send for later delivery;
//! - [`retry`]: CONSUMER_SEND_MSG_BACK, retry and dead-letter topics, delayed delivery;
//! - [`timer`]: timer messages (`TIMER_DELAY_SEC` and the like) and their timing wheel;
//! - [`transaction`]: half messages, END_TRANSACTION and the check-back, with
//!   [`producers`], the producer connections checks go to;
//! - [`replica`]: Raft replication of the group (`[replication]` in the config), and
//!   [`write`]: the write path through it or straight to the store.

mod admin;
mod clients;
pub mod consumers;
mod groups;
pub mod locks;
mod membership;
mod metrics;
mod offsets;
mod park;
mod producers;
mod proposer;
mod pull;
mod register;
pub mod replica;
pub mod retry;
mod send;
pub mod stats;
pub mod timer;
pub mod topics;
pub mod transaction;
mod write;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use proto::net::rpc::RpcPool;
use proto::net::server::{serve, Channel, Service, Shutdown};
use proto::remoting::codes::{request, response};
use proto::remoting::{ProtoError, RemotingCommand};
use store::meta::{Meta, MetaStore};
use store::{Disk, MessageStore, StoreError};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::config::BrokerConfig;
use crate::metrics::rpc::RpcLatency;
use crate::metrics::traffic::Traffic;
use consumers::Consumers;
use locks::QueueLocks;
use topics::Topics;

pub struct Broker<D: Disk, M: MetaStore> {
    config: BrokerConfig,
    /// The address in registrations and msg ids.
    addr: SocketAddr,
    store: Arc<MessageStore<D>>,
    /// Present in a replicated group: writes and consumer offsets go through Raft.
    replica: Option<Arc<replica::Replica<D>>>,
    meta: Meta<Arc<M>>,
    topics: Topics<Arc<M>>,
    consumers: Consumers,
    producers: producers::Producers,
    transactions: transaction::Transactions,
    locks: QueueLocks,
    namesrv: RpcPool,
    /// Bumped when this broker schedules a delayed message: wakes the delivery tasks
    /// (see `retry`), which otherwise look again at most every second.
    scheduled: proto::watch::Sender<u64>,
    /// `message_delay_level` parsed: each level's delay (level 1 first).
    delay_levels_ms: Vec<u64>,
    /// When the timer task's next round is (epoch ms); a timer message ready sooner
    /// changes it, which wakes the task (see `timer`).
    timer_wake: proto::watch::Sender<i64>,
    /// Messages in and out, for metrics.
    traffic: Traffic,
    /// Request latency, for metrics.
    rpc: RpcLatency,
}

/// A running broker: its address and tasks. Dropping it does not stop the tasks; call
/// [`RunningBroker::shutdown`].
pub struct RunningBroker<D: Disk, M: MetaStore> {
    pub broker: Arc<Broker<D, M>>,
    pub local_addr: SocketAddr,
    shutdown: Shutdown,
    tasks: Vec<JoinHandle<()>>,
}

impl<D: Disk, M: MetaStore> RunningBroker<D, M> {
    /// Stops serving (closing every connection), unregisters, and flushes consumer
    /// offsets and the store.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        self.shutdown.trigger();
        for task in &self.tasks {
            task.abort();
        }
        for task in self.tasks {
            let _ = task.await;
        }
        self.broker.unregister().await;
        if let Some(replica) = &self.broker.replica {
            replica.shutdown().await;
        }
        self.broker.meta.flush().await?;
        self.broker.store.shutdown().await?;
        Ok(())
    }

    /// Stops without flushing anything: what a crash looks like to the disk.
    pub fn abort(self) {
        self.shutdown.trigger();
        for task in &self.tasks {
            task.abort();
        }
        if let Some(replica) = self.broker.replica.clone() {
            // Raft's own tasks stop with it; nothing is flushed.
            tokio::spawn(async move { replica.shutdown().await });
        }
    }
}

/// Opens the store and metadata, binds the port, registers with the name servers and
/// serves. With `listen_port = 0` the OS picks a port; the advertised address follows.
pub async fn start<D: Disk, M: MetaStore>(
    mut config: BrokerConfig,
    disk: D,
    meta: M,
) -> anyhow::Result<RunningBroker<D, M>> {
    config.validate()?;
    let listen = config.listen_socket()?;
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|e| anyhow::anyhow!("broker {}: listen on {listen}: {e}", config.broker_name))?;
    let local_addr = listener.local_addr()?;
    config.listen_port = local_addr.port();
    let addr = config.advertised_addr()?;
    let shutdown = Shutdown::new();
    let mut tasks = Vec::new();
    let (store, replica) = match &config.replication {
        None => (
            Arc::new(MessageStore::open(disk, config.store_config()?).await?),
            None,
        ),
        Some(settings) => {
            let store_config = config.store_config()?;
            let store = Arc::new(MessageStore::open_replicated(disk.clone(), store_config).await?);
            let listen_ip = config.listen_socket()?.ip();
            let (replica, task) = replica::Replica::start(
                &config.broker_name,
                settings.clone(),
                store.clone(),
                disk,
                listen_ip,
                shutdown.clone(),
            )
            .await?;
            tasks.push(task);
            (store, Some(replica))
        }
    };
    let meta = Arc::new(meta);
    let topics = Topics::load(
        Meta::new(meta.clone()),
        config.auto_create_topic_enable,
        config.default_topic_queue_nums,
    )?;
    let broker = Arc::new(Broker {
        addr,
        store,
        replica,
        meta: Meta::new(meta),
        topics,
        consumers: Consumers::default(),
        producers: producers::Producers::default(),
        transactions: transaction::Transactions::new(config.transaction.clone()),
        locks: QueueLocks::default(),
        namesrv: RpcPool::new(None),
        scheduled: proto::watch::Sender::new(0),
        delay_levels_ms: config.delay_levels_ms()?,
        timer_wake: proto::watch::Sender::new(i64::MAX),
        traffic: Traffic::default(),
        rpc: RpcLatency::default(),
        config,
    });
    broker.register_all().await;
    tasks.extend([
        tokio::spawn(serve(listener, broker.clone(), shutdown.clone())),
        tokio::spawn(broker.clone().run_registration()),
        tokio::spawn(broker.clone().run_housekeeping()),
    ]);
    if broker.replica.is_some() {
        tasks.push(tokio::spawn(broker.clone().run_role_watch()));
        tasks.push(tokio::spawn(broker.clone().run_topic_sync()));
    }
    tasks.push(tokio::spawn(broker.clone().run_transaction_check()));
    for level in 0..broker.delay_levels_ms.len() {
        tasks.push(tokio::spawn(broker.clone().run_delivery(level)));
    }
    tasks.push(tokio::spawn(broker.clone().run_timers()));
    tracing::info!(%addr, broker = %broker.config.broker_name, "broker serving");
    Ok(RunningBroker {
        broker,
        local_addr,
        shutdown,
        tasks,
    })
}

impl<D: Disk, M: MetaStore> Broker<D, M> {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn store(&self) -> &MessageStore<D> {
        &self.store
    }

    /// How far the broker's own consumers have read a system queue it moves messages out
    /// of: the delay levels' delivery (`SCHEDULE_TOPIC_XXXX`), the timing wheel's
    /// (`rmq_sys_wheel_timer`) and the transaction book's
    /// floors (the half and op topics); `None` for any other queue. Below it nothing is
    /// needed any more: what a tool that deletes old log (the simulator's compaction)
    /// must keep of such a queue starts there.
    pub fn system_queue_consumed(&self, topic: &str, queue_id: u32) -> Option<u64> {
        let group = match topic {
            retry::SCHEDULE_TOPIC => retry::SCHEDULE_GROUP,
            timer::TIMER_TOPIC => timer::TIMER_GROUP,
            transaction::HALF_TOPIC | transaction::OP_TOPIC => transaction::TX_GROUP,
            _ => return None,
        };
        self.consumer_offset(group, topic, queue_id).ok().flatten()
    }

    /// The group replica, in a replicated group.
    pub fn replica(&self) -> Option<&Arc<replica::Replica<D>>> {
        self.replica.as_ref()
    }

    /// Flushes consumer offsets and expires silent clients.
    async fn run_housekeeping(self: Arc<Self>) {
        let interval = Duration::from_millis(self.config.flush_consumer_offset_interval_ms);
        loop {
            tokio::time::sleep(interval).await;
            if let Err(e) = self.meta.flush().await {
                tracing::error!(error = %e, "consumer offset flush failed");
            }
            self.consumers.expire(
                proto::clock::now_ms(),
                self.config.client_channel_expired_ms as i64,
            );
        }
    }

    async fn dispatch(
        &self,
        req: &RemotingCommand,
        channel: &Channel,
    ) -> Result<RemotingCommand, ProtoError> {
        // Only sends and pulls run inline: every other arm is boxed, so this future (one
        // per request in flight, moved into the connection's set) is sized by those two.
        match req.code {
            request::SEND_MESSAGE | request::SEND_MESSAGE_V2 | request::SEND_BATCH_MESSAGE => {
                self.send(req, channel).await
            }
            request::PULL_MESSAGE | request::LITE_PULL_MESSAGE => self.pull(req).await,
            request::QUERY_CONSUMER_OFFSET => self.query_consumer_offset(req),
            request::UPDATE_CONSUMER_OFFSET => Box::pin(self.update_consumer_offset(req)).await,
            request::GET_MAX_OFFSET => self.max_offset(req).await,
            request::GET_MIN_OFFSET => self.min_offset(req),
            request::SEARCH_OFFSET_BY_TIMESTAMP => Box::pin(self.offset_by_time(req)).await,
            request::UPDATE_AND_CREATE_TOPIC => Box::pin(self.create_topic(req)).await,
            request::GET_ALL_TOPIC_CONFIG => self.all_topic_config(req),
            request::GET_TOPIC_CONFIG => self.topic_config(req),
            request::UPDATE_AND_CREATE_SUBSCRIPTIONGROUP => {
                Box::pin(self.create_subscription_group(req)).await
            }
            request::GET_ALL_SUBSCRIPTIONGROUP_CONFIG => self.all_subscription_groups(req),
            request::DELETE_SUBSCRIPTIONGROUP => {
                Box::pin(self.delete_subscription_group(req)).await
            }
            request::GET_BROKER_CONFIG => Ok(self.broker_config(req)),
            request::GET_CONSUME_STATS => self.consume_stats(req).await,
            request::GET_TOPIC_STATS_INFO => Box::pin(self.topic_stats(req)).await,
            request::GET_CONSUMER_CONNECTION_LIST => self.consumer_connections(req),
            request::GET_BROKER_RUNTIME_INFO => self.runtime_info(req),
            request::QUERY_MESSAGE => Box::pin(self.query_message(req)).await,
            request::VIEW_MESSAGE_BY_ID => Box::pin(self.view_message(req)).await,
            request::HEART_BEAT => Box::pin(self.heartbeat(req, channel)).await,
            request::CONSUMER_SEND_MSG_BACK => Box::pin(self.send_back(req)).await,
            request::END_TRANSACTION => Box::pin(self.end_transaction(req)).await,
            request::UNREGISTER_CLIENT => self.unregister_client(req, channel),
            request::GET_CONSUMER_LIST_BY_GROUP => self.consumer_list(req),
            request::LOCK_BATCH_MQ => self.lock_batch(req),
            request::UNLOCK_BATCH_MQ => self.unlock_batch(req),
            request::RAFTMQ_GROUP_STATUS => Ok(self.group_status(req)),
            request::RAFTMQ_ADD_REPLICA => Box::pin(self.add_replica(req)).await,
            request::RAFTMQ_REMOVE_REPLICA => Box::pin(self.remove_replica(req)).await,
            code => Ok(RemotingCommand::response_to(
                req,
                response::REQUEST_CODE_NOT_SUPPORTED,
                Some(format!("request code {code} is not supported")),
            )),
        }
    }
}

/// The response for a store error: what the client can act on.
fn store_error(req: &RemotingCommand, e: &StoreError) -> RemotingCommand {
    let code = match e {
        StoreError::MessageIllegal(_) => response::MESSAGE_ILLEGAL,
        StoreError::FlushTimeout { .. } => response::FLUSH_DISK_TIMEOUT,
        StoreError::Unavailable(_) => response::SERVICE_NOT_AVAILABLE,
        _ => response::SYSTEM_ERROR,
    };
    RemotingCommand::response_to(req, code, Some(e.to_string()))
}

fn ok(req: &RemotingCommand) -> RemotingCommand {
    RemotingCommand::response_to(req, response::SUCCESS, None)
}

impl<D: Disk, M: MetaStore> Service for Broker<D, M> {
    async fn call(&self, req: RemotingCommand, channel: Channel) -> Option<RemotingCommand> {
        let started = tokio::time::Instant::now();
        let response = match self.dispatch(&req, &channel).await {
            Ok(response) => response,
            // A bad header is the client's error: say which field, keep serving.
            Err(e) => {
                RemotingCommand::response_to(&req, response::SYSTEM_ERROR, Some(e.to_string()))
            }
        };
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        self.rpc.observe(req.code, response.code, ms);
        Some(response)
    }

    fn disconnected(&self, channel: &Channel) {
        self.consumers.channel_closed(channel);
    }
}
