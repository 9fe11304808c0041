//! The seed runner, in the simulated build:
//!
//! ```sh
//! export RUSTFLAGS="--cfg madsim" CARGO_TARGET_DIR=target/sim
//! cargo run -p sim -- run --seeds 0..200 --mode quorum+sync
//! cargo run -p sim -- replay --seed 17 --mode quorum+sync --history out.jsonl
//! ```
//!
//! `run` plays the master-power-loss scenario (`sim::replicated`) on every seed of the
//! range, judges each history with `sim::checker`, prints one line per failing seed
//! with the command that replays it, and a summary (with the lost-tail figures of the
//! modes that allow one, and seeds per minute). `replay` plays one seed and writes its
//! history as JSONL. Each seed of `run` is played by a fresh `sim replay` process
//! (`--jobs` at a time): nothing survives from one seed to the next, so the verdict is
//! exactly what the printed replay command reproduces.

#[cfg(madsim)]
fn main() {
    runner::main()
}

#[cfg(not(madsim))]
fn main() {
    eprintln!(
        "sim runs in the simulated build: RUSTFLAGS=\"--cfg madsim\" \
         CARGO_TARGET_DIR=target/sim cargo run -p sim -- run --seeds 0..100"
    );
    std::process::exit(2);
}

#[cfg(madsim)]
mod runner {
    use std::ops::Range;
    use std::time::Instant;

    use sim::checker::{check, Report};
    use sim::history::History;
    use sim::mode::{parse_mode, Mode};
    use sim::replicated::{master_power_loss, Plant};

    const USAGE: &str = "usage:\n  sim run --seeds A..B [--mode quorum+sync|leader+sync|quorum+async|leader+async] [--jobs 2]\n  sim replay --seed N [--mode ...] [--history out.jsonl]";
    /// How `replay` hands its verdict to `run`.
    const REPORT_PREFIX: &str = "REPORT ";

    // The scenario is a master power loss, so an async flush may lose a tail too.
    const POWER_LOSS: bool = true;

    struct Args {
        command: String,
        seeds: Range<u64>,
        mode: Mode,
        history: Option<String>,
        jobs: usize,
    }

    fn parse_args() -> Result<Args, String> {
        let mut argv = std::env::args().skip(1);
        let command = argv.next().ok_or("missing command")?;
        let mut args = Args {
            command,
            seeds: 0..100,
            mode: parse_mode("quorum+sync")?,
            history: None,
            jobs: 2,
        };
        while let Some(flag) = argv.next() {
            let mut value = || argv.next().ok_or(format!("{flag} needs a value"));
            match flag.as_str() {
                "--seeds" => {
                    let v = value()?;
                    let (a, b) = v
                        .split_once("..")
                        .ok_or(format!("--seeds {v:?}: expected A..B"))?;
                    let parse =
                        |x: &str| x.parse::<u64>().map_err(|e| format!("--seeds {v:?}: {e}"));
                    args.seeds = parse(a)?..parse(b)?;
                }
                "--seed" => {
                    let v = value()?;
                    let seed = v.parse::<u64>().map_err(|e| format!("--seed {v:?}: {e}"))?;
                    args.seeds = seed..seed + 1;
                }
                "--mode" => args.mode = parse_mode(&value()?)?,
                "--history" => args.history = Some(value()?),
                "--jobs" => {
                    let v = value()?;
                    args.jobs = v
                        .parse::<usize>()
                        .ok()
                        .filter(|j| *j > 0)
                        .ok_or(format!("--jobs {v:?}: expected a positive number"))?;
                }
                other => return Err(format!("unknown flag {other:?}")),
            }
        }
        Ok(args)
    }

    fn play(seed: u64, mode: Mode) -> (History, Report) {
        let runtime = madsim::runtime::Runtime::with_seed_and_config(seed, Default::default());
        let (_, history) = runtime.block_on(master_power_loss(mode.flush, mode.ack, Plant::None));
        let report = check(&history, mode.allowance(POWER_LOSS), true);
        (history, report)
    }

    pub fn main() {
        let args = match parse_args() {
            Ok(args) => args,
            Err(e) => {
                eprintln!("{e}\n{USAGE}");
                std::process::exit(2);
            }
        };
        match args.command.as_str() {
            "run" => run(&args),
            "replay" => replay(&args),
            other => {
                eprintln!("unknown command {other:?}\n{USAGE}");
                std::process::exit(2);
            }
        }
    }

    fn replay_command(seed: u64, mode: Mode) -> String {
        format!(
            "RUSTFLAGS=\"--cfg madsim\" CARGO_TARGET_DIR=target/sim cargo run -p sim -- replay --seed {seed} --mode {} --history seed-{seed}.jsonl",
            mode.to_string()
        )
    }

    /// Plays one seed in a fresh `sim replay` process and reads its verdict; `Err` is a
    /// run that ended without one (a panic: divergent replicas, no convergence, ...).
    fn play_in_child(seed: u64, mode: Mode) -> Result<Report, String> {
        let exe = std::env::current_exe().expect("the runner's own path");
        let seed_arg = seed.to_string();
        let output = std::process::Command::new(exe)
            .args(["replay", "--seed", &seed_arg, "--mode", &mode.to_string()])
            .output()
            .map_err(|e| format!("spawning sim replay: {e}"))?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        match stdout.lines().find_map(|l| l.strip_prefix(REPORT_PREFIX)) {
            Some(line) => serde_json::from_str(line).map_err(|e| format!("report line: {e}")),
            None => {
                let stderr = String::from_utf8_lossy(&output.stderr);
                let panic = stderr
                    .lines()
                    .skip_while(|l| !l.contains("panicked at"))
                    .take(2)
                    .collect::<Vec<_>>()
                    .join(" ");
                Err(format!("no verdict ({}): {panic}", output.status))
            }
        }
    }

    fn run(args: &Args) {
        let started = Instant::now();
        let next = std::sync::atomic::AtomicU64::new(args.seeds.start);
        let results = std::sync::Mutex::new(Vec::new());
        std::thread::scope(|scope| {
            for _ in 0..args.jobs {
                scope.spawn(|| loop {
                    let seed = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if seed >= args.seeds.end {
                        return;
                    }
                    let report = play_in_child(seed, args.mode);
                    results.lock().unwrap().push((seed, report));
                });
            }
        });
        let mut results = results.into_inner().unwrap();
        results.sort_by_key(|(seed, _)| *seed);
        let (mut failed, mut tails) = (Vec::new(), Vec::new());
        for (seed, report) in results {
            let report = match report {
                Ok(report) => report,
                Err(e) => {
                    let replay = replay_command(seed, args.mode);
                    println!("FAIL seed {seed}: {e}\n  replay: {replay}");
                    failed.push(seed);
                    continue;
                }
            };
            if report.valid {
                tails.push(report.lost_tail);
            } else {
                println!(
                    "FAIL seed {seed}: lost {:?} unexpected {:?} failed-but-read {:?} inconsistent {:?} fifo {:?}\n  replay: {}",
                    report.lost,
                    report.unexpected,
                    report.failed_but_read,
                    report.inconsistent_offsets,
                    report.fifo_violations,
                    replay_command(seed, args.mode)
                );
                failed.push(seed);
            }
        }
        let n = args.seeds.end.saturating_sub(args.seeds.start);
        let minutes = started.elapsed().as_secs_f64() / 60.0;
        tails.sort_unstable();
        let tail = |q: f64| {
            tails
                .get(((tails.len() as f64 - 1.0) * q) as usize)
                .copied()
                .unwrap_or(0)
        };
        println!(
            "{} seeds of {} ({}): {} passed, {} failed; lost acknowledged tail p50 {} max {}; {:.0} seeds/min",
            n,
            args.mode.to_string(),
            "master power loss ×2, 3 replicas",
            n as usize - failed.len(),
            failed.len(),
            tail(0.5),
            tails.last().copied().unwrap_or(0),
            n as f64 / minutes.max(1e-9)
        );
        if !failed.is_empty() {
            std::process::exit(1);
        }
    }

    fn replay(args: &Args) {
        let seed = args.seeds.start;
        let (history, report) = play(seed, args.mode);
        if let Some(path) = &args.history {
            if let Err(e) = std::fs::write(path, history.to_jsonl()) {
                eprintln!("writing {path}: {e}");
                std::process::exit(2);
            }
            println!(
                "history of seed {seed} ({} events) in {path}",
                history.events().len()
            );
        }
        println!("seed {seed} ({}): {report:?}", args.mode.to_string());
        println!(
            "{REPORT_PREFIX}{}",
            serde_json::to_string(&report).expect("a report serializes")
        );
        if !report.valid {
            std::process::exit(1);
        }
    }
}
