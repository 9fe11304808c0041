//! `raftmq bench produce` against an in-process broker: a counted run sends exactly its
//! count, reports it, and its interval reporter does not get in the way.

use raftmq::cli::bench::{produce, ProduceArgs};

use crate::cluster::TestCluster;

/// A counted run of `count` 100-byte messages over 4 queues, `concurrency` in flight.
fn counted(topic: &str, concurrency: usize, count: u64) -> ProduceArgs {
    ProduceArgs {
        topic: topic.into(),
        size: 100,
        concurrency,
        count: Some(count),
        duration_secs: None,
        queues: 4,
        interval_secs: None,
        delay_level: None,
        timer_ms: None,
        tx: false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactional_delayed_and_timer_runs_report_every_send() {
    let cluster = TestCluster::start().await;
    for args in [
        ProduceArgs {
            tx: true,
            ..counted("BenchTx", 4, 100)
        },
        ProduceArgs {
            delay_level: Some(1),
            ..counted("BenchDelay", 4, 100)
        },
        ProduceArgs {
            timer_ms: Some(1_500),
            ..counted("BenchTimer", 4, 100)
        },
    ] {
        let what = format!(
            "tx {} delay {:?} timer {:?}",
            args.tx, args.delay_level, args.timer_ms
        );
        let report = produce(args, cluster.client_config()).await.unwrap();
        assert_eq!((report.sent, report.failed), (100, 0), "{what}");
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_counted_produce_run_reports_every_acknowledged_send() {
    let cluster = TestCluster::start().await;
    let args = ProduceArgs {
        interval_secs: Some(0.01),
        ..counted("BenchIt", 8, 500)
    };
    let report = produce(args, cluster.client_config()).await.unwrap();
    assert_eq!((report.sent, report.failed), (500, 0));
    assert_eq!(report.latency_us.len(), 500);
    let text = report.to_string();
    assert!(text.contains("sent 500 (0 failed)"), "{text}");
    cluster.shutdown().await;
}

/// The same run on the runtime `raftmq --busy-poll-us 200` builds (one worker and a
/// spinner that yields between frames): the broker, its timers and the bench share the
/// worker with the spinner, and every send is still acknowledged.
#[test]
fn a_busy_polling_runtime_serves_one_in_flight_sends() {
    let runtime = raftmq::cli::runtime(0, 200).unwrap();
    runtime.block_on(async {
        let cluster = TestCluster::start().await;
        let report = produce(counted("BenchBusyPoll", 1, 300), cluster.client_config())
            .await
            .unwrap();
        assert_eq!((report.sent, report.failed), (300, 0));
        cluster.shutdown().await;
    });
}
