//! `ClientInstance` (RocketMQ: `MQClientInstance`): what producers and consumers of one
//! process share: connections, the route cache and the client id.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use proto::net::rpc::{OnRequest, RpcPool};
use proto::remoting::body::{from_json, perm, BrokerData, MessageQueue, TopicRouteData};
use proto::remoting::codes::{request, response};
use proto::remoting::RemotingCommand;

use crate::config::ClientConfig;
use crate::error::{ClientError, Result};

/// RocketMQ's default topic, whose route stands in for topics the broker auto-creates.
pub const AUTO_CREATE_TOPIC: &str = "TBW102";

static INSTANCE_COUNTER: AtomicU64 = AtomicU64::new(0);

pub struct ClientInstance {
    pub config: ClientConfig,
    pub client_id: String,
    pool: RpcPool,
    /// Ordered maps: iteration (route refresh, lookups) must not depend on a hash seed,
    /// so simulated runs replay.
    routes: Mutex<BTreeMap<String, TopicRouteData>>,
    /// Writable queues per topic, derived from `routes` (every send needs them).
    write_queue_cache: Mutex<BTreeMap<String, Arc<Vec<MessageQueue>>>>,
    /// The newest word on each broker group, from whichever topic's route brought it,
    /// with the number of the fetch that did. Every topic's route names the same
    /// groups, but a route fetched before a failover names the old master: lookups by
    /// group go here, so a route refreshed after a failed send counts at once.
    groups: Mutex<BTreeMap<String, (u64, BrokerData)>>,
    /// Numbers route fetches in the order they were asked for.
    fetches: AtomicU64,
    /// Name servers the address server named, and when (see `namesrv_addrs`).
    discovered: Mutex<Option<(Vec<String>, tokio::time::Instant)>>,
    /// When each topic's route was last fetched by [`ClientInstance::master_moved`],
    /// so that many waiting requests share one fetch.
    route_checks: Mutex<BTreeMap<String, tokio::time::Instant>>,
}

/// How long a request to a master waits before its client asks whether the master
/// moved, and how often after that: a request to a master that stopped answering is
/// abandoned within about an election and these checks, not at its timeout.
pub const MASTER_CHECK_FIRST: std::time::Duration = std::time::Duration::from_millis(300);
pub const MASTER_CHECK_EVERY: std::time::Duration = std::time::Duration::from_millis(200);

impl ClientInstance {
    /// A new instance; `on_request` receives requests brokers push to this client.
    pub fn new(config: ClientConfig, on_request: Option<OnRequest>) -> Arc<Self> {
        let n = INSTANCE_COUNTER.fetch_add(1, Ordering::Relaxed);
        // Simulated hosts share one OS process, whose id differs from run to run: a
        // replayed seed must name its clients the same way.
        #[cfg(madsim)]
        let pid = 0;
        #[cfg(not(madsim))]
        let pid = std::process::id();
        let client_id = format!("127.0.0.1@{pid}#{}#{n}", config.instance_name);
        let instance = Arc::new(ClientInstance {
            config,
            client_id,
            pool: RpcPool::new(on_request),
            routes: Mutex::default(),
            write_queue_cache: Mutex::default(),
            groups: Mutex::default(),
            fetches: AtomicU64::new(0),
            discovered: Mutex::default(),
            route_checks: Mutex::default(),
        });
        // Refresh cached routes every `route_refresh_interval` while the instance lives.
        let weak = Arc::downgrade(&instance);
        let interval = instance.config.route_refresh_interval;
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(interval).await;
                let Some(instance) = weak.upgrade() else {
                    return;
                };
                instance.refresh_all_routes().await;
            }
        });
        instance
    }

    pub fn pool(&self) -> &RpcPool {
        &self.pool
    }

    /// Sends `request` to `addr` and returns the response, whatever its code.
    pub async fn invoke(&self, addr: &str, request: RemotingCommand) -> Result<RemotingCommand> {
        Ok(self
            .pool
            .invoke(addr, request, self.config.request_timeout)
            .await?)
    }

    /// Like [`ClientInstance::invoke`], but a response code other than SUCCESS is an error.
    pub async fn invoke_ok(&self, addr: &str, request: RemotingCommand) -> Result<RemotingCommand> {
        let response = self.invoke(addr, request).await?;
        if response.code != response::SUCCESS {
            return Err(ClientError::Broker {
                addr: addr.to_string(),
                code: response.code,
                remark: response.remark.unwrap_or_default(),
            });
        }
        Ok(response)
    }

    /// The name servers: configured, else from the address server at `namesrv_domain`
    /// (asked again every 2 minutes; a failed ask keeps the last answer, as
    /// RocketMQ's clients do), else from `NAMESRV_ADDR`.
    pub async fn namesrv_addrs(&self) -> Result<Vec<String>> {
        let Some(domain) = self
            .config
            .namesrv_domain
            .as_deref()
            .filter(|_| self.config.namesrv_addrs.is_empty())
        else {
            return self.config.resolved_namesrv_addrs();
        };
        let now = tokio::time::Instant::now();
        if let Some((addrs, at)) = &*self.discovered.lock().expect("discovered poisoned") {
            if now.duration_since(*at) < crate::nsaddr::REFRESH_INTERVAL {
                return Ok(addrs.clone());
            }
        }
        match crate::nsaddr::fetch(domain, self.config.request_timeout).await {
            Ok(addrs) => {
                *self.discovered.lock().expect("discovered poisoned") = Some((addrs.clone(), now));
                Ok(addrs)
            }
            Err(e) => match &*self.discovered.lock().expect("discovered poisoned") {
                Some((addrs, _)) => {
                    tracing::warn!(error = %e, "name server discovery failed; keeping the last answer");
                    Ok(addrs.clone())
                }
                None => Err(e),
            },
        }
    }

    /// Asks the name servers, in turn, until one answers.
    pub async fn invoke_namesrv(&self, request: RemotingCommand) -> Result<RemotingCommand> {
        let mut last = ClientError::NoNameServer;
        for addr in self.namesrv_addrs().await? {
            match self.invoke(&addr, request.clone()).await {
                Ok(response) => return Ok(response),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// Fetches a topic's route from the name servers and caches it.
    pub async fn refresh_route(&self, topic: &str) -> Result<TopicRouteData> {
        let request =
            RemotingCommand::request(request::GET_ROUTEINFO_BY_TOPIC).with_ext("topic", topic);
        let fetch = self.fetches.fetch_add(1, Ordering::Relaxed) + 1;
        let response = self.invoke_namesrv(request).await?;
        if response.code == response::TOPIC_NOT_EXIST {
            self.routes.lock().expect("routes poisoned").remove(topic);
            self.write_queue_cache
                .lock()
                .expect("queue cache poisoned")
                .remove(topic);
            return Err(ClientError::NoRoute(topic.to_string()));
        }
        if response.code != response::SUCCESS {
            return Err(ClientError::Broker {
                addr: "name server".into(),
                code: response.code,
                remark: response.remark.unwrap_or_default(),
            });
        }
        let route: TopicRouteData = from_json(&response.body)?;
        {
            // A fetch asked for earlier but answered later knows less.
            let mut groups = self.groups.lock().expect("groups poisoned");
            for data in &route.broker_datas {
                let newest = groups
                    .get(&data.broker_name)
                    .is_none_or(|(known, _)| *known <= fetch);
                if newest {
                    groups.insert(data.broker_name.clone(), (fetch, data.clone()));
                }
            }
        }
        self.routes
            .lock()
            .expect("routes poisoned")
            .insert(topic.to_string(), route.clone());
        // The queue list follows the new route (a new master, a group that came or went).
        self.write_queue_cache
            .lock()
            .expect("queue cache poisoned")
            .remove(topic);
        Ok(route)
    }

    /// The cached route, fetched on first use.
    pub async fn route(&self, topic: &str) -> Result<TopicRouteData> {
        if let Some(route) = self.routes.lock().expect("routes poisoned").get(topic) {
            return Ok(route.clone());
        }
        self.refresh_route(topic).await
    }

    /// The topic's writable queues, from the cached route.
    pub async fn cached_write_queues(&self, topic: &str) -> Result<Arc<Vec<MessageQueue>>> {
        if let Some(queues) = self
            .write_queue_cache
            .lock()
            .expect("queue cache poisoned")
            .get(topic)
        {
            return Ok(queues.clone());
        }
        let queues = Arc::new(write_queues(topic, &self.route(topic).await?));
        // No writable queue (no master registered yet, say) is not worth remembering.
        if !queues.is_empty() {
            self.write_queue_cache
                .lock()
                .expect("queue cache poisoned")
                .insert(topic.to_string(), queues.clone());
        }
        Ok(queues)
    }

    /// Refreshes every cached route (RocketMQ does this every 30 s).
    pub async fn refresh_all_routes(&self) {
        let topics: Vec<String> = self
            .routes
            .lock()
            .expect("routes poisoned")
            .keys()
            .cloned()
            .collect();
        for topic in topics {
            if let Err(e) = self.refresh_route(&topic).await {
                tracing::debug!(%topic, error = %e, "route refresh failed");
            }
        }
    }

    /// Resolves once the name servers name a master of `broker` other than `addr` (the
    /// address of a request still waiting), with the new master's address; never if
    /// they go on naming `addr`. Asks for `topic`'s route (the auto-create topic's for a
    /// topic not created yet) after [`MASTER_CHECK_FIRST`], then every
    /// [`MASTER_CHECK_EVERY`], one fetch per topic for all waiting requests.
    pub async fn master_moved(&self, topic: &str, broker: &str, addr: &str) -> String {
        tokio::time::sleep(MASTER_CHECK_FIRST).await;
        loop {
            let now = tokio::time::Instant::now();
            let due = {
                let mut checks = self.route_checks.lock().expect("route checks poisoned");
                let due = checks
                    .get(topic)
                    .is_none_or(|at| now.duration_since(*at) >= MASTER_CHECK_EVERY);
                if due {
                    checks.insert(topic.to_string(), now);
                }
                due
            };
            if due {
                if let Err(ClientError::NoRoute(_)) = self.refresh_route(topic).await {
                    let _ = self.refresh_route(AUTO_CREATE_TOPIC).await;
                }
            }
            if let Some(master) = self.master_addr(broker).filter(|m| m != addr) {
                return master;
            }
            tokio::time::sleep(MASTER_CHECK_EVERY).await;
        }
    }

    /// `f` of the newest word on a broker group (see `groups`), borrowed: sends look up
    /// their master here, so nothing is cloned but what `f` returns.
    fn with_group<R>(&self, broker_name: &str, f: impl FnOnce(&BrokerData) -> R) -> Option<R> {
        let groups = self.groups.lock().expect("groups poisoned");
        groups.get(broker_name).map(|(_, data)| f(data))
    }

    /// The master address of a broker group, as the newest route names it.
    pub fn master_addr(&self, broker_name: &str) -> Option<String> {
        self.with_group(broker_name, |data| data.master_addr().map(str::to_string))?
    }

    /// Any address of a broker group: the master, else a slave (for reads).
    pub fn any_addr(&self, broker_name: &str) -> Option<String> {
        self.with_group(broker_name, |data| {
            data.master_addr()
                .or_else(|| data.broker_addrs.values().next().map(String::as_str))
                .map(str::to_string)
        })?
    }

    /// Every address of a broker group for reads: the master first, then the slaves.
    pub fn read_addrs(&self, broker_name: &str) -> Vec<String> {
        // Broker ids sort the master (0) first.
        self.with_group(broker_name, |data| {
            data.broker_addrs.values().cloned().collect()
        })
        .unwrap_or_default()
    }

    /// Every broker master address in cached routes.
    pub fn all_master_addrs(&self) -> Vec<String> {
        self.addrs(|b| b.master_addr().into_iter().map(str::to_string).collect())
    }

    /// Every broker address of the cached routes, masters and slaves: where a consumer
    /// sends heartbeats and its unregistration, as RocketMQ's clients do, so a slave
    /// that becomes master already knows the group's live members (and not members
    /// that left while it was a slave).
    pub fn all_broker_addrs(&self) -> Vec<String> {
        self.addrs(|b| b.broker_addrs.values().cloned().collect())
    }

    fn addrs(&self, of: impl Fn(&BrokerData) -> Vec<String>) -> Vec<String> {
        let routes = self.routes.lock().expect("routes poisoned");
        let mut addrs: Vec<String> = routes
            .values()
            .flat_map(|r| &r.broker_datas)
            .flat_map(of)
            .collect();
        addrs.sort();
        addrs.dedup();
        addrs
    }
}

/// The queues a producer may write to, in a stable order.
pub fn write_queues(topic: &str, route: &TopicRouteData) -> Vec<MessageQueue> {
    queues(topic, route, true, |q| {
        (q.perm & perm::WRITE != 0).then_some(q.write_queue_nums)
    })
}

/// The queues a consumer reads, in a stable order.
pub fn read_queues(topic: &str, route: &TopicRouteData) -> Vec<MessageQueue> {
    queues(topic, route, false, |q| {
        (q.perm & perm::READ != 0).then_some(q.read_queue_nums)
    })
}

/// Writes need a group's master; reads can be served by a slave.
fn queues(
    topic: &str,
    route: &TopicRouteData,
    need_master: bool,
    count: impl Fn(&proto::remoting::body::QueueData) -> Option<u32>,
) -> Vec<MessageQueue> {
    let mut out = Vec::new();
    let mut datas = route.queue_datas.clone();
    datas.sort_by(|a, b| a.broker_name.cmp(&b.broker_name));
    for q in &datas {
        let reachable = route.broker_datas.iter().any(|b| {
            b.broker_name == q.broker_name
                && if need_master {
                    b.master_addr().is_some()
                } else {
                    !b.broker_addrs.is_empty()
                }
        });
        if !reachable {
            continue;
        }
        for queue_id in 0..count(q).unwrap_or(0) {
            out.push(MessageQueue {
                topic: topic.to_string(),
                broker_name: q.broker_name.clone(),
                queue_id,
            });
        }
    }
    out
}
