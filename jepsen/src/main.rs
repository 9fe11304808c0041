//! `jepsen test ...`: one run against the real binaries; `jepsen check`: the checkers
//! over a stored history. Exit codes: 0 valid, 1 invalid, 2 the harness failed.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use history::history::History;
use history::mode::{parse_mode, Mode};
use jepsen::opts::TestOptions;

#[derive(Parser)]
#[command(
    name = "jepsen",
    about = "Jepsen-style fault injection against the real raftmq binaries"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a test: start a name server and a broker group, send and consume under
    /// faults, heal, drain, check. Results go to <store>/<test>/<time>/.
    Test(TestOptions),
    /// Check a stored history.jsonl again.
    Check {
        history: PathBuf,
        #[arg(long, default_value = "quorum+sync", value_parser = parse_mode)]
        mode: Mode,
        /// Turn on the FIFO checks (the ordered workload).
        #[arg(long)]
        ordered: bool,
        /// The run had the power nemesis (an async flush may then lose a tail).
        #[arg(long)]
        power: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let result = runtime.block_on(async {
        match cli.command {
            Command::Test(opts) => {
                let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
                    .parent()
                    .expect("the jepsen crate sits in the workspace");
                let outcome = jepsen::runner::run(opts, workspace).await?;
                eprintln!(
                    "jepsen: report: {}",
                    outcome.dir.join("report.html").display()
                );
                Ok::<bool, anyhow::Error>(outcome.valid)
            }
            Command::Check {
                history,
                mode,
                ordered,
                power,
            } => {
                let text = std::fs::read_to_string(&history)?;
                let h = History::from_jsonl(&text).map_err(anyhow::Error::msg)?;
                let r = history::checker::check(&h, mode.allowance(power), ordered);
                println!("{}", serde_json::to_string_pretty(&r)?);
                Ok(r.valid)
            }
        }
    });
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("jepsen: error: {e:#}");
            ExitCode::from(2)
        }
    }
}
