//! Model test of `MessageStore` on `SimDisk`, in the spirit of sled's `fuzz_model`.
//!
//! Random sequences of puts (single, batched and concurrent), reads, sleeps, EIO toggles
//! and crashes (power loss: unsynced bytes lost, torn tails with garbage) run against the
//! store and are checked against a model of what was acknowledged:
//! - every append acknowledged as durable survives a crash (with `flush = sync` every
//!   acknowledged append; with `flush = async`, those the flushed offset covered);
//! - the recovered log is a prefix of what was appended: no acknowledged message below
//!   the highest recovered offset is missing, and nothing unknown appears;
//! - every ConsumeQueue entry resolves to a message with the same topic and queue and
//!   the queue offset of its position; queue offsets are dense.
//!
//! Each run prints its seed and the command that replays it. The same test runs in the
//! simulated build (`RUSTFLAGS="--cfg madsim"`), each case on a madsim runtime seeded
//! from the case.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed, TestCaseError, TestRunner};
use proto::{MessageRef, NewMessage};
use store::{FlushMode, GetStatus, MessageStore, PutResult, SimDisk, SimDiskConfig, StoreConfig};

const QUEUES: [(&str, u32); 4] = [("T0", 0), ("T0", 1), ("T1", 0), ("T1", 1)];

#[derive(Clone, Debug)]
enum Op {
    /// One `put_messages` call with `batch` messages to one queue.
    Put {
        queue: usize,
        batch: usize,
        body_len: usize,
    },
    /// `count` concurrent single puts; with `crash_after_us`, a crash while in flight.
    Concurrent {
        count: usize,
        crash_after_us: Option<u64>,
    },
    Read {
        queue: usize,
    },
    Sleep {
        ms: u64,
    },
    Crash,
    SetEio {
        on: bool,
    },
}

#[derive(Clone, Debug)]
struct Case {
    seed: u64,
    flush: FlushMode,
    torn: bool,
    ops: Vec<Op>,
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..QUEUES.len(), 1usize..4, 0usize..300).prop_map(|(queue, batch, body_len)| Op::Put { queue, batch, body_len }),
        2 => (2usize..12, proptest::option::of(0u64..3000)).prop_map(|(count, crash_after_us)| Op::Concurrent { count, crash_after_us }),
        2 => (0..QUEUES.len()).prop_map(|queue| Op::Read { queue }),
        2 => (0u64..40).prop_map(|ms| Op::Sleep { ms }),
        2 => Just(Op::Crash),
        1 => any::<bool>().prop_map(|on| Op::SetEio { on }),
    ]
}

fn case_strategy(sync_only: bool) -> impl Strategy<Value = Case> {
    let flush = if sync_only {
        Just(FlushMode::Sync).boxed()
    } else {
        prop_oneof![Just(FlushMode::Sync), Just(FlushMode::Async)].boxed()
    };
    (
        any::<u64>(),
        flush,
        any::<bool>(),
        proptest::collection::vec(op_strategy(), 1..40),
    )
        .prop_map(|(seed, flush, torn, ops)| Case {
            seed,
            flush,
            torn,
            ops,
        })
}

fn store_config(flush: FlushMode) -> StoreConfig {
    StoreConfig {
        flush_disk_type: flush,
        flush_interval_ms: 5,
        checkpoint_interval_ms: 20,
        clean_interval_ms: 1_000_000,
        sync_flush_timeout_ms: 60_000,
        commitlog_segment_size: 2048,
        consume_queue_units_per_file: 8,
        index_entries_per_file: 16,
        message_size_max: 1024,
        write_batch_size_max: 1024,
        ..StoreConfig::default()
    }
}

/// What the model knows of one acknowledged message.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Known {
    queue: usize,
    queue_offset: u64,
    body: String,
    end_offset: u64,
}

#[derive(Default)]
struct Model {
    /// Acknowledged messages since the last crash, plus what the last recovery found,
    /// by physical offset.
    log: BTreeMap<u64, Known>,
    /// Every body ever sent, acknowledged or not.
    attempted: HashSet<String>,
    next_id: u64,
}

impl Model {
    fn body(&mut self, len: usize) -> String {
        self.next_id += 1;
        let mut body = format!("v{:08}-", self.next_id);
        body.extend(std::iter::repeat_n('x', len));
        self.attempted.insert(body.clone());
        body
    }

    fn acked(&mut self, queue: usize, body: String, r: &PutResult) {
        let known = Known {
            queue,
            queue_offset: r.queue_offset,
            body,
            end_offset: r.end_offset(),
        };
        if let Some(old) = self.log.insert(r.physical_offset, known) {
            panic!(
                "two acknowledged messages at offset {}: {old:?}",
                r.physical_offset
            );
        }
    }
}

fn message(queue: usize, body: &str) -> NewMessage {
    let (topic, queue_id) = QUEUES[queue];
    NewMessage::new(topic, queue_id, body.as_bytes().to_vec())
}

type Check = Result<(), String>;

/// Reads a whole queue and checks every unit against the message it points at.
async fn read_queue(
    store: &MessageStore<SimDisk>,
    queue: usize,
    model: &Model,
) -> Result<Vec<(u64, Known)>, String> {
    let (topic, queue_id) = QUEUES[queue];
    let mut out = Vec::new();
    let mut offset = store.min_offset(topic, queue_id);
    loop {
        let got = store
            .get_messages(topic, queue_id, offset, 16, |_| true)
            .await
            .map_err(|e| format!("read {topic}:{queue_id}@{offset}: {e}"))?;
        match got.status {
            GetStatus::Found => {}
            GetStatus::OffsetOverflowOne | GetStatus::NoMessageInQueue => return Ok(out),
            other => {
                return Err(format!(
                    "read {topic}:{queue_id}@{offset}: unexpected {other:?}"
                ))
            }
        }
        for (i, bytes) in got.messages.iter().enumerate() {
            let m = MessageRef::parse_checked(bytes)
                .map_err(|e| format!("bad message in {topic}:{queue_id}: {e}"))?;
            let position = offset + i as u64;
            if m.topic() != topic || m.queue_id() != queue_id {
                return Err(format!(
                    "{topic}:{queue_id}@{position} resolves to {}:{}",
                    m.topic(),
                    m.queue_id()
                ));
            }
            if m.queue_offset() != position {
                return Err(format!(
                    "{topic}:{queue_id}@{position} resolves to queue offset {}",
                    m.queue_offset()
                ));
            }
            let body = String::from_utf8_lossy(m.body()).into_owned();
            if !model.attempted.contains(&body) {
                return Err(format!(
                    "unexpected message {body:?} at {topic}:{queue_id}@{position}"
                ));
            }
            let end_offset = m.physical_offset() + bytes.len() as u64;
            out.push((
                m.physical_offset(),
                Known {
                    queue,
                    queue_offset: position,
                    body,
                    end_offset,
                },
            ));
        }
        if got.messages.len() as u64 != got.next_offset - offset {
            return Err(format!(
                "{topic}:{queue_id}: a read without a filter skipped units"
            ));
        }
        offset = got.next_offset;
    }
}

async fn read_all(
    store: &MessageStore<SimDisk>,
    model: &Model,
) -> Result<BTreeMap<u64, Known>, String> {
    let mut all = BTreeMap::new();
    for queue in 0..QUEUES.len() {
        all.extend(read_queue(store, queue, model).await?);
    }
    Ok(all)
}

/// Reopens after a crash. An open that fails on an injected EIO is a crash too (the
/// process exits); after three such failures the disk stops failing, as a replaced disk
/// would, and the open must succeed.
async fn reopen(disk: &SimDisk, flush: FlushMode) -> Result<MessageStore<SimDisk>, String> {
    for attempt in 0.. {
        match MessageStore::open(disk.clone(), store_config(flush)).await {
            Ok(store) => return Ok(store),
            Err(store::StoreError::Io { .. }) if attempt < 3 => disk.crash(),
            Err(store::StoreError::Io { .. }) if attempt == 3 => {
                disk.crash();
                disk.set_sync_eio_probability(0.0);
            }
            Err(e) => {
                return Err(format!(
                    "reopen after crash failed (attempt {attempt}): {e}"
                ))
            }
        }
    }
    unreachable!()
}

/// Crash, reopen and check the recovered log against the model.
async fn crash_and_check(
    store: MessageStore<SimDisk>,
    disk: &SimDisk,
    flush: FlushMode,
    model: &mut Model,
) -> Result<MessageStore<SimDisk>, String> {
    let flushed = store.flushed_offset();
    drop(store);
    disk.crash();
    let store = reopen(disk, flush).await?;
    let recovered = read_all(&store, model).await?;
    for (offset, known) in &model.log {
        let must_survive = flush == FlushMode::Sync || known.end_offset <= flushed;
        match recovered.get(offset) {
            Some(found) if found == known => {}
            Some(found) => {
                return Err(format!(
                    "offset {offset}: acknowledged {known:?}, recovered {found:?}"
                ))
            }
            None if must_survive => {
                return Err(format!(
                    "lost durable message {known:?} at {offset} (flushed offset was {flushed})"
                ))
            }
            None => {
                if let Some((max, _)) = recovered.last_key_value() {
                    if offset < max {
                        return Err(format!("recovered log is not a prefix: {known:?} at {offset} missing below {max}"));
                    }
                }
            }
        }
    }
    model.log = recovered;
    Ok(store)
}

async fn run_case(case: Case, plant_bug: bool) -> Check {
    let disk = SimDisk::new(SimDiskConfig {
        torn_tail_probability: if case.torn { 0.5 } else { 0.0 },
        torn_garbage_probability: 0.5,
        latency_us: Some(5..50),
        ..SimDiskConfig::reliable(case.seed)
    });
    let mut store = MessageStore::open(disk.clone(), store_config(case.flush))
        .await
        .map_err(|e| e.to_string())?;
    let mut model = Model::default();
    #[cfg(feature = "fault-injection")]
    if plant_bug {
        store.plant_ack_before_fsync();
    }
    #[cfg(not(feature = "fault-injection"))]
    let _ = plant_bug;
    for op in case.ops {
        match op {
            Op::Put {
                queue,
                batch,
                body_len,
            } => {
                let bodies: Vec<String> = (0..batch).map(|_| model.body(body_len)).collect();
                let messages = bodies.iter().map(|b| message(queue, b)).collect();
                if let Ok(results) = store.put_messages(messages).await {
                    for (body, r) in bodies.into_iter().zip(&results) {
                        model.acked(queue, body, r);
                    }
                }
            }
            Op::Concurrent {
                count,
                crash_after_us,
            } => {
                let shared = Arc::new(store);
                let acked = Arc::new(Mutex::new(Vec::new()));
                let mut tasks = Vec::new();
                for i in 0..count {
                    let queue = i % QUEUES.len();
                    let body = model.body(i * 10);
                    let (shared, acked) = (shared.clone(), acked.clone());
                    tasks.push(tokio::spawn(async move {
                        if let Ok(r) = shared.put_message(message(queue, &body)).await {
                            acked.lock().unwrap().push((queue, body, r));
                        }
                    }));
                }
                if let Some(us) = crash_after_us {
                    tokio::time::sleep(Duration::from_micros(us)).await;
                    for t in &tasks {
                        t.abort();
                    }
                }
                for t in tasks {
                    let _ = t.await;
                }
                for (queue, body, r) in acked.lock().unwrap().drain(..) {
                    model.acked(queue, body, &r);
                }
                store = Arc::try_unwrap(shared)
                    .map_err(|_| "a put task still holds the store".to_string())?;
                if crash_after_us.is_some() {
                    store = crash_and_check(store, &disk, case.flush, &mut model).await?;
                }
            }
            Op::Read { queue } => {
                let found: BTreeMap<u64, Known> = read_queue(&store, queue, &model)
                    .await?
                    .into_iter()
                    .collect();
                for (offset, known) in model.log.iter().filter(|(_, k)| k.queue == queue) {
                    if found.get(offset) != Some(known) {
                        return Err(format!(
                            "acknowledged {known:?} at {offset} not readable: {:?}",
                            found.get(offset)
                        ));
                    }
                }
            }
            Op::Sleep { ms } => tokio::time::sleep(Duration::from_millis(ms)).await,
            Op::Crash => store = crash_and_check(store, &disk, case.flush, &mut model).await?,
            Op::SetEio { on } => disk.set_sync_eio_probability(if on { 0.3 } else { 0.0 }),
        }
    }
    crash_and_check(store, &disk, case.flush, &mut model)
        .await
        .map(drop)
}

/// Runs one case on a fresh runtime: madsim's in the simulated build, a paused
/// current-thread tokio runtime otherwise. Both are deterministic for the case.
fn run_on_runtime(case: Case, plant_bug: bool) -> Check {
    #[cfg(madsim)]
    {
        let runtime =
            madsim::runtime::Runtime::with_seed_and_config(case.seed, madsim::Config::default());
        runtime.block_on(run_case(case, plant_bug))
    }
    #[cfg(not(madsim))]
    {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .unwrap();
        runtime.block_on(run_case(case, plant_bug))
    }
}

/// `RUST_LOG=store=info` shows what recovery did in each case.
fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// The proptest seed: `PROPTEST_RNG_SEED` to replay, else a fresh one, printed. Read
/// outside any runtime (the cases run on their own runtimes), so the wall clock is fine
/// here even in the simulated build.
fn seed() -> u64 {
    std::env::var("PROPTEST_RNG_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64)
        })
}

fn runner(cases: u32, seed: u64) -> TestRunner {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(cases);
    TestRunner::new(Config {
        cases,
        rng_seed: RngSeed::Fixed(seed),
        failure_persistence: None,
        max_shrink_iters: 2_000,
        ..Config::default()
    })
}

#[test]
fn model_matches_store_across_crashes() {
    init_tracing();
    let seed = seed();
    let build = if cfg!(madsim) {
        "RUSTFLAGS=\"--cfg madsim\" CARGO_TARGET_DIR=target/sim "
    } else {
        ""
    };
    println!("model test seed {seed}; replay: PROPTEST_RNG_SEED={seed} {build}cargo test -p store --test model");
    let result = runner(1_000, seed).run(&case_strategy(false), |case| {
        run_on_runtime(case, false).map_err(TestCaseError::fail)
    });
    if let Err(e) = result {
        panic!("{e}\nreplay: PROPTEST_RNG_SEED={seed} {build}cargo test -p store --test model");
    }
}

/// The planted bug (acknowledging a sync append before its fsync) must be caught.
#[cfg(feature = "fault-injection")]
#[test]
fn model_catches_ack_before_fsync() {
    let seed = seed();
    println!("planted-bug test seed {seed}; replay: PROPTEST_RNG_SEED={seed} cargo test -p store --features fault-injection --test model");
    let result = runner(200, seed).run(&case_strategy(true), |case| {
        run_on_runtime(case, true).map_err(TestCaseError::fail)
    });
    let Err(e) = result else {
        panic!("200 cases did not catch a store that acknowledges before fsync")
    };
    let text = e.to_string();
    assert!(
        text.contains("lost durable message"),
        "caught, but not as a lost message: {text}"
    );
    println!(
        "caught as expected: {}",
        text.lines().next().unwrap_or_default()
    );
}
