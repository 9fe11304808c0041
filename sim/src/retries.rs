//! The failing consumer group: a concurrent clustering push consumer of the plain topic
//! ([`RETRY_GROUP`]) whose listener fails some deliveries, decided by the value alone:
//! about one in ten fails on its first delivery only, one in thirty on every delivery.
//! A failed message goes back to the broker (CONSUMER_SEND_MSG_BACK) and returns through
//! `%RETRY%group` after its delay level (2 s, then 3 s: the simulated brokers'
//! `message_delay_level`); one that fails every time reaches `%DLQ%group` after
//! [`RETRY_MAX_TIMES`] retries. Each failure is a `reject` event, each delivery a
//! `deliver` event at the queue it was pulled from (the retry queue for a retried copy).

use std::net::IpAddr;
use std::time::Duration;

use client::send_back::{dlq_topic, retry_topic, RETRY_TOPIC};
use client::{ConsumeFromWhere, ConsumeResult, MessageExt, PushConsumerBuilder};
use history::history::QueueRef;
use madsim::runtime::{Handle, NodeHandle};

use crate::workload::{client_config, Recorder, PLAIN_TOPIC};

/// The failing consumer group.
pub const RETRY_GROUP: &str = "SimRetryGroup";
/// Send-backs before a message goes to the group's dead-letter topic.
pub const RETRY_MAX_TIMES: i32 = 2;

/// `%DLQ%SimRetryGroup`, which the final reads drain too.
pub fn dead_letter_topic() -> String {
    dlq_topic(RETRY_GROUP)
}

/// Whether the listener fails `value` on a delivery reconsumed `reconsume_times` times.
fn fails(value: &str, reconsume_times: i32) -> bool {
    // FNV-1a: stable across builds, unlike std's hasher.
    let hash = value.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    match hash % 30 {
        0 => true,
        1..=3 => reconsume_times == 0,
        _ => false,
    }
}

/// Where `m` was pulled from: its group's retry queue for a retried copy (the consumer
/// shows such a copy under its first topic).
fn pulled_from(m: &MessageExt) -> QueueRef {
    let topic = if m.properties.contains_key(RETRY_TOPIC) {
        retry_topic(RETRY_GROUP)
    } else {
        m.topic.clone()
    };
    QueueRef {
        topic,
        broker: m.broker_name.clone(),
        queue_id: m.queue_id,
    }
}

/// The failing consumer on its own host, for the whole run.
pub fn spawn_retry_consumer(
    handle: &Handle,
    ip: IpAddr,
    process: String,
    namesrv: String,
    recorder: Recorder,
) -> NodeHandle {
    let node = handle.create_node().name(process.clone()).ip(ip).build();
    node.spawn(async move {
        let name = process.clone();
        let listener = move |messages: &[MessageExt]| {
            let m = &messages[0];
            let value = String::from_utf8_lossy(&m.body).into_owned();
            let failed = fails(&value, m.reconsume_times);
            recorder.record(|h, t| {
                let queue = pulled_from(m);
                h.deliver(t, &name, RETRY_GROUP, &value, queue.clone(), m.queue_offset);
                if failed {
                    h.reject(t, &name, RETRY_GROUP, &value, queue, m.queue_offset);
                }
            });
            if failed {
                ConsumeResult::Later
            } else {
                ConsumeResult::Success
            }
        };
        let consumer = loop {
            let builder = PushConsumerBuilder::new(RETRY_GROUP, client_config(&namesrv, &process))
                .subscribe(PLAIN_TOPIC, "*")
                .consume_from(ConsumeFromWhere::FirstOffset)
                .consume_batch_max(1)
                .max_reconsume_times(RETRY_MAX_TIMES)
                .intervals(Duration::from_secs(2), Duration::from_secs(1))
                .heartbeat_interval(Duration::from_secs(1));
            match builder.start(listener.clone()).await {
                Ok(c) => break c,
                Err(e) => {
                    tracing::info!(%process, error = %e, "retry consumer start failed; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        };
        std::future::pending::<()>().await;
        drop(consumer);
    });
    node
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn some_values_fail_once_and_a_few_always() {
        let values: Vec<String> = (0..3_000).map(|i| format!("p1.0-{i}")).collect();
        let once = values
            .iter()
            .filter(|v| fails(v, 0) && !fails(v, 1))
            .count();
        let always = values.iter().filter(|v| fails(v, 0) && fails(v, 5)).count();
        assert!((200..400).contains(&once), "{once}");
        assert!((50..150).contains(&always), "{always}");
    }
}
