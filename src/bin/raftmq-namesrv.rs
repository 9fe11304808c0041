//! `raftmq-namesrv`: a name server (RocketMQ `mqnamesrv`).

use std::net::SocketAddr;

use clap::Parser;

#[derive(Parser, Debug)]
#[command(
    name = "raftmq-namesrv",
    version,
    about = "raftmq name server: routes topics to broker groups"
)]
struct Args {
    /// Address to listen on (RocketMQ's default port is 9876).
    #[arg(
        long,
        short = 'l',
        env = "RAFTMQ_NAMESRV_LISTEN",
        default_value = "0.0.0.0:9876"
    )]
    listen: SocketAddr,
    /// Serve Prometheus metrics at http://ADDR/metrics (off unless given).
    #[arg(long, env = "RAFTMQ_METRICS_LISTEN")]
    metrics_listen: Option<SocketAddr>,
}

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    raftmq::cli::init_logging();
    let args = Args::parse();
    let (addr, server, _tasks) = namesrv::start_server(args.listen).await?;
    println!("raftmq-namesrv listening on {addr}");
    if let Some(listen) = args.metrics_listen {
        let node_id = addr.to_string();
        let render = std::sync::Arc::new(move || {
            let mut out = raftmq::metrics::exposition::Exposition::default();
            raftmq::metrics::collect_namesrv(&server, &node_id, &mut out);
            out.render()
        });
        let (local, _task) = raftmq::metrics::http::serve(listen, render).await?;
        println!("metrics at http://{local}/metrics");
    }
    raftmq::cli::stop_signal().await?;
    Ok(())
}
