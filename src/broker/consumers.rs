//! Consumer groups: which clients are in each group, and the channels to reach them.
//!
//! A client joins with a heartbeat and leaves by unregistering, by closing its
//! connection, or by going silent for `client_channel_expired_ms`. Every change sends
//! NOTIFY_CONSUMER_IDS_CHANGED to the group's remaining members, so they rebalance at
//! once instead of at their next periodic rebalance.

use std::collections::BTreeMap;
use std::sync::Mutex;

use proto::net::server::Channel;
use proto::remoting::body::ConsumerData;
use proto::remoting::codes::request;
use proto::remoting::RemotingCommand;

struct Member {
    channel: Channel,
    last_heartbeat_ms: i64,
    data: ConsumerData,
}

#[derive(Default)]
pub struct Consumers {
    /// group → client id → member.
    groups: Mutex<BTreeMap<String, BTreeMap<String, Member>>>,
}

impl Consumers {
    /// Records a heartbeat; notifies the group when the client is new to it.
    pub fn heartbeat(&self, client_id: &str, data: ConsumerData, channel: Channel, now_ms: i64) {
        let group = data.group_name.clone();
        let joined = {
            let mut groups = self.groups.lock().expect("consumers poisoned");
            let members = groups.entry(group.clone()).or_default();
            let joined = !members.contains_key(client_id);
            members.insert(
                client_id.to_string(),
                Member {
                    channel,
                    last_heartbeat_ms: now_ms,
                    data,
                },
            );
            joined
        };
        if joined {
            tracing::info!(%group, client_id, "consumer joined");
            self.notify(&group);
        }
    }

    pub fn unregister(&self, client_id: &str, group: &str) {
        let removed = {
            let mut groups = self.groups.lock().expect("consumers poisoned");
            groups
                .get_mut(group)
                .and_then(|m| m.remove(client_id))
                .is_some()
        };
        if removed {
            tracing::info!(%group, client_id, "consumer left");
            self.notify(group);
        }
    }

    /// Drops every member reached through `channel` (its connection closed).
    pub fn channel_closed(&self, channel: &Channel) {
        self.remove_where(|m| m.channel.peer == channel.peer);
    }

    /// Drops members silent for longer than `expiry_ms`.
    pub fn expire(&self, now_ms: i64, expiry_ms: i64) {
        self.remove_where(|m| now_ms - m.last_heartbeat_ms > expiry_ms || m.channel.is_closed());
    }

    fn remove_where(&self, doomed: impl Fn(&Member) -> bool) {
        let mut changed = Vec::new();
        {
            let mut groups = self.groups.lock().expect("consumers poisoned");
            for (group, members) in groups.iter_mut() {
                let before = members.len();
                members.retain(|_, m| !doomed(m));
                if members.len() != before {
                    changed.push(group.clone());
                }
            }
        }
        for group in changed {
            tracing::info!(%group, "consumers left (connection closed or expired)");
            self.notify(&group);
        }
    }

    /// Client ids of `group`, sorted.
    pub fn members(&self, group: &str) -> Vec<String> {
        let groups = self.groups.lock().expect("consumers poisoned");
        groups
            .get(group)
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Whether any member of `group` subscribes to `topic`.
    pub fn subscribes(&self, group: &str, topic: &str) -> bool {
        let groups = self.groups.lock().expect("consumers poisoned");
        groups.get(group).is_some_and(|m| {
            m.values().any(|c| {
                c.data
                    .subscription_data_set
                    .iter()
                    .any(|s| s.topic == topic)
            })
        })
    }

    fn notify(&self, group: &str) {
        let channels: Vec<Channel> = {
            let groups = self.groups.lock().expect("consumers poisoned");
            groups
                .get(group)
                .map(|m| m.values().map(|c| c.channel.clone()).collect())
                .unwrap_or_default()
        };
        for channel in channels {
            let mut note = RemotingCommand::request(request::NOTIFY_CONSUMER_IDS_CHANGED)
                .with_ext("consumerGroup", group);
            note.flag |= proto::remoting::command::FLAG_ONEWAY;
            channel.send(note);
        }
    }
}
