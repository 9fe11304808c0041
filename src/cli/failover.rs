//! `raftmq bench failover`: how long a replicated group is unwritable when its master
//! dies. It starts a name server and a 3-replica group in this process (real files and
//! sockets, default timeouts), keeps one producer sending, then `kills` times: kills the
//! master (no shutdown, no unregistration), measures until the first acknowledged send,
//! restarts the dead replica on its disk and waits for it to catch up.

use std::time::{Duration, Instant};

use client::{ClientConfig, Message, Producer, SendStatus};
use hdrhistogram::Histogram;
use store::meta::SledMetaStore;
use store::{FlushMode, StdDisk};

use crate::broker::RunningBroker;
use crate::cli::dev::{parse_ack, parse_flush};
use crate::config::{AckMode, Election};
use crate::dev::{group_configs, start_broker_on_disk, DevOptions};

#[derive(clap::Args, Debug, Clone)]
pub struct FailoverArgs {
    /// Master kills to measure.
    #[arg(long, default_value_t = 20)]
    pub kills: u32,
    #[arg(long, default_value = "sync", value_parser = parse_flush)]
    pub flush: FlushMode,
    #[arg(long, default_value = "quorum", value_parser = parse_ack)]
    pub ack: AckMode,
    /// Where the replicas keep their data (a temporary directory by default).
    #[arg(long)]
    pub data_dir: Option<std::path::PathBuf>,
}

type Running = RunningBroker<StdDisk, SledMetaStore>;

fn master(brokers: &[Option<Running>]) -> Option<usize> {
    brokers.iter().position(|b| {
        b.as_ref()
            .and_then(|b| b.broker.replica())
            .is_some_and(|r| r.is_master())
    })
}

/// Sends until one send is acknowledged; returns when it was.
async fn first_ack(producer: &Producer, n: u64) -> anyhow::Result<Instant> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let message = Message::new("FailoverBench", format!("probe-{n}"));
        match producer.send(message).await {
            Ok(r) if r.status == SendStatus::Ok => return Ok(Instant::now()),
            _ if Instant::now() > deadline => anyhow::bail!("no acknowledgement within 30 s"),
            _ => tokio::time::sleep(Duration::from_millis(5)).await,
        }
    }
}

pub async fn run(args: FailoverArgs) -> anyhow::Result<()> {
    let temp = tempfile::tempdir()?;
    let data_dir = args
        .data_dir
        .clone()
        .unwrap_or_else(|| temp.path().to_path_buf());
    let (namesrv, namesrv_tasks) = namesrv::start("127.0.0.1:0".parse()?).await?;
    let options = DevOptions {
        data_dir,
        namesrv_port: 0,
        broker_port: 0,
        flush_disk_type: args.flush,
        replicas: 3,
        election: Election::Raft,
        ack: args.ack,
    };
    let configs = group_configs(&options, namesrv)?;
    let mut brokers = Vec::new();
    for config in &configs {
        brokers.push(Some(start_broker_on_disk(config.clone()).await?));
    }
    let client = ClientConfig {
        request_timeout: Duration::from_secs(3),
        ..ClientConfig::with_namesrv(&namesrv.to_string())
    };
    let producer = Producer::new("failover-bench", client);
    first_ack(&producer, 0).await?;
    let mut histogram = Histogram::<u64>::new(3)?;
    for kill in 1..=args.kills {
        let Some(old) = master(&brokers) else {
            anyhow::bail!("no master before kill {kill}");
        };
        let killed_at = Instant::now();
        brokers[old].take().expect("the master runs").abort();
        let acked_at = first_ack(&producer, u64::from(kill)).await?;
        let took = acked_at - killed_at;
        histogram.record(took.as_micros() as u64)?;
        println!(
            "kill {kill:>2}: replica {} killed, first acknowledged send after {:>4} ms",
            old + 1,
            took.as_millis()
        );
        // Let the dead replica's files close, then bring it back and let it catch up.
        tokio::time::sleep(Duration::from_millis(300)).await;
        brokers[old] = Some(start_broker_on_disk(configs[old].clone()).await?);
        wait_caught_up(&brokers).await?;
    }
    let ms = |q: f64| histogram.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "failover over {} kills (3 replicas, election raft, ack {}, {} flush): \
         p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        args.kills,
        args.ack,
        args.flush,
        ms(0.5),
        ms(0.99),
        histogram.max() as f64 / 1000.0
    );
    for broker in brokers.into_iter().flatten() {
        broker.shutdown().await?;
    }
    for task in namesrv_tasks {
        task.abort();
    }
    Ok(())
}

/// Waits until the master reports every other replica fully caught up.
async fn wait_caught_up(brokers: &[Option<Running>]) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(i) = master(brokers) {
            let replica = brokers[i].as_ref().and_then(|b| b.broker.replica());
            let lag = replica.map(|r| r.replica_lag()).unwrap_or_default();
            if lag.len() == 2 && lag.values().all(|l| *l == 0) {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            anyhow::bail!("the restarted replica did not catch up within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
