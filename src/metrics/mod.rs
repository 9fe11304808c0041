//! Operators' metrics in Prometheus' format.
//!
//! - [`exposition`]: one scrape's samples, rendered as OpenMetrics text (pure);
//! - [`traffic`]: messages in and out, counted on the send and pull paths;
//! - [`rpc`]: request latency by request and response code, in [`buckets`] that can be
//!   read back;
//!
//! `crate::http` serves them at `/metrics`.
//!
//! What each process exports is gathered at scrape time: `Broker::collect_metrics`,
//! [`collect_namesrv`].

pub mod buckets;
pub mod exposition;
pub mod rpc;
pub mod traffic;

use exposition::{Exposition, Labels};

/// Adds a name server's metrics to `out`; `node_id` names it (its address).
pub fn collect_namesrv(server: &namesrv::NameServer, node_id: &str, out: &mut Exposition) {
    let node: Labels = vec![
        ("node_type", "namesrv".to_string()),
        ("node_id", node_id.to_string()),
    ];
    let s = server.stats();
    let gauges: [(&'static str, &'static str, usize); 5] = [
        (
            "raftmq_namesrv_clusters",
            "Clusters registered.",
            s.clusters,
        ),
        (
            "raftmq_namesrv_broker_groups",
            "Broker groups registered.",
            s.broker_groups,
        ),
        (
            "raftmq_namesrv_groups_with_master",
            "Broker groups whose route names a master.",
            s.groups_with_master,
        ),
        (
            "raftmq_namesrv_brokers",
            "Live broker addresses (replicas).",
            s.broker_addrs,
        ),
        ("raftmq_namesrv_topics", "Topics routed.", s.topics),
    ];
    for (name, help, v) in gauges {
        out.gauge(
            name,
            help,
            node.clone(),
            i64::try_from(v).unwrap_or(i64::MAX),
        );
    }
}
