//! Pieces every simulated scenario uses: a name server host, a reader host that reads
//! every queue of a topic back into the history, and the client's queues and sends in
//! the history's terms.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use client::{ClientConfig, PullConsumer, PullStatus};
use history::history::{History, QueueRef, SendOutcome};
use madsim::runtime::Handle;

/// A client's queue as the history names it.
pub fn queue_ref(q: &client::MessageQueue) -> QueueRef {
    QueueRef {
        topic: q.topic.clone(),
        broker: q.broker_name.clone(),
        queue_id: q.queue_id,
    }
}

/// Sends `value` to `topic` with itself as its key: to queue `k % n` of the route when
/// `queue_choice` is `Some(k)` (ordered), round-robin otherwise.
pub(crate) async fn send_value(
    producer: &client::Producer,
    topic: &str,
    value: &str,
    queue_choice: Option<usize>,
) -> client::Result<client::SendResult> {
    let message = client::Message::new(topic, value.to_string()).with_keys([value.to_string()]);
    match queue_choice {
        Some(k) => {
            producer
                .send_with_selector(message, |qs| k % qs.len())
                .await
        }
        None => producer.send(message).await,
    }
}

/// How a send ended, in the history's terms: acknowledged at its queue and offset by the
/// master that stored it (the store host of its offset msg id), or unknown.
pub(crate) fn send_outcome(result: &client::Result<client::SendResult>) -> SendOutcome {
    match result {
        Ok(r) if r.status == client::SendStatus::Ok => SendOutcome::Acked {
            queue: queue_ref(&r.queue),
            queue_offset: r.queue_offset,
            node: r
                .offset_msg_id
                .parse::<proto::MessageId>()
                .ok()
                .map(|id| id.store_host.to_string()),
        },
        Ok(r) => SendOutcome::Unknown(format!("{:?}", r.status)),
        Err(e) => SendOutcome::Unknown(e.to_string()),
    }
}

/// Starts a name server on its own host at `addr`.
pub fn start_namesrv(handle: &Handle, addr: SocketAddr) {
    handle
        .create_node()
        .name("namesrv")
        .ip(addr.ip())
        .build()
        .spawn(async move {
            let (_addr, tasks) = namesrv::start(addr).await.unwrap();
            for t in tasks {
                let _ = t.await;
            }
        });
}

/// After `wait`, reads every message of every queue of `topic` from a fresh host at
/// `ip`, through the name server at `namesrv`, and records each as a read by `process`.
pub async fn read_back(
    handle: &Handle,
    ip: IpAddr,
    namesrv: &'static str,
    topic: &'static str,
    wait: Duration,
    process: &str,
    history: &mut History,
) {
    let read = handle
        .create_node()
        .name("reader")
        .ip(ip)
        .build()
        .spawn(async move {
            tokio::time::sleep(wait).await;
            let consumer = PullConsumer::new("Reader", ClientConfig::with_namesrv(namesrv));
            let mut reads = Vec::new();
            for q in consumer.fetch_queues(topic).await.unwrap() {
                let mut offset = 0;
                loop {
                    let r = consumer.pull(&q, "*", offset, 64).await.unwrap();
                    if r.status != PullStatus::Found {
                        break;
                    }
                    for m in &r.messages {
                        let body = String::from_utf8(m.body.to_vec()).unwrap();
                        reads.push((body, queue_ref(&q), m.queue_offset));
                    }
                    offset = r.next_begin_offset;
                }
            }
            reads
        })
        .await
        .unwrap();
    for (body, queue, offset) in read {
        history.read(now_ms(), process, &body, queue, offset);
    }
}

pub fn now_ms() -> i64 {
    proto::clock::now_ms()
}
