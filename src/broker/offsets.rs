//! Consumer offsets and queue offsets: QUERY/UPDATE_CONSUMER_OFFSET, GET_MAX/MIN_OFFSET,
//! SEARCH_OFFSET_BY_TIMESTAMP.

use proto::remoting::codes::response;
use proto::remoting::{ProtoError, RemotingCommand};
use store::meta::MetaStore;
use store::Disk;

use super::write::put_error;
use super::{ok, store_error, Broker};

/// The `topic` and `queueId` header fields every request here names.
fn queue_of(req: &RemotingCommand) -> Result<(String, u32), ProtoError> {
    Ok((req.ext_parse("topic")?, req.ext_parse("queueId")?))
}

impl<D: Disk, M: MetaStore> Broker<D, M> {
    pub(super) fn query_consumer_offset(
        &self,
        req: &RemotingCommand,
    ) -> Result<RemotingCommand, ProtoError> {
        let group: String = req.ext_parse("consumerGroup")?;
        let (topic, queue_id) = queue_of(req)?;
        match self.consumer_offset(&group, &topic, queue_id) {
            Ok(Some(offset)) => Ok(ok(req).with_ext("offset", offset)),
            // A group that never committed starts at 0 while the queue still holds its
            // first message, as RocketMQ does; otherwise the client decides.
            Ok(None) if self.store.min_offset(&topic, queue_id) == 0 => {
                Ok(ok(req).with_ext("offset", 0))
            }
            Ok(None) => Ok(RemotingCommand::response_to(
                req,
                response::QUERY_NOT_FOUND,
                Some(format!("group {group} has no offset on {topic}:{queue_id}")),
            )),
            Err(e) => Ok(store_error(req, &e)),
        }
    }

    pub(super) async fn update_consumer_offset(
        &self,
        req: &RemotingCommand,
    ) -> Result<RemotingCommand, ProtoError> {
        let group: String = req.ext_parse("consumerGroup")?;
        let (topic, queue_id) = queue_of(req)?;
        let offset: u64 = req.ext_parse("commitOffset")?;
        match self.commit_offset(&group, &topic, queue_id, offset).await {
            Ok(()) => Ok(ok(req)),
            Err(e) => Ok(put_error(req, &e)),
        }
    }

    pub(super) async fn max_offset(
        &self,
        req: &RemotingCommand,
    ) -> Result<RemotingCommand, ProtoError> {
        let (topic, queue_id) = queue_of(req)?;
        // A producer asking after its acknowledged sends sees them counted.
        if let Err(e) = self.store.settled().await {
            return Ok(store_error(req, &e));
        }
        Ok(ok(req).with_ext("offset", self.store.max_offset(&topic, queue_id)))
    }

    pub(super) fn min_offset(&self, req: &RemotingCommand) -> Result<RemotingCommand, ProtoError> {
        let (topic, queue_id) = queue_of(req)?;
        Ok(ok(req).with_ext("offset", self.store.min_offset(&topic, queue_id)))
    }

    pub(super) async fn offset_by_time(
        &self,
        req: &RemotingCommand,
    ) -> Result<RemotingCommand, ProtoError> {
        let (topic, queue_id) = queue_of(req)?;
        let timestamp: i64 = req.ext_parse("timestamp")?;
        match self.store.offset_by_time(&topic, queue_id, timestamp).await {
            Ok(offset) => Ok(ok(req).with_ext("offset", offset)),
            Err(e) => Ok(store_error(req, &e)),
        }
    }
}
