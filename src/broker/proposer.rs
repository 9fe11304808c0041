//! The master's proposer: packs concurrent sends into Raft entries.
//!
//! openraft 0.9's `RaftCore` appends each client write and waits for that append to be
//! flushed before it takes the next one, so with one message per entry a `flush = sync`
//! group fsyncs once per message whatever the concurrency (3.8k msg/s with 256 sends in
//! flight on the development machine). The proposer keeps one entry at a time in that
//! append: while it is being written (and synced), the sends that arrive wait here, and
//! the next entry carries all of them — one append, one fsync and one replication round
//! for the lot, as RocketMQ's group commit does for a single broker. Each message keeps
//! its own CommitLog record (see `store::record`), so nothing downstream changes.
//!
//! A caller's messages stay together and in order in one entry unless they alone exceed
//! what an entry may hold (a segment, see `MessageStore::entry_size_max`, and one
//! AppendEntries request, `raft::transport::APPEND_ENTRIES_BYTES_MAX`); then they go in
//! consecutive entries proposed in order.

use std::ops::Range;
use std::time::Duration;

use bytes::Bytes;
use futures::future::{BoxFuture, Shared};
use futures::FutureExt;
use openraft::error::{ClientWriteError, RaftError};
use openraft::Raft;
use raft::log_store::{LogStore, TicketError, TicketResult};
use raft::types::{GroupRaft, GroupRequest, GroupResponse};
use store::Disk;
use tokio::sync::{mpsc, oneshot};

use super::write::WriteError;

/// Bytes of messages the proposer gathers for one entry before proposing it anyway.
const ENTRY_BYTES_SOFT_MAX: u64 = 1 << 20;

/// Where the master's own log put an entry's messages.
pub(super) type Landed = Shared<BoxFuture<'static, TicketResult>>;
/// The entry's fate in the group: committed and applied, or why not.
pub(super) type Committed = Shared<BoxFuture<'static, Result<GroupResponse, WriteError>>>;

/// A caller's messages within one proposed entry.
#[derive(Clone)]
pub(super) struct Part {
    /// Where the caller's messages sit among the entry's.
    pub range: Range<usize>,
    pub landed: Landed,
    pub committed: Committed,
}

/// One caller's messages, waiting for an entry.
struct Waiting {
    messages: Vec<Bytes>,
    reply: oneshot::Sender<Vec<Part>>,
}

/// The handle sends go through; the task stops when it is dropped.
pub(super) struct Proposer {
    tx: mpsc::UnboundedSender<Waiting>,
}

impl Proposer {
    /// Starts the proposing task. `entry_bytes_max` is the hard limit per entry
    /// (records included); `pace_timeout` bounds how long an entry that never lands
    /// holds the next one back.
    pub(super) fn start<D: Disk>(
        raft: Raft<GroupRaft>,
        log: LogStore<D>,
        entry_bytes_max: u64,
        pace_timeout: Duration,
    ) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(rx, raft, log, entry_bytes_max, pace_timeout));
        Proposer { tx }
    }

    /// Queues `messages` (stored layout, offsets zero) for the next entry; returns the
    /// entries they went into, in order, once proposed.
    pub(super) async fn propose(&self, messages: Vec<Bytes>) -> Result<Vec<Part>, WriteError> {
        let stopped = || WriteError::Stopped {
            what: "the proposer",
        };
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Waiting { messages, reply })
            .map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())
    }
}

fn record_bytes(message: &Bytes) -> u64 {
    store::record::entry_size([message.len()])
}

/// Where one caller's messages went: (entry number, range in that entry), in order.
type Placement = Vec<(usize, Range<usize>)>;

/// Splits a round of callers' messages into entries of at most `hard_max` record bytes,
/// keeping order. Returns the entries and, per caller, its parts as
/// (entry number, range in that entry).
fn pack(round: &[&[Bytes]], hard_max: u64) -> (Vec<Vec<Bytes>>, Vec<Placement>) {
    let mut entries: Vec<Vec<Bytes>> = Vec::new();
    let mut entry_bytes = 0u64;
    let mut parts = Vec::with_capacity(round.len());
    for messages in round {
        let mut mine: Placement = Vec::new();
        // A caller's messages that fit in one entry go in one entry: they commit (or
        // are lost in a failover) together. A transaction's commit and its op record
        // rely on that.
        let total: u64 = messages.iter().map(record_bytes).sum();
        if total <= hard_max
            && entries.last().is_some_and(|e| !e.is_empty())
            && entry_bytes + total > hard_max
        {
            entries.push(Vec::new());
            entry_bytes = 0;
        }
        for message in messages.iter() {
            let size = record_bytes(message);
            let full = entries
                .last()
                .is_none_or(|e| !e.is_empty() && entry_bytes + size > hard_max);
            if full {
                entries.push(Vec::new());
                entry_bytes = 0;
            }
            let entry = entries.len() - 1;
            let at = entries[entry].len();
            entries[entry].push(message.clone());
            entry_bytes += size;
            match mine.last_mut() {
                Some((e, range)) if *e == entry => range.end = at + 1,
                _ => mine.push((entry, at..at + 1)),
            }
        }
        parts.push(mine);
    }
    (entries, parts)
}

async fn run<D: Disk>(
    mut rx: mpsc::UnboundedReceiver<Waiting>,
    raft: Raft<GroupRaft>,
    log: LogStore<D>,
    entry_bytes_max: u64,
    pace_timeout: Duration,
) {
    let soft_max = ENTRY_BYTES_SOFT_MAX.min(entry_bytes_max);
    while let Some(first) = rx.recv().await {
        let mut bytes: u64 = first.messages.iter().map(record_bytes).sum();
        let mut round = vec![first];
        while bytes < soft_max {
            let Ok(more) = rx.try_recv() else { break };
            bytes += more.messages.iter().map(record_bytes).sum::<u64>();
            round.push(more);
        }
        let callers: Vec<&[Bytes]> = round.iter().map(|w| w.messages.as_slice()).collect();
        let (entries, parts) = pack(&callers, entry_bytes_max);
        tracing::debug!(
            callers = round.len(),
            messages = entries.iter().map(Vec::len).sum::<usize>(),
            entries = entries.len(),
            "proposing sends"
        );
        let mut writes = Vec::with_capacity(entries.len());
        let mut proposed: Vec<(Landed, Committed)> = Vec::with_capacity(entries.len());
        for messages in entries {
            let (ticket, landed) = log.ticket();
            let landed: Landed = landed
                .map(|r| r.unwrap_or(Err(TicketError::Dropped)))
                .boxed()
                .shared();
            let (tx, committed) = oneshot::channel();
            let committed: Committed = committed
                .map(|r| r.unwrap_or(Err(TicketError::Dropped.into())))
                .boxed()
                .shared();
            proposed.push((landed, committed));
            let (raft, log) = (raft.clone(), log.clone());
            writes.push(async move {
                let request = GroupRequest::Messages {
                    messages,
                    ticket: Some(ticket),
                };
                let result = match raft.client_write(request).await {
                    Ok(response) => Ok(response.data),
                    Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_))) => {
                        log.cancel_ticket(ticket, TicketError::NotMaster);
                        Err(WriteError::NotMaster { master: None })
                    }
                    Err(source) => {
                        log.cancel_ticket(ticket, TicketError::Refused(source.to_string()));
                        Err(WriteError::Raft {
                            what: "Raft refused the write".to_string(),
                            source: Box::new(source),
                        })
                    }
                };
                let _ = tx.send(result);
            });
        }
        // One task proposes the round's entries: they enter openraft's queue in the order
        // `join_all` first polls them, so a caller's consecutive entries keep their order.
        tokio::spawn(futures::future::join_all(writes));
        for (waiting, mine) in round.into_iter().zip(parts) {
            let mine = mine
                .into_iter()
                .map(|(entry, range)| Part {
                    range,
                    landed: proposed[entry].0.clone(),
                    committed: proposed[entry].1.clone(),
                })
                .collect();
            let _ = waiting.reply.send(mine);
        }
        // Pace: the next entry is proposed once this one is in the log (synced, with
        // `flush = sync`), gathering every send that arrived meanwhile.
        // (A round of callers with no messages proposed nothing.)
        if let Some((last, _)) = proposed.last() {
            let _ = tokio::time::timeout(pace_timeout, last.clone()).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn messages(sizes: &[usize]) -> Vec<Bytes> {
        sizes.iter().map(|&n| Bytes::from(vec![0u8; n])).collect()
    }

    #[test]
    fn packs_callers_whole_and_in_order() {
        let h = store::record::RECORD_HEADER_SIZE;
        let owned = [messages(&[100, 100]), messages(&[100]), messages(&[100; 3])];
        let round: Vec<&[Bytes]> = owned.iter().map(Vec::as_slice).collect();
        let (entries, parts) = pack(&round, 10_000);
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].len(), 6);
        assert_eq!(
            parts,
            vec![vec![(0, 0..2)], vec![(0, 2..3)], vec![(0, 3..6)]]
        );
        // A hard limit of three records: callers split across entries, in order.
        let (entries, parts) = pack(&round, 3 * (100 + h) as u64);
        assert_eq!(entries.iter().map(Vec::len).collect::<Vec<_>>(), vec![3, 3]);
        assert_eq!(
            parts,
            vec![vec![(0, 0..2)], vec![(0, 2..3)], vec![(1, 0..3)]]
        );
        // A caller that fits in an entry is not split to fill the one before.
        let owned = [messages(&[100, 100]), messages(&[100, 100])];
        let round: Vec<&[Bytes]> = owned.iter().map(Vec::as_slice).collect();
        let (entries, parts) = pack(&round, 3 * (100 + h) as u64);
        assert_eq!(entries.iter().map(Vec::len).collect::<Vec<_>>(), vec![2, 2]);
        assert_eq!(parts, vec![vec![(0, 0..2)], vec![(1, 0..2)]]);
        // A message alone over the limit still gets an entry (the store rejects it).
        let (entries, _) = pack(&[&messages(&[500, 500])], 10);
        assert_eq!(entries.len(), 2);
    }
}
