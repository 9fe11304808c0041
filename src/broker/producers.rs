//! Producer connections by producer group, learned from heartbeats: where the broker
//! sends CHECK_TRANSACTION_STATE for a group's undecided transactions (RocketMQ's
//! `ProducerManager`).

use std::collections::BTreeMap;
use std::sync::Mutex;

use proto::net::server::Channel;

/// RocketMQ's internal producer group, which every client instance heartbeats with.
pub const CLIENT_INNER_PRODUCER: &str = "CLIENT_INNER_PRODUCER";

struct Connection {
    channel: Channel,
    last_heartbeat_ms: i64,
}

#[derive(Default)]
pub struct Producers {
    /// Group → client id → its connection. Ordered, so picks replay in simulation.
    groups: Mutex<BTreeMap<String, BTreeMap<String, Connection>>>,
}

impl Producers {
    pub fn heartbeat(&self, group: &str, client_id: &str, channel: Channel, now_ms: i64) {
        if group == CLIENT_INNER_PRODUCER {
            return;
        }
        let mut groups = self.groups.lock().expect("producers poisoned");
        groups.entry(group.to_string()).or_default().insert(
            client_id.to_string(),
            Connection {
                channel,
                last_heartbeat_ms: now_ms,
            },
        );
    }

    pub fn unregister(&self, group: &str, client_id: &str) {
        let mut groups = self.groups.lock().expect("producers poisoned");
        if let Some(clients) = groups.get_mut(group) {
            clients.remove(client_id);
            if clients.is_empty() {
                groups.remove(group);
            }
        }
    }

    /// A live connection of `group`: open, and heard from within `expired_ms` (expired
    /// and closed ones are forgotten). `turn` picks among them (`turn % n`): a caller
    /// asking about one transaction again passes the next turn, so its checks go to
    /// every producer in rotation and a producer that died with its connection still
    /// open (no reset seen yet) cannot take all of them.
    pub fn pick(&self, group: &str, turn: u64, now_ms: i64, expired_ms: u64) -> Option<Channel> {
        let mut groups = self.groups.lock().expect("producers poisoned");
        let clients = groups.get_mut(group)?;
        clients.retain(|_, c| {
            !c.channel.is_closed() && now_ms - c.last_heartbeat_ms <= expired_ms as i64
        });
        if clients.is_empty() {
            groups.remove(group);
            return None;
        }
        let n = (turn % clients.len() as u64) as usize;
        clients.values().nth(n).map(|c| c.channel.clone())
    }

    /// Producers per group, for runtime figures.
    pub fn count(&self) -> usize {
        let groups = self.groups.lock().expect("producers poisoned");
        groups.values().map(BTreeMap::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn channel(port: u16) -> Channel {
        Channel::closed(([127, 0, 0, 1], port).into())
    }

    #[test]
    fn a_group_without_live_producers_has_none_to_pick() {
        let producers = Producers::default();
        producers.heartbeat(CLIENT_INNER_PRODUCER, "c1", channel(1), 0);
        assert_eq!(producers.count(), 0, "the inner group is every client's");
        assert!(producers.pick("pg", 0, 0, 120_000).is_none());
        // A closed channel (the producer left) is forgotten.
        producers.heartbeat("pg", "c1", channel(1), 0);
        assert_eq!(producers.count(), 1);
        assert!(producers.pick("pg", 0, 0, 120_000).is_none());
        assert_eq!(producers.count(), 0);
        // One not heard from within the expiry is forgotten too.
        let (live, _rx) = Channel::detached(([127, 0, 0, 1], 2).into(), 1);
        producers.heartbeat("pg", "c2", live, 0);
        assert!(producers.pick("pg", 0, 120_001, 120_000).is_none());
    }

    #[test]
    fn turns_go_round_over_a_groups_live_producers() {
        let producers = Producers::default();
        let (a, _ra) = Channel::detached(([127, 0, 0, 1], 1).into(), 1);
        let (b, _rb) = Channel::detached(([127, 0, 0, 1], 2).into(), 1);
        producers.heartbeat("pg", "a", a, 0);
        producers.heartbeat("pg", "b", b, 0);
        let picked: Vec<u16> = (7..11)
            .map(|turn| {
                producers
                    .pick("pg", turn, 10, 120_000)
                    .expect("live")
                    .peer
                    .port()
            })
            .collect();
        assert_eq!(picked, vec![2, 1, 2, 1]);
        producers.unregister("pg", "a");
        assert_eq!(
            producers.pick("pg", 0, 10, 120_000).expect("b").peer.port(),
            2
        );
    }
}
