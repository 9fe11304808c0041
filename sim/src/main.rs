//! The seed runner, in the simulated build:
//!
//! ```sh
//! export RUSTFLAGS="--cfg madsim" CARGO_TARGET_DIR=target/sim
//! cargo run -p sim -- run --seeds 0..200 --mode quorum+sync
//! cargo run -p sim -- replay --seed 17 --mode quorum+sync --history out.jsonl --trace t.jsonl
//! cargo run -p sim -- inspect t.jsonl --node broker-a-r1
//! ```
//!
//! `run` plays the whole-cluster scenario (`sim::scenario`) on every seed of the range,
//! judges each with `history::checker` and the liveness bounds, prints one line per failing seed
//! with the command that replays it, and a summary (with the lost-tail figures of the
//! modes that allow one, and seeds per minute). `replay` plays one seed and writes its
//! history as JSONL. Each seed of `run` is played by a fresh `sim replay` process
//! (`--jobs` at a time): nothing survives from one seed to the next, so the verdict is
//! exactly what the printed replay command reproduces.

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    if argv.first().map(String::as_str) == Some("inspect") {
        inspect(&argv[1..]);
        return;
    }
    simulate();
}

/// `sim inspect trace.jsonl [--node X] [--msg V] [--from MS] [--to MS]`: no simulation,
/// so it runs in either build.
fn inspect(argv: &[String]) {
    let fail = |e: String| -> ! {
        eprintln!("sim inspect: {e}\nusage: sim inspect trace.jsonl [--node NAME] [--msg VALUE] [--from MS] [--to MS]");
        std::process::exit(2)
    };
    let mut filter = history::inspect::Filter::default();
    let mut path = None;
    let mut it = argv.iter();
    while let Some(arg) = it.next() {
        let mut value = || {
            it.next()
                .cloned()
                .unwrap_or_else(|| fail(format!("{arg} needs a value")))
        };
        let ms = |v: String| {
            v.parse::<i64>()
                .unwrap_or_else(|e| fail(format!("{arg} {v:?}: {e}")))
        };
        match arg.as_str() {
            "--node" => filter.node = Some(value()),
            "--msg" => filter.msg = Some(value()),
            "--from" => filter.from_ms = Some(ms(value())),
            "--to" => filter.to_ms = Some(ms(value())),
            flag if flag.starts_with("--") => fail(format!("unknown flag {flag:?}")),
            file => path = Some(file.to_string()),
        }
    }
    let path = path.unwrap_or_else(|| fail("which trace? (sim replay --trace writes one)".into()));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| fail(format!("{path}: {e}")));
    match history::inspect::render(&text, &filter) {
        Ok(out) => print!("{out}"),
        Err(e) => fail(format!("{path}: {e}")),
    }
}

#[cfg(madsim)]
fn simulate() {
    runner::main()
}

#[cfg(not(madsim))]
fn simulate() {
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

    use history::history::History;
    use history::mode::{parse_mode, Flush, Mode};
    use sim::campaign::NoVerdict;
    use sim::cluster::Spec;
    use sim::plant::Plant;
    use sim::scenario::{Options, Outcome};
    use sim::swarm::FaultKind;

    const USAGE: &str = "usage:
  sim run --seeds A..B [--mode quorum+sync|leader+sync|quorum+async|leader+async] [--faults kill,power,...] [--jobs 2] [--stop-on-fail]
  sim campaign --seeds N [--mode all|MODE,...] [--faults ...] [--all-faults] [--jobs 2] [--base B] [--out DIR]
  sim campaign --resume DIR
  sim replay --seed N [--mode ...] [--faults ...] [--history out.jsonl] [--trace trace.jsonl]
  sim inspect trace.jsonl [--node NAME] [--msg VALUE] [--from MS] [--to MS]
faults: kill, power, group-power, pause, partition, one-way, loss, latency, eio, namesrv,
client-partition, compact (default: all;
each seed turns on a random subset of them, `--all-faults` turns on every one listed)
planted bugs (fault-injection builds): --plant ack-before-quorum|skip-fsync|early-offset-commit|out-of-order-delivery|snapshot-queues-at-zero|deliver-half-message|deliver-delayed-early|drop-send-back|deliver-timers-early";
    /// How `replay` hands its verdict to `run`.
    const REPORT_PREFIX: &str = "REPORT ";

    struct Args {
        command: String,
        seeds: Range<u64>,
        mode: Mode,
        /// `None`: the mode's default set (see `default_faults`).
        faults: Option<Vec<FaultKind>>,
        all_faults: bool,
        plant: Plant,
        history: Option<String>,
        trace: Option<String>,
        jobs: usize,
        /// Stop starting seeds once one fails (the planted-bug tests).
        stop_on_fail: bool,
    }

    fn parse_args() -> Result<Args, String> {
        let mut argv = std::env::args().skip(1);
        let command = argv.next().ok_or("missing command")?;
        let mut args = Args {
            command,
            seeds: 0..100,
            mode: parse_mode("quorum+sync")?,
            faults: None,
            all_faults: false,
            plant: Plant::None,
            history: None,
            trace: None,
            jobs: 2,
            stop_on_fail: false,
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
                "--trace" => args.trace = Some(value()?),
                "--faults" => {
                    args.faults = Some(
                        value()?
                            .split(',')
                            .map(str::parse)
                            .collect::<Result<_, _>>()?,
                    );
                }
                "--all-faults" => args.all_faults = true,
                "--stop-on-fail" => args.stop_on_fail = true,
                "--plant" => {
                    args.plant = value()?.parse()?;
                    if args.plant != Plant::None && !cfg!(feature = "fault-injection") {
                        return Err("--plant needs a build with --features fault-injection".into());
                    }
                }
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

    /// Every fault, except that `flush = async` leaves out power losses unless asked:
    /// with unflushed log tails lost on some replicas, Raft's premise (a replica keeps
    /// what it acknowledged) is gone, and a group can diverge or stall (README's mode
    /// table says so). `--faults power,...` runs them anyway, to measure that.
    fn faults(args: &Args) -> Vec<FaultKind> {
        match &args.faults {
            Some(faults) => faults.clone(),
            None if args.mode.flush == Flush::Async => sim::swarm::ALL
                .into_iter()
                .filter(|k| !matches!(k, FaultKind::Power | FaultKind::GroupPower))
                .collect(),
            None => sim::swarm::ALL.to_vec(),
        }
    }

    fn options(args: &Args) -> Options {
        Options {
            plant: args.plant,
            faults: faults(args),
            all_faults: args.all_faults,
            ..Options::standard(Spec::standard(args.mode))
        }
    }

    fn play(seed: u64, args: &Args) -> (History, Outcome) {
        let runtime = madsim::runtime::Runtime::with_seed_and_config(seed, Default::default());
        runtime.block_on(sim::scenario::run(options(args)))
    }

    pub fn main() {
        if std::env::args().nth(1).as_deref() == Some("campaign") {
            campaign_cli::main();
            return;
        }
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

    /// The flags that shape a run, as `replay` takes them.
    fn run_flags(args: &Args) -> Vec<String> {
        let faults: Vec<&str> = faults(args).iter().map(|k| k.name()).collect();
        let mut flags = vec![
            "--mode".to_string(),
            args.mode.to_string(),
            "--faults".into(),
            faults.join(","),
        ];
        if args.all_faults {
            flags.push("--all-faults".into());
        }
        if args.plant != Plant::None {
            flags.extend(["--plant".into(), args.plant.to_string()]);
        }
        flags
    }

    fn replay_command(seed: u64, args: &Args) -> String {
        let features = if args.plant == Plant::None {
            ""
        } else {
            " --features fault-injection"
        };
        format!(
            "RUSTFLAGS=\"--cfg madsim\" CARGO_TARGET_DIR=target/sim cargo run --release -p sim{features} -- replay --seed {seed} {} --history seed-{seed}.jsonl --trace seed-{seed}.trace.jsonl",
            run_flags(args).join(" ")
        )
    }

    /// Plays one seed in a fresh `sim replay` process and reads its verdict. A run that
    /// ended without one failed (a panic in the cluster's code), unless it never started
    /// or was killed from outside (SIGINT, SIGTERM, SIGKILL, SIGHUP).
    fn play_in_child(seed: u64, args: &Args) -> Result<Outcome, NoVerdict> {
        use std::os::unix::process::ExitStatusExt;
        let exe = std::env::current_exe()
            .map_err(|e| NoVerdict::Interrupted(format!("the runner's own path: {e}")))?;
        let output = std::process::Command::new(exe)
            .args(["replay", "--seed", &seed.to_string()])
            .args(run_flags(args))
            .output()
            .map_err(|e| NoVerdict::Interrupted(format!("spawning sim replay: {e}")))?;
        const KILLED_FROM_OUTSIDE: [i32; 4] = [1, 2, 9, 15];
        if let Some(signal) = output.status.signal() {
            if KILLED_FROM_OUTSIDE.contains(&signal) {
                return Err(NoVerdict::Interrupted(format!("killed by signal {signal}")));
            }
        }
        let stdout = String::from_utf8_lossy(&output.stdout);
        match stdout.lines().find_map(|l| l.strip_prefix(REPORT_PREFIX)) {
            Some(line) => serde_json::from_str(line)
                .map_err(|e| NoVerdict::Failed(format!("report line: {e}"))),
            None => {
                let stderr = String::from_utf8_lossy(&output.stderr);
                let panic = stderr
                    .lines()
                    .skip_while(|l| !l.contains("panicked at"))
                    .take(2)
                    .collect::<Vec<_>>()
                    .join(" ");
                Err(NoVerdict::Failed(format!(
                    "no verdict ({}): {panic}",
                    output.status
                )))
            }
        }
    }

    fn run(args: &Args) {
        let started = Instant::now();
        let next = std::sync::atomic::AtomicU64::new(args.seeds.start);
        let results = std::sync::Mutex::new(Vec::new());
        let failed_one = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|scope| {
            for _ in 0..args.jobs {
                scope.spawn(|| loop {
                    let seed = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let stop =
                        args.stop_on_fail && failed_one.load(std::sync::atomic::Ordering::Relaxed);
                    if seed >= args.seeds.end || stop {
                        return;
                    }
                    let outcome = play_in_child(seed, args).map_err(|e| e.to_string());
                    if !outcome.as_ref().is_ok_and(|o| o.valid) {
                        failed_one.store(true, std::sync::atomic::Ordering::Relaxed);
                    }
                    if let Ok(o) = &outcome {
                        if !o.valid {
                            // Print failures as they come: a long run shows them early.
                            eprintln!("seed {seed} failed: {}", o.problems());
                        }
                    }
                    results.lock().unwrap().push((seed, outcome));
                });
            }
        });
        let mut results = results.into_inner().unwrap();
        results.sort_by_key(|(seed, _)| *seed);
        let n = results.len() as u64;
        let (mut failed, mut tails) = (Vec::new(), Vec::new());
        let (mut acked, mut delivered, mut injected) = (0, 0, 0);
        let (mut master_faults, mut stalls) = (0, Vec::new());
        for (seed, outcome) in results {
            let replay = replay_command(seed, args);
            match outcome {
                Err(e) => {
                    println!("FAIL seed {seed}: {e}\n  replay: {replay}");
                    failed.push(seed);
                }
                Ok(o) if !o.valid => {
                    println!(
                        "FAIL seed {seed} ({}): {}\n  replay: {replay}",
                        o.swarm,
                        o.problems()
                    );
                    failed.push(seed);
                }
                Ok(o) => {
                    tails.push(o.report.lost_tail);
                    master_faults += o.master_stalls_ms.len();
                    stalls.extend(o.master_stalls_ms.iter().flatten().copied());
                    acked += o.report.acknowledged;
                    delivered += o.deliveries;
                    injected += o.faults;
                }
            }
        }
        let minutes = started.elapsed().as_secs_f64() / 60.0;
        tails.sort_unstable();
        let tail = |q: f64| {
            tails
                .get(((tails.len() as f64 - 1.0) * q) as usize)
                .copied()
                .unwrap_or(0)
        };
        let with_tail = tails.iter().filter(|t| **t > 0).count();
        println!(
            "{n} seeds of {} (2 name servers, 2 groups x 3 replicas, 4 producers, 2 transactional, 3 orderly + 1 broadcasting + 1 failing consumers; swarm of {}): {} passed, {} failed",
            args.mode,
            faults(args).iter().map(|k| k.name()).collect::<Vec<_>>().join(","),
            n as usize - failed.len(),
            failed.len(),
        );
        println!(
            "passing seeds: {acked} acknowledged sends, {delivered} deliveries, {injected} fault events; lost acknowledged tail: {with_tail} seeds lost one, p50 {} max {}; {:.1} seeds/min",
            tail(0.5),
            tails.last().copied().unwrap_or(0),
            n as f64 / minutes.max(1e-9)
        );
        if master_faults > 0 {
            let p =
                |q| history::stall::percentile(&stalls, q).map_or("-".into(), |v| v.to_string());
            println!(
                "{master_faults} faults at a group's master: writes to that group stopped p50 {} ms, p99 {} ms, max {} ms; {} never resumed",
                p(50.0),
                p(99.0),
                p(100.0),
                master_faults - stalls.len()
            );
        }
        if !failed.is_empty() {
            std::process::exit(1);
        }
    }

    fn replay(args: &Args) {
        let seed = args.seeds.start;
        let (history, outcome) = match &args.trace {
            Some(path) => {
                let runtime =
                    madsim::runtime::Runtime::with_seed_and_config(seed, Default::default());
                runtime.block_on(async {
                    // Installed inside the simulation: what it draws at random (hash
                    // keys) must come from the seed too.
                    let trace = sim::trace::install(path).unwrap_or_else(|e| {
                        eprintln!("{e}");
                        std::process::exit(2);
                    });
                    let played = sim::scenario::run_quietly(options(args)).await;
                    trace.finish();
                    played
                })
            }
            None => play(seed, args),
        };
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
        if let Some(path) = &args.trace {
            println!("trace of seed {seed} in {path}; read it with: sim inspect {path}");
        }
        let stalls: Vec<i64> = outcome.master_stalls_ms.iter().flatten().copied().collect();
        let stalled = match history::stall::percentile(&stalls, 100.0) {
            Some(max) => format!(
                ", writes stopped after {} master faults up to {max} ms",
                outcome.master_stalls_ms.len()
            ),
            None => String::new(),
        };
        println!(
            "seed {seed} ({}, {}): {} acknowledged of {} sent, {} deliveries{stalled}; {}",
            args.mode,
            outcome.swarm,
            outcome.report.acknowledged,
            outcome.report.attempted,
            outcome.deliveries,
            if outcome.valid {
                "valid".to_string()
            } else {
                format!("INVALID: {}", outcome.problems())
            }
        );
        println!(
            "{REPORT_PREFIX}{}",
            serde_json::to_string(&outcome).expect("an outcome serializes")
        );
        if !outcome.valid {
            std::process::exit(1);
        }
    }

    /// `sim campaign`: see `sim::campaign`.
    mod campaign_cli {
        use std::io::Read;
        use std::path::{Path, PathBuf};

        use sim::campaign::{self, Cell, NoVerdict, Plan, Player, SeedRecord};
        use sim::plant::Plant;
        use sim::scenario::Outcome;
        use sim::swarm::FaultKind;

        use super::{play_in_child, replay_command, Args, USAGE};

        /// Plays a cell's seeds as `sim run` does, with the campaign's faults.
        struct Runner {
            faults: Option<Vec<FaultKind>>,
        }

        impl Runner {
            fn args(&self, cell: &Cell) -> Args {
                Args {
                    command: "replay".into(),
                    seeds: 0..1,
                    mode: cell.mode,
                    faults: self.faults.clone(),
                    all_faults: cell.all_faults,
                    plant: Plant::None,
                    history: None,
                    trace: None,
                    jobs: 1,
                    stop_on_fail: false,
                }
            }
        }

        impl Player for Runner {
            fn play(&self, cell: &Cell, seed: u64) -> Result<Outcome, NoVerdict> {
                play_in_child(seed, &self.args(cell))
            }

            fn replay_command(&self, cell: &Cell, seed: u64) -> String {
                replay_command(seed, &self.args(cell))
            }

            fn story(&self, cell: &Cell, seed: u64, dir: &Path) -> Result<String, String> {
                let trace = dir.join(format!(
                    "{}-{seed}.trace.jsonl",
                    cell.name().replace(['+', '/'], "_")
                ));
                let exe = std::env::current_exe().map_err(|e| e.to_string())?;
                std::process::Command::new(exe)
                    .args(["replay", "--seed", &seed.to_string()])
                    .args(super::run_flags(&self.args(cell)))
                    .arg("--trace")
                    .arg(&trace)
                    .output()
                    .map_err(|e| format!("spawning sim replay: {e}"))?;
                let text = std::fs::read_to_string(&trace)
                    .map_err(|e| format!("{}: {e}", trace.display()))?;
                history::inspect::render(&text, &history::inspect::Filter::default())
            }
        }

        struct CampaignArgs {
            seeds: Option<u64>,
            modes: Option<String>,
            faults: Option<String>,
            all_faults: bool,
            jobs: usize,
            base: Option<u64>,
            out: Option<PathBuf>,
            resume: Option<PathBuf>,
        }

        fn parse() -> Result<CampaignArgs, String> {
            let mut argv = std::env::args().skip(2);
            let mut a = CampaignArgs {
                seeds: None,
                modes: None,
                faults: None,
                all_faults: false,
                jobs: 2,
                base: None,
                out: None,
                resume: None,
            };
            let number = |flag: &str, v: String| {
                v.parse::<u64>()
                    .map_err(|e| format!("{flag} {v:?}: expected a number ({e})"))
            };
            while let Some(flag) = argv.next() {
                let mut value = || argv.next().ok_or(format!("{flag} needs a value"));
                match flag.as_str() {
                    "--seeds" => a.seeds = Some(number("--seeds", value()?)?),
                    "--base" => a.base = Some(number("--base", value()?)?),
                    "--mode" => a.modes = Some(value()?),
                    "--faults" => a.faults = Some(value()?),
                    "--all-faults" => a.all_faults = true,
                    "--jobs" => {
                        a.jobs = number("--jobs", value()?)?
                            .try_into()
                            .ok()
                            .filter(|j| *j > 0)
                            .ok_or("--jobs: expected a positive number")?;
                    }
                    "--out" => a.out = Some(value()?.into()),
                    "--resume" => a.resume = Some(value()?.into()),
                    other => return Err(format!("unknown flag {other:?}")),
                }
            }
            Ok(a)
        }

        /// A base nobody chose: from the OS's entropy, kept under 10^12 so it reads.
        fn random_base() -> u64 {
            let mut bytes = [0u8; 8];
            std::fs::File::open("/dev/urandom")
                .and_then(|mut f| f.read_exact(&mut bytes))
                .expect("reading /dev/urandom");
            u64::from_le_bytes(bytes) % 1_000_000_000_000
        }

        fn plan_and_dir(a: &CampaignArgs) -> Result<(Plan, PathBuf), String> {
            if let Some(dir) = &a.resume {
                let planned = a.seeds.is_some()
                    || a.modes.is_some()
                    || a.faults.is_some()
                    || a.all_faults
                    || a.base.is_some()
                    || a.out.is_some();
                if planned {
                    return Err(format!(
                        "--resume takes the plan from {}/plan.json; only --jobs goes with it",
                        dir.display()
                    ));
                }
                return Ok((campaign::open(dir, None)?, dir.clone()));
            }
            let seeds = a.seeds.ok_or("--seeds N is needed (or --resume DIR)")?;
            let cells = campaign::cells(a.modes.as_deref().unwrap_or("all"), a.all_faults)?;
            if let Some(faults) = &a.faults {
                faults
                    .split(',')
                    .map(str::parse::<FaultKind>)
                    .collect::<Result<Vec<_>, _>>()?;
            }
            let base = a.base.unwrap_or_else(random_base);
            let plan = Plan::new(
                base,
                seeds,
                cells.iter().map(Cell::name).collect(),
                a.faults.clone(),
            )?;
            let dir = a
                .out
                .clone()
                .unwrap_or_else(|| PathBuf::from(format!("target/campaign-{base}")));
            Ok((campaign::open(&dir, Some(plan))?, dir))
        }

        pub fn main() {
            let fail = |e: String| -> ! {
                eprintln!("sim campaign: {e}\n{USAGE}");
                std::process::exit(2)
            };
            let a = parse().unwrap_or_else(|e| fail(e));
            let (plan, dir) = plan_and_dir(&a).unwrap_or_else(|e| fail(e));
            let faults = plan
                .faults
                .as_ref()
                .map(|f| f.split(',').map(str::parse).collect::<Result<Vec<_>, _>>())
                .transpose()
                .unwrap_or_else(|e: String| fail(format!("the plan's faults: {e}")));
            let runner = Runner { faults };
            println!(
                "campaign in {}: seeds {}..{} in {} ({} seeds), {} jobs; resume with: sim campaign --resume {}",
                dir.display(),
                plan.base,
                plan.base + plan.seeds,
                plan.cells.join(", "),
                plan.seeds * plan.cells.len() as u64,
                a.jobs,
                dir.display()
            );
            let started = std::time::Instant::now();
            let progress = |r: &SeedRecord, done: usize, total: usize| {
                if let Some(sig) = campaign::signature(r) {
                    eprintln!("seed {} ({}) failed: {sig}", r.seed, r.cell);
                }
                if done.is_multiple_of(200) || done == total {
                    let per_min = done as f64 / started.elapsed().as_secs_f64().max(1e-9) * 60.0;
                    eprintln!("{done}/{total} seeds played this run, {per_min:.0} seeds/min");
                }
            };
            let summary =
                campaign::run(&dir, &plan, a.jobs, &runner, progress).unwrap_or_else(|e| fail(e));
            let report = dir.join("report.md");
            let text = std::fs::read_to_string(&report).unwrap_or_default();
            for line in text
                .lines()
                .filter(|l| l.starts_with('|') || l.starts_with("### "))
            {
                println!("{line}");
            }
            println!("report: {} (summary.json beside it)", report.display());
            if summary.failed() > 0 {
                std::process::exit(1);
            }
        }
    }
}
