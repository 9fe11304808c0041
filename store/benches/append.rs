//! `cargo bench -p store`: MessageStore append throughput and latency on real files.
//!
//! 1 KiB messages, `flush = async` and `flush = sync`, with 1, 16 and 256 concurrent
//! appenders, each with one append in flight. Reports msg/s, MiB/s, ack latency
//! percentiles from an HDR histogram, and CommitLog messages per fsync (group commit).
//!
//! Knobs: `BENCH_SECONDS` (per configuration, default 5), `BENCH_DIR` (data directory,
//! default the target's tmp dir, so it is on the build disk rather than a tmpfs).

use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use proto::NewMessage;
use store::disk::{HeldSyncDisk, StdDisk};
use store::{FlushMode, MessageStore, StoreConfig};

struct Outcome {
    flush: FlushMode,
    appenders: usize,
    messages: u64,
    elapsed: Duration,
    latency_us: Histogram<u64>,
    fsyncs: u64,
}

const BODY_SIZE: usize = 1024;

async fn run(
    flush: FlushMode,
    appenders: usize,
    duration: Duration,
    dir: &std::path::Path,
) -> Outcome {
    let _ = std::fs::remove_dir_all(dir);
    // Counts the CommitLog's fsyncs (syncs are never held here).
    let disk = HeldSyncDisk::new(StdDisk::new(dir).unwrap());
    let config = StoreConfig {
        flush_disk_type: flush,
        ..StoreConfig::default()
    };
    let store = Arc::new(MessageStore::open(disk.clone(), config).await.unwrap());
    let body = bytes::Bytes::from(vec![b'x'; BODY_SIZE]);
    let deadline = Instant::now() + duration;
    let start = Instant::now();
    let syncs_before = disk.syncs("commitlog/");
    let mut tasks = Vec::new();
    for appender in 0..appenders {
        let (store, body) = (store.clone(), body.clone());
        tasks.push(tokio::spawn(async move {
            let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
            let mut count = 0u64;
            while Instant::now() < deadline {
                let message = NewMessage::new("BenchTopic", (appender % 8) as u32, body.clone());
                let sent = Instant::now();
                store.put_message(message).await.unwrap();
                histogram
                    .record(sent.elapsed().as_micros().max(1) as u64)
                    .unwrap();
                count += 1;
            }
            (count, histogram)
        }));
    }
    let mut latency_us = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
    let mut messages = 0;
    for task in tasks {
        let (count, histogram) = task.await.unwrap();
        messages += count;
        latency_us.add(histogram).unwrap();
    }
    let elapsed = start.elapsed();
    let fsyncs = disk.syncs("commitlog/") - syncs_before;
    Arc::try_unwrap(store)
        .ok()
        .expect("appenders finished")
        .shutdown()
        .await
        .unwrap();
    Outcome {
        flush,
        appenders,
        messages,
        elapsed,
        latency_us,
        fsyncs,
    }
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs this quickly.
    let quick = !std::env::args().any(|a| a == "--bench");
    let seconds: f64 = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if quick { 0.2 } else { 5.0 });
    let base = std::env::var("BENCH_DIR")
        .map(std::path::PathBuf::from)
        .or_else(|_| std::env::var("CARGO_TARGET_TMPDIR").map(std::path::PathBuf::from))
        .unwrap_or_else(|_| std::env::temp_dir())
        .join("raftmq-store-bench");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    println!(
        "store append bench: {BODY_SIZE} B bodies, {seconds} s per row, data in {}",
        base.display()
    );
    println!(
        "| flush | appenders | msg/s | MiB/s | p50 µs | p99 µs | p99.9 µs | max µs | msgs/fsync |\n|---|---|---|---|---|---|---|---|---|"
    );
    for flush in [FlushMode::Async, FlushMode::Sync] {
        for appenders in [1, 16, 256] {
            let o = runtime.block_on(run(
                flush,
                appenders,
                Duration::from_secs_f64(seconds),
                &base,
            ));
            let secs = o.elapsed.as_secs_f64();
            let rate = o.messages as f64 / secs;
            let mib = rate * BODY_SIZE as f64 / (1024.0 * 1024.0);
            let per_fsync = if o.fsyncs == 0 {
                f64::NAN
            } else {
                o.messages as f64 / o.fsyncs as f64
            };
            let h = &o.latency_us;
            println!(
                "| {:?} | {} | {:.0} | {:.1} | {} | {} | {} | {} | {:.1} |",
                o.flush,
                o.appenders,
                rate,
                mib,
                h.value_at_quantile(0.5),
                h.value_at_quantile(0.99),
                h.value_at_quantile(0.999),
                h.max(),
                per_fsync
            );
        }
    }
    let _ = std::fs::remove_dir_all(&base);
}
