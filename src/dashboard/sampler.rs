//! The dashboard's memory of the last minutes: every `interval` it samples each topic's
//! stored messages (the sum of its queues' max offsets) and each broker group master's
//! runtime figures (messages out, send latency buckets); charts are drawn from the
//! differences between samples.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use client::Admin;
use tokio::time::Instant;

use crate::broker::stats::keys;
use crate::metrics::buckets::Snapshot;

/// Samples kept: ten minutes at the default 5 s.
const KEPT: usize = 120;

#[derive(Clone, Debug)]
pub struct BrokerSample {
    pub messages_out: u64,
    pub send_latency_ms: Snapshot,
}

#[derive(Clone, Debug)]
pub struct Sample {
    pub at: Instant,
    /// Topic → messages stored (sum of max offsets over its queues).
    pub topics: BTreeMap<String, u64>,
    /// Broker group → its master's figures.
    pub brokers: BTreeMap<String, BrokerSample>,
}

#[derive(Default)]
pub struct History {
    samples: VecDeque<Sample>,
}

/// One chart line: name and (seconds ago, value) points.
pub type Series = Vec<(String, Vec<(f64, f64)>)>;

impl History {
    pub fn push(&mut self, sample: Sample) {
        if self.samples.len() == KEPT {
            self.samples.pop_front();
        }
        self.samples.push_back(sample);
    }

    pub fn latest(&self) -> Option<&Sample> {
        self.samples.back()
    }

    /// Per key, `value(earlier, later, seconds between)` for each pair of samples in
    /// which both have the key, placed at the later one's age.
    fn between<K: Ord + Clone, T>(
        &self,
        pick: impl Fn(&Sample) -> &BTreeMap<K, T>,
        value: impl Fn(&T, &T, f64) -> Option<f64>,
    ) -> BTreeMap<K, Vec<(f64, f64)>> {
        let now = Instant::now();
        let mut out: BTreeMap<K, Vec<(f64, f64)>> = BTreeMap::new();
        for (a, b) in self.samples.iter().zip(self.samples.iter().skip(1)) {
            let dt = b.at.duration_since(a.at).as_secs_f64();
            if dt <= 0.0 {
                continue;
            }
            let ago = now.duration_since(b.at).as_secs_f64();
            for (key, later) in pick(b) {
                if let Some(v) = pick(a)
                    .get(key)
                    .and_then(|earlier| value(earlier, later, dt))
                {
                    out.entry(key.clone()).or_default().push((ago, v));
                }
            }
        }
        out
    }

    /// Messages stored per second, by topic.
    pub fn rates_in(&self) -> Series {
        let rate = |a: &u64, b: &u64, dt: f64| (b >= a).then(|| (b - a) as f64 / dt);
        self.between(|s| &s.topics, rate).into_iter().collect()
    }

    /// Messages pulled per second, by broker group (a new master restarts its count).
    pub fn rates_out(&self) -> Series {
        let rate = |a: &BrokerSample, b: &BrokerSample, dt: f64| {
            (b.messages_out >= a.messages_out)
                .then(|| (b.messages_out - a.messages_out) as f64 / dt)
        };
        self.between(|s| &s.brokers, rate).into_iter().collect()
    }

    /// The `q` quantile of send latency (ms) between samples, by broker group.
    pub fn send_latency(&self, q: f64) -> Series {
        let quantile = |a: &BrokerSample, b: &BrokerSample, _dt: f64| {
            let bound = b.send_latency_ms.since(&a.send_latency_ms).quantile(q)?;
            (bound < f64::MAX).then_some(bound)
        };
        self.between(|s| &s.brokers, quantile).into_iter().collect()
    }
}

/// Samples forever, every `interval`.
pub async fn run(admin: Arc<Admin>, history: Arc<Mutex<History>>, interval: Duration) {
    loop {
        match sample(&admin).await {
            Ok(s) => history.lock().expect("history poisoned").push(s),
            Err(e) => tracing::debug!(error = %e, "dashboard sample failed"),
        }
        tokio::time::sleep(interval).await;
    }
}

async fn sample(admin: &Admin) -> client::Result<Sample> {
    let mut topics = BTreeMap::new();
    for topic in admin.topic_list().await? {
        if super::is_internal_topic(&topic) {
            continue;
        }
        if let Ok(stats) = admin.topic_stats(&topic).await {
            topics.insert(topic, stats.iter().map(|(_, o)| o.max_offset).sum());
        }
    }
    let mut brokers = BTreeMap::new();
    for (name, data) in admin.cluster_info().await?.broker_addr_table {
        let Some(addr) = data.master_addr() else {
            continue;
        };
        let Ok(info) = admin.broker_runtime_info(addr).await else {
            continue;
        };
        brokers.insert(
            name,
            BrokerSample {
                messages_out: info
                    .get("msgGetTotalTodayNow")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0),
                send_latency_ms: info
                    .get(keys::SEND_LATENCY_MS)
                    .and_then(|v| Snapshot::decode(v))
                    .unwrap_or_default(),
            },
        );
    }
    Ok(Sample {
        at: Instant::now(),
        topics,
        brokers,
    })
}
