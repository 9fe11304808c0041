//! `raftmq send`.

use client::{ClientConfig, Message, Producer};

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
}

pub async fn run(args: SendArgs, config: ClientConfig) -> anyhow::Result<()> {
    let producer = Producer::new(args.group.clone(), config);
    for i in 0..args.count {
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
        if let Some(level) = args.delay_level {
            message = message.with_property("DELAY", level.to_string());
        }
        if args.oneway {
            producer.send_oneway(message).await?;
            continue;
        }
        let r = producer.send(message).await?;
        println!(
            "{:?} msgId={} offsetMsgId={} queue={}:{}:{} queueOffset={}",
            r.status,
            r.msg_id,
            r.offset_msg_id,
            r.queue.broker_name,
            r.queue.topic,
            r.queue.queue_id,
            r.queue_offset
        );
    }
    Ok(())
}
