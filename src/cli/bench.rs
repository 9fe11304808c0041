//! `raftmq bench produce|consume`, like RocketMQ's `benchmark/producer.sh` but with
//! percentiles. It speaks the remoting protocol, so it can be pointed at any
//! RocketMQ-protocol name server for side-by-side runs.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use client::{
    Admin, ClientConfig, ConsumeFromWhere, ConsumeResult, Message, Producer, PushConsumerBuilder,
    TransactionProducer,
};
use hdrhistogram::Histogram;
use proto::remoting::codes::request;
use proto::remoting::RemotingCommand;

#[derive(clap::Subcommand, Debug)]
pub enum BenchCommand {
    /// Send messages from many tasks, each with one send in flight.
    Produce(ProduceArgs),
    /// Consume a topic from its first offset with a fresh group.
    Consume(ConsumeArgs),
    /// Kill a replicated group's master repeatedly (in this process) and measure how
    /// long until a send is acknowledged again.
    Failover(super::failover::FailoverArgs),
}

#[derive(clap::Args, Debug, Clone)]
pub struct ProduceArgs {
    #[arg(long, short = 't', default_value = "BenchTopic")]
    pub topic: String,
    /// Body size in bytes.
    #[arg(long, short = 's', default_value_t = 1024)]
    pub size: usize,
    /// Sends in flight at once (one task each).
    #[arg(long, short = 'w', default_value_t = 1)]
    pub concurrency: usize,
    /// Stop after this many messages.
    #[arg(long, short = 'c')]
    pub count: Option<u64>,
    /// Stop after this many seconds (default 10 when no count is given).
    #[arg(long, short = 'd')]
    pub duration_secs: Option<f64>,
    /// Queues to create the topic with, when it does not exist.
    #[arg(long, default_value_t = 8)]
    pub queues: u32,
    /// Also print the rate and latency of each interval of this many seconds, as
    /// RocketMQ's benchmark does every second: shows when a tail comes (a stall, a
    /// failover) rather than only that it came.
    #[arg(long)]
    pub interval_secs: Option<f64>,
    /// Send delayed messages of this RocketMQ delay level (1 = 1 s ... 18 = 2 h): what a
    /// delayed send costs next to a plain one.
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..=18), conflicts_with = "tx")]
    pub delay_level: Option<u8>,
    /// Send timer messages due this many milliseconds after each send
    /// (`TIMER_DELAY_MS`): what a timer send costs next to a plain one.
    #[arg(long, conflicts_with_all = ["tx", "delay_level"])]
    pub timer_ms: Option<u64>,
    /// Send each message as a transaction that commits at once (a half message, then
    /// END_TRANSACTION): the latency is the half message's send, the commit goes oneway.
    #[arg(long)]
    pub tx: bool,
}

/// What the bench sends with: a plain producer, or a transactional one.
enum Sender {
    Plain(Producer),
    Transactional(Arc<TransactionProducer>),
}

impl Sender {
    async fn send(&self, message: Message) -> client::Result<()> {
        match self {
            Sender::Plain(p) => p.send(message).await.map(|_| ()),
            Sender::Transactional(p) => p
                .send_in_transaction(message, |_, _| async {
                    client::LocalTransactionState::Commit
                })
                .await
                .map(|_| ()),
        }
    }
}

/// Acknowledgement latencies: of the whole run and of the current interval.
struct Latencies {
    total: Histogram<u64>,
    interval: Option<Histogram<u64>>,
}

impl Latencies {
    fn record(&mut self, us: u64) {
        self.total.saturating_record(us);
        if let Some(h) = &mut self.interval {
            h.saturating_record(us);
        }
    }
}

/// Prints one line per interval, from the interval histogram (then emptied).
async fn report_intervals(latency: Arc<Mutex<Latencies>>, every: Duration, started: Instant) {
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    let mut last = started;
    loop {
        tick.tick().await;
        let now = Instant::now();
        let window = {
            let mut l = latency.lock().expect("histogram poisoned");
            let Some(h) = l.interval.as_mut() else {
                return;
            };
            let copy = h.clone();
            h.reset();
            copy
        };
        let secs = (now - last).as_secs_f64();
        last = now;
        println!(
            "  [{:>6.1} s] {:>8.0} msg/s  p50 {} p99 {} max {} µs",
            (now - started).as_secs_f64(),
            window.len() as f64 / secs,
            window.value_at_quantile(0.5),
            window.value_at_quantile(0.99),
            window.max()
        );
    }
}

#[derive(clap::Args, Debug, Clone)]
pub struct ConsumeArgs {
    #[arg(long, short = 't', default_value = "BenchTopic")]
    pub topic: String,
    /// Stop after this many messages.
    #[arg(long, short = 'c', default_value_t = 100_000)]
    pub count: u64,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 120)]
    pub timeout_secs: u64,
}

pub async fn run(cmd: BenchCommand, config: ClientConfig) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::Produce(args) => {
            let report = produce(args, config).await?;
            println!("{report}");
            Ok(())
        }
        BenchCommand::Consume(args) => consume(args, config).await,
        BenchCommand::Failover(args) => super::failover::run(args).await,
    }
}

/// What a produce run measured.
pub struct ProduceReport {
    pub args: ProduceArgs,
    pub mode: String,
    pub sent: u64,
    pub failed: u64,
    pub elapsed: Duration,
    pub latency_us: Histogram<u64>,
}

impl std::fmt::Display for ProduceReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secs = self.elapsed.as_secs_f64();
        let rate = self.sent as f64 / secs;
        let mib = rate * self.args.size as f64 / (1024.0 * 1024.0);
        let h = &self.latency_us;
        let under_1ms = if h.is_empty() {
            0.0
        } else {
            100.0 * h.count_between(0, 999) as f64 / h.len() as f64
        };
        writeln!(
            f,
            "produce: {} B x {} in flight, broker {}",
            self.args.size, self.args.concurrency, self.mode
        )?;
        writeln!(
            f,
            "  sent {} ({} failed) in {:.2} s: {:.0} msg/s, {:.1} MiB/s",
            self.sent, self.failed, secs, rate, mib
        )?;
        write!(
            f,
            "  ack latency µs: p50 {} p99 {} p99.9 {} max {}; {:.2} % under 1 ms",
            h.value_at_quantile(0.5),
            h.value_at_quantile(0.99),
            h.value_at_quantile(0.999),
            h.max(),
            under_1ms
        )
    }
}

/// The broker's durability and replication mode, as it reports them.
async fn broker_mode(admin: &Admin, config: &ClientConfig, topic: &str) -> String {
    let Ok(route) = admin.topic_route(topic).await else {
        return "unknown".into();
    };
    let Some(addr) = route.broker_datas.iter().find_map(|b| b.master_addr()) else {
        return "unknown".into();
    };
    let instance = client::instance::ClientInstance::new(config.clone(), None);
    let Ok(response) = instance
        .invoke_ok(addr, RemotingCommand::request(request::GET_BROKER_CONFIG))
        .await
    else {
        return "unknown".into();
    };
    let text = String::from_utf8_lossy(&response.body).into_owned();
    let get = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key).and_then(|v| v.strip_prefix('=')))
            .unwrap_or("?")
            .to_string()
    };
    format!(
        "flushDiskType={} brokerRole={} replication={}",
        get("flushDiskType"),
        get("brokerRole"),
        get("replication")
    )
}

pub async fn produce(args: ProduceArgs, config: ClientConfig) -> anyhow::Result<ProduceReport> {
    let admin = Admin::new(config.clone());
    if admin.topic_route(&args.topic).await.is_err() {
        admin
            .create_topic(&args.topic, args.queues, None, false)
            .await?;
    }
    let mode = broker_mode(&admin, &config, &args.topic).await;
    let producer = Arc::new(if args.tx {
        Sender::Transactional(TransactionProducer::start(
            "raftmq-bench-producer",
            config,
            |_: &client::MessageExt| client::LocalTransactionState::Commit,
        )?)
    } else {
        Sender::Plain(Producer::new("raftmq-bench-producer", config))
    });
    let body = Bytes::from(vec![b'x'; args.size]);
    let (delay_level, timer_ms) = (args.delay_level, args.timer_ms);
    let message = move |topic: &str, body: &Bytes| {
        let m = Message::new(topic.to_string(), body.clone());
        match (delay_level, timer_ms) {
            (Some(level), _) => m.with_property("DELAY", level.to_string()),
            (None, Some(ms)) => m.with_timer_delay_ms(ms),
            (None, None) => m,
        }
    };
    // Warm the route and connections.
    producer.send(message(&args.topic, &body)).await?;
    let duration = args.duration_secs.or(if args.count.is_some() {
        None
    } else {
        Some(10.0)
    });
    // One histogram for all senders, made before the clock starts. (One per sender made
    // 256 histograms of 430 KB each: every record missed the cache, ≈ 5 % of the
    // bench's CPU; an uncontended lock is cheaper.)
    let histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let interval = args
        .interval_secs
        .filter(|s| *s > 0.0)
        .map(Duration::from_secs_f64);
    let latency = Arc::new(Mutex::new(Latencies {
        interval: interval.map(|_| histogram.clone()),
        total: histogram,
    }));
    let deadline = duration.map(|s| Instant::now() + Duration::from_secs_f64(s));
    let remaining = Arc::new(AtomicU64::new(args.count.unwrap_or(u64::MAX)));
    let failed = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let reporter =
        interval.map(|every| tokio::spawn(report_intervals(latency.clone(), every, started)));
    let mut tasks = Vec::new();
    for _ in 0..args.concurrency.max(1) {
        let (producer, body, topic) = (producer.clone(), body.clone(), args.topic.clone());
        let (remaining, failed, latency) = (remaining.clone(), failed.clone(), latency.clone());
        tasks.push(tokio::spawn(async move {
            // The clock read that ends one send starts the next.
            let mut now = Instant::now();
            loop {
                if deadline.is_some_and(|d| now >= d) {
                    break;
                }
                if remaining
                    .fetch_update(Ordering::AcqRel, Ordering::Acquire, |r| r.checked_sub(1))
                    .is_err()
                {
                    break;
                }
                let sent = now;
                let result = producer.send(message(&topic, &body)).await;
                now = Instant::now();
                match result {
                    Ok(_) => latency
                        .lock()
                        .expect("histogram poisoned")
                        .record((now - sent).as_micros().max(1) as u64),
                    Err(_) => {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    for t in tasks {
        t.await?;
    }
    let elapsed = started.elapsed();
    if let Some(reporter) = reporter {
        reporter.abort();
    }
    let latency_us = latency.lock().expect("histogram poisoned").total.clone();
    Ok(ProduceReport {
        sent: latency_us.len(),
        failed: failed.load(Ordering::Relaxed),
        elapsed,
        latency_us,
        mode,
        args,
    })
}

async fn consume(args: ConsumeArgs, config: ClientConfig) -> anyhow::Result<()> {
    let group = format!("raftmq-bench-consumer-{}", proto::clock::now_ms());
    let count = Arc::new(AtomicU64::new(0));
    let bytes = Arc::new(AtomicU64::new(0));
    let done = Arc::new(tokio::sync::Notify::new());
    let (c, b, d, target) = (count.clone(), bytes.clone(), done.clone(), args.count);
    let started = Instant::now();
    let consumer = PushConsumerBuilder::new(group, config)
        .subscribe(args.topic.clone(), "*")
        .consume_from(ConsumeFromWhere::FirstOffset)
        .consume_batch_max(32)
        .start(move |msgs| {
            b.fetch_add(
                msgs.iter().map(|m| m.body.len() as u64).sum(),
                Ordering::Relaxed,
            );
            if c.fetch_add(msgs.len() as u64, Ordering::Relaxed) + msgs.len() as u64 >= target {
                d.notify_one();
            }
            ConsumeResult::Success
        })
        .await?;
    let _ = tokio::time::timeout(Duration::from_secs(args.timeout_secs), done.notified()).await;
    let secs = started.elapsed().as_secs_f64();
    consumer.shutdown().await;
    let n = count.load(Ordering::Relaxed);
    println!(
        "consume: {n} messages in {secs:.2} s: {:.0} msg/s, {:.1} MiB/s",
        n as f64 / secs,
        bytes.load(Ordering::Relaxed) as f64 / secs / (1024.0 * 1024.0)
    );
    Ok(())
}
