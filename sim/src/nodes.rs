//! Pieces every simulated scenario uses: a name server host, a reader host that reads
//! every queue of a topic back into the history, and the history's queue references.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use client::{ClientConfig, PullConsumer, PullStatus};
use madsim::runtime::Handle;

use crate::history::{History, QueueRef};

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
                        reads.push((body, QueueRef::from(&q), m.queue_offset));
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
