//! A broker that loses power mid-stream: with `flush_disk_type = sync`, every send the
//! broker acknowledged is readable after it restarts, and nothing appears that was never
//! sent; with `async`, at most an acknowledged tail is lost. The run is recorded as a
//! history and judged by `history::checker`, as Jepsen runs are. Real name server,
//! broker and client code on simulated hosts; the broker's disk is a `SimDisk` that
//! loses unsynced bytes (and may tear the tail) on the crash.
//!
//! `RUSTFLAGS="--cfg madsim" CARGO_TARGET_DIR=target/sim cargo test -p sim --test crash`
//! (`MADSIM_TEST_NUM=200` for more seeds; a failure prints `MADSIM_TEST_SEED` to replay).
#![cfg(madsim)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use client::{ClientConfig, Message, Producer};
use history::checker::{check, LossAllowance};
use history::history::History;
use madsim::rand::Rng;
use madsim::runtime::Handle;
use raftmq::BrokerConfig;
use sim::nodes::{now_ms, queue_ref, read_back, start_namesrv};
use store::meta::MemMetaStore;
use store::{FlushMode, SimDisk, SimDiskConfig};

const NAMESRV: &str = "10.0.1.1:9876";
const BROKER_IP: &str = "10.0.1.2";
const MESSAGES: usize = 300;

/// Checks a run with the shared checker: under sync flush nothing acknowledged may be
/// lost; under async flush only an acknowledged tail per queue.
#[madsim::test]
async fn sync_flush_loses_no_acknowledged_send_on_power_loss() {
    let (seed, history) = run(FlushMode::Sync).await;
    let report = check(&history, LossAllowance::None, true);
    assert!(report.valid, "seed {seed}: {report:?}");
    assert!(
        report.acknowledged > MESSAGES / 3,
        "seed {seed}: only {} acknowledged",
        report.acknowledged
    );
}

/// With async flush a power loss may take the acknowledged tail written since the last
/// flush, and nothing else.
#[madsim::test]
async fn async_flush_loses_at_most_an_acknowledged_tail() {
    let (seed, history) = run(FlushMode::Async).await;
    let report = check(&history, LossAllowance::Tail, true);
    assert!(report.valid, "seed {seed}: {report:?}");
    println!(
        "seed {seed}: async flush lost an acknowledged tail of {} sends",
        report.lost_tail
    );
}

/// One run: a producer streams sends while the broker's host loses power and restarts;
/// then every queue is read back. Returns the seed and the history.
async fn run(flush_disk_type: FlushMode) -> (u64, History) {
    // Quiet unless RUST_LOG asks (e.g. RUST_LOG=debug when replaying a seed).
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("off"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).try_init();
    let handle = Handle::current();
    let seed = handle.seed();
    start_namesrv(&handle, NAMESRV.parse().unwrap());

    // The disk and metadata outlive the broker process, as a real disk does.
    let disk = SimDisk::new(SimDiskConfig {
        torn_tail_probability: 0.5,
        ..SimDiskConfig::reliable(seed)
    });
    let meta = MemMetaStore::new(seed);
    let (init_disk, init_meta) = (disk.clone(), meta.clone());
    let broker = handle
        .create_node()
        .name("broker-a")
        .ip(BROKER_IP.parse().unwrap())
        .init(move || {
            let (disk, meta) = (init_disk.clone(), init_meta.clone());
            async move {
                let config = BrokerConfig {
                    broker_ip1: BROKER_IP.into(),
                    listen_addr: "0.0.0.0".into(),
                    listen_port: 10911,
                    namesrv_addr: NAMESRV.into(),
                    flush_disk_type,
                    register_broker_interval_ms: 1_000,
                    ..BrokerConfig::default()
                };
                let _broker = raftmq::start_broker(config, disk, meta)
                    .await
                    .expect("broker starts after a crash");
                std::future::pending::<()>().await;
            }
        })
        .build();

    let history = Arc::new(Mutex::new(History::new()));
    let history_in = history.clone();
    let client = handle
        .create_node()
        .name("client")
        .ip("10.0.1.3".parse().unwrap())
        .build();
    let producing = client.spawn(async move {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let config = ClientConfig {
            request_timeout: Duration::from_secs(1),
            ..ClientConfig::with_namesrv(NAMESRV)
        };
        let producer = Producer::new("PG", config);
        for i in 0..MESSAGES {
            let body = format!("m{i}");
            history_in
                .lock()
                .unwrap()
                .send_invoke(now_ms(), "producer", &body);
            let result = producer.send(Message::new("Durable", body.clone())).await;
            {
                let mut h = history_in.lock().unwrap();
                match &result {
                    Ok(r) => h.send_ok(
                        now_ms(),
                        "producer",
                        &body,
                        queue_ref(&r.queue),
                        r.queue_offset,
                    ),
                    Err(e) => h.send_info(now_ms(), "producer", &body, &e.to_string()),
                }
            }
            if result.is_err() {
                // Unknown: it may or may not have been stored. Back off while the broker
                // is down.
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    });

    // Power loss at a time the seed picks, then a restart.
    let crash_after_ms = madsim::rand::thread_rng().gen_range(600..1_500);
    tokio::time::sleep(Duration::from_millis(crash_after_ms)).await;
    handle.kill(broker.id());
    history
        .lock()
        .unwrap()
        .fault(now_ms(), "power loss on broker-a");
    disk.crash();
    meta.crash();
    tokio::time::sleep(Duration::from_millis(300)).await;
    handle.restart(broker.id());
    producing.await.unwrap();

    let mut history = Arc::try_unwrap(history)
        .expect("producer finished")
        .into_inner()
        .unwrap();
    let reader_ip = "10.0.1.4".parse().unwrap();
    let wait = Duration::from_secs(2);
    read_back(
        &handle,
        reader_ip,
        NAMESRV,
        "Durable",
        wait,
        "broker-a",
        &mut history,
    )
    .await;
    (seed, history)
}
