//! `raftmq`: dev cluster, admin, send, consume and bench. See `raftmq --help`.

use clap::Parser;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    raftmq::cli::init_logging();
    let cli = raftmq::cli::Cli::parse();
    raftmq::cli::runtime(cli.worker_threads.into(), cli.busy_poll_us)?
        .block_on(raftmq::cli::run(cli))
}
