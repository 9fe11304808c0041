//! The route table (RocketMQ's `RouteInfoManager`), without I/O.

use std::collections::{BTreeMap, BTreeSet};

use proto::remoting::body::{
    BrokerData, ClusterInfo, QueueData, TopicConfigSerializeWrapper, TopicList, TopicRouteData,
    MASTER_ID,
};

/// A broker not heard from for this long is dropped (RocketMQ: 120 s).
pub const BROKER_EXPIRY_MS: i64 = 120_000;

#[derive(Clone, Debug)]
struct LiveBroker {
    cluster: String,
    broker_name: String,
    last_update_ms: i64,
}

/// One registration, as a broker sends it.
#[derive(Clone, Debug)]
pub struct Registration {
    pub cluster: String,
    pub broker_name: String,
    pub broker_addr: String,
    pub broker_id: u64,
    /// A Raft-replicated group's term (raftmq's `raftmqTerm` ext field); `None` from
    /// classic brokers, whose master is fixed by broker id.
    pub term: Option<u64>,
    pub topics: TopicConfigSerializeWrapper,
}

/// What a [`RouteTable`] holds, counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RouteStats {
    pub clusters: usize,
    pub broker_groups: usize,
    /// Live broker addresses: every registered replica.
    pub broker_addrs: usize,
    pub topics: usize,
    /// Broker groups whose route names a master (the others take no writes).
    pub groups_with_master: usize,
}

#[derive(Debug, Default)]
pub struct RouteTable {
    brokers: BTreeMap<String, BrokerData>,
    clusters: BTreeMap<String, BTreeSet<String>>,
    /// topic → broker name → queue data.
    topics: BTreeMap<String, BTreeMap<String, QueueData>>,
    /// broker address → liveness.
    live: BTreeMap<String, LiveBroker>,
    /// broker name → the highest term a master of the group registered with.
    master_terms: BTreeMap<String, u64>,
}

impl RouteTable {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers (or refreshes) a broker. A master's topic table replaces the group's
    /// queue data; a slave's registration only refreshes its address and liveness.
    ///
    /// A master registration with a term lower than one the group's master already
    /// registered with is refused (its liveness is still refreshed): a deposed master
    /// that resumes after a pause would otherwise take the master's place until the
    /// real master's next heartbeat, leaving the group without a writable route.
    pub fn register(&mut self, r: Registration, now_ms: i64) -> Result<(), String> {
        if let (MASTER_ID, Some(term)) = (r.broker_id, r.term) {
            let newest = self
                .master_terms
                .entry(r.broker_name.clone())
                .or_insert(term);
            if term < *newest {
                let refused = format!(
                    "stale master registration of {} for {}: term {term} < term {newest} of the registered master",
                    r.broker_addr, r.broker_name
                );
                if let Some(live) = self.live.get_mut(&r.broker_addr) {
                    live.last_update_ms = now_ms;
                }
                return Err(refused);
            }
            *newest = term;
        }
        self.clusters
            .entry(r.cluster.clone())
            .or_default()
            .insert(r.broker_name.clone());
        let data = self
            .brokers
            .entry(r.broker_name.clone())
            .or_insert_with(|| BrokerData {
                cluster: r.cluster.clone(),
                broker_name: r.broker_name.clone(),
                broker_addrs: BTreeMap::new(),
                enable_acting_master: false,
            });
        // One address per id: a replica that changed role re-registers under a new id.
        data.broker_addrs
            .retain(|id, addr| *addr != r.broker_addr || *id == r.broker_id);
        data.broker_addrs.insert(r.broker_id, r.broker_addr.clone());
        self.live.insert(
            r.broker_addr.clone(),
            LiveBroker {
                cluster: r.cluster.clone(),
                broker_name: r.broker_name.clone(),
                last_update_ms: now_ms,
            },
        );
        if r.broker_id != MASTER_ID {
            return Ok(());
        }
        for queues in self.topics.values_mut() {
            queues.remove(&r.broker_name);
        }
        for (topic, config) in r.topics.topic_config_table {
            self.topics.entry(topic).or_default().insert(
                r.broker_name.clone(),
                QueueData {
                    broker_name: r.broker_name.clone(),
                    read_queue_nums: config.read_queue_nums,
                    write_queue_nums: config.write_queue_nums,
                    perm: config.perm,
                    topic_sys_flag: config.topic_sys_flag,
                },
            );
        }
        self.topics.retain(|_, queues| !queues.is_empty());
        Ok(())
    }

    /// Removes one broker address (an unregistration or an expiry).
    pub fn unregister(&mut self, broker_addr: &str) {
        let Some(live) = self.live.remove(broker_addr) else {
            return;
        };
        let mut group_gone = false;
        if let Some(data) = self.brokers.get_mut(&live.broker_name) {
            data.broker_addrs.retain(|_, addr| addr != broker_addr);
            group_gone = data.broker_addrs.is_empty();
        }
        if group_gone {
            // A group that returns from scratch (say, wiped disks) starts at term 1.
            self.master_terms.remove(&live.broker_name);
            self.brokers.remove(&live.broker_name);
            if let Some(names) = self.clusters.get_mut(&live.cluster) {
                names.remove(&live.broker_name);
                if names.is_empty() {
                    self.clusters.remove(&live.cluster);
                }
            }
        }
        // A group without a master takes no writes; its queues leave the routes when the
        // whole group is gone (RocketMQ keeps them while slaves can serve reads).
        if group_gone {
            for queues in self.topics.values_mut() {
                queues.remove(&live.broker_name);
            }
            self.topics.retain(|_, queues| !queues.is_empty());
        }
    }

    /// Drops brokers silent for longer than [`BROKER_EXPIRY_MS`]. Returns their addresses.
    pub fn expire(&mut self, now_ms: i64) -> Vec<String> {
        let expired: Vec<String> = self
            .live
            .iter()
            .filter(|(_, b)| now_ms - b.last_update_ms > BROKER_EXPIRY_MS)
            .map(|(addr, _)| addr.clone())
            .collect();
        for addr in &expired {
            self.unregister(addr);
        }
        expired
    }

    /// The route of `topic`: its queues per broker group and the groups' addresses.
    pub fn route(&self, topic: &str) -> Option<TopicRouteData> {
        let queues = self.topics.get(topic)?;
        let broker_datas: Vec<BrokerData> = queues
            .keys()
            .filter_map(|name| self.brokers.get(name))
            .cloned()
            .collect();
        if broker_datas.is_empty() {
            return None;
        }
        Some(TopicRouteData {
            order_topic_conf: None,
            queue_datas: queues.values().cloned().collect(),
            broker_datas,
            filter_server_table: BTreeMap::new(),
        })
    }

    /// How much the table holds, for operators' metrics.
    pub fn stats(&self) -> RouteStats {
        RouteStats {
            clusters: self.clusters.len(),
            broker_groups: self.brokers.len(),
            broker_addrs: self.live.len(),
            topics: self.topics.len(),
            groups_with_master: self
                .brokers
                .values()
                .filter(|b| b.master_addr().is_some())
                .count(),
        }
    }

    pub fn cluster_info(&self) -> ClusterInfo {
        ClusterInfo {
            broker_addr_table: self.brokers.clone(),
            cluster_addr_table: self
                .clusters
                .iter()
                .map(|(c, names)| (c.clone(), names.iter().cloned().collect()))
                .collect(),
        }
    }

    pub fn topic_list(&self) -> TopicList {
        TopicList {
            topic_list: self.topics.keys().cloned().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::remoting::body::{perm, TopicConfigBody};

    fn registration(name: &str, addr: &str, id: u64, topics: &[(&str, u32)]) -> Registration {
        let mut wrapper = TopicConfigSerializeWrapper::default();
        for (topic, queues) in topics {
            wrapper.topic_config_table.insert(
                topic.to_string(),
                TopicConfigBody {
                    topic_name: topic.to_string(),
                    read_queue_nums: *queues,
                    write_queue_nums: *queues,
                    perm: perm::READ_WRITE,
                    topic_filter_type: None,
                    topic_sys_flag: 0,
                    order: false,
                },
            );
        }
        Registration {
            cluster: "DefaultCluster".into(),
            broker_name: name.into(),
            broker_addr: addr.into(),
            broker_id: id,
            term: None,
            topics: wrapper,
        }
    }

    #[test]
    fn a_deposed_master_cannot_take_the_route_back() {
        let mut t = RouteTable::new();
        let at = |addr: &str, id: u64, term: u64| Registration {
            term: Some(term),
            ..registration("a", addr, id, &[("T", 4)])
        };
        t.register(at("10.0.0.1:10911", 0, 1), 0).unwrap();
        t.register(at("10.0.0.2:10911", 2, 1), 0).unwrap();
        // .2 is elected in term 2; .1 resumes from a pause and claims mastership with
        // its old term, then learns the new term and registers as a slave.
        t.register(at("10.0.0.2:10911", 0, 2), 1).unwrap();
        let refused = t.register(at("10.0.0.1:10911", 0, 1), 2).unwrap_err();
        assert!(refused.contains("term 1 < term 2"), "{refused}");
        t.register(at("10.0.0.1:10911", 1, 2), 3).unwrap();
        let data = &t.route("T").unwrap().broker_datas[0];
        assert_eq!(data.master_addr(), Some("10.0.0.2:10911"));
        assert_eq!(
            data.broker_addrs.get(&1).map(String::as_str),
            Some("10.0.0.1:10911")
        );
        // A master of the same or a later term is accepted.
        t.register(at("10.0.0.1:10911", 0, 3), 4).unwrap();
        assert_eq!(
            t.route("T").unwrap().broker_datas[0].master_addr(),
            Some("10.0.0.1:10911")
        );
    }

    #[test]
    fn routes_span_groups_and_follow_registrations() {
        let mut t = RouteTable::new();
        t.register(
            registration("a", "10.0.0.1:10911", 0, &[("T", 4), ("U", 2)]),
            0,
        )
        .unwrap();
        t.register(registration("b", "10.0.0.2:10911", 0, &[("T", 8)]), 0)
            .unwrap();
        t.register(registration("b", "10.0.0.3:10911", 1, &[]), 0)
            .unwrap();
        let route = t.route("T").unwrap();
        assert_eq!(route.queue_datas.len(), 2);
        assert_eq!(route.broker_datas.len(), 2);
        assert_eq!(
            route.broker_datas[1].broker_addrs.len(),
            2,
            "slave listed under id 1"
        );
        assert_eq!(t.topic_list().topic_list, vec!["T", "U"]);
        // A master's new table replaces its old one: U is gone from a.
        t.register(registration("a", "10.0.0.1:10911", 0, &[("T", 4)]), 10)
            .unwrap();
        assert!(t.route("U").is_none());
        assert_eq!(
            t.cluster_info().cluster_addr_table["DefaultCluster"],
            vec!["a", "b"]
        );
    }

    #[test]
    fn silent_brokers_expire_after_120_seconds() {
        let mut t = RouteTable::new();
        t.register(registration("a", "10.0.0.1:10911", 0, &[("T", 4)]), 0)
            .unwrap();
        t.register(registration("b", "10.0.0.2:10911", 0, &[("T", 4)]), 100_000)
            .unwrap();
        assert!(
            t.expire(BROKER_EXPIRY_MS).is_empty(),
            "exactly 120 s is still alive"
        );
        assert_eq!(t.expire(BROKER_EXPIRY_MS + 1), vec!["10.0.0.1:10911"]);
        let route = t.route("T").unwrap();
        assert_eq!(route.broker_datas.len(), 1);
        assert_eq!(route.broker_datas[0].broker_name, "b");
        t.unregister("10.0.0.2:10911");
        assert!(t.route("T").is_none());
        assert!(t.cluster_info().broker_addr_table.is_empty());
    }

    #[test]
    fn a_replica_changing_role_moves_ids() {
        let mut t = RouteTable::new();
        t.register(registration("a", "10.0.0.1:10911", 0, &[("T", 4)]), 0)
            .unwrap();
        t.register(registration("a", "10.0.0.2:10911", 1, &[]), 0)
            .unwrap();
        // Failover: .2 becomes master, .1 comes back as a slave.
        t.register(registration("a", "10.0.0.2:10911", 0, &[("T", 4)]), 1)
            .unwrap();
        t.register(registration("a", "10.0.0.1:10911", 1, &[]), 1)
            .unwrap();
        let data = &t.route("T").unwrap().broker_datas[0];
        assert_eq!(data.master_addr(), Some("10.0.0.2:10911"));
        assert_eq!(
            data.broker_addrs.get(&1).map(String::as_str),
            Some("10.0.0.1:10911")
        );
        assert_eq!(data.broker_addrs.len(), 2);
    }
}
