//! `raftmq send`.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use client::{
    ClientConfig, LocalTransactionState, Message, MessageExt, Producer, TransactionProducer,
};

/// A transaction's decision, as the CLI takes it.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Commit,
    Rollback,
    Unknown,
}

impl From<Decision> for LocalTransactionState {
    fn from(d: Decision) -> Self {
        match d {
            Decision::Commit => LocalTransactionState::Commit,
            Decision::Rollback => LocalTransactionState::Rollback,
            Decision::Unknown => LocalTransactionState::Unknown,
        }
    }
}

#[derive(clap::Args, Debug)]
pub struct SendArgs {
    #[arg(long, short = 't')]
    topic: String,
    /// Message body (with `--count`, each gets a `-N` suffix).
    #[arg(long, short = 'b')]
    body: String,
    #[arg(long)]
    tags: Option<String>,
    /// Keys, space-separated.
    #[arg(long, short = 'k')]
    keys: Option<String>,
    #[arg(long, short = 'c', default_value_t = 1)]
    count: u64,
    #[arg(long, default_value = "raftmq-cli-producer")]
    group: String,
    /// Send without waiting for acknowledgements.
    #[arg(long)]
    oneway: bool,
    /// Deliver after RocketMQ delay level N (1 = 1 s, 2 = 5 s, 3 = 10 s, 4 = 30 s, 5 = 1 min,
    /// ... 18 = 2 h), as a producer's `setDelayTimeLevel`.
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..=18))]
    delay_level: Option<u8>,
    /// Deliver this many milliseconds after the broker takes the message in (a RocketMQ
    /// 5 timer message, `TIMER_DELAY_MS`; up to the broker's `timer_max_delay_sec`).
    #[arg(long, conflicts_with = "delay_level")]
    timer_ms: Option<u64>,
    /// Send as a transaction whose local transaction decides this: the message is
    /// delivered only once committed (`unknown` leaves it to the broker's check-back).
    #[arg(long, value_enum, conflicts_with_all = ["oneway", "delay_level", "timer_ms"])]
    transaction: Option<Decision>,
    /// How this producer answers the broker's checks of its undecided transactions.
    #[arg(long, value_enum, default_value = "commit", requires = "transaction")]
    check: Decision,
    /// With `--transaction unknown`: stay this long to answer the broker's checks
    /// (the first comes after the broker's `transaction.timeout_ms`, 6 s by default,
    /// at its next check round). 0: leave them to another producer of the group.
    #[arg(long, default_value_t = 60_000, requires = "transaction")]
    linger_ms: u64,
}

pub async fn run(args: SendArgs, config: ClientConfig) -> anyhow::Result<()> {
    if let Some(decision) = args.transaction {
        return run_transactions(&args, decision, config).await;
    }
    let producer = Producer::new(args.group.clone(), config);
    for i in 0..args.count {
        let mut message = message(&args, i);
        if let Some(level) = args.delay_level {
            message = message.with_property("DELAY", level.to_string());
        }
        if let Some(ms) = args.timer_ms {
            message = message.with_timer_delay_ms(ms);
        }
        if args.oneway {
            producer.send_oneway(message).await?;
            continue;
        }
        let r = producer.send(message).await?;
        println!("{}", describe(&r));
    }
    Ok(())
}

/// Message `i` of `count`: the body gets a `-i` suffix when there are several.
fn message(args: &SendArgs, i: u64) -> Message {
    let body = if args.count == 1 {
        args.body.clone()
    } else {
        format!("{}-{i}", args.body)
    };
    let mut message = Message::new(args.topic.clone(), body);
    if let Some(tags) = &args.tags {
        message = message.with_tags(tags.clone());
    }
    if let Some(keys) = &args.keys {
        message = message.with_keys(
            keys.split(' ')
                .filter(|k| !k.is_empty())
                .map(str::to_string),
        );
    }
    message
}

fn describe(r: &client::SendResult) -> String {
    format!(
        "{:?} msgId={} offsetMsgId={} queue={}:{}:{} queueOffset={}",
        r.status,
        r.msg_id,
        r.offset_msg_id,
        r.queue.broker_name,
        r.queue.topic,
        r.queue.queue_id,
        r.queue_offset
    )
}

/// `--transaction`: each message a transaction decided as asked; undecided ones are
/// answered with `--check` when the broker checks them, for up to `--linger-ms`.
async fn run_transactions(
    args: &SendArgs,
    decision: Decision,
    config: ClientConfig,
) -> anyhow::Result<()> {
    let undecided: Arc<Mutex<BTreeSet<String>>> = Arc::default();
    let answer = LocalTransactionState::from(args.check);
    let checked = undecided.clone();
    let checker = move |m: &MessageExt| {
        println!("checked msgId={} -> {answer:?}", m.msg_id);
        if answer != LocalTransactionState::Unknown {
            checked
                .lock()
                .expect("undecided poisoned")
                .remove(&m.msg_id);
        }
        answer
    };
    let producer = TransactionProducer::start(args.group.clone(), config, checker)?;
    for i in 0..args.count {
        let r = producer
            .send_in_transaction(message(args, i), |_, _| async move { decision.into() })
            .await?;
        println!("{} transaction={:?}", describe(&r.send), r.state);
        if r.state == LocalTransactionState::Unknown {
            undecided
                .lock()
                .expect("undecided poisoned")
                .insert(r.send.msg_id.clone());
        }
    }
    let deadline = tokio::time::Instant::now() + Duration::from_millis(args.linger_ms);
    while !undecided.lock().expect("undecided poisoned").is_empty()
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let left = undecided.lock().expect("undecided poisoned").len();
    if left > 0 {
        println!("{left} transaction(s) still undecided: another producer of group {} answers their checks", args.group);
    }
    producer.shutdown().await;
    Ok(())
}
