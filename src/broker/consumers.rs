//! Consumer groups: which clients are in each group, and the channels to reach them.
//!
//! A client joins with a heartbeat and leaves by unregistering, by closing its
//! connection, or by going silent for `client_channel_expired_ms`. Every change sends
//! NOTIFY_CONSUMER_IDS_CHANGED to the group's remaining members, so they rebalance at
//! once instead of at their next periodic rebalance.
//!
//! A client that unregistered stays departed on that connection (for
//! `client_channel_expired_ms`): requests on one connection are served concurrently, so
//! a heartbeat the client sent before its unregister (held up by a paused broker, say)
//! can be served after it, and would otherwise bring back a member that never
//! heartbeats again, holding its queues until it expires. A client that comes back
//! under the same id (a Java consumer restarted in the same JVM has `ip@pid`) does so
//! on a new connection, and is welcome.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Mutex;

use proto::net::server::Channel;
use proto::remoting::body::{Connection, ConsumerConnection, ConsumerData};
use proto::remoting::codes::request;
use proto::remoting::RemotingCommand;

struct Member {
    channel: Channel,
    last_heartbeat_ms: i64,
    data: ConsumerData,
    /// The client's language and version, from its heartbeat's header.
    client: ClientKind,
}

/// What a client said it is in its requests' headers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClientKind {
    pub language: u8,
    pub version: i32,
}

/// (group, client id) → the connection it unregistered on, and when.
#[derive(Default)]
struct Departed(BTreeMap<(String, String), (SocketAddr, i64)>);

impl Departed {
    fn record(&mut self, group: &str, client_id: &str, peer: SocketAddr, now_ms: i64) {
        self.0
            .insert((group.to_string(), client_id.to_string()), (peer, now_ms));
    }

    /// Whether `client_id` left `group` on the connection from `peer`.
    fn contains(&self, group: &str, client_id: &str, peer: SocketAddr) -> bool {
        self.0
            .get(&(group.to_string(), client_id.to_string()))
            .is_some_and(|(left_on, _)| *left_on == peer)
    }

    /// Forgets departures older than `expiry_ms`: by then a late heartbeat would expire.
    fn purge(&mut self, now_ms: i64, expiry_ms: i64) {
        self.0.retain(|_, (_, at)| now_ms - *at <= expiry_ms);
    }
}

#[derive(Default)]
pub struct Consumers {
    /// group → client id → member.
    groups: Mutex<BTreeMap<String, BTreeMap<String, Member>>>,
    departed: Mutex<Departed>,
}

impl Consumers {
    /// Records a heartbeat; notifies the group when the client is new to it. A
    /// heartbeat from a client that already unregistered from the group is ignored.
    pub fn heartbeat(
        &self,
        client_id: &str,
        data: ConsumerData,
        client: ClientKind,
        channel: Channel,
        now_ms: i64,
    ) {
        let group = data.group_name.clone();
        if self.departed.lock().expect("departed poisoned").contains(
            &group,
            client_id,
            channel.peer,
        ) {
            tracing::info!(%group, client_id, "heartbeat from a departed consumer ignored");
            return;
        }
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
                    client,
                },
            );
            joined
        };
        if joined {
            tracing::info!(%group, client_id, "consumer joined");
            self.notify(&group);
        }
    }

    pub fn unregister(&self, client_id: &str, group: &str, peer: SocketAddr, now_ms: i64) {
        self.departed
            .lock()
            .expect("departed poisoned")
            .record(group, client_id, peer, now_ms);
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
        self.departed
            .lock()
            .expect("departed poisoned")
            .purge(now_ms, expiry_ms);
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

    /// `group`'s clients and what they subscribe to (GET_CONSUMER_CONNECTION_LIST);
    /// `None` when no member is online.
    pub fn connection(&self, group: &str) -> Option<ConsumerConnection> {
        let groups = self.groups.lock().expect("consumers poisoned");
        let members = groups.get(group).filter(|m| !m.is_empty())?;
        let mut out = ConsumerConnection::default();
        for (client_id, m) in members {
            out.connection_set.push(Connection {
                client_id: client_id.clone(),
                client_addr: m.channel.peer.to_string(),
                language: proto::remoting::codes::language::name(m.client.language).into(),
                version: m.client.version,
            });
            for sub in &m.data.subscription_data_set {
                out.subscription_table
                    .entry(sub.topic.clone())
                    .or_insert_with(|| sub.clone());
            }
            out.consume_type = m.data.consume_type.clone();
            out.message_model = m.data.message_model.clone();
            out.consume_from_where = m.data.consume_from_where.clone();
        }
        Some(out)
    }

    /// Every group with members online, and how many, by group name.
    pub fn group_sizes(&self) -> Vec<(String, usize)> {
        let groups = self.groups.lock().expect("consumers poisoned");
        groups
            .iter()
            .filter(|(_, m)| !m.is_empty())
            .map(|(g, m)| (g.clone(), m.len()))
            .collect()
    }

    /// Client ids of `group`, sorted.
    pub fn members(&self, group: &str) -> Vec<String> {
        let groups = self.groups.lock().expect("consumers poisoned");
        groups
            .get(group)
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Whether `group`'s members consume by broadcasting.
    pub fn broadcasting(&self, group: &str) -> bool {
        let groups = self.groups.lock().expect("consumers poisoned");
        groups
            .get(group)
            .is_some_and(|m| m.values().any(|c| c.data.message_model == "BROADCASTING"))
    }

    /// The tag expression `group`'s members registered for `topic` in their heartbeats.
    /// Push consumers of the Java client leave the subscription out of their pulls
    /// (`postSubscriptionWhenPull` is off by default), so, as Java's broker does, a pull
    /// without one is filtered by this.
    pub fn subscription(&self, group: &str, topic: &str) -> Option<String> {
        let groups = self.groups.lock().expect("consumers poisoned");
        groups.get(group)?.values().find_map(|c| {
            c.data
                .subscription_data_set
                .iter()
                .find(|s| s.topic == topic)
                .map(|s| s.sub_string.clone())
        })
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
            let note = RemotingCommand::server_request(request::NOTIFY_CONSUMER_IDS_CHANGED)
                .with_ext("consumerGroup", group);
            channel.send(note);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_departure_is_remembered_per_group_until_it_expires() {
        let (a, b): (SocketAddr, SocketAddr) = (
            "10.0.0.1:5000".parse().unwrap(),
            "10.0.0.1:5001".parse().unwrap(),
        );
        let mut d = Departed::default();
        d.record("G", "c1", a, 1_000);
        assert!(d.contains("G", "c1", a));
        assert!(!d.contains("G", "c1", b), "back on a new connection");
        assert!(!d.contains("H", "c1", a), "groups are independent");
        assert!(!d.contains("G", "c2", a));
        d.purge(1_000 + 120_000, 120_000);
        assert!(d.contains("G", "c1", a), "kept for the whole expiry");
        d.purge(1_001 + 120_000, 120_000);
        assert!(!d.contains("G", "c1", a));
    }
}
