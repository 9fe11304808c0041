//! Compaction: a replica deletes the oldest part of its log on demand, as disk pressure
//! would, so that a follower that lacked those entries must catch up by snapshot and log
//! (the snapshot boundary the issue asks the simulator to hit).
//!
//! Retention normally keeps what a consumer has not read yet only by age; here nothing
//! is deleted that some consumer of the workload has not received, so the checkers can
//! still demand every acknowledged message. What goes is recorded first, message by
//! message, as `compact` events: the checker counts them as having survived (they were
//! committed on the replica when it deleted them) and compares replicas only above them.

use std::collections::BTreeSet;

use history::history::{QueueRef, Type, F};
use proto::MessageRef;
use store::{MessageStore, SimDisk};

use crate::workload::{Recorder, BROADCAST_GROUP, GROUP, QUEUES, TOPICS};

/// The consumer groups of the workload: each must have received what goes.
const PARTIES: [&str; 2] = [GROUP, BROADCAST_GROUP];

/// Compacts `store` (replica `replica` of broker group `broker`) below what every
/// consumer has received and every other queue still holds. Returns the CommitLog
/// offset it compacted below; nothing to compact is an error that says why.
pub async fn compact(
    store: &MessageStore<SimDisk>,
    broker: &str,
    replica: &str,
    recorder: &Recorder,
) -> Result<u64, String> {
    let err = |e: store::StoreError| format!("compacting {replica}: {e}");
    // By value, not position: in the async modes a lost tail's positions are reused.
    let delivered: Vec<BTreeSet<String>> = recorder.with(|h| {
        PARTIES
            .iter()
            .map(|party| {
                h.events()
                    .iter()
                    .filter(|e| e.f == F::Deliver && e.kind == Type::Ok)
                    .filter(|e| e.group.as_deref() == Some(*party))
                    .filter(|e| e.queue.as_ref().is_some_and(|q| q.broker == broker))
                    .map(|e| e.value.clone())
                    .collect()
            })
            .collect()
    });
    // Only committed (so applied) entries may go.
    let mut floor = (store.committed_offset(), "the committed end".to_string());
    // Per workload queue, the messages before its first one some party lacks.
    let mut received: Vec<(QueueRef, u64, u64, String)> = Vec::new();
    for topic in TOPICS {
        for queue_id in 0..QUEUES {
            let queue = QueueRef {
                topic: topic.to_string(),
                broker: broker.to_string(),
                queue_id,
            };
            let mut offset = store.min_offset(topic, queue_id);
            'queue: loop {
                let got = store
                    .get_messages(topic, queue_id, offset, 64, |_| true)
                    .await
                    .map_err(err)?;
                if got.messages.is_empty() {
                    // Nothing readable here, but the queue may go on: its oldest units
                    // can point below a log start an earlier compaction moved. Stopping
                    // here would let what follows be deleted without being recorded.
                    if got.next_offset > offset {
                        tracing::info!(%replica, %topic, queue_id, offset, next = got.next_offset,
                            status = ?got.status, "compaction: nothing readable; going on");
                        offset = got.next_offset;
                        continue;
                    }
                    break;
                }
                for bytes in &got.messages {
                    let m = MessageRef::parse(bytes).map_err(|e| format!("{replica}: {e}"))?;
                    let value = String::from_utf8_lossy(m.body()).into_owned();
                    if !delivered.iter().all(|d| d.contains(&value)) {
                        let why = format!("{value} not yet received by every consumer");
                        floor = floor.min((m.physical_offset(), why));
                        break 'queue;
                    }
                    received.push((queue.clone(), m.queue_offset(), m.physical_offset(), value));
                }
                offset = got.next_offset;
            }
        }
    }
    // Retry and delay-level queues are consumed by the broker itself: all kept.
    for (topic, queue_id) in store.queues() {
        if !TOPICS.contains(&topic.as_str()) {
            let min = store.min_offset(&topic, queue_id);
            if let Some(at) = physical_offset(store, &topic, queue_id, min)
                .await
                .map_err(err)?
            {
                floor = floor.min((at, format!("{topic}:{queue_id}, the broker's own")));
            }
        }
    }
    let segment = store.config().commitlog_segment_size;
    let (floor, why) = floor;
    let new_min = floor - floor % segment;
    if new_min <= store.commitlog_min_offset() {
        return Err(format!("nothing to compact below {floor}: {why}"));
    }
    // What goes, recorded before it goes.
    for (queue, offset, _, value) in received.into_iter().filter(|r| r.2 < new_min) {
        recorder.record(|h, t| h.compact(t, replica, &value, queue, offset));
    }
    store.compact_below(new_min).await.map_err(err)?;
    Ok(new_min)
}

/// CommitLog offset of the committed message at `offset` in a queue, if there is one.
async fn physical_offset(
    store: &MessageStore<SimDisk>,
    topic: &str,
    queue_id: u32,
    offset: u64,
) -> store::Result<Option<u64>> {
    let got = store
        .get_messages(topic, queue_id, offset, 1, |_| true)
        .await?;
    Ok(got
        .messages
        .first()
        .and_then(|b| MessageRef::parse(b).ok())
        .map(|m| m.physical_offset()))
}
