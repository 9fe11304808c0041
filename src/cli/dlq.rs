//! `raftmq dlq`: a consumer group's dead letters (`%DLQ%group`), listed and resent.

use client::dead_letter::{self, origin_topic};
use client::{Admin, ClientConfig, MessageExt, Producer, PullConsumer};

#[derive(clap::Subcommand, Debug)]
pub enum DlqCommand {
    /// Print a group's dead letters: where they came from, how often they were
    /// consumed, and their body.
    List {
        #[arg(long, short = 'g')]
        group: String,
        /// Print at most this many.
        #[arg(long, default_value_t = 32)]
        max: usize,
    },
    /// Send dead letters again: by default to `%RETRY%group`, so that only this group
    /// consumes them again (showing their own topic, retries counted from zero); with
    /// `--to-topic`, to a topic every subscribed group reads. The dead letters stay.
    Resend {
        #[arg(long, short = 'g')]
        group: String,
        /// The dead letters to resend (msgId or offsetMsgId, as `dlq list` prints).
        #[arg(long = "msg-id", short = 'i', required_unless_present = "all")]
        ids: Vec<String>,
        /// Resend every dead letter of the group.
        #[arg(long, conflicts_with = "ids")]
        all: bool,
        /// Send the copies to this topic instead of the group's retry topic.
        #[arg(long)]
        to_topic: Option<String>,
    },
}

/// Dead letters read per command at most.
const READ_MAX: usize = 100_000;

pub async fn run(cmd: DlqCommand, config: ClientConfig) -> anyhow::Result<()> {
    let admin = Admin::new(config.clone());
    let reader = PullConsumer::new("raftmq-dlq-reader", config.clone());
    match cmd {
        DlqCommand::List { group, max } => {
            let letters = dead_letter::read(&admin, &reader, &group, max).await?;
            if letters.is_empty() {
                println!("no dead letters for group {group}");
            }
            for m in &letters {
                print_letter(m);
            }
        }
        DlqCommand::Resend {
            group,
            ids,
            all,
            to_topic,
        } => {
            let letters = dead_letter::read(&admin, &reader, &group, READ_MAX).await?;
            let chosen: Vec<&MessageExt> = letters
                .iter()
                .filter(|m| all || ids.iter().any(|id| is(m, id)))
                .collect();
            if let Some(missing) = ids.iter().find(|id| !letters.iter().any(|m| is(m, id))) {
                if letters.len() >= READ_MAX {
                    anyhow::bail!(
                        "no dead letter {missing} among the first {READ_MAX} of group {group}"
                    );
                }
                anyhow::bail!(
                    "no dead letter {missing} for group {group} (see raftmq dlq list -g {group})"
                );
            }
            if all && letters.len() >= READ_MAX {
                eprintln!("resending the first {READ_MAX} dead letters of {group}; run again for the rest");
            }
            let producer = Producer::new("raftmq-dlq-resend", config);
            for m in chosen {
                let copy = match &to_topic {
                    Some(topic) => dead_letter::copy_to_topic(m, topic),
                    None => dead_letter::copy_for_group(m, &group),
                };
                let to = copy.topic.clone();
                let sent = producer.send(copy).await?;
                println!(
                    "resent {} to {to} as msgId={} ({:?})",
                    m.msg_id, sent.msg_id, sent.status
                );
            }
        }
    }
    Ok(())
}

fn is(m: &MessageExt, id: &str) -> bool {
    m.msg_id.eq_ignore_ascii_case(id) || m.offset_msg_id.eq_ignore_ascii_case(id)
}

fn print_letter(m: &MessageExt) {
    println!(
        "{}:{}@{} msgId={} offsetMsgId={} from={} reconsumed={} stored={} tags={} keys={} body={}",
        m.topic,
        m.queue_id,
        m.queue_offset,
        m.msg_id,
        m.offset_msg_id,
        origin_topic(m),
        m.reconsume_times,
        m.store_timestamp_ms,
        m.tags.as_deref().unwrap_or("-"),
        m.keys.join(" "),
        String::from_utf8_lossy(&m.body)
    );
}
