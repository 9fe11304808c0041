//! `raftmq`: dev cluster, admin, send, consume and bench. See `raftmq --help`.

use clap::Parser;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    raftmq::cli::init_logging();
    raftmq::cli::run(raftmq::cli::Cli::parse()).await
}
