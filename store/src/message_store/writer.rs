//! The writer task: batches waiting writes into one CommitLog append and dispatches
//! them to ConsumeQueues and the key index.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use proto::message::StoreFields;
use proto::{MessageId, NewMessage};
use tokio::sync::{mpsc, oneshot};

use super::dispatch::{DispatchBatch, MessageView, StoredAt};
use super::{PutResult, Shared, WriteRequest, Written};
use crate::commit_log::RecordPayload;
use crate::disk::Disk;
use crate::error::{Result, StoreError};
use proto::clock;

/// A message with the fields the writer assigns before knowing its offset.
struct Pending<'a> {
    message: &'a NewMessage,
    queue_offset: u64,
    store_timestamp_ms: i64,
    store_host: SocketAddr,
    size: usize,
}

impl RecordPayload for Pending<'_> {
    fn payload_size(&self) -> usize {
        self.size
    }

    fn encode_payload(&self, payload_offset: u64, out: &mut Vec<u8>) {
        let fields = StoreFields {
            queue_offset: self.queue_offset,
            physical_offset: payload_offset,
            store_timestamp_ms: self.store_timestamp_ms,
            store_host: self.store_host,
        };
        let size = self
            .message
            .encode_into(&fields, out)
            .expect("validated before it reached the writer");
        assert_eq!(size, self.size);
    }

    fn store_timestamp_ms(&self) -> i64 {
        self.store_timestamp_ms
    }
}

/// Marks the dispatch failed if the writer stops (a panic, or its task aborted) with an
/// acknowledged batch not dispatched, so readers in `settled` stop waiting for it.
struct StopGuard<D: Disk>(Arc<Shared<D>>);

impl<D: Disk> Drop for StopGuard<D> {
    fn drop(&mut self) {
        let shared = &self.0;
        if *shared.dispatched.borrow() < shared.acked.load(Ordering::Acquire) {
            dispatch_stopped(
                shared,
                &StoreError::Unavailable("the writer stopped during a dispatch".into()),
            );
        }
    }
}

pub(super) async fn run<D: Disk>(shared: Arc<Shared<D>>, mut rx: mpsc::Receiver<WriteRequest>) {
    let _guard = StopGuard(shared.clone());
    let mut batch: Vec<WriteRequest> = Vec::new();
    // A batch's messages and replies, apart (the replies go before the dispatch, which
    // still reads the messages); kept across batches, so no allocation per batch.
    let mut messages: Vec<Vec<NewMessage>> = Vec::new();
    let mut replies: Vec<Reply> = Vec::new();
    while let Some(first) = rx.recv().await {
        let limit = shared.config.write_batch_size_max;
        let mut bytes = body_bytes(&first);
        batch.push(first);
        take_queued(&mut rx, &mut batch, &mut bytes, limit);
        // Yield once before writing, so that writers woken together (the requests of one
        // network read) share this append: one CommitLog write and one ConsumeQueue
        // write per queue for all of them, instead of one each.
        if bytes < limit {
            tokio::task::yield_now().await;
            take_queued(&mut rx, &mut batch, &mut bytes, limit);
        }
        if let Some(reason) = shared.failure() {
            for request in batch.drain(..) {
                let _ = request
                    .reply
                    .send(Err(StoreError::Unavailable(reason.clone())));
            }
            continue;
        }
        for request in batch.drain(..) {
            messages.push(request.messages);
            replies.push(request.reply);
        }
        if let Err(e) = write_batch(&shared, &messages, &mut replies).await {
            shared.fail(&e);
            for reply in replies.drain(..) {
                let _ = reply.send(Err(StoreError::Unavailable(e.to_string())));
            }
        }
        messages.clear();
    }
}

fn body_bytes(request: &WriteRequest) -> usize {
    request.messages.iter().map(|m| m.body.len()).sum()
}

/// Moves queued requests into `batch` until their bodies reach `limit` bytes.
fn take_queued(
    rx: &mut mpsc::Receiver<WriteRequest>,
    batch: &mut Vec<WriteRequest>,
    bytes: &mut usize,
    limit: usize,
) {
    while *bytes < limit {
        let Ok(next) = rx.try_recv() else { break };
        *bytes += body_bytes(&next);
        batch.push(next);
    }
}

type Reply = oneshot::Sender<Result<Written>>;

/// Appends every request's messages in one CommitLog append, acknowledges them, then
/// dispatches them to ConsumeQueues and the key index.
///
/// The acknowledgement goes before the dispatch (as RocketMQ's reput runs after the
/// append): at one request in flight the reply is on its way while the dispatch's two
/// writes run, instead of after them (measured ≈ 15 % more messages per second with
/// busy polling). The CommitLog alone is what recovery needs; ConsumeQueues and the index
/// are rebuilt from it. Readers wait for the dispatch (`MessageStore::settled`), so an
/// acknowledged message is readable at once all the same.
///
/// An error before the acknowledgement is returned with `replies` left for the caller to
/// answer; one in the dispatch fails the store (`dispatch_stopped`).
async fn write_batch<D: Disk>(
    shared: &Shared<D>,
    batch: &[Vec<NewMessage>],
    replies: &mut Vec<Reply>,
) -> Result<()> {
    let store_timestamp_ms = clock::now_ms();
    let store_host = shared.config.store_host;
    // Keyed by borrowed topics: no String per message on this path.
    let mut next_queue_offset: HashMap<(&str, u32), u64> = HashMap::new();
    let mut pending = Vec::with_capacity(batch.iter().map(|r| r.len()).sum());
    for message in batch.iter().flatten() {
        let key = (message.topic.as_str(), message.queue_id);
        let next = next_queue_offset.entry(key).or_insert_with(|| {
            shared
                .queue_or_create(&message.topic, message.queue_id)
                .max_offset()
        });
        pending.push(Pending {
            message,
            queue_offset: *next,
            store_timestamp_ms,
            store_host,
            size: message.encoded_size(store_host),
        });
        *next += 1;
    }
    let appended = shared.commit_log.append(&pending).await?;
    {
        let mut results = pending
            .iter()
            .zip(&appended.records)
            .map(|(p, r)| PutResult {
                msg_id: MessageId {
                    store_host,
                    physical_offset: r.payload_offset,
                },
                physical_offset: r.payload_offset,
                size: r.payload_size,
                queue_id: p.message.queue_id,
                queue_offset: p.queue_offset,
                store_timestamp_ms,
            });
        shared.acked.store(appended.end_offset, Ordering::Release);
        for (messages, reply) in batch.iter().zip(replies.drain(..)) {
            let written = Written {
                results: results.by_ref().take(messages.len()).collect(),
                end_offset: appended.end_offset,
            };
            let _ = reply.send(Ok(written));
        }
    }
    shared.flush_wakeup.notify_one();
    // Let the woken handlers queue their responses (and the connection writers send
    // them) before this task does the dispatch's writes.
    tokio::task::yield_now().await;
    if let Err(e) = dispatch(shared, &pending, &appended.records).await {
        // Acknowledged already: nothing to answer, but readers must not wait for it.
        dispatch_stopped(shared, &e);
        return Ok(());
    }
    shared.dispatched.send_replace(appended.end_offset);
    shared.notify_arrivals(next_queue_offset.keys().copied());
    Ok(())
}

/// An acknowledged batch will not be dispatched: fail the store (no more writes) and
/// wake the readers waiting in `settled`, which now answer `Unavailable`.
fn dispatch_stopped<D: Disk>(shared: &Shared<D>, error: &StoreError) {
    shared.fail(error);
    shared.dispatch_failed.store(true, Ordering::Release);
    shared.dispatched.send_modify(|_| {});
}

/// Writes the ConsumeQueue units and index entries of freshly appended messages.
async fn dispatch<D: Disk>(
    shared: &Shared<D>,
    pending: &[Pending<'_>],
    records: &[crate::commit_log::AppendedRecord],
) -> Result<()> {
    let mut batch = DispatchBatch::default();
    for (p, record) in pending.iter().zip(records) {
        let at = StoredAt {
            commitlog_offset: record.payload_offset,
            size: record.payload_size,
        };
        batch.add(&MessageView::of_new(p.message, p.store_timestamp_ms), at);
    }
    batch
        .write(
            |topic, queue_id| shared.queue_or_create(topic, queue_id),
            &shared.index,
        )
        .await
}
