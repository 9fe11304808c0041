//! Compaction: a replica deletes the oldest part of its log on demand, as disk pressure
//! would, so that a follower that lacked those entries must catch up by snapshot and log
//! (the snapshot boundary: a follower that installs a snapshot and goes on from it).
//!
//! Retention normally keeps what a consumer has not read yet only by age; here nothing
//! is deleted that some consumer of the workload has not received, so the checkers can
//! still demand every acknowledged message. What goes is recorded first, message by
//! message, as `compact` events: the checker counts them as having survived (they were
//! committed on the replica when it deleted them) and compares replicas only above them.

use std::collections::BTreeSet;

use history::history::{QueueRef, Type, F};
use proto::MessageRef;
use raftmq::broker::Broker;
use store::meta::MemMetaStore;
use store::{MessageStore, SimDisk};

use crate::retries::{dead_letter_topic, RETRY_GROUP};
use crate::workload::{Recorder, BROADCAST_GROUP, GROUP, PLAIN_TOPIC, QUEUES, TOPICS};
use client::send_back::retry_topic;

/// The consumer groups of the workload and their topics: each must have received what
/// goes of its topics.
const PARTIES: [(&str, &[&str]); 3] = [
    (GROUP, &TOPICS),
    (BROADCAST_GROUP, &TOPICS),
    (RETRY_GROUP, &[PLAIN_TOPIC]),
];

/// Compacts the store of `broker` (replica `replica` of broker group `group`) below
/// what every consumer has received and every other queue still holds. Returns the
/// CommitLog offset it compacted below; nothing to compact is an error that says why.
pub async fn compact(
    broker: &Broker<SimDisk, MemMetaStore>,
    group: &str,
    replica: &str,
    recorder: &Recorder,
) -> Result<u64, String> {
    let store = broker.store();
    let err = |e: store::StoreError| format!("compacting {replica}: {e}");
    // By value, not position: in the async modes a lost tail's positions are reused.
    let delivered: Vec<BTreeSet<String>> = recorder.with(|h| {
        PARTIES
            .iter()
            .map(|(party, _)| {
                h.events()
                    .iter()
                    .filter(|e| e.f == F::Deliver && e.kind == Type::Ok)
                    .filter(|e| e.group.as_deref() == Some(*party))
                    .filter(|e| e.queue.as_ref().is_some_and(|q| q.broker == group))
                    .map(|e| e.value.clone())
                    .collect()
            })
            .collect()
    });
    // A retried copy by position: its value was delivered before, from its first queue.
    let retry = retry_topic(RETRY_GROUP);
    // With its value: in the async modes a lost copy's position is reused.
    let retried: BTreeSet<(u32, u64, String)> = recorder.with(|h| {
        h.events()
            .iter()
            .filter(|e| e.f == F::Deliver && e.group.as_deref() == Some(RETRY_GROUP))
            .filter_map(|e| {
                let q = e.queue.as_ref()?;
                let at = (q.queue_id, e.queue_offset?, e.value.clone());
                (q.topic == retry && q.broker == group).then_some(at)
            })
            .collect()
    });
    let dead_letters = dead_letter_topic();
    // Whether every consumer owed the message at `queue_offset` of `topic` has it.
    let received = |topic: &str, queue_id: u32, queue_offset: u64, value: &str| {
        if topic == retry {
            return retried.contains(&(queue_id, queue_offset, value.to_string()));
        }
        if topic == dead_letters {
            return true; // Nobody consumes them; the final reads look for them.
        }
        let mut owed = PARTIES
            .iter()
            .zip(&delivered)
            .filter(|((_, topics), _)| topics.contains(&topic));
        owed.all(|(_, d)| d.contains(value))
    };
    // Only committed (so applied) entries may go.
    let mut floor = (store.committed_offset(), "the committed end".to_string());
    // Per queue, the messages before its first one some consumer lacks.
    let mut compacted: Vec<(QueueRef, u64, u64, String)> = Vec::new();
    let workload = TOPICS
        .iter()
        .flat_map(|topic| (0..QUEUES).map(move |q| (topic.to_string(), q)));
    let queues: Vec<(String, u32)> = workload
        .chain([(retry.clone(), 0), (dead_letters.clone(), 0)])
        .collect();
    for (topic, queue_id) in &queues {
        let (topic, queue_id) = (topic.as_str(), *queue_id);
        let queue = QueueRef {
            topic: topic.to_string(),
            broker: group.to_string(),
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
                if !received(topic, queue_id, m.queue_offset(), &value) {
                    let why = format!("{value} not yet received by every consumer");
                    floor = floor.min((m.physical_offset(), why));
                    break 'queue;
                }
                compacted.push((queue.clone(), m.queue_offset(), m.physical_offset(), value));
            }
            offset = got.next_offset;
        }
    }
    // The broker's own queues (delay levels, transactions) from where it has read them;
    // other groups' queues whole.
    for (topic, queue_id) in store.queues() {
        if !queues.iter().any(|(t, _)| *t == topic) {
            let min = store.min_offset(&topic, queue_id);
            let consumed = broker.system_queue_consumed(&topic, queue_id);
            let from = consumed.map_or(min, |c| c.max(min));
            if let Some(at) = physical_offset(store, &topic, queue_id, from)
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
    for (queue, offset, _, value) in compacted.into_iter().filter(|r| r.2 < new_min) {
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
