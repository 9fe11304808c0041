//! The metrics endpoint of `raftmq dev`, scraped over HTTP and parsed: a replicated
//! group of three, a producer and a consumer group, and figures checked against what
//! the admin API says.

use std::collections::BTreeMap;

use client::{Admin, Message, Producer, PullConsumer, PullStatus};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::cluster::{dev_group, send_acked};

/// One sample: name, labels, value.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Parses the OpenMetrics text format's samples (names, label sets, values), failing on
/// any line that is neither a sample nor a comment, and on a missing `# EOF`.
fn parse(text: &str) -> Vec<Sample> {
    assert!(text.ends_with("# EOF\n"), "no # EOF at the end:\n{text}");
    let mut samples = Vec::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("no value in {line:?}"));
        let value: f64 = value
            .parse()
            .unwrap_or_else(|e| panic!("value of {line:?}: {e}"));
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => {
                let body = rest
                    .strip_suffix('}')
                    .unwrap_or_else(|| panic!("unclosed labels in {line:?}"));
                let labels = body
                    .split("\",")
                    .filter(|p| !p.is_empty())
                    .map(|pair| {
                        let (k, v) = pair
                            .split_once("=\"")
                            .unwrap_or_else(|| panic!("label {pair:?} in {line:?}"));
                        (k.to_string(), v.trim_end_matches('"').to_string())
                    })
                    .collect();
                (name, labels)
            }
            None => (series, BTreeMap::new()),
        };
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "metric name {name:?}"
        );
        samples.push(Sample {
            name: name.to_string(),
            labels,
            value,
        });
    }
    samples
}

/// GET /metrics with a plain HTTP/1.1 request: (content type, body).
async fn scrape(addr: std::net::SocketAddr) -> (String, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: raftmq\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let (head, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let content_type = head
        .lines()
        .find_map(|l| l.strip_prefix("content-type: "))
        .unwrap_or_default()
        .to_string();
    (content_type, body.to_string())
}

/// The values of `name` whose labels include every pair of `with`.
fn values(samples: &[Sample], name: &str, with: &[(&str, &str)]) -> Vec<f64> {
    samples
        .iter()
        .filter(|s| s.name == name)
        .filter(|s| {
            with.iter()
                .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
        .collect()
}

fn sum(samples: &[Sample], name: &str, with: &[(&str, &str)]) -> f64 {
    values(samples, name, with).iter().sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replicated_dev_cluster_serves_metrics_that_match_the_admin_api() {
    let (cluster, config, _dir) = dev_group(store::FlushMode::Sync).await;
    let router = raftmq::http::metrics(cluster.metrics_renderer());
    let (addr, _task) = raftmq::http::serve("metrics", "127.0.0.1:0".parse().unwrap(), router)
        .await
        .unwrap();
    let producer = Producer::new("metrics-producer", config.clone());
    // A new group elects its master first: retry until the sends go through.
    let body = vec![b'x'; 100];
    send_acked(
        &producer,
        (0..30).map(|_| Message::new("MetricsTopic", body.clone())),
    )
    .await;
    // Consume 3 messages of one queue and commit, leaving the rest as lag.
    let consumer = PullConsumer::new("metrics-group", config.clone());
    let queues = consumer.fetch_queues("MetricsTopic").await.unwrap();
    let queue = &queues[0];
    let pulled = consumer.pull(queue, "*", 0, 3).await.unwrap();
    assert_eq!(pulled.status, PullStatus::Found);
    let taken = pulled.messages.len() as u64;
    consumer
        .commit_offset(queue, pulled.next_begin_offset)
        .await
        .unwrap();

    let (content_type, text) = scrape(addr).await;
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    let samples = parse(&text);
    if std::env::var_os("RAFTMQ_PRINT_METRICS").is_some() {
        println!("{text}");
    }
    let topic = [("topic", "MetricsTopic")];
    assert_eq!(sum(&samples, "rocketmq_messages_in_total", &topic), 30.0);
    assert_eq!(
        sum(&samples, "rocketmq_throughput_in_total", &topic),
        3000.0
    );
    let group = [
        ("topic", "MetricsTopic"),
        ("consumer_group", "metrics-group"),
    ];
    assert_eq!(
        sum(&samples, "rocketmq_messages_out_total", &group),
        taken as f64
    );
    // The lag the master reports is what the admin API reports.
    let progress = Admin::new(config)
        .consumer_progress("metrics-group", "MetricsTopic")
        .await
        .unwrap();
    let admin_lag: u64 = progress.iter().map(|q| q.lag()).sum();
    let master = [("role", "leader")];
    let leaders = values(&samples, "raftmq_raft_role", &master);
    assert_eq!(
        leaders.iter().filter(|v| **v == 1.0).count(),
        1,
        "one leader among the replicas:\n{text}"
    );
    let master_id = samples
        .iter()
        .find(|s| s.name == "raftmq_raft_role" && s.labels["role"] == "leader" && s.value == 1.0)
        .map(|s| s.labels["replica_id"].clone())
        .unwrap();
    let on_master = [
        ("replica_id", master_id.as_str()),
        ("consumer_group", "metrics-group"),
        ("topic", "MetricsTopic"),
    ];
    assert_eq!(
        sum(&samples, "rocketmq_consumer_lag_messages", &on_master),
        admin_lag as f64,
        "{text}"
    );
    assert!(admin_lag > 0 && admin_lag < 30);
    let sends = [
        ("replica_id", master_id.as_str()),
        ("request_code", "send_message_v2"),
        ("response_code", "success"),
    ];
    assert!(sum(&samples, "rocketmq_rpc_latency_milliseconds_count", &sends) >= 30.0);
    // Raft: every replica's term, the master's view of both followers, and fsyncs.
    let terms = values(&samples, "raftmq_raft_term", &[]);
    assert_eq!(terms.len(), 3);
    assert!(terms.iter().all(|t| *t >= 1.0), "{terms:?}");
    let lag = values(
        &samples,
        "raftmq_raft_replication_lag_entries",
        &[("replica_id", master_id.as_str())],
    );
    assert_eq!(lag.len(), 2, "{text}");
    assert!(sum(&samples, "raftmq_store_fsync_seconds_count", &[]) > 0.0);
    assert!(sum(&samples, "rocketmq_storage_size_bytes", &[]) > 0.0);
    assert!(
        sum(
            &samples,
            "raftmq_raft_masterships_total",
            &[("replica_id", &master_id)]
        ) >= 1.0,
        "{text}"
    );
    assert_eq!(sum(&samples, "raftmq_namesrv_groups_with_master", &[]), 1.0);
    cluster.shutdown().await.unwrap();
}

#[test]
fn the_parser_refuses_what_is_not_the_format() {
    let bad = std::panic::catch_unwind(|| parse("rocketmq_x{a=\"1\"} \n# EOF\n"));
    assert!(bad.is_err(), "a sample without a value");
    let bad = std::panic::catch_unwind(|| parse("rocketmq_x 1\n"));
    assert!(bad.is_err(), "no # EOF");
    let ok = parse("# TYPE x counter\nx_total{a=\"1\",b=\"2\"} 3\n# EOF\n");
    assert_eq!(ok[0].labels["b"], "2");
    assert_eq!(ok[0].value, 3.0);
}
