//! `raftmq dev`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use client::{ClientConfig, Message, Producer, PullConsumer, PullStatus};

use crate::config::{AckMode, Election};
use crate::dev::{DevCluster, DevOptions};

#[derive(clap::Args, Debug)]
pub struct DevArgs {
    /// Data directory.
    #[arg(long, default_value = "raftmq-data")]
    data_dir: PathBuf,
    #[arg(long, default_value_t = 9876)]
    namesrv_port: u16,
    #[arg(long, default_value_t = 10911)]
    broker_port: u16,
    /// Check the round trip, then exit instead of serving.
    #[arg(long)]
    check_only: bool,
    /// `async` (acknowledge from the page cache) or `sync` (after a group-committed fsync).
    #[arg(long, default_value = "async", value_parser = parse_flush)]
    flush: store::FlushMode,
    /// Replicas of the broker group: 1 is a single broker; 3 is a Raft-replicated group
    /// (client ports 10911, 10921, 10931; replica ports one above each).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=9))]
    replicas: u16,
    /// With replicas: `quorum` (ack once a majority holds a message) or `leader` (once
    /// the master does).
    #[arg(long, default_value = "quorum", value_parser = parse_ack)]
    ack: AckMode,
    /// With replicas: `raft` (any replica can become master) or `fixed` (replica 1 is
    /// always master, classic master/slave).
    #[arg(long, default_value = "raft", value_parser = parse_election)]
    election: Election,
    /// Serve Prometheus metrics of the name server and every broker at
    /// http://ADDR/metrics (off unless given; e.g. 127.0.0.1:5557).
    #[arg(long)]
    metrics_listen: Option<std::net::SocketAddr>,
    /// Serve the name server's address at http://ADDR/rocketmq/nsaddr, where RocketMQ
    /// clients given a name server domain look (they use port 8080 unless told).
    #[arg(long)]
    nsaddr_listen: Option<std::net::SocketAddr>,
}

pub fn parse_ack(s: &str) -> Result<AckMode, String> {
    match s.to_ascii_lowercase().as_str() {
        "quorum" => Ok(AckMode::Quorum),
        "leader" => Ok(AckMode::Leader),
        other => Err(format!("ack mode must be quorum or leader, not {other:?}")),
    }
}

pub fn parse_election(s: &str) -> Result<Election, String> {
    match s.to_ascii_lowercase().as_str() {
        "raft" => Ok(Election::Raft),
        "fixed" => Ok(Election::Fixed),
        other => Err(format!("election must be raft or fixed, not {other:?}")),
    }
}

pub fn parse_flush(s: &str) -> Result<store::FlushMode, String> {
    match s.to_ascii_lowercase().as_str() {
        "sync" | "sync_flush" => Ok(store::FlushMode::Sync),
        "async" | "async_flush" => Ok(store::FlushMode::Async),
        other => Err(format!("flush mode must be sync or async, not {other:?}")),
    }
}

pub async fn run(args: DevArgs) -> anyhow::Result<()> {
    let options = DevOptions {
        data_dir: args.data_dir.clone(),
        namesrv_port: args.namesrv_port,
        broker_port: args.broker_port,
        flush_disk_type: args.flush,
        replicas: args.replicas,
        election: args.election,
        ack: args.ack,
    };
    let cluster = crate::dev::start(options).await?;
    let namesrv = cluster.namesrv_addr.to_string();
    let flush = args.flush;
    println!("raftmq dev is up");
    println!("  name server  {namesrv}");
    if let [single] = cluster.brokers.as_slice() {
        println!(
            "  broker       broker-a at {} (cluster DefaultCluster, {flush} flush)",
            single.broker.addr()
        );
    } else {
        println!(
            "  broker group broker-a: {} replicas, election {}, ack {}, {flush} flush",
            cluster.brokers.len(),
            args.election,
            args.ack
        );
        wait_for_master(&cluster).await?;
        for running in &cluster.brokers {
            let replica = running.broker.replica().expect("a replicated group");
            let role = if replica.is_master() {
                "master"
            } else {
                "slave"
            };
            println!(
                "    replica {} at {} ({role})",
                replica.id,
                running.broker.addr()
            );
        }
    }
    println!("  data         {}", args.data_dir.display());
    if let Some(listen) = args.metrics_listen {
        let router = crate::http::metrics(cluster.metrics_renderer());
        let (local, _task) = crate::http::serve("metrics", listen, router).await?;
        println!("  metrics      http://{local}/metrics");
    }
    if let Some(listen) = args.nsaddr_listen {
        let router = crate::http::nsaddr(namesrv.clone());
        let (local, _task) =
            crate::http::serve("name-server address server", listen, router).await?;
        println!("  nsaddr       http://{local}/rocketmq/nsaddr");
    }
    round_trip(&namesrv).await?;
    if args.check_only {
        return cluster.shutdown().await;
    }
    println!();
    println!("Try it from another shell:");
    println!("  export NAMESRV_ADDR={namesrv}");
    println!("  cargo run --release --bin raftmq -- send -t TopicTest -b 'hello' --tags TagA");
    println!("  cargo run --release --bin raftmq -- consume -t TopicTest -g demo-group");
    println!("  cargo run --release --bin raftmq -- topic route -t TopicTest");
    println!("RocketMQ clients connect the same way: name server {namesrv}.");
    println!("Ctrl-C stops it.");
    crate::cli::stop_signal().await?;
    println!("stopping");
    cluster.shutdown().await
}

/// Waits until the group has elected a master (and it has registered).
async fn wait_for_master(cluster: &DevCluster) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        let elected = cluster
            .brokers
            .iter()
            .any(|b| b.broker.replica().is_some_and(|r| r.is_master()));
        if elected {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    anyhow::bail!("no master elected within 15 s")
}

/// Sends one message and reads it back, through the name server like any client.
async fn round_trip(namesrv: &str) -> anyhow::Result<()> {
    let config = ClientConfig {
        request_timeout: Duration::from_secs(5),
        ..ClientConfig::with_namesrv(namesrv)
    };
    let started = Instant::now();
    let producer = Producer::new("dev-self-check", config.clone());
    let body = format!("hello from raftmq dev at {}", proto::clock::now_ms());
    // A new master registers as broker id 0 just after its election: retry until the
    // route names it.
    let sent = loop {
        let message = Message::new("DevSelfCheck", body.clone()).with_tags("check");
        match producer.send(message).await {
            Ok(sent) => break sent,
            Err(e) if started.elapsed() < Duration::from_secs(10) => {
                tracing::debug!(error = %e, "self-check send; retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => return Err(e.into()),
        }
    };
    let consumer = PullConsumer::new("dev-self-check", config);
    let result = consumer
        .pull(&sent.queue, "check", sent.queue_offset, 1)
        .await?;
    let got = result
        .messages
        .first()
        .filter(|_| result.status == PullStatus::Found);
    let Some(got) = got.filter(|m| m.body == body.as_bytes()) else {
        anyhow::bail!(
            "self-check failed: sent {:?} but read back {:?}",
            body,
            result.status
        );
    };
    println!(
        "self-check: sent {:?} to {}:{} offset {} and consumed it back ({} ms, msg id {})",
        body,
        got.topic,
        got.queue_id,
        got.queue_offset,
        started.elapsed().as_millis(),
        got.msg_id
    );
    Ok(())
}
