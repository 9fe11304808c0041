//! The `raftmq` command line: `dev`, admin commands (like RocketMQ's `mqadmin`), `send`,
//! `consume`, `bench` and `dashboard`. Each subcommand lives in its own file.

mod admin;
pub mod bench;
mod consume;
pub mod dev;
mod dlq;
mod failover;
mod send;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "raftmq",
    version,
    about = "raftmq: a RocketMQ-style broker with Raft-replicated broker groups"
)]
pub struct Cli {
    /// Name servers, `;`-separated (also read from NAMESRV_ADDR).
    #[arg(
        long,
        short = 'n',
        global = true,
        env = "NAMESRV_ADDR",
        default_value = "127.0.0.1:9876"
    )]
    pub namesrv: String,
    /// Runtime worker threads for this process (0: one per CPU core). `raftmq bench`
    /// beside a broker on a small machine measures more with 1 (docs/benchmarks.md).
    #[arg(
        long,
        global = true,
        env = "RAFTMQ_WORKER_THREADS",
        default_value_t = 0,
        value_parser = clap::value_parser!(u16).range(0..=1024)
    )]
    pub worker_threads: u16,
    /// Keep polling for I/O this many µs after each frame instead of parking the
    /// thread (0: off). Needs one worker thread (0 workers then means 1). Cuts the
    /// round trip of one-in-flight traffic on a VM at the cost of CPU spent spinning
    /// in the gaps; see docs/benchmarks.md.
    #[arg(
        long,
        global = true,
        env = "RAFTMQ_BUSY_POLL_US",
        default_value_t = 0,
        value_parser = clap::value_parser!(u64).range(0..=crate::config::BUSY_POLL_US_MAX)
    )]
    pub busy_poll_us: u64,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run a name server and a broker group (one broker, or `--replicas 3`) in this
    /// process (RocketMQ's default ports 9876 and 10911, data in ./raftmq-data), check a
    /// produce/consume round trip, and serve until Ctrl-C.
    Dev(dev::DevArgs),
    /// Create, list or show the route of topics.
    #[command(subcommand)]
    Topic(admin::TopicCommand),
    /// Send messages.
    Send(send::SendArgs),
    /// Consume messages with a push consumer and print them.
    Consume(consume::ConsumeArgs),
    /// List the brokers of each cluster.
    #[command(subcommand)]
    Cluster(admin::ClusterCommand),
    /// Consumer groups (lag, create, list, delete) and a broker group's replicas
    /// (replicas, add-replica, remove-replica).
    #[command(subcommand)]
    Group(admin::GroupCommand),
    /// Find messages by key or by message id.
    #[command(subcommand)]
    Query(admin::QueryCommand),
    /// A consumer group's dead letters (`%DLQ%group`): list them, or send them again.
    #[command(subcommand)]
    Dlq(dlq::DlqCommand),
    /// Measure produce or consume throughput and latency.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// Serve a web dashboard of the cluster the name servers route to: cluster, topics,
    /// consumer groups, messages, dead letters and charts.
    Dashboard(DashboardArgs),
}

#[derive(clap::Args, Debug)]
pub struct DashboardArgs {
    /// Where to serve it (rocketmq-dashboard's port is 8082).
    #[arg(long, default_value = "127.0.0.1:8082")]
    listen: std::net::SocketAddr,
    /// How often the charts sample the cluster, in ms.
    #[arg(long, default_value_t = 5_000)]
    sample_interval_ms: u64,
}

async fn dashboard(args: DashboardArgs, config: client::ClientConfig) -> anyhow::Result<()> {
    let interval = std::time::Duration::from_millis(args.sample_interval_ms.max(100));
    let (local, _tasks) = crate::dashboard::serve(config, args.listen, interval).await?;
    println!("raftmq dashboard at http://{local}/ (Ctrl-C stops it)");
    stop_signal().await?;
    Ok(())
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let config = client::ClientConfig::with_namesrv(&cli.namesrv);
    match cli.command {
        Command::Dev(args) => dev::run(args).await,
        Command::Topic(cmd) => admin::topic(cmd, config).await,
        Command::Send(args) => send::run(args, config).await,
        Command::Consume(args) => consume::run(args, config).await,
        Command::Cluster(cmd) => admin::cluster(cmd, config).await,
        Command::Group(cmd) => admin::group(cmd, config).await,
        Command::Query(cmd) => admin::query(cmd, config).await,
        Command::Dlq(cmd) => dlq::run(cmd, config).await,
        Command::Bench(cmd) => bench::run(cmd, config).await,
        Command::Dashboard(args) => dashboard(args, config).await,
    }
}

/// A multi-threaded runtime with `worker_threads` workers (0: one per CPU core) and,
/// when `busy_poll_us` > 0, a busy-poll spinner on its single worker.
/// The binaries build their runtime here instead of `#[tokio::main]` so the count can
/// come from a flag or the broker's config. Not in the simulated build, where madsim
/// runs everything on its own single-threaded executor.
#[cfg(not(madsim))]
pub fn runtime(
    worker_threads: usize,
    busy_poll_us: u64,
) -> anyhow::Result<tokio::runtime::Runtime> {
    let workers = crate::config::effective_workers(worker_threads, busy_poll_us)?;
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    if workers > 0 {
        builder.worker_threads(workers);
    }
    let runtime = builder.build()?;
    if busy_poll_us > 0 {
        let _entered = runtime.enter();
        proto::net::busy_poll::spawn(std::time::Duration::from_micros(busy_poll_us));
    }
    Ok(runtime)
}

/// Waits for SIGINT (Ctrl-C) or SIGTERM: `docker stop` and `podman stop` send SIGTERM,
/// which a process that is PID 1 in its container would otherwise ignore until killed.
pub async fn stop_signal() -> std::io::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut terminate = signal(SignalKind::terminate())?;
    tokio::select! {
        signal = tokio::signal::ctrl_c() => signal,
        _ = terminate.recv() => Ok(()),
    }
}

/// Logs to stderr, filtered by RUST_LOG (default: info for raftmq's crates), with colours
/// only when stderr is a terminal: a log redirected to a file gets plain text.
pub fn init_logging() {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("warn,raftmq=info,namesrv=info,store=info")
    });
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .try_init();
}
