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
    /// Also serve RocketMQ's name-server address lookup at
    /// http://ADDR/rocketmq/nsaddr (clients given a name server domain ask port 8080).
    #[arg(long, env = "RAFTMQ_NSADDR_LISTEN")]
    nsaddr_listen: Option<SocketAddr>,
    /// The name servers that lookup answers, `;`-separated (default: this one's
    /// --listen address, which must then name an IP other than 0.0.0.0).
    #[arg(long, env = "RAFTMQ_NSADDR")]
    nsaddr: Option<String>,
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
        let (local, _task) =
            raftmq::http::serve("metrics", listen, raftmq::http::metrics(render)).await?;
        println!("metrics at http://{local}/metrics");
    }
    if let Some(listen) = args.nsaddr_listen {
        let addrs = match args.nsaddr {
            Some(addrs) => addrs,
            None if !addr.ip().is_unspecified() => addr.to_string(),
            None => anyhow::bail!(
                "--nsaddr-listen: the name server listens on {addr}, which clients cannot \
                 dial: pass --nsaddr with the addresses to answer"
            ),
        };
        let router = raftmq::http::nsaddr(addrs);
        let (local, _task) =
            raftmq::http::serve("name-server address server", listen, router).await?;
        println!("name-server address lookup at http://{local}/rocketmq/nsaddr");
    }
    raftmq::cli::stop_signal().await?;
    Ok(())
}
