//! raftmq's own requests for a replicated group (`RAFTMQ_*` codes, sent to the master):
//! its members and lag, and adding or removing a replica while it serves.

use proto::remoting::body::to_json;
use proto::remoting::codes::response;
use proto::remoting::{ProtoError, RemotingCommand};
use store::meta::MetaStore;
use store::Disk;

use super::write::{put_error, PutError};
use super::{ok, Broker};
use crate::config::ReplicaAddrs;

fn not_replicated(req: &RemotingCommand) -> RemotingCommand {
    RemotingCommand::response_to(
        req,
        response::REQUEST_CODE_NOT_SUPPORTED,
        Some("this broker is not part of a replicated group (no [replication])".into()),
    )
}

impl<D: Disk, M: MetaStore> Broker<D, M> {
    pub(super) fn group_status(&self, req: &RemotingCommand) -> RemotingCommand {
        match &self.replica {
            Some(replica) => ok(req).with_body(to_json(&replica.status())),
            None => not_replicated(req),
        }
    }

    pub(super) async fn add_replica(
        &self,
        req: &RemotingCommand,
    ) -> Result<RemotingCommand, ProtoError> {
        let Some(replica) = &self.replica else {
            return Ok(not_replicated(req));
        };
        let id: u64 = req.ext_parse("replicaId")?;
        let addrs = ReplicaAddrs {
            broker: req.ext_parse("brokerAddr")?,
            replica: req.ext_parse("replicaAddr")?,
        };
        for (field, addr) in [
            ("brokerAddr", &addrs.broker),
            ("replicaAddr", &addrs.replica),
        ] {
            if let Err(e) = addr.parse::<std::net::SocketAddr>() {
                return Ok(RemotingCommand::response_to(
                    req,
                    response::SYSTEM_ERROR,
                    Some(format!("{field} {addr:?} is not ip:port: {e}")),
                ));
            }
        }
        match replica.add_replica(id, addrs).await {
            Ok(()) => Ok(ok(req)),
            Err(e) => Ok(put_error(req, &PutError::Replica(e))),
        }
    }

    pub(super) async fn remove_replica(
        &self,
        req: &RemotingCommand,
    ) -> Result<RemotingCommand, ProtoError> {
        let Some(replica) = &self.replica else {
            return Ok(not_replicated(req));
        };
        let id: u64 = req.ext_parse("replicaId")?;
        match replica.remove_replica(id).await {
            Ok(()) => Ok(ok(req)),
            Err(e) => Ok(put_error(req, &PutError::Replica(e))),
        }
    }
}
