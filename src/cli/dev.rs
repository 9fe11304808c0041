//! `raftmq dev`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use client::{ClientConfig, Message, Producer, PullConsumer, PullStatus};

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
}

pub fn parse_flush(s: &str) -> Result<store::FlushMode, String> {
    match s.to_ascii_lowercase().as_str() {
        "sync" | "sync_flush" => Ok(store::FlushMode::Sync),
        "async" | "async_flush" => Ok(store::FlushMode::Async),
        other => Err(format!("flush mode must be sync or async, not {other:?}")),
    }
}

pub async fn run(args: DevArgs) -> anyhow::Result<()> {
    let dir = args.data_dir.clone();
    let cluster = crate::dev::start(dir, args.namesrv_port, args.broker_port, args.flush).await?;
    let namesrv = cluster.namesrv_addr.to_string();
    let flush = match args.flush {
        store::FlushMode::Sync => "sync",
        store::FlushMode::Async => "async",
    };
    println!("raftmq dev is up");
    println!("  name server  {namesrv}");
    println!(
        "  broker       broker-a at {} (cluster DefaultCluster, {flush} flush)",
        cluster.broker.broker.addr()
    );
    println!("  data         {}", args.data_dir.display());
    round_trip(&namesrv).await?;
    println!();
    println!("Try it from another shell:");
    println!("  export NAMESRV_ADDR={namesrv}");
    println!("  cargo run --release --bin raftmq -- send -t TopicTest -b 'hello' --tags TagA");
    println!("  cargo run --release --bin raftmq -- consume -t TopicTest -g demo-group");
    println!("  cargo run --release --bin raftmq -- topic route -t TopicTest");
    println!("RocketMQ clients connect the same way: name server {namesrv}.");
    if args.check_only {
        return cluster.shutdown().await;
    }
    println!("Ctrl-C stops it.");
    tokio::signal::ctrl_c().await?;
    println!("stopping");
    cluster.shutdown().await
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
    let sent = producer
        .send(Message::new("DevSelfCheck", body.clone()).with_tags("check"))
        .await?;
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
