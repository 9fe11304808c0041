//! `raftmq bench produce` against an in-process broker: a counted run sends exactly its
//! count, reports it, and its interval reporter does not get in the way.

use raftmq::cli::bench::{produce, ProduceArgs};

use crate::cluster::TestCluster;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_counted_produce_run_reports_every_acknowledged_send() {
    let cluster = TestCluster::start().await;
    let args = ProduceArgs {
        topic: "BenchIt".into(),
        size: 100,
        concurrency: 8,
        count: Some(500),
        duration_secs: None,
        queues: 4,
        interval_secs: Some(0.01),
    };
    let report = produce(args, cluster.client_config()).await.unwrap();
    assert_eq!((report.sent, report.failed), (500, 0));
    assert_eq!(report.latency_us.len(), 500);
    let text = report.to_string();
    assert!(text.contains("sent 500 (0 failed)"), "{text}");
    cluster.shutdown().await;
}
