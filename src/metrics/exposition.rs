//! One scrape's worth of metrics, gathered from any number of processes' parts (the
//! brokers and name server of `raftmq dev` share one endpoint) and rendered in the
//! OpenMetrics text format that Prometheus scrapes.
//!
//! Values are gathered at scrape time into families keyed by name, so two brokers'
//! samples of one metric come out under one `# TYPE` line, told apart by their labels.
//! `prometheus-client` does the encoding (escaping, `_total` on counters, unit suffixes,
//! histogram buckets).

use std::collections::BTreeMap;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

use super::buckets::Snapshot;

/// A sample's labels, in order.
pub type Labels = Vec<(&'static str, String)>;

#[derive(Debug)]
enum Value {
    Counter(u64),
    Gauge(i64),
    Histogram(Histogram),
    Buckets(Snapshot),
}

#[derive(Debug)]
struct Family {
    help: &'static str,
    unit: Option<&'static str>,
    kind: MetricType,
    samples: Vec<(Labels, Value)>,
}

/// The metrics of one scrape. Add samples, then [`Exposition::render`].
#[derive(Debug, Default)]
pub struct Exposition {
    families: BTreeMap<&'static str, Family>,
}

impl Exposition {
    /// A counter; `name` without `_total`, which the encoding adds.
    pub fn counter(&mut self, name: &'static str, help: &'static str, labels: Labels, v: u64) {
        self.add(
            name,
            help,
            None,
            MetricType::Counter,
            labels,
            Value::Counter(v),
        );
    }

    pub fn gauge(&mut self, name: &'static str, help: &'static str, labels: Labels, v: i64) {
        self.add(name, help, None, MetricType::Gauge, labels, Value::Gauge(v));
    }

    /// A gauge in bytes: `name` gets the `_bytes` suffix.
    pub fn gauge_bytes(&mut self, name: &'static str, help: &'static str, labels: Labels, v: u64) {
        let v = i64::try_from(v).unwrap_or(i64::MAX);
        self.add(
            name,
            help,
            Some("bytes"),
            MetricType::Gauge,
            labels,
            Value::Gauge(v),
        );
    }

    /// A histogram; `unit`, when given, is appended to the name (`_milliseconds`).
    pub fn histogram(
        &mut self,
        name: &'static str,
        help: &'static str,
        unit: Option<&'static str>,
        labels: Labels,
        h: &Histogram,
    ) {
        let v = Value::Histogram(h.clone());
        self.add(name, help, unit, MetricType::Histogram, labels, v);
    }

    /// A histogram from a [`Snapshot`] of [`super::buckets::Buckets`].
    pub fn buckets(
        &mut self,
        name: &'static str,
        help: &'static str,
        unit: Option<&'static str>,
        labels: Labels,
        s: Snapshot,
    ) {
        let v = Value::Buckets(s);
        self.add(name, help, unit, MetricType::Histogram, labels, v);
    }

    fn add(
        &mut self,
        name: &'static str,
        help: &'static str,
        unit: Option<&'static str>,
        kind: MetricType,
        labels: Labels,
        value: Value,
    ) {
        let family = self.families.entry(name).or_insert(Family {
            help,
            unit,
            kind,
            samples: Vec::new(),
        });
        assert!(
            std::mem::discriminant(&family.kind) == std::mem::discriminant(&kind)
                && family.unit == unit,
            "metric {name} added as two kinds"
        );
        family.samples.push((labels, value));
    }

    /// The OpenMetrics text, ending in `# EOF`.
    pub fn render(self) -> String {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(self));
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &registry)
            .expect("writing to a String cannot fail");
        out
    }
}

impl Collector for Exposition {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for (name, family) in &self.families {
            let unit = family.unit.map(|u| match u {
                "bytes" => Unit::Bytes,
                "seconds" => Unit::Seconds,
                other => Unit::Other(other.to_string()),
            });
            let mut metric =
                encoder.encode_descriptor(name, family.help, unit.as_ref(), family.kind)?;
            for (labels, value) in &family.samples {
                let sample = metric.encode_family(labels)?;
                match value {
                    Value::Counter(v) => ConstCounter::new(*v).encode(sample)?,
                    Value::Gauge(v) => ConstGauge::new(*v).encode(sample)?,
                    Value::Histogram(h) => h.encode(sample)?,
                    Value::Buckets(s) => {
                        let mut sample = sample;
                        sample.encode_histogram::<NoLabelSet>(s.sum, s.count(), &s.buckets, None)?
                    }
                }
            }
        }
        Ok(())
    }
}

/// `base` and then `more`.
pub fn labels(base: &Labels, more: &[(&'static str, &str)]) -> Labels {
    let mut out = base.clone();
    out.extend(more.iter().map(|(k, v)| (*k, v.to_string())));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_of_one_metric_share_one_family() {
        let mut e = Exposition::default();
        let a = vec![("node_id", "broker-a".to_string())];
        let b = vec![("node_id", "broker-b".to_string())];
        e.counter(
            "rocketmq_messages_in",
            "Messages stored.",
            labels(&a, &[("topic", "T")]),
            3,
        );
        e.counter(
            "rocketmq_messages_in",
            "Messages stored.",
            labels(&b, &[("topic", "T")]),
            4,
        );
        e.gauge_bytes("rocketmq_storage_size", "CommitLog bytes.", a.clone(), 10);
        let h = Histogram::new([1.0, 10.0]);
        h.observe(5.0);
        e.histogram(
            "rocketmq_rpc_latency",
            "Latency.",
            Some("milliseconds"),
            a,
            &h,
        );
        let text = e.render();
        assert_eq!(
            text.matches("# TYPE rocketmq_messages_in counter").count(),
            1,
            "{text}"
        );
        assert!(text.contains(r#"rocketmq_messages_in_total{node_id="broker-a",topic="T"} 3"#));
        assert!(text.contains(r#"rocketmq_messages_in_total{node_id="broker-b",topic="T"} 4"#));
        assert!(
            text.contains(r#"rocketmq_storage_size_bytes{node_id="broker-a"} 10"#),
            "{text}"
        );
        assert!(
            text.contains(
                r#"rocketmq_rpc_latency_milliseconds_bucket{le="10.0",node_id="broker-a"} 1"#
            ) || text.contains(
                r#"rocketmq_rpc_latency_milliseconds_bucket{node_id="broker-a",le="10.0"} 1"#
            ),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[test]
    #[should_panic(expected = "two kinds")]
    fn one_name_is_one_kind() {
        let mut e = Exposition::default();
        e.counter("x", "x", vec![], 1);
        e.gauge("x", "x", vec![], 1);
    }
}
