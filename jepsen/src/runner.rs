//! One test run, start to end: build or find the binaries, set up the network, start the
//! cluster, run clients and nemesis for the time limit, heal, wait for recovery and
//! convergence, drain, check, write the results.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use client::{Admin, Producer};
use history::checker;
use history::history::F;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::Mutex;

use crate::cluster::{Cluster, State};
use crate::nemesis;
use crate::net::Net;
use crate::opts::{NemesisKind, TestOptions, Workload};
use crate::provision::Binaries;
use crate::recorder::Recorder;
use crate::report::{self, Results};
use crate::workload::{self, Consumers};

/// How long recovery, convergence and the drain may take after the final heal.
const SETTLE_LIMIT: Duration = Duration::from_secs(60);

/// The run's output directory: `<store>/<test>/<time>/`.
fn out_dir(opts: &TestOptions, workspace: &Path) -> anyhow::Result<PathBuf> {
    let time = humantime::format_rfc3339_seconds(std::time::SystemTime::now())
        .to_string()
        .replace(':', "");
    let store = opts
        .store
        .clone()
        .unwrap_or_else(|| workspace.join("jepsen").join("store"));
    let dir = store.join(opts.name()).join(time);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

async fn poll<T, F, Fut>(limit: Duration, mut f: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Some(v) = f().await {
            return Some(v);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    None
}

/// All replicas answer with the same master and the same last log index, all applied.
async fn converged(cluster: &Mutex<Cluster>) -> Option<()> {
    let c = cluster.lock().await;
    let mut seen = None;
    for i in c.ids() {
        let s = c.status(i).await.ok()?;
        let view = (s.master?, s.last_log_index);
        if s.last_applied_index != s.last_log_index || seen.is_some_and(|v| v != view) {
            return None;
        }
        seen = Some(view);
    }
    Some(())
}

/// Runtime keys of what a master still holds and will move by itself.
const PENDING: [&str; 2] = ["raftmqTransactionsPending", "raftmqDelayedPending"];

/// Waits until the master holds nothing of [`PENDING`], for at most [`SETTLE_LIMIT`],
/// a check round (1 s) apart.
async fn settle(admin: &Admin) -> bool {
    let round = Duration::from_millis(1_100);
    admin
        .await_runtime_zero(&PENDING, SETTLE_LIMIT, round)
        .await
        == Some(0)
}

pub struct Outcome {
    pub valid: bool,
    pub dir: PathBuf,
}

pub async fn run(mut opts: TestOptions, workspace: &Path) -> anyhow::Result<Outcome> {
    let seed = opts.seed.unwrap_or_else(rand::random);
    opts.seed = Some(seed);
    let dir = out_dir(&opts, workspace)?;
    // The harness's own clients log to clients.log (RUST_LOG overrides the level).
    let log = std::fs::File::create(dir.join("clients.log"))?;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("client=debug,jepsen=info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_writer(std::sync::Mutex::new(log))
        .try_init();
    eprintln!("jepsen: test {} seed {seed}", opts.name());
    eprintln!("jepsen: output in {}", dir.display());
    let bins = match &opts.bin_dir {
        Some(d) if !opts.unsafe_build => Binaries::in_dir(d)?,
        Some(_) => bail!("--unsafe-build builds its own binaries; drop --bin-dir"),
        None => Binaries::build(workspace, &opts.build_profile, opts.unsafe_build)?,
    };
    let net = Net::setup(opts.replicas, !opts.no_netns);
    eprintln!("jepsen: network: {}", net.describe());
    if !net.can_partition() {
        let before = opts.nemesis.len();
        opts.nemesis
            .retain(|n| !matches!(n, NemesisKind::Partition | NemesisKind::Loss));
        if opts.nemesis.len() != before {
            eprintln!("jepsen: partition and loss nemeses skipped: they need network namespaces");
        }
    }
    let replay = format!(
        "cargo run -p jepsen --release -- test --seed {seed} --workload {:?} --mode {} --election {} --nemesis {} --time-limit {} --replicas {} --rate {} --producers {} --consumers {} --quiet-s {} --fault-s {}{}{}",
        opts.workload,
        opts.mode,
        opts.election,
        opts.nemesis.iter().map(|n| format!("{n:?}")).collect::<Vec<_>>().join(","),
        opts.time_limit,
        opts.replicas,
        opts.rate,
        opts.producers,
        opts.consumers,
        opts.quiet_s,
        opts.fault_s,
        if opts.unsafe_build { " --unsafe-build" } else { "" },
        if opts.no_netns { " --no-netns" } else { "" },
    )
    .to_lowercase();
    let network = net.describe().to_string();
    let cluster = Arc::new(Mutex::new(Cluster::new(net, bins, &dir, &opts)?));
    let result = drive(&opts, seed, &dir, cluster.clone(), network, replay).await;
    cluster.lock().await.shutdown();
    result.map(|valid| Outcome { valid, dir })
}

async fn drive(
    opts: &TestOptions,
    seed: u64,
    dir: &Path,
    cluster: Arc<Mutex<Cluster>>,
    network: String,
    replay: String,
) -> anyhow::Result<bool> {
    cluster.lock().await.start_all()?;
    let namesrv = cluster.lock().await.namesrv_addr();
    let recorder = Recorder::default();

    // Ready: a master registered, the topic created on it.
    let admin = Admin::new(client::ClientConfig::with_namesrv(&namesrv));
    let created = poll(Duration::from_secs(30), || async {
        let order = opts.workload == Workload::Ordered;
        admin
            .create_topic(workload::TOPIC, workload::QUEUES, None, order)
            .await
            .ok()
    })
    .await;
    if created.is_none() {
        bail!(
            "no master registered within 30 s; see {}/n*.log",
            dir.display()
        );
    }
    eprintln!("jepsen: cluster up, topic {} created", workload::TOPIC);

    let mut churn_rng = workload::churn_rng(seed);
    let mut consumers = Consumers::new(namesrv.clone(), opts.workload, recorder.clone());
    for _ in 0..opts.consumers {
        consumers.start_one().await?;
    }
    let stop = Arc::new(AtomicBool::new(false));
    let release = Arc::new(AtomicBool::new(false));
    let mut producers: Vec<_> = (1..=opts.producers)
        .map(|k| {
            tokio::spawn(workload::produce(
                k,
                namesrv.clone(),
                opts.workload,
                opts.rate / opts.producers.max(1) as f64,
                recorder.clone(),
                stop.clone(),
                release.clone(),
            ))
        })
        .collect();

    // The fault phase, with consumer instances coming and going beside it.
    let limit = Duration::from_secs(opts.time_limit);
    let nemesis = nemesis::run(
        opts.nemesis.clone(),
        &cluster,
        &recorder,
        StdRng::seed_from_u64(seed),
        limit,
        Duration::from_secs(opts.quiet_s),
        Duration::from_secs(opts.fault_s.max(1)),
    );
    let churn = async {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            let wait = Duration::from_millis(churn_rng.gen_range(5_000..15_000));
            tokio::time::sleep(wait.min(deadline.saturating_duration_since(Instant::now()))).await;
            if Instant::now() >= deadline {
                break;
            }
            consumers.stop_one(&mut churn_rng).await;
            if let Err(e) = consumers.start_one().await {
                eprintln!("jepsen: a consumer did not start: {e}");
            }
        }
    };
    let (faults, ()) = tokio::join!(nemesis, churn);
    let mut faults = faults?;
    stop.store(true, Ordering::Release);
    // Transactional producers stay to answer the broker's checks until everything is
    // decided (below); the others are done.
    if opts.workload != Workload::Tx {
        for p in producers.drain(..) {
            p.await?;
        }
    }

    // Heal, then recovery: a write goes through, the replicas converge.
    eprintln!("jepsen: fault phase over; healing");
    cluster.lock().await.heal()?;
    let healed = Instant::now();
    let probe = Producer::new("JepsenProbe", client::ClientConfig::with_namesrv(&namesrv));
    let mut n = 0;
    let final_recovery = poll(SETTLE_LIMIT, || {
        n += 1;
        let (probe, recorder) = (&probe, &recorder);
        let value = format!("final-{n}");
        async move {
            workload::send_one(probe, recorder, "final", &value, None)
                .await
                .then_some(())
        }
    })
    .await
    .map(|()| healed.elapsed().as_millis() as i64);
    // What the brokers move by themselves has moved before the final reads: every
    // transaction decided or discarded, every delayed message in its topic.
    let settled = settle(&admin).await;
    release.store(true, Ordering::Release);
    for p in producers {
        p.await?;
    }
    let convergence = poll(SETTLE_LIMIT, || converged(&cluster))
        .await
        .map(|()| healed.elapsed().as_millis() as i64);
    eprintln!(
        "jepsen: recovery {final_recovery:?} ms, convergence {convergence:?} ms after the heal"
    );

    // Every replica read in full.
    let mut problems = Vec::new();
    {
        let c = cluster.lock().await;
        for i in c.ids() {
            assert_eq!(c.state(i), State::Running);
            match workload::read_replica(&namesrv, &c.broker_addr(i), &format!("n{i}"), &recorder)
                .await
            {
                Ok(count) => eprintln!("jepsen: n{i} holds {count} messages"),
                Err(e) => problems.push(format!("n{i} could not be read: {e}")),
            }
        }
    }
    // The group drains: everything stored is delivered at least once.
    while consumers.running() < opts.consumers.max(1) {
        consumers.start_one().await?;
    }
    let stored: BTreeSet<String> = recorder
        .lock()
        .events()
        .iter()
        .filter(|e| e.f == F::Read)
        .map(|e| e.value.clone())
        .collect();
    let drain = poll(SETTLE_LIMIT, || {
        let missing = stored.difference(&workload::delivered(&recorder)).count();
        async move { (missing == 0).then_some(()) }
    })
    .await
    .map(|()| healed.elapsed().as_millis() as i64);
    consumers.shutdown().await;

    // Check and report.
    let history = std::mem::take(&mut *recorder.lock());
    let not_received = checker::undelivered(&history, workload::GROUP, &[]);
    let undelivered = not_received.missing.clone();
    std::fs::write(dir.join("history.jsonl"), history.to_jsonl())?;
    let power = opts.nemesis.contains(&NemesisKind::Power);
    let r = checker::check(
        &history,
        opts.mode.allowance(power),
        opts.workload == Workload::Ordered,
    );
    report::recovery_times(&history, &mut faults);
    {
        let mut c = cluster.lock().await;
        c.check_alive();
        for crash in &c.crashes {
            problems.push(format!("a broker crashed: {crash}"));
        }
    }
    if final_recovery.is_none() {
        problems.push(format!(
            "no write succeeded within {} s of the final heal",
            SETTLE_LIMIT.as_secs()
        ));
    }
    if !settled {
        problems.push(format!(
            "transactions undecided or delayed messages undelivered {} s after the final heal",
            SETTLE_LIMIT.as_secs()
        ));
    }
    if convergence.is_none() {
        problems.push(format!(
            "the replicas did not converge within {} s of the final heal",
            SETTLE_LIMIT.as_secs()
        ));
    }
    // Where a tail may be lost, a consumer that had received a lost message goes on past
    // its offset and so skips whatever later took that offset: part of the loss.
    let skipped = match opts.mode.allowance(power) {
        checker::LossAllowance::Tail => not_received.skipped_after_loss.len(),
        checker::LossAllowance::None => 0,
    };
    let not_delivered = undelivered.len() - skipped;
    if not_delivered > 0 {
        problems.push(format!(
            "{not_delivered} stored messages never delivered to {}{}",
            workload::GROUP,
            if skipped == 0 {
                String::new()
            } else {
                format!(" (besides {skipped} at offsets of lost messages)")
            }
        ));
    }
    let anomalies = report::anomalies(&r, undelivered.len());
    for (class, n) in &anomalies {
        let allowed = matches!(
            class.as_str(),
            "recovered" | "duplicated" | "lost_allowed_tail" | "undelivered"
        );
        if *n > 0 && !allowed {
            problems.push(format!("{class}: {n}"));
        }
    }
    let valid = r.valid && problems.is_empty();
    let results = Results {
        valid,
        problems,
        test: opts.name(),
        seed,
        network,
        options: vec![replay],
        counts: report::counts(&history),
        anomalies,
        checker: r,
        undelivered,
        write_stalls: report::stall_summaries(&faults),
        faults,
        final_recovery_ms: final_recovery,
        convergence_ms: convergence,
        drain_ms: drain,
    };
    report::write(dir, &results, &history)?;
    print_summary(&results);
    Ok(valid)
}

fn print_summary(r: &Results) {
    let c = &r.counts;
    println!(
        "{}: {} sends ({} ok, {} info, {} fail), {} deliveries, {} replica reads, {} faults",
        r.test,
        c.invoked,
        c.ok,
        c.info,
        c.fail,
        c.delivered,
        c.read,
        r.faults.len()
    );
    for (scope, s) in &r.write_stalls {
        let ms = |v: Option<i64>| v.map_or("-".to_string(), |v| format!("{v} ms"));
        println!(
            "writes stopped after {} {scope} faults: p50 {}, p99 {}, max {}{}",
            s.faults,
            ms(s.p50_ms),
            ms(s.p99_ms),
            ms(s.max_ms),
            if s.never_resumed > 0 {
                format!(", {} never resumed", s.never_resumed)
            } else {
                String::new()
            }
        );
    }
    let nonzero: Vec<String> = r
        .anomalies
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(k, n)| format!("{k} {n}"))
        .collect();
    println!(
        "anomalies: {}",
        if nonzero.is_empty() {
            "none".into()
        } else {
            nonzero.join(", ")
        }
    );
    for p in &r.problems {
        println!("problem: {p}");
    }
    println!("replay: {}", r.options[0]);
    println!("{}", if r.valid { "VALID" } else { "INVALID" });
}
