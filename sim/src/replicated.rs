//! A Raft-replicated broker group on simulated hosts: the real name server, broker
//! replicas (openraft over the CommitLog, replica ports over simulated TCP) and client,
//! `SimDisk` disks that lose unsynced bytes and tear tails on a power loss. Scenarios
//! return the run's `History` for `checker`; the tests (and, later, the seed runner)
//! judge it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use client::{ClientConfig, Message, Producer};
use history::history::History;
use history::mode::Mode;
use madsim::rand::Rng;
use madsim::runtime::Handle;
use raftmq::{BrokerConfig, RunningBroker};
use store::meta::MemMetaStore;
use store::{SimDisk, SimDiskConfig};

use crate::nodes::{now_ms, queue_ref, read_back, start_namesrv};
pub use crate::plant::Plant;

const NAMESRV: &str = "10.0.2.100:9876";
/// Sends per run.
pub const MESSAGES: usize = 200;

type Running = RunningBroker<SimDisk, MemMetaStore>;
type Slot = Arc<Mutex<Option<Running>>>;

fn replica_ip(id: u64) -> String {
    format!("10.0.2.{id}")
}

fn config(id: u64, mode: Mode) -> BrokerConfig {
    crate::cluster::replica_config(
        BrokerConfig::default().broker_name,
        3,
        |i| replica_ip(i).parse().expect("a replica address"),
        id,
        NAMESRV.into(),
        mode,
    )
}

/// The replica that is master now, if any.
fn master(slots: &[Slot]) -> Option<usize> {
    slots.iter().position(|slot| {
        slot.lock()
            .unwrap()
            .as_ref()
            .and_then(|b| b.broker.replica())
            .is_some_and(|r| r.is_master())
    })
}

/// What happens to the master, twice, in [`master_faults`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MasterFault {
    /// Its host loses power (unsynced bytes gone) and restarts after 0.2–1 s.
    PowerLoss,
    /// Its process stops (SIGSTOP) for 2–3 s, longer than a send's timeout, then goes on.
    Pause,
}

/// [`master_faults`] with power losses.
pub async fn master_power_loss(mode: Mode, plant: Plant) -> (u64, History) {
    master_faults(mode, plant, MasterFault::PowerLoss).await
}

/// One run: a producer streams `MESSAGES` sends while whichever replica is master meets
/// `fault` twice; afterwards the replicas must hold byte-identical logs, and every queue
/// is read back into the history. `plant` switches a planted bug on in every replica
/// (`fault-injection` builds only).
pub async fn master_faults(mode: Mode, plant: Plant, fault: MasterFault) -> (u64, History) {
    // Quiet unless RUST_LOG asks (e.g. RUST_LOG=raftmq=info when replaying a seed).
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("off"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).try_init();
    let handle = Handle::current();
    let seed = handle.seed();
    start_namesrv(&handle, NAMESRV.parse().unwrap());

    // Each replica's disk and metadata outlive its process, as real ones do.
    let mut nodes = Vec::new();
    let mut disks = Vec::new();
    let mut slots: Vec<Slot> = Vec::new();
    for id in 1..=3u64 {
        let disk = SimDisk::new(SimDiskConfig {
            torn_tail_probability: 0.5,
            ..SimDiskConfig::reliable(seed.wrapping_add(id))
        });
        let meta = MemMetaStore::new(seed.wrapping_add(id));
        let slot: Slot = Arc::default();
        let (init_disk, init_meta, init_slot) = (disk.clone(), meta.clone(), slot.clone());
        let node = handle
            .create_node()
            .name(format!("replica-{id}"))
            .ip(replica_ip(id).parse().unwrap())
            .init(move || {
                let (disk, meta, slot) = (init_disk.clone(), init_meta.clone(), init_slot.clone());
                async move {
                    let config = config(id, mode);
                    let broker = raftmq::start_broker(config, disk, meta)
                        .await
                        .expect("a replica starts after a crash");
                    plant.apply_to_broker(&broker);
                    *slot.lock().unwrap() = Some(broker);
                    std::future::pending::<()>().await;
                }
            })
            .build();
        nodes.push(node);
        disks.push((disk, meta));
        slots.push(slot);
    }

    let history = Arc::new(Mutex::new(History::new()));
    let history_in = history.clone();
    let producing = handle
        .create_node()
        .name("producer")
        .ip("10.0.2.101".parse().unwrap())
        .build()
        .spawn(async move {
            tokio::time::sleep(Duration::from_millis(1_500)).await;
            let config = ClientConfig {
                request_timeout: Duration::from_secs(2),
                ..ClientConfig::with_namesrv(NAMESRV)
            };
            let producer = Producer::new("PG", config);
            for i in 0..MESSAGES {
                let body = format!("m{i}");
                history_in
                    .lock()
                    .unwrap()
                    .send_invoke(now_ms(), "producer", &body);
                let result = producer
                    .send(Message::new("Replicated", body.clone()))
                    .await;
                let acked = matches!(&result, Ok(r) if r.status == client::SendStatus::Ok);
                {
                    let mut h = history_in.lock().unwrap();
                    match &result {
                        Ok(r) if acked => h.send_ok(
                            now_ms(),
                            "producer",
                            &body,
                            queue_ref(&r.queue),
                            r.queue_offset,
                        ),
                        Ok(r) => {
                            h.send_info(now_ms(), "producer", &body, &format!("{:?}", r.status))
                        }
                        Err(e) => h.send_info(now_ms(), "producer", &body, &e.to_string()),
                    }
                }
                if !acked {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        });

    // Two faults of whichever replica is master then, at times the seed picks.
    let mut rng = madsim::rand::thread_rng();
    for round in 0..2 {
        let wait_ms = rng.gen_range(1_000..2_500);
        tokio::time::sleep(Duration::from_millis(wait_ms)).await;
        let Some(victim) = master(&slots) else {
            continue;
        };
        let node = nodes[victim].id();
        match fault {
            MasterFault::PowerLoss => {
                handle.kill(node);
                slots[victim].lock().unwrap().take();
                history.lock().unwrap().fault(
                    now_ms(),
                    &format!(
                        "power loss on replica-{} (master), round {round}",
                        victim + 1
                    ),
                );
                disks[victim].0.crash();
                disks[victim].1.crash();
                tokio::time::sleep(Duration::from_millis(rng.gen_range(200..1_000))).await;
                handle.restart(node);
            }
            MasterFault::Pause => {
                handle.pause(node);
                history.lock().unwrap().fault(
                    now_ms(),
                    &format!("pause replica-{} (master), round {round}", victim + 1),
                );
                tokio::time::sleep(Duration::from_millis(rng.gen_range(2_000..3_000))).await;
                handle.resume(node);
            }
        }
    }
    producing.await.unwrap();

    // Everyone converges: the same entries, byte for byte, on every replica.
    assert_converged(seed, &slots).await;

    let mut history = Arc::try_unwrap(history)
        .expect("producer finished")
        .into_inner()
        .unwrap();
    let reader_ip = "10.0.2.102".parse().unwrap();
    read_back(
        &handle,
        reader_ip,
        NAMESRV,
        "Replicated",
        Duration::ZERO,
        "reader",
        &mut history,
    )
    .await;
    (seed, history)
}

/// Waits until every replica has the same last entry, then compares their logs.
async fn assert_converged(seed: u64, slots: &[Slot]) {
    for _ in 0..200 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let stores: Vec<_> = slots
            .iter()
            .filter_map(|s| s.lock().unwrap().as_ref().map(|b| b.broker.clone()))
            .collect();
        if stores.len() < 3 {
            continue;
        }
        let mut last = Vec::new();
        for b in &stores {
            last.push(b.store().last_log_id().await);
        }
        if last.iter().any(|l| *l != last[0]) {
            continue;
        }
        let first = stores[0]
            .store()
            .read_log(1, last[0].index + 1, usize::MAX)
            .await
            .unwrap();
        for (i, b) in stores.iter().enumerate().skip(1) {
            let other = b
                .store()
                .read_log(1, last[0].index + 1, usize::MAX)
                .await
                .unwrap();
            assert!(
                other == first,
                "seed {seed}: replica {} diverged from replica 1",
                i + 1
            );
        }
        return;
    }
    panic!("seed {seed}: the replicas did not converge within 10 s");
}
