//! `raftmq consume`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use client::{ClientConfig, ConsumeFromWhere, ConsumeResult, MessageModel, PushConsumerBuilder};

#[derive(clap::Args, Debug)]
pub struct ConsumeArgs {
    #[arg(long, short = 't')]
    topic: String,
    #[arg(long, short = 'g')]
    group: String,
    /// Tag expression: `*`, `TagA`, `TagA || TagB`.
    #[arg(long, short = 'e', default_value = "*")]
    expression: String,
    /// Start a new group at the queue's last offset instead of its first.
    #[arg(long)]
    from_last: bool,
    /// Broadcasting: every instance gets every message.
    #[arg(long)]
    broadcast: bool,
    /// Consume each queue in order, holding the broker's queue lock.
    #[arg(long)]
    orderly: bool,
    /// Exit after this many messages.
    #[arg(long)]
    count: Option<u64>,
}

pub async fn run(args: ConsumeArgs, config: ClientConfig) -> anyhow::Result<()> {
    let seen = Arc::new(AtomicU64::new(0));
    let done = Arc::new(tokio::sync::Notify::new());
    let (counter, notify, limit) = (seen.clone(), done.clone(), args.count);
    let consumer = PushConsumerBuilder::new(args.group.clone(), config)
        .subscribe(args.topic.clone(), &args.expression)
        .message_model(if args.broadcast {
            MessageModel::Broadcasting
        } else {
            MessageModel::Clustering
        })
        .consume_from(if args.from_last {
            ConsumeFromWhere::LastOffset
        } else {
            ConsumeFromWhere::FirstOffset
        })
        .orderly(args.orderly)
        .start(move |messages| {
            for m in messages {
                println!(
                    "{}:{}@{} msgId={} offsetMsgId={} tags={} keys={} body={}",
                    m.topic,
                    m.queue_id,
                    m.queue_offset,
                    m.msg_id,
                    m.offset_msg_id,
                    m.tags.as_deref().unwrap_or("-"),
                    m.keys.join(" "),
                    String::from_utf8_lossy(&m.body)
                );
                let n = counter.fetch_add(1, Ordering::Relaxed) + 1;
                if limit.is_some_and(|l| n >= l) {
                    notify.notify_one();
                }
            }
            ConsumeResult::Success
        })
        .await?;
    eprintln!(
        "consuming {} as {} (Ctrl-C stops)",
        args.topic,
        consumer.client_id()
    );
    tokio::select! {
        _ = done.notified() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    consumer.shutdown().await;
    eprintln!("consumed {} messages", seen.load(Ordering::Relaxed));
    Ok(())
}
