//! openraft's log storage on the broker's CommitLog: the CommitLog *is* the Raft log, as
//! in RocketMQ's DLedger, so a message is written once per replica.
//!
//! Entry `i` is the CommitLog record with index `i + 1` (openraft counts from 0, where
//! `initialize` puts the first membership; the CommitLog from 1), whose header carries
//! the entry's log id: term, index, and the node id of the leader that created it
//! (openraft's leader id is `(term, node)`; the header has 16 bits for the node, so
//! replica ids are at most 65535). A message entry is one message record in RocketMQ's
//! layout per message it carries; any other entry is a control record holding the
//! bincode of its `EntryPayload`.
//!
//! The vote is kept durably in two slot files (`raft/vote-{0,1}`) and written before
//! `save_vote` returns. The committed log id is a hint (openraft re-learns it from the
//! leader), written with the vote and at most every `COMMITTED_SAVE_INTERVAL_MS`, in a
//! task of its own: openraft awaits `save_committed` in its core loop, and a slot write
//! waited for there (truncate, write, fdatasync: 10–50 ms on a loaded disk) stalled
//! the group's appends and commits once a second.
//!
//! Durability of appends follows the group's flush mode: with `flush = sync` openraft
//! hears that entries are flushed only after an fsync covers them (group-committed by the
//! store's flusher); with `flush = async` as soon as they are written, so a power loss
//! may take an acknowledged tail with it — the mode's documented trade.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{
    CommittedLeaderId, Entry, EntryPayload, LogId, OptionalSend, RaftLogReader, StorageError,
    StorageIOError, Vote,
};
use proto::message::{OFFSET_PHYSICAL_OFFSET, OFFSET_QUEUE_OFFSET};
use serde::{Deserialize, Serialize};
use store::slot_file::SlotFile;
use store::versioned;
use store::{Disk, FlushMode, LogPayload, LogPosition, LogRecord, MessageStore, PutResult};
use tokio::sync::{mpsc, oneshot};

use crate::background::BackgroundWrite;
use crate::entry_cache::EntryCache;
use crate::entry_codec;

use crate::types::{GroupRaft, GroupRequest};

const VOTE_SLOTS: SlotFile = SlotFile {
    names: ["raft/vote-0", "raft/vote-1"],
    magic: 0x524D_5156, // "RMQV"
};

/// The layout of the saved vote (see `store::versioned`).
const VOTE_LAYOUT_VERSION: u8 = 1;

/// How often a moving committed log id is written at most.
const COMMITTED_SAVE_INTERVAL_MS: i64 = 1_000;
/// Bytes of entries one replication read returns at most.
const REPLICATION_READ_BYTES_MAX: usize = 1 << 20;

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Persisted {
    vote: Option<Vote<u64>>,
    committed: Option<LogId<u64>>,
}

struct VoteState {
    persisted: Persisted,
    sequence: u64,
    committed_saved_at_ms: i64,
}

/// What happened to a ticketed entry's messages in the proposer's own log.
pub type TicketResult = Result<Vec<PutResult>, TicketError>;

/// Why a ticketed entry's messages are not in the proposer's own log. Cloned to every
/// caller whose messages shared the entry, so store and I/O errors are kept as text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TicketError {
    /// The proposer turned out not to be the leader; the entry was never appended.
    #[error("not the master")]
    NotMaster,
    /// The proposal was abandoned before the log answered (the proposer stopped).
    #[error("the proposal was dropped before the log answered")]
    Dropped,
    /// openraft refused the proposal for another reason.
    #[error("Raft refused the proposal: {0}")]
    Refused(String),
    /// Appending or flushing the entry failed.
    #[error("the log could not store the entry: {0}")]
    Storage(String),
}

/// A flush to report once the store is durable up to `end_offset`: openraft's callback
/// and the tickets of the appended messages.
struct PendingFlush {
    end_offset: u64,
    callback: LogFlushed<GroupRaft>,
    tickets: Vec<(oneshot::Sender<TicketResult>, Vec<PutResult>)>,
}

impl PendingFlush {
    /// Tells the tickets and openraft how the flush went.
    fn complete(self, result: Result<(), String>) {
        for (tx, puts) in self.tickets {
            let _ = tx.send(result.clone().map(|()| puts).map_err(TicketError::Storage));
        }
        self.callback.log_io_completed(result.map_err(io_error));
    }
}

/// The log storage of one replica. Clones share everything.
#[derive(Clone)]
pub struct LogStore<D: Disk> {
    store: Arc<MessageStore<D>>,
    disk: D,
    state: Arc<Mutex<VoteState>>,
    /// Flush completions, reported in append order by one task.
    flushed_tx: mpsc::UnboundedSender<PendingFlush>,
    flush: FlushMode,
    tickets: Arc<Mutex<Tickets>>,
    cache: Arc<Mutex<EntryCache>>,
    /// Held from taking the vote state to writing its slot, so writes of the vote and
    /// of the committed hint go to the slots in sequence order.
    persist_lock: Arc<tokio::sync::Mutex<()>>,
    /// The committed hint's write.
    committed_write: Arc<BackgroundWrite>,
}

/// What writing the vote slots needs, without the handle whose drop aborts a write.
struct VoteWriter<D: Disk> {
    disk: D,
    state: Arc<Mutex<VoteState>>,
    persist_lock: Arc<tokio::sync::Mutex<()>>,
}

impl<D: Disk> VoteWriter<D> {
    /// Writes the vote state as it is once the previous write is done.
    ///
    /// The sequence advances only when a write succeeds: the next write after a failed
    /// one goes to the same (damaged) slot again, never over the other slot, which
    /// holds the last vote written whole. (A failed write of the committed hint does
    /// not stop openraft, so a vote write can follow it.)
    async fn persist(&self) -> Result<(), io::Error> {
        let _in_order = self.persist_lock.lock().await;
        let (sequence, bytes) = {
            let state = self.state.lock().expect("vote state poisoned");
            let bytes =
                versioned::encode(VOTE_LAYOUT_VERSION, &state.persisted).map_err(io_error)?;
            (state.sequence + 1, bytes)
        };
        VOTE_SLOTS
            .store(&self.disk, sequence, &bytes)
            .await
            .map_err(io_error)?;
        self.state.lock().expect("vote state poisoned").sequence = sequence;
        Ok(())
    }
}

#[derive(Default)]
struct Tickets {
    next: u64,
    waiting: BTreeMap<u64, oneshot::Sender<TicketResult>>,
}

/// The log id of the entry stored as CommitLog record `at`.
pub(crate) fn log_id(at: LogPosition) -> LogId<u64> {
    assert!(at.index > 0, "CommitLog records count from 1");
    LogId::new(
        CommittedLeaderId::new(at.term, u64::from(at.leader)),
        at.index - 1,
    )
}

/// The CommitLog record index of Raft entry `index`.
fn record_index(index: u64) -> u64 {
    index + 1
}

fn io_error(e: impl ToString) -> io::Error {
    io::Error::other(e.to_string())
}

impl<D: Disk> LogStore<D> {
    /// Opens the log of `store` (opened with `MessageStore::open_replicated`) and the vote
    /// kept on `disk`.
    pub async fn open(store: Arc<MessageStore<D>>, disk: D) -> Result<Self, StorageError<u64>> {
        let loaded = VOTE_SLOTS
            .load(&disk)
            .await
            .map_err(|e| StorageIOError::read_vote(&io_error(e)))?;
        let (sequence, mut persisted) = match loaded {
            Some((sequence, bytes)) => {
                let persisted: Persisted =
                    versioned::decode_current("the vote", VOTE_LAYOUT_VERSION, &bytes)
                        .map_err(|e| StorageIOError::read_vote(&io_error(e)))?;
                (sequence, persisted)
            }
            None => (0, Persisted::default()),
        };
        // A restart forgets that the voted-for leader had won. openraft resumes
        // leadership in the saved term when it finds its own committed vote, but under
        // `flush = async` a power loss may have taken entries this leader appended and
        // replicated in that term: leading the same term again would hand out the same
        // log ids for different entries. An uncommitted vote makes it win a new
        // election (with a log a majority accepts as up to date) before it leads.
        if let Some(vote) = persisted.vote.filter(|v| v.is_committed()) {
            persisted.vote = Some(Vote::new(vote.leader_id().term, vote.leader_id().node_id));
        }
        let flush = store.config().flush_disk_type;
        let (flushed_tx, flushed_rx) = mpsc::unbounded_channel();
        tokio::spawn(report_flushes(store.clone(), flushed_rx));
        Ok(LogStore {
            store,
            disk,
            state: Arc::new(Mutex::new(VoteState {
                persisted,
                sequence,
                committed_saved_at_ms: i64::MIN,
            })),
            flushed_tx,
            flush,
            tickets: Arc::default(),
            cache: Arc::default(),
            persist_lock: Arc::default(),
            committed_write: Arc::default(),
        })
    }

    pub fn message_store(&self) -> &Arc<MessageStore<D>> {
        &self.store
    }

    /// A ticket for an entry of messages this replica proposes
    /// (`GroupRequest::Messages`): the receiver hears where they landed once this
    /// replica's log holds them (synced, with `flush = sync`), before any quorum has
    /// them.
    pub fn ticket(&self) -> (u64, oneshot::Receiver<TicketResult>) {
        let (tx, rx) = oneshot::channel();
        let mut tickets = self.tickets.lock().expect("tickets poisoned");
        tickets.next += 1;
        let id = tickets.next;
        tickets.waiting.insert(id, tx);
        (id, rx)
    }

    /// Ends a ticket whose proposal never reached the log (e.g. not the leader).
    pub fn cancel_ticket(&self, ticket: u64, reason: TicketError) {
        let tx = self
            .tickets
            .lock()
            .expect("tickets poisoned")
            .waiting
            .remove(&ticket);
        if let Some(tx) = tx {
            let _ = tx.send(Err(reason));
        }
    }

    fn vote_writer(&self) -> VoteWriter<D> {
        VoteWriter {
            disk: self.disk.clone(),
            state: self.state.clone(),
            persist_lock: self.persist_lock.clone(),
        }
    }

    async fn persist(&self) -> Result<(), io::Error> {
        self.vote_writer().persist().await
    }

    /// Writes the committed hint in its own task, unless one is being written (it
    /// takes the newest hint when it starts).
    fn persist_committed_soon(&self) {
        let writer = self.vote_writer();
        self.committed_write.start(async move {
            if let Err(e) = writer.persist().await {
                // Only a hint is lost; a vote write would fail on the same disk and
                // report it to openraft.
                tracing::error!(error = %e, "writing the committed log id failed");
            }
        });
    }
}

/// With `flush = sync`, reports flush completions in order, each once an fsync covers
/// its entries (one fsync covers every append waiting).
async fn report_flushes<D: Disk>(
    store: Arc<MessageStore<D>>,
    mut rx: mpsc::UnboundedReceiver<PendingFlush>,
) {
    while let Some(pending) = rx.recv().await {
        let result = store.wait_durable(pending.end_offset).await;
        // BUGGIFY: the fsync's completion reaches openraft late (the send waits longer;
        // appends behind it queue up).
        if crate::buggify::buggify(0.1) {
            crate::buggify::pause_up_to(Duration::from_millis(50)).await;
        }
        pending.complete(result.map_err(|e| e.to_string()));
    }
}

fn to_record(entry: &Entry<GroupRaft>) -> Result<LogRecord, io::Error> {
    let payload = match &entry.payload {
        EntryPayload::Normal(GroupRequest::Messages { messages, .. }) => LogPayload::Messages {
            messages: messages.clone(),
            assigned: false,
        },
        EntryPayload::Normal(GroupRequest::Stored(messages)) => LogPayload::Messages {
            messages: messages.clone(),
            assigned: true,
        },
        other => LogPayload::Control(entry_codec::encode(other)?.into()),
    };
    let node = entry.log_id.leader_id.node_id;
    let leader =
        u16::try_from(node).map_err(|_| io_error(format!("replica id {node} over 65535")))?;
    Ok(LogRecord {
        term: entry.log_id.leader_id.term,
        leader,
        index: record_index(entry.log_id.index),
        payload,
    })
}

/// An entry as reading it back from the log gives it: new messages with the offsets
/// their store assigned (`puts`), as `Stored`.
fn read_back_form(entry: Entry<GroupRaft>, puts: &[PutResult]) -> Entry<GroupRaft> {
    let Entry { log_id, payload } = entry;
    let payload = match payload {
        EntryPayload::Normal(GroupRequest::Messages { messages, .. }) => {
            assert_eq!(messages.len(), puts.len(), "one put per message");
            let stored = messages
                .into_iter()
                .zip(puts)
                .map(|(bytes, put)| {
                    // The log has let go of its copy by now, so the entry's bytes are
                    // normally patched in place; a copy only if someone still shares
                    // them (it was a fresh 1 KiB copy per message on every replica).
                    let mut stored = bytes
                        .try_into_mut()
                        .unwrap_or_else(|shared| BytesMut::from(&shared[..]));
                    let at = |field: usize| field..field + 8;
                    stored[at(OFFSET_QUEUE_OFFSET)]
                        .copy_from_slice(&put.queue_offset.to_be_bytes());
                    stored[at(OFFSET_PHYSICAL_OFFSET)]
                        .copy_from_slice(&put.physical_offset.to_be_bytes());
                    stored.freeze()
                })
                .collect();
            EntryPayload::Normal(GroupRequest::Stored(stored))
        }
        payload => payload,
    };
    Entry { log_id, payload }
}

fn to_entry(record: LogRecord) -> Result<Entry<GroupRaft>, io::Error> {
    let payload = match record.payload {
        LogPayload::Messages { messages, .. } => {
            EntryPayload::Normal(GroupRequest::Stored(messages))
        }
        LogPayload::Control(bytes) => entry_codec::decode(&bytes)?,
    };
    let at = LogPosition {
        term: record.term,
        leader: record.leader,
        index: record.index,
    };
    Ok(Entry {
        log_id: log_id(at),
        payload,
    })
}

impl<D: Disk> LogStore<D> {
    async fn read(
        &self,
        from: u64,
        to: u64,
        max_bytes: usize,
    ) -> Result<Vec<Entry<GroupRaft>>, StorageError<u64>> {
        let read = async {
            let records = self
                .store
                .read_log(from, to, max_bytes)
                .await
                .map_err(io_error)?;
            records
                .into_iter()
                .map(to_entry)
                .collect::<Result<Vec<_>, io::Error>>()
        };
        read.await.map_err(|e| StorageIOError::read_logs(&e).into())
    }
}

impl<D: Disk> RaftLogReader<GroupRaft> for LogStore<D> {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<GroupRaft>>, StorageError<u64>> {
        let from = match range.start_bound() {
            Bound::Included(&i) => i,
            Bound::Excluded(&i) => i + 1,
            Bound::Unbounded => 0,
        };
        let to = match range.end_bound() {
            Bound::Included(&i) => i + 1,
            Bound::Excluded(&i) => i,
            Bound::Unbounded => u64::MAX,
        };
        if let Some(cached) = self.cache.lock().expect("cache poisoned").get(from, to) {
            return Ok(cached);
        }
        let to = if to == u64::MAX { to } else { record_index(to) };
        self.read(record_index(from), to, usize::MAX).await
    }

    async fn limited_get_log_entries(
        &mut self,
        start: u64,
        end: u64,
    ) -> Result<Vec<Entry<GroupRaft>>, StorageError<u64>> {
        if let Some(cached) = self.cache.lock().expect("cache poisoned").get(start, end) {
            return Ok(cached);
        }
        self.read(
            record_index(start),
            record_index(end),
            REPLICATION_READ_BYTES_MAX,
        )
        .await
    }
}

impl<D: Disk> RaftLogStorage<GroupRaft> for LogStore<D> {
    type LogReader = LogStore<D>;

    async fn get_log_state(&mut self) -> Result<LogState<GroupRaft>, StorageError<u64>> {
        let last = self.store.last_log_id().await;
        // Entries before the first one stored were deleted by retention, or never came
        // here (a snapshot was installed): purged. The store's log start marker keeps
        // the last one's log id, term included.
        let purged = match self.store.log_start() {
            Some(start) if start.prev.index > 0 => Some(log_id(start.prev)),
            _ => None,
        };
        Ok(LogState {
            last_purged_log_id: purged,
            last_log_id: (last.index > 0).then(|| log_id(last)).or(purged),
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<u64>) -> Result<(), StorageError<u64>> {
        self.state
            .lock()
            .expect("vote state poisoned")
            .persisted
            .vote = Some(*vote);
        self.persist()
            .await
            .map_err(|e| StorageIOError::write_vote(&e).into())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<u64>>, StorageError<u64>> {
        Ok(self
            .state
            .lock()
            .expect("vote state poisoned")
            .persisted
            .vote)
    }

    async fn save_committed(
        &mut self,
        committed: Option<LogId<u64>>,
    ) -> Result<(), StorageError<u64>> {
        let now_ms = proto::clock::now_ms();
        let due = {
            let mut state = self.state.lock().expect("vote state poisoned");
            state.persisted.committed = committed;
            let due =
                now_ms.saturating_sub(state.committed_saved_at_ms) >= COMMITTED_SAVE_INTERVAL_MS;
            if due {
                state.committed_saved_at_ms = now_ms;
            }
            due
        };
        if due {
            self.persist_committed_soon();
        }
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<u64>>, StorageError<u64>> {
        let committed = self
            .state
            .lock()
            .expect("vote state poisoned")
            .persisted
            .committed;
        // After a power loss with `flush = async` the log may be shorter than what was
        // committed: never claim entries this replica no longer holds.
        let last_index = self.store.last_log_id().await.index;
        let committed = committed.filter(|c| record_index(c.index) <= last_index);
        // Entries before the log's start were applied (only those can be purged), so
        // committed: the saved hint may be older than the start, and openraft must not
        // try to re-apply from before it.
        let start = self
            .store
            .log_start()
            .filter(|s| s.prev.index > 0)
            .map(|s| log_id(s.prev));
        Ok(committed.max(start))
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<GroupRaft>,
    ) -> Result<(), StorageError<u64>>
    where
        I: IntoIterator<Item = Entry<GroupRaft>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let write_err = |e: io::Error| StorageError::from(StorageIOError::write_logs(&e));
        let entries: Vec<Entry<GroupRaft>> = entries.into_iter().collect();
        let mut records = Vec::with_capacity(entries.len());
        let mut ticketed = Vec::new();
        for (i, entry) in entries.iter().enumerate() {
            if let EntryPayload::Normal(GroupRequest::Messages {
                ticket: Some(ticket),
                ..
            }) = &entry.payload
            {
                ticketed.push((i, *ticket));
            }
            records.push(to_record(entry).map_err(write_err)?);
        }
        let appended = self.store.append_log(records).await;
        let appended = match appended {
            Ok(appended) => appended,
            Err(e) => {
                for (_, ticket) in ticketed {
                    self.cancel_ticket(ticket, TicketError::Storage(e.to_string()));
                }
                return Err(write_err(io_error(e)));
            }
        };
        {
            let mut cache = self.cache.lock().expect("cache poisoned");
            for (entry, put) in entries.into_iter().zip(&appended.puts) {
                cache.push(read_back_form(entry, put));
            }
        }
        let tickets = {
            let mut tickets = self.tickets.lock().expect("tickets poisoned");
            ticketed
                .into_iter()
                .filter_map(|(i, ticket)| {
                    let puts = appended.puts[i].clone();
                    Some((tickets.waiting.remove(&ticket)?, puts))
                })
                .collect()
        };
        let pending = PendingFlush {
            end_offset: appended.end_offset,
            callback,
            tickets,
        };
        if self.flush == FlushMode::Sync && self.store.ack_before_fsync() {
            // PLANTED BUG (store's `fault-injection` builds only): durable unsynced.
            pending.complete(Ok(()));
            return Ok(());
        }
        match self.flush {
            // Written is as durable as `flush = async` gets: no hop through the reporter
            // on the append path (openraft waits for this callback inline).
            FlushMode::Async => pending.complete(Ok(())),
            FlushMode::Sync => {
                if let Err(mpsc::error::SendError(pending)) = self.flushed_tx.send(pending) {
                    pending.complete(Err("the flush reporter stopped".into()));
                }
            }
        }
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId<u64>) -> Result<(), StorageError<u64>> {
        self.cache
            .lock()
            .expect("cache poisoned")
            .truncate_from(log_id.index);
        self.store
            .truncate_log(record_index(log_id.index))
            .await
            .map_err(|e| StorageIOError::write_logs(&io_error(e)).into())
    }

    /// Retention (or compaction) moved the log's start; openraft purges up to it once
    /// no replication reads those entries any more, and only then do their segments go.
    async fn purge(&mut self, log_id: LogId<u64>) -> Result<(), StorageError<u64>> {
        tracing::debug!(%log_id, "openraft no longer needs entries up to here");
        self.store
            .purge_log(record_index(log_id.index))
            .await
            .map_err(|e| StorageIOError::write_logs(&io_error(e)).into())
    }
}
