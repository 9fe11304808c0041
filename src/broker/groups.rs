//! Subscription groups (RocketMQ's `SubscriptionGroupManager`): created explicitly
//! (UPDATE_AND_CREATE_SUBSCRIPTIONGROUP, `raftmq group create`) or on a consumer's first
//! heartbeat or pull (`auto_create_subscription_group`), listed, deleted, and enforced:
//! a group whose `consume_enable` is off cannot pull, one whose
//! `consume_broadcast_enable` is off cannot pull while its consumers broadcast, and
//! `retry_max_times` bounds redeliveries when a send-back does not name its own bound.
//!
//! In a replicated group they go through the log, as topics do, so every replica and any
//! later master enforce the same table; a slave serves a group it has not heard of with
//! the defaults and leaves creating it to the master.

use proto::remoting::body::{from_json, to_json, SubscriptionGroupBody, SubscriptionGroupWrapper};
use proto::remoting::codes::response;
use proto::remoting::{ProtoError, RemotingCommand};
use raft::types::GroupRequest;
use store::meta::{MetaStore, SubscriptionGroupConfig};
use store::Disk;

use super::write::{put_error, PutError};
use super::{ok, Broker};

/// A new group as RocketMQ creates it: consuming allowed, 16 redeliveries.
pub(super) fn default_group(name: &str) -> SubscriptionGroupConfig {
    let d = SubscriptionGroupBody::default();
    SubscriptionGroupConfig {
        group_name: name.to_string(),
        consume_enable: d.consume_enable,
        consume_broadcast_enable: d.consume_broadcast_enable,
        retry_max_times: d.retry_max_times.unsigned_abs(),
    }
}

fn from_body(body: &SubscriptionGroupBody) -> Result<SubscriptionGroupConfig, String> {
    proto::names::validate_name("subscription group", &body.group_name)?;
    let retry_max_times = u32::try_from(body.retry_max_times)
        .map_err(|_| format!("retryMaxTimes {} is negative", body.retry_max_times))?;
    Ok(SubscriptionGroupConfig {
        group_name: body.group_name.clone(),
        consume_enable: body.consume_enable,
        consume_broadcast_enable: body.consume_broadcast_enable,
        retry_max_times,
    })
}

fn to_body(config: &SubscriptionGroupConfig) -> SubscriptionGroupBody {
    SubscriptionGroupBody {
        group_name: config.group_name.clone(),
        consume_enable: config.consume_enable,
        consume_broadcast_enable: config.consume_broadcast_enable,
        retry_max_times: i32::try_from(config.retry_max_times).unwrap_or(i32::MAX),
        ..SubscriptionGroupBody::default()
    }
}

/// Why a consumer group may not pull now, if it may not.
pub(super) enum Refusal {
    BadName(String),
    NotExist,
    ConsumeDisabled,
    BroadcastDisabled,
}

impl Refusal {
    pub(super) fn response(&self, req: &RemotingCommand, group: &str) -> RemotingCommand {
        let (code, remark) = match self {
            Refusal::BadName(e) => (response::SYSTEM_ERROR, e.clone()),
            Refusal::NotExist => (
                response::SUBSCRIPTION_GROUP_NOT_EXIST,
                format!("subscription group [{group}] does not exist, create it first"),
            ),
            Refusal::ConsumeDisabled => (
                response::NO_PERMISSION,
                format!("subscription group [{group}] has consuming disabled"),
            ),
            Refusal::BroadcastDisabled => (
                response::NO_PERMISSION,
                format!("subscription group [{group}] may not consume by broadcasting"),
            ),
        };
        RemotingCommand::response_to(req, code, Some(remark))
    }
}

impl<D: Disk, M: MetaStore> Broker<D, M> {
    pub(super) fn subscription_group(&self, name: &str) -> Option<SubscriptionGroupConfig> {
        match &self.replica {
            Some(replica) => replica.machine().subscription_group(name),
            None => self.meta.group(name).unwrap_or_else(|e| {
                tracing::error!(error = %e, group = name, "reading a subscription group");
                None
            }),
        }
    }

    fn subscription_groups(&self) -> store::Result<Vec<SubscriptionGroupConfig>> {
        match &self.replica {
            Some(replica) => Ok(replica.machine().subscription_groups()),
            None => self.meta.groups(),
        }
    }

    async fn put_subscription_group(
        &self,
        config: SubscriptionGroupConfig,
    ) -> Result<(), PutError> {
        match &self.replica {
            Some(replica) => replica
                .write(GroupRequest::SubscriptionGroup(config))
                .await
                .map(|_| ())
                .map_err(PutError::Replica),
            None => Ok(self.meta.put_group(&config)?),
        }
    }

    /// The group's config; a new group is created with the defaults when
    /// `auto_create_subscription_group` is on (`None` when it is off).
    pub(super) async fn ensure_subscription_group(
        &self,
        name: &str,
    ) -> Option<SubscriptionGroupConfig> {
        if let Some(config) = self.subscription_group(name) {
            return Some(config);
        }
        if !self.config.auto_create_subscription_group
            || proto::names::validate_name("consumer group", name).is_err()
        {
            return None;
        }
        let config = default_group(name);
        if self.replica.as_ref().is_some_and(|r| !r.is_master()) {
            return Some(config);
        }
        // Boxed: creating a group (through the log in a replica group) is a large
        // future, and every pull's future would otherwise be sized by it.
        match Box::pin(self.put_subscription_group(config.clone())).await {
            Ok(()) => tracing::info!(group = name, "auto-created subscription group"),
            // Served with the defaults all the same; the next heartbeat tries again.
            Err(e) => tracing::warn!(group = name, error = %e, "auto-creating subscription group"),
        }
        Some(config)
    }

    /// Whether `group` may pull now.
    pub(super) async fn may_pull(&self, group: &str) -> Result<(), Refusal> {
        proto::names::validate_name("consumer group", group).map_err(Refusal::BadName)?;
        match self.ensure_subscription_group(group).await {
            None => Err(Refusal::NotExist),
            Some(g) if !g.consume_enable => Err(Refusal::ConsumeDisabled),
            Some(g) if !g.consume_broadcast_enable && self.consumers.broadcasting(group) => {
                Err(Refusal::BroadcastDisabled)
            }
            Some(_) => Ok(()),
        }
    }

    /// UPDATE_AND_CREATE_SUBSCRIPTIONGROUP: the body is RocketMQ's
    /// `SubscriptionGroupConfig` in JSON.
    pub(super) async fn create_subscription_group(
        &self,
        req: &RemotingCommand,
    ) -> Result<RemotingCommand, ProtoError> {
        let body: SubscriptionGroupBody = from_json(&req.body)?;
        let config = match from_body(&body) {
            Ok(config) => config,
            Err(e) => {
                return Ok(RemotingCommand::response_to(
                    req,
                    response::SYSTEM_ERROR,
                    Some(e),
                ))
            }
        };
        let name = config.group_name.clone();
        if let Err(e) = self.put_subscription_group(config).await {
            return Ok(put_error(req, &e));
        }
        tracing::info!(group = %name, "subscription group created or updated");
        Ok(ok(req))
    }

    /// GET_ALL_SUBSCRIPTIONGROUP_CONFIG.
    pub(super) fn all_subscription_groups(
        &self,
        req: &RemotingCommand,
    ) -> Result<RemotingCommand, ProtoError> {
        let groups = match self.subscription_groups() {
            Ok(groups) => groups,
            Err(e) => return Ok(super::store_error(req, &e)),
        };
        let wrapper = SubscriptionGroupWrapper {
            subscription_group_table: groups
                .iter()
                .map(|g| (g.group_name.clone(), to_body(g)))
                .collect(),
            ..SubscriptionGroupWrapper::default()
        };
        Ok(ok(req).with_body(to_json(&wrapper)))
    }

    /// DELETE_SUBSCRIPTIONGROUP (`groupName`).
    pub(super) async fn delete_subscription_group(
        &self,
        req: &RemotingCommand,
    ) -> Result<RemotingCommand, ProtoError> {
        let name: String = req.ext_parse("groupName")?;
        let deleted = match &self.replica {
            Some(replica) => replica
                .write(GroupRequest::DeleteSubscriptionGroup(name.clone()))
                .await
                .map(|_| ())
                .map_err(PutError::Replica),
            None => self.meta.remove_group(&name).map_err(PutError::Store),
        };
        if let Err(e) = deleted {
            return Ok(put_error(req, &e));
        }
        tracing::info!(group = %name, "subscription group deleted");
        Ok(ok(req))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_convert_and_bad_ones_are_named() {
        let config = default_group("G");
        assert!(config.consume_enable && config.consume_broadcast_enable);
        assert_eq!(config.retry_max_times, 16);
        assert_eq!(from_body(&to_body(&config)).unwrap(), config);
        let negative = SubscriptionGroupBody {
            group_name: "G".into(),
            retry_max_times: -1,
            ..SubscriptionGroupBody::default()
        };
        assert!(from_body(&negative).unwrap_err().contains("retryMaxTimes"));
        let bad_name = SubscriptionGroupBody {
            group_name: "a b".into(),
            ..SubscriptionGroupBody::default()
        };
        assert!(from_body(&bad_name).is_err());
    }
}
