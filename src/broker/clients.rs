//! Client membership: HEART_BEAT, UNREGISTER_CLIENT, GET_CONSUMER_LIST_BY_GROUP and the
//! orderly-consumption queue locks.

use proto::net::server::Channel;
use proto::remoting::body::{
    from_json, to_json, ConsumerListBody, HeartbeatData, LockBatchBody, LockBatchResponseBody,
};
use proto::remoting::codes::response;
use proto::remoting::{ProtoError, RemotingCommand};
use store::meta::MetaStore;
use store::Disk;

use super::write::{PutError, WriteError};
use super::{ok, Broker};

impl<D: Disk, M: MetaStore> Broker<D, M> {
    pub(super) async fn heartbeat(
        &self,
        req: &RemotingCommand,
        channel: &Channel,
    ) -> Result<RemotingCommand, ProtoError> {
        let data: HeartbeatData = from_json(&req.body)?;
        for producer in &data.producer_data_set {
            self.producers.heartbeat(
                &producer.group_name,
                &data.client_id,
                channel.clone(),
                proto::clock::now_ms(),
            );
        }
        for consumer in data.consumer_data_set {
            if let Err(e) = proto::names::validate_name("consumer group", &consumer.group_name) {
                return Ok(RemotingCommand::response_to(
                    req,
                    response::SYSTEM_ERROR,
                    Some(e),
                ));
            }
            // Clustering consumers read their retry topic too; it must exist for them to
            // find its route (RocketMQ creates it here as well).
            // A slave cannot create it (the master does, through the log, when the
            // same client's heartbeat reaches it), but records the member all the same:
            // if it becomes master it already knows the group.
            if consumer.message_model != "BROADCASTING" {
                let retry_topic = format!("{}{}", super::retry::RETRY_PREFIX, consumer.group_name);
                match self.ensure_group_topic(&retry_topic).await {
                    Ok(()) | Err(PutError::Replica(WriteError::NotMaster { .. })) => {}
                    Err(e) => {
                        let remark = Some(e.to_string());
                        return Ok(RemotingCommand::response_to(
                            req,
                            response::SYSTEM_ERROR,
                            remark,
                        ));
                    }
                }
            }
            // Its subscription group, created with the defaults if new (RocketMQ does
            // the same on a heartbeat).
            self.ensure_subscription_group(&consumer.group_name).await;
            let client = super::consumers::ClientKind {
                language: req.language,
                version: req.version,
            };
            self.consumers.heartbeat(
                &data.client_id,
                consumer,
                client,
                channel.clone(),
                proto::clock::now_ms(),
            );
        }
        Ok(ok(req))
    }

    pub(super) fn unregister_client(
        &self,
        req: &RemotingCommand,
        channel: &Channel,
    ) -> Result<RemotingCommand, ProtoError> {
        let client_id: String = req.ext_parse("clientID")?;
        if let Some(group) = req.ext("producerGroup") {
            self.producers.unregister(group, &client_id);
        }
        if let Some(group) = req.ext("consumerGroup") {
            self.consumers
                .unregister(&client_id, group, channel.peer, proto::clock::now_ms());
            let freed = self.locks.release_client(group, &client_id);
            if freed > 0 {
                tracing::info!(%group, client_id, freed, "queue locks of a departed consumer freed");
            }
        }
        Ok(ok(req))
    }

    pub(super) fn consumer_list(
        &self,
        req: &RemotingCommand,
    ) -> Result<RemotingCommand, ProtoError> {
        let group: String = req.ext_parse("consumerGroup")?;
        let members = self.consumers.members(&group);
        if members.is_empty() {
            return Ok(RemotingCommand::response_to(
                req,
                response::SYSTEM_ERROR,
                Some(format!(
                    "no consumer of group {group} is connected to this broker"
                )),
            ));
        }
        Ok(ok(req).with_body(to_json(&ConsumerListBody {
            consumer_id_list: members,
        })))
    }

    pub(super) fn lock_batch(&self, req: &RemotingCommand) -> Result<RemotingCommand, ProtoError> {
        let body: LockBatchBody = from_json(&req.body)?;
        let held = self.locks.lock(
            &body.consumer_group,
            &body.client_id,
            &body.mq_set,
            proto::clock::now_ms(),
        );
        Ok(ok(req).with_body(to_json(&LockBatchResponseBody {
            lock_ok_mq_set: held,
        })))
    }

    pub(super) fn unlock_batch(
        &self,
        req: &RemotingCommand,
    ) -> Result<RemotingCommand, ProtoError> {
        let body: LockBatchBody = from_json(&req.body)?;
        self.locks
            .unlock(&body.consumer_group, &body.client_id, &body.mq_set);
        Ok(ok(req))
    }
}
