//! The broker's write path: messages and consumer offsets go straight to the store and
//! the MetaStore on a single replica, or through Raft in a replicated group (see
//! `replica`), where only the master accepts them.

use bytes::Bytes;
use proto::message::StoreFields;
use proto::remoting::codes::response;
use proto::remoting::RemotingCommand;
use proto::NewMessage;
use raft::types::{GroupRequest, OffsetUpdate};
use std::sync::Arc;

use store::meta::{MetaStore, TopicConfig};
use store::{Disk, PutResult, StoreError};

use super::replica::WriteError;
use super::{store_error, Broker};

/// Why a write was not acknowledged.
#[derive(Debug)]
pub(super) enum PutError {
    Store(StoreError),
    Replica(WriteError),
}

impl std::fmt::Display for PutError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PutError::Store(e) => e.fmt(f),
            PutError::Replica(e) => e.fmt(f),
        }
    }
}

impl From<StoreError> for PutError {
    fn from(e: StoreError) -> Self {
        PutError::Store(e)
    }
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
        PutError::Replica(WriteError::Failed(_)) => {
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
