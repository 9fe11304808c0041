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
}

pub async fn run(args: DevArgs) -> anyhow::Result<()> {
    let cluster =
        crate::dev::start(args.data_dir.clone(), args.namesrv_port, args.broker_port).await?;
    let namesrv = cluster.namesrv_addr.to_string();
    println!("raftmq dev is up");
    println!("  name server  {namesrv}");
    println!(
        "  broker       broker-a at {} (cluster DefaultCluster, async flush)",
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
    let body = format!("hello from raftmq dev at {}", crate::now_ms());
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
