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
    #[arg(long, short = 'l', default_value = "0.0.0.0:9876")]
    listen: SocketAddr,
}

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    raftmq::cli::init_logging();
    let args = Args::parse();
    let (addr, _tasks) = namesrv::start(args.listen).await?;
    println!("raftmq-namesrv listening on {addr}");
    tokio::signal::ctrl_c().await?;
    Ok(())
}
