//! `raftmq-broker -c broker.toml`: one broker replica (RocketMQ `mqbroker`).

use std::path::PathBuf;

use clap::Parser;
use raftmq::BrokerConfig;
use store::FlushMode;

#[derive(Parser, Debug)]
#[command(
    name = "raftmq-broker",
    version,
    about = "raftmq broker: stores and serves messages",
    long_about = "raftmq broker: stores and serves messages.\n\nReads a TOML config (RocketMQ's names in snake case: broker_cluster_name, broker_name, broker_id, broker_ip1, listen_port, namesrv_addr, store_path_root_dir, flush_disk_type, auto_create_topic_enable, ...; see examples/). Flags, or the environment variables named beside them, override the file."
)]
struct Args {
    /// Config file (TOML). Without one, defaults apply.
    #[arg(long, short = 'c', env = "RAFTMQ_CONFIG")]
    config: Option<PathBuf>,
    /// Name servers, `;`-separated (overrides namesrv_addr; also NAMESRV_ADDR).
    #[arg(long, short = 'n', env = "NAMESRV_ADDR")]
    namesrv_addr: Option<String>,
    #[arg(long, env = "RAFTMQ_BROKER_NAME")]
    broker_name: Option<String>,
    #[arg(long, env = "RAFTMQ_BROKER_ID")]
    broker_id: Option<u64>,
    #[arg(long, env = "RAFTMQ_LISTEN_PORT")]
    listen_port: Option<u16>,
    /// The IP address the broker advertises (to name servers and in msg ids).
    #[arg(long, env = "RAFTMQ_BROKER_IP1")]
    broker_ip1: Option<String>,
    #[arg(long, env = "RAFTMQ_STORE_PATH_ROOT_DIR")]
    store_path_root_dir: Option<PathBuf>,
    /// `sync` or `async`.
    #[arg(long, env = "RAFTMQ_FLUSH_DISK_TYPE", value_parser = raftmq::cli::dev::parse_flush)]
    flush_disk_type: Option<FlushMode>,
    /// Runtime worker threads (overrides worker_threads; 0: one per CPU core).
    #[arg(long)]
    worker_threads: Option<usize>,
    /// Busy-poll window in µs (overrides busy_poll_us; 0: off; needs one worker).
    #[arg(long)]
    busy_poll_us: Option<u64>,
    /// Serve Prometheus metrics on this port at /metrics (overrides metrics_port; 0: off).
    #[arg(long, env = "RAFTMQ_METRICS_PORT")]
    metrics_port: Option<u16>,
    /// Print the effective config and exit.
    #[arg(long)]
    print_config: bool,
}

fn config(args: &Args) -> anyhow::Result<BrokerConfig> {
    let mut c = match &args.config {
        Some(path) => BrokerConfig::load(path)?,
        None => BrokerConfig::default(),
    };
    if let Some(v) = &args.namesrv_addr {
        c.namesrv_addr = v.clone();
    }
    if let Some(v) = &args.broker_name {
        c.broker_name = v.clone();
    }
    if let Some(v) = args.broker_id {
        c.broker_id = v;
    }
    if let Some(v) = args.listen_port {
        c.listen_port = v;
    }
    if let Some(v) = &args.broker_ip1 {
        c.broker_ip1 = v.clone();
    }
    if let Some(v) = &args.store_path_root_dir {
        c.store_path_root_dir = v.clone();
    }
    if let Some(v) = args.flush_disk_type {
        c.flush_disk_type = v;
    }
    if let Some(v) = args.worker_threads {
        c.worker_threads = v;
    }
    if let Some(v) = args.busy_poll_us {
        c.busy_poll_us = v;
    }
    if let Some(v) = args.metrics_port {
        c.metrics_port = v;
    }
    c.validate()?;
    Ok(c)
}

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    raftmq::cli::init_logging();
    let args = Args::parse();
    let config = config(&args)?;
    if args.print_config {
        print!("{}", toml::to_string(&config)?);
        return Ok(());
    }
    raftmq::cli::runtime(config.worker_threads, config.busy_poll_us)?.block_on(serve(config))
}

async fn serve(config: BrokerConfig) -> anyhow::Result<()> {
    let broker = raftmq::dev::start_broker_on_disk(config.clone()).await?;
    // A replica's id is its Raft node id (its BrokerId follows its role); a
    // single-replica broker's is the configured broker_id.
    let id = match broker.broker.replica() {
        Some(replica) => format!("replica {}", replica.id),
        None => format!("id {}", config.broker_id),
    };
    println!(
        "raftmq-broker {} (cluster {}, {id}) serving at {}, name servers {}",
        config.broker_name,
        config.broker_cluster_name,
        broker.broker.addr(),
        config.namesrv_addr
    );
    if let Some(addr) = config.metrics_socket()? {
        let served = broker.broker.clone();
        let render = std::sync::Arc::new(move || {
            let mut out = raftmq::metrics::exposition::Exposition::default();
            served.collect_metrics(&mut out);
            out.render()
        });
        let (local, _task) =
            raftmq::http::serve("metrics", addr, raftmq::http::metrics(render)).await?;
        println!("metrics at http://{local}/metrics");
    }
    let fatal = async {
        match broker.broker.replica() {
            Some(replica) => replica.fatal().await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        signal = raftmq::cli::stop_signal() => signal?,
        error = fatal => {
            eprintln!("raftmq-broker: the replica's Raft stopped: {error}; exiting");
            broker.abort();
            std::process::exit(1);
        }
    }
    broker.shutdown().await
}
