//! A broker that loses power mid-stream: with `flush_disk_type = sync`, every send the
//! broker acknowledged is readable after it restarts, and nothing appears that was never
//! sent. Real name server, broker and client code on simulated hosts; the broker's disk
//! is a `SimDisk` that loses unsynced bytes (and may tear the tail) on the crash.
//!
//! `RUSTFLAGS="--cfg madsim" CARGO_TARGET_DIR=target/sim cargo test -p sim --test crash`
//! (`MADSIM_TEST_NUM=200` for more seeds; a failure prints `MADSIM_TEST_SEED` to replay).
#![cfg(madsim)]

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use client::{ClientConfig, Message, Producer, PullConsumer, PullStatus};
use madsim::rand::Rng;
use madsim::runtime::Handle;
use raftmq::BrokerConfig;
use store::meta::MemMetaStore;
use store::{FlushMode, SimDisk, SimDiskConfig};

const NAMESRV: &str = "10.0.1.1:9876";
const BROKER_IP: &str = "10.0.1.2";
const MESSAGES: usize = 300;

/// What one run saw: sends in order (with whether each was acknowledged) and the bodies
/// read back after the restart.
struct Outcome {
    seed: u64,
    sends: Vec<(String, bool)>,
    read: BTreeSet<String>,
}

impl Outcome {
    /// Acknowledged sends that were not read back, as positions in send order.
    fn lost(&self) -> Vec<usize> {
        (0..self.sends.len())
            .filter(|&i| self.sends[i].1 && !self.read.contains(&self.sends[i].0))
            .collect()
    }

    fn unexpected(&self) -> Vec<&String> {
        let attempted: BTreeSet<&String> = self.sends.iter().map(|(b, _)| b).collect();
        self.read
            .iter()
            .filter(|b| !attempted.contains(b))
            .collect()
    }
}

#[madsim::test]
async fn sync_flush_loses_no_acknowledged_send_on_power_loss() {
    let o = run(FlushMode::Sync).await;
    assert!(
        o.unexpected().is_empty(),
        "seed {}: read but never sent: {:?}",
        o.seed,
        o.unexpected()
    );
    assert!(
        o.lost().is_empty(),
        "seed {}: acknowledged but lost (send positions): {:?}",
        o.seed,
        o.lost()
    );
    let acked = o.sends.iter().filter(|(_, a)| *a).count();
    assert!(
        acked > MESSAGES / 3,
        "seed {}: only {acked} of {MESSAGES} acknowledged",
        o.seed
    );
}

/// With async flush a power loss may take the acknowledged tail written since the last
/// flush, and nothing else: the lost sends are one contiguous run.
#[madsim::test]
async fn async_flush_loses_at_most_an_acknowledged_tail() {
    let o = run(FlushMode::Async).await;
    assert!(
        o.unexpected().is_empty(),
        "seed {}: read but never sent: {:?}",
        o.seed,
        o.unexpected()
    );
    let lost = o.lost();
    if let (Some(first), Some(last)) = (lost.first(), lost.last()) {
        let acked_between = (*first..=*last).filter(|&i| o.sends[i].1).count();
        assert_eq!(
            acked_between,
            lost.len(),
            "seed {}: lost sends are not one run: {lost:?}",
            o.seed
        );
    }
    println!(
        "seed {}: async flush lost an acknowledged tail of {} sends",
        o.seed,
        lost.len()
    );
}

async fn run(flush_disk_type: FlushMode) -> Outcome {
    let handle = Handle::current();
    let seed = handle.seed();
    let _namesrv = handle
        .create_node()
        .name("namesrv")
        .ip("10.0.1.1".parse().unwrap())
        .build()
        .spawn(async move {
            let (_addr, tasks) = namesrv::start(NAMESRV.parse::<SocketAddr>().unwrap())
                .await
                .unwrap();
            for t in tasks {
                let _ = t.await;
            }
        });

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

    let sends = Arc::new(Mutex::new(Vec::new()));
    let sends_in = sends.clone();
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
            let acked = producer
                .send(Message::new("Durable", body.clone()))
                .await
                .is_ok();
            sends_in.lock().unwrap().push((body, acked));
            if !acked {
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
    disk.crash();
    meta.crash();
    tokio::time::sleep(Duration::from_millis(300)).await;
    handle.restart(broker.id());
    producing.await.unwrap();

    let reader = handle
        .create_node()
        .name("reader")
        .ip("10.0.1.4".parse().unwrap())
        .build();
    let read = reader
        .spawn(async move {
            tokio::time::sleep(Duration::from_secs(2)).await;
            let consumer = PullConsumer::new("Reader", ClientConfig::with_namesrv(NAMESRV));
            let mut bodies = BTreeSet::new();
            for q in consumer.fetch_queues("Durable").await.unwrap() {
                let mut offset = 0;
                loop {
                    let r = consumer.pull(&q, "*", offset, 64).await.unwrap();
                    if r.status != PullStatus::Found {
                        break;
                    }
                    bodies.extend(
                        r.messages
                            .iter()
                            .map(|m| String::from_utf8(m.body.to_vec()).unwrap()),
                    );
                    offset = r.next_begin_offset;
                }
            }
            bodies
        })
        .await
        .unwrap();

    let sends = sends.lock().unwrap().clone();
    Outcome { seed, sends, read }
}
