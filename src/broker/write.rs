//! The broker's write path: messages and consumer offsets go straight to the store and
//! the MetaStore on a single replica, or through Raft in a replicated group (see
//! `replica`), where only the master accepts them.

use bytes::Bytes;
use openraft::error::{ClientWriteError, RaftError};
use openraft::BasicNode;
use proto::message::StoreFields;
use proto::remoting::codes::response;
use proto::remoting::RemotingCommand;
use proto::NewMessage;
use raft::log_store::TicketError;
use raft::types::{GroupRequest, OffsetUpdate};
use std::ops::Range;
use std::sync::Arc;

use store::meta::{MetaStore, TopicConfig};
use store::{Disk, PutResult, StoreError};

use super::{store_error, Broker};

/// The openraft error a proposal can fail with.
pub type ProposeError = RaftError<u64, ClientWriteError<u64, BasicNode>>;

/// Why a replicated write was not acknowledged. Cloned to every caller whose messages
/// shared one Raft entry.
#[derive(Debug, Clone, thiserror::Error)]
pub enum WriteError {
    /// This replica is not the master; `master` is the master's broker address if known.
    #[error("not the master; {}", match master {
        Some(master) => format!("the master is {master}"),
        None => "no master is elected now".to_string(),
    })]
    NotMaster { master: Option<String> },
    /// No acknowledgement in time: the write may or may not take effect. `landed` says
    /// where the master's own log holds the first messages, when it does.
    #[error("not acknowledged within {timeout_ms} ms; the write may still take effect")]
    Timeout {
        timeout_ms: u64,
        landed: Vec<PutResult>,
    },
    /// `ack = leader`: the master's log has the messages (`landed`), but by then the
    /// master had not heard from a quorum within its lease, so another master may
    /// have been elected without them: the outcome is unknown.
    #[error(
        "stored on this master, but its lease expired before the acknowledgement \
         (no quorum heard within election_timeout_max_ms); the write may be lost"
    )]
    LeaseExpired { landed: Vec<PutResult> },
    /// openraft refused the proposal or the membership change named by `what`.
    #[error("{what}: {source}")]
    Raft {
        what: String,
        /// Boxed: openraft's error is large, and every `Result` here would carry it.
        #[source]
        source: Box<ProposeError>,
    },
    /// The master's own log did not store the entry.
    #[error("write failed: {0}")]
    Log(#[from] TicketError),
    /// The replica is shutting down: `what` stopped before the write was answered.
    #[error("write failed: {what} stopped")]
    Stopped { what: &'static str },
    /// The entry applied did not hold the messages proposed in it: a bug, reported
    /// rather than answered with another caller's offsets.
    #[error("entry {index} stored {stored} messages, {proposed:?} were proposed in it")]
    Misapplied {
        index: u64,
        stored: usize,
        proposed: Range<usize>,
    },
    /// A replica id outside RocketMQ's broker id range.
    #[error("replica id {0} is not in 1..=65535")]
    InvalidReplicaId(u64),
    /// A replica to remove that is not a member.
    #[error("replica {0} is not in the group")]
    NotInGroup(u64),
    /// Removing the only voter would leave no group.
    #[error("replica {0} is the last voter")]
    LastVoter(u64),
}

impl WriteError {
    /// Whether the write failed for a reason other than mastership or time, which
    /// callers answer differently (the client re-routes, or hears that the outcome is
    /// unknown). A failure is answered as SYSTEM_ERROR.
    pub fn is_failure(&self) -> bool {
        !matches!(
            self,
            WriteError::NotMaster { .. }
                | WriteError::Timeout { .. }
                | WriteError::LeaseExpired { .. }
        )
    }
}

/// Why a write was not acknowledged.
#[derive(Debug, thiserror::Error)]
pub(super) enum PutError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Replica(#[from] WriteError),
}

/// The response for a failed write.
///
/// - not the master: SERVICE_NOT_AVAILABLE, naming the master in the remark and in
///   `masterAddr` (clients re-route and retry);
/// - no acknowledgement in time, or (`ack = leader`) a master whose lease ran out before
///   it could answer: FLUSH_SLAVE_TIMEOUT, RocketMQ's "stored on the master, not
///   confirmed by the slaves": the outcome is unknown, and the message ids are given
///   when the master's log has the messages.
pub(super) fn put_error(req: &RemotingCommand, e: &PutError) -> RemotingCommand {
    match e {
        PutError::Store(e) => store_error(req, e),
        PutError::Replica(WriteError::NotMaster { master }) => {
            let response = RemotingCommand::response_to(
                req,
                response::SERVICE_NOT_AVAILABLE,
                Some(e.to_string()),
            );
            match master {
                Some(master) => response.with_ext("masterAddr", master),
                None => response,
            }
        }
        PutError::Replica(
            WriteError::Timeout { landed, .. } | WriteError::LeaseExpired { landed },
        ) => {
            let response = RemotingCommand::response_to(
                req,
                response::FLUSH_SLAVE_TIMEOUT,
                Some(e.to_string()),
            );
            match landed.first() {
                Some(first) => with_put_fields(response, landed, first),
                None => response,
            }
        }
        PutError::Replica(_) => {
            RemotingCommand::response_to(req, response::SYSTEM_ERROR, Some(e.to_string()))
        }
    }
}

/// The send response fields RocketMQ clients read: msg ids, queue id and offset.
pub(super) fn with_put_fields(
    response: RemotingCommand,
    results: &[PutResult],
    first: &PutResult,
) -> RemotingCommand {
    /// The batch's msg ids, comma-separated, written straight into the header.
    struct MsgIds<'a>(&'a [PutResult]);
    impl std::fmt::Display for MsgIds<'_> {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            for (i, result) in self.0.iter().enumerate() {
                if i > 0 {
                    f.write_str(",")?;
                }
                write!(f, "{}", result.msg_id)?;
            }
            Ok(())
        }
    }
    let mut response = response.with_ext("msgId", MsgIds(results));
    let ext = &mut response.ext_fields;
    ext.push_int("queueId", first.queue_id);
    ext.push_int("queueOffset", first.queue_offset);
    ext.push_str("MSG_REGION", "DefaultRegion");
    ext.push_str("TRACE_ON", "true");
    response
}

impl<D: Disk, M: MetaStore> Broker<D, M> {
    /// Stores a batch of messages, in order, as this broker's mode acknowledges it.
    pub(super) async fn put_messages(
        &self,
        messages: Vec<NewMessage>,
    ) -> Result<Vec<PutResult>, PutError> {
        let Some(replica) = &self.replica else {
            return Ok(self.store.put_messages(messages).await?);
        };
        let store_timestamp_ms = proto::clock::now_ms();
        let mut encoded = Vec::with_capacity(messages.len());
        for message in &messages {
            self.store.validate(message)?;
            let fields = StoreFields {
                queue_offset: 0,
                physical_offset: 0,
                store_timestamp_ms,
                store_host: self.addr,
            };
            let mut bytes = Vec::with_capacity(message.encoded_size(self.addr));
            message
                .encode_into(&fields, &mut bytes)
                .map_err(|e| StoreError::MessageIllegal(e.to_string()))?;
            encoded.push(Bytes::from(bytes));
        }
        // Boxed: the replicated write is a large future, and a single broker's sends
        // should not carry its size.
        Box::pin(replica.put(encoded))
            .await
            .map_err(PutError::Replica)
    }

    /// Creates or changes a topic: in a replicated group through the log, so every
    /// replica (and any later master) serves it.
    pub(super) async fn put_topic(&self, config: TopicConfig) -> Result<(), PutError> {
        if let Some(replica) = &self.replica {
            replica
                .write(GroupRequest::Topic(config.clone()))
                .await
                .map_err(PutError::Replica)?;
        }
        Ok(self.topics.put(config).await?)
    }

    /// Keeps the local topic table in step with the replicated one, and re-registers
    /// when it changes while this replica is master.
    pub(super) async fn run_topic_sync(self: Arc<Self>) {
        let Some(replica) = self.replica.clone() else {
            return;
        };
        let mut version = replica.machine().watch_topics();
        loop {
            version.borrow_and_update();
            let mut changed = false;
            for config in replica.machine().topics() {
                if self.topics.get(&config.topic_name).as_ref() != Some(&config) {
                    if let Err(e) = self.topics.put(config).await {
                        tracing::error!(error = %e, "saving a replicated topic locally");
                    }
                    changed = true;
                }
            }
            if changed && replica.is_master() {
                self.register_all().await;
            }
            if version.changed().await.is_err() {
                return;
            }
        }
    }

    /// A consumer group's committed offset in a queue.
    pub(super) fn consumer_offset(
        &self,
        group: &str,
        topic: &str,
        queue_id: u32,
    ) -> store::Result<Option<u64>> {
        match &self.replica {
            Some(replica) => Ok(replica.machine().consumer_offset(group, topic, queue_id)),
            None => self.meta.consumer_offset(group, topic, queue_id),
        }
    }

    /// Every committed offset: (group, topic, queue id, offset).
    pub(super) fn all_consumer_offsets(&self) -> store::Result<Vec<(String, String, u32, u64)>> {
        match &self.replica {
            Some(replica) => Ok(replica
                .machine()
                .consumer_offsets()
                .into_iter()
                .map(|((group, topic, queue_id), offset)| (group, topic, queue_id, offset))
                .collect()),
            None => self.meta.all_consumer_offsets(),
        }
    }

    /// Commits a consumer group's offset: in a replicated group through the log, so it
    /// fails over with the messages and never moves back after a failover.
    pub(super) async fn commit_offset(
        &self,
        group: &str,
        topic: &str,
        queue_id: u32,
        offset: u64,
    ) -> Result<(), PutError> {
        let Some(replica) = &self.replica else {
            return Ok(self
                .meta
                .put_consumer_offset(group, topic, queue_id, offset)?);
        };
        if replica.machine().consumer_offset(group, topic, queue_id) == Some(offset) {
            return Ok(());
        }
        let update = OffsetUpdate {
            group: group.to_string(),
            topic: topic.to_string(),
            queue_id,
            offset,
        };
        replica
            .write(GroupRequest::ConsumerOffsets(vec![update]))
            .await
            .map(|_| ())
            .map_err(PutError::Replica)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_not_master_error_names_the_master_when_known() {
        let known = WriteError::NotMaster {
            master: Some("10.0.0.2:10911".into()),
        };
        assert_eq!(
            known.to_string(),
            "not the master; the master is 10.0.0.2:10911"
        );
        let unknown = WriteError::NotMaster { master: None };
        assert_eq!(
            unknown.to_string(),
            "not the master; no master is elected now"
        );
        assert!(!known.is_failure());
    }

    #[test]
    fn a_log_failure_keeps_its_cause() {
        let e = WriteError::from(TicketError::Storage("disk full".into()));
        assert!(e.is_failure());
        assert_eq!(
            e.to_string(),
            "write failed: the log could not store the entry: disk full"
        );
        let put = PutError::from(e);
        let source = std::error::Error::source(&put).expect("a source");
        assert_eq!(
            source.to_string(),
            "the log could not store the entry: disk full"
        );
    }
}
