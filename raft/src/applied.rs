//! The replicated state of a broker group besides its messages, and how one committed
//! entry changes it: a pure function of the state and the entry, with the effects
//! outside the state (messages that became readable, a changed topic table) returned
//! for the state machine to carry out.

use std::collections::BTreeMap;
use std::io;

use openraft::{BasicNode, Entry, EntryPayload, LogId, StoredMembership};
use proto::MessageRef;
use serde::{Deserialize, Serialize};
use store::meta::{SubscriptionGroupConfig, TopicConfig};
use store::versioned::{self, DecodeError, Versioned};
use store::LogStart;

use crate::types::{GroupRaft, GroupRequest, GroupResponse, StoredAt};

/// (consumer group, topic, queue id).
pub type OffsetKey = (String, String, u32);

/// Everything a group's entries set, besides the messages themselves (which the
/// CommitLog holds): saved in the machine's slot files and carried by snapshots.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct Applied {
    pub(crate) last_applied: Option<LogId<u64>>,
    pub(crate) membership: StoredMembership<u64, BasicNode>,
    pub(crate) offsets: BTreeMap<OffsetKey, u64>,
    pub(crate) topics: BTreeMap<String, TopicConfig>,
    /// CommitLog offset below which every applied message lies.
    pub(crate) readable_offset: u64,
    pub(crate) groups: BTreeMap<String, SubscriptionGroupConfig>,
    /// The latest membership entries applied, oldest first: a snapshot taken at an
    /// older log id names the membership in effect there.
    pub(crate) memberships: Vec<StoredMembership<u64, BasicNode>>,
    /// Set by an installed snapshot: where this replica's log must start.
    pub(crate) log_start: Option<LogStart>,
}

/// The applied state as builds before catch-up by snapshot saved it (no membership
/// history, no log start): still read, so a replica's data survives the upgrade.
#[derive(Serialize, Deserialize)]
struct AppliedV1 {
    last_applied: Option<LogId<u64>>,
    membership: StoredMembership<u64, BasicNode>,
    offsets: BTreeMap<OffsetKey, u64>,
    topics: BTreeMap<String, TopicConfig>,
    readable_offset: u64,
    groups: BTreeMap<String, SubscriptionGroupConfig>,
}

/// The layout of the saved applied state and of a snapshot (see `store::versioned`).
pub(crate) const LAYOUT_VERSION: u8 = 1;

/// Decodes a saved applied state: tagged, or untagged in the current or the previous
/// layout.
pub(crate) fn decode_applied(bytes: &[u8]) -> Result<Applied, DecodeError> {
    const RECORD: &str = "the applied state";
    let body = match versioned::split(bytes) {
        Versioned::Tagged { .. } => {
            return versioned::decode_current(RECORD, LAYOUT_VERSION, bytes)
        }
        Versioned::Untagged(body) => body,
    };
    bincode::deserialize::<Applied>(body).or_else(|e| {
        let old: AppliedV1 = bincode::deserialize(body).map_err(|_| DecodeError::Body {
            record: RECORD,
            version: 0,
            source: e,
        })?;
        Ok(Applied {
            last_applied: old.last_applied,
            membership: old.membership,
            offsets: old.offsets,
            topics: old.topics,
            readable_offset: old.readable_offset,
            groups: old.groups,
            memberships: Vec::new(),
            log_start: None,
        })
    })
}

/// Membership entries kept in [`Applied::memberships`]: changes are rare, and a
/// snapshot is taken at most a retention period back.
const MEMBERSHIPS_KEPT: usize = 16;

/// What applying entries asks of the world outside the state.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Effects {
    /// (topic, queue id, queue offset) of each message that became readable, in order.
    pub committed: Vec<(String, u32, u64)>,
    /// CommitLog offset below which every message applied lies (0: none applied).
    pub readable_offset: u64,
    /// Whether the topic table changed.
    pub topics_changed: bool,
}

impl Applied {
    /// Applies one committed entry. Every entry but a message entry is a
    /// last-writer-wins update of one key (a consumer offset, a topic, a subscription
    /// group) or the membership, so applying a suffix of entries again over a state
    /// that already holds them ends in the same state: what makes re-applying after a
    /// restart, and a fuzzy snapshot, exact.
    pub(crate) fn apply(
        &mut self,
        entry: Entry<GroupRaft>,
        effects: &mut Effects,
    ) -> Result<GroupResponse, io::Error> {
        let Entry { log_id, payload } = entry;
        self.last_applied = Some(log_id);
        let mut stored = Vec::new();
        match payload {
            EntryPayload::Blank => {}
            EntryPayload::Normal(GroupRequest::Stored(messages)) => {
                for bytes in &messages {
                    let (at, topic) = stored_at(bytes)?;
                    effects
                        .committed
                        .push((topic, at.queue_id, at.queue_offset));
                    effects.readable_offset = at.physical_offset + u64::from(at.size);
                    self.readable_offset = self.readable_offset.max(effects.readable_offset);
                    stored.push(at);
                }
            }
            EntryPayload::Normal(GroupRequest::Messages { .. }) => {
                return Err(io::Error::other(
                    "a message entry must be applied as the log stored it",
                ))
            }
            EntryPayload::Normal(GroupRequest::ConsumerOffsets(updates)) => {
                for u in updates {
                    self.offsets
                        .insert((u.group, u.topic, u.queue_id), u.offset);
                }
            }
            EntryPayload::Normal(GroupRequest::Topic(config)) => {
                self.topics.insert(config.topic_name.clone(), config);
                effects.topics_changed = true;
            }
            EntryPayload::Normal(GroupRequest::SubscriptionGroup(config)) => {
                self.groups.insert(config.group_name.clone(), config);
            }
            EntryPayload::Normal(GroupRequest::DeleteSubscriptionGroup(name)) => {
                self.groups.remove(&name);
            }
            EntryPayload::Membership(m) => {
                let previous =
                    std::mem::replace(&mut self.membership, StoredMembership::new(Some(log_id), m));
                let history = &mut self.memberships;
                if previous.log_id() < &Some(log_id)
                    && history.last().map(|h| h.log_id()) < Some(previous.log_id())
                {
                    history.push(previous);
                }
                if history.len() > MEMBERSHIPS_KEPT {
                    history.remove(0);
                }
            }
        }
        Ok(GroupResponse {
            index: log_id.index,
            stored,
        })
    }
}

/// Where a message entry's bytes say it was stored, and its topic.
fn stored_at(bytes: &[u8]) -> Result<(StoredAt, String), io::Error> {
    let m = MessageRef::parse(bytes).map_err(io::Error::other)?;
    let at = StoredAt {
        physical_offset: m.physical_offset(),
        size: bytes.len() as u32,
        queue_id: m.queue_id(),
        queue_offset: m.queue_offset(),
        store_timestamp_ms: m.store_timestamp_ms(),
        store_host: m.store_host(),
    };
    Ok((at, m.topic().to_string()))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::types::OffsetUpdate;

    #[test]
    fn a_state_saved_before_snapshots_still_decodes() {
        let old = AppliedV1 {
            last_applied: Some(LogId::new(openraft::CommittedLeaderId::new(3, 1), 41)),
            membership: StoredMembership::default(),
            offsets: BTreeMap::from([(("G".to_string(), "T".to_string(), 2), 17)]),
            topics: BTreeMap::new(),
            readable_offset: 4096,
            groups: BTreeMap::new(),
        };
        let applied = decode_applied(&bincode::serialize(&old).unwrap()).unwrap();
        assert_eq!(applied.last_applied, old.last_applied);
        assert_eq!(applied.offsets, old.offsets);
        assert_eq!(applied.readable_offset, 4096);
        assert!(applied.memberships.is_empty() && applied.log_start.is_none());
        // The current layout reads back untagged, as saved before the tag, and tagged.
        let again = decode_applied(&bincode::serialize(&applied).unwrap()).unwrap();
        assert_eq!(again.readable_offset, 4096);
        let tagged = versioned::encode(LAYOUT_VERSION, &applied).unwrap();
        assert_eq!(decode_applied(&tagged).unwrap().offsets, old.offsets);
        assert!(decode_applied(b"garbage").is_err());
        let newer = versioned::encode(LAYOUT_VERSION + 1, &applied).unwrap();
        let e = decode_applied(&newer).unwrap_err().to_string();
        assert!(e.contains("layout version 2"), "{e}");
    }

    fn entry(index: u64, payload: EntryPayload<GroupRaft>) -> Entry<GroupRaft> {
        Entry {
            log_id: LogId::new(openraft::CommittedLeaderId::new(1, 1), index),
            payload,
        }
    }

    fn offset(group: u8, queue_id: u32, offset: u64) -> EntryPayload<GroupRaft> {
        EntryPayload::Normal(GroupRequest::ConsumerOffsets(vec![OffsetUpdate {
            group: format!("G{group}"),
            topic: "T".into(),
            queue_id,
            offset,
        }]))
    }

    fn topic(name: u8, queues: u32) -> EntryPayload<GroupRaft> {
        EntryPayload::Normal(GroupRequest::Topic(TopicConfig {
            topic_name: format!("T{name}"),
            read_queue_nums: queues,
            write_queue_nums: queues,
            perm: 6,
            order: false,
        }))
    }

    fn group(name: u8, retry_max_times: u32) -> EntryPayload<GroupRaft> {
        EntryPayload::Normal(GroupRequest::SubscriptionGroup(SubscriptionGroupConfig {
            group_name: format!("G{name}"),
            consume_enable: true,
            consume_broadcast_enable: false,
            retry_max_times,
        }))
    }

    #[test]
    fn entries_set_their_keys_and_report_their_effects() {
        let mut state = Applied::default();
        let mut effects = Effects::default();
        let response = state
            .apply(entry(1, offset(0, 2, 40)), &mut effects)
            .unwrap();
        assert_eq!(response.index, 1);
        state
            .apply(entry(2, offset(0, 2, 42)), &mut effects)
            .unwrap();
        assert_eq!(state.offsets[&("G0".into(), "T".into(), 2)], 42);
        assert!(!effects.topics_changed);
        state.apply(entry(3, topic(1, 8)), &mut effects).unwrap();
        assert!(effects.topics_changed);
        assert_eq!(state.topics["T1"].write_queue_nums, 8);
        state.apply(entry(4, group(5, 3)), &mut effects).unwrap();
        state
            .apply(entry(5, EntryPayload::Blank), &mut effects)
            .unwrap();
        assert_eq!(state.groups["G5"].retry_max_times, 3);
        let delete = GroupRequest::DeleteSubscriptionGroup("G5".into());
        state
            .apply(entry(6, EntryPayload::Normal(delete)), &mut effects)
            .unwrap();
        assert!(state.groups.is_empty());
        assert_eq!(state.last_applied.map(|l| l.index), Some(6));
        assert!(effects.committed.is_empty() && effects.readable_offset == 0);
    }

    #[test]
    fn a_message_entry_not_yet_stored_is_refused() {
        let mut state = Applied::default();
        let unstored = GroupRequest::Messages {
            messages: vec![bytes::Bytes::from_static(b"x")],
            ticket: None,
        };
        let e = state
            .apply(
                entry(1, EntryPayload::Normal(unstored)),
                &mut Effects::default(),
            )
            .unwrap_err();
        assert!(e.to_string().contains("as the log stored it"), "{e}");
    }

    fn any_payload() -> impl Strategy<Value = EntryPayload<GroupRaft>> {
        prop_oneof![
            (0..3u8, 0..3u32, 0..100u64).prop_map(|(g, q, o)| offset(g, q, o)),
            (0..3u8, 1..9u32).prop_map(|(t, n)| topic(t, n)),
            (0..3u8, 0..20u32).prop_map(|(g, r)| group(g, r)),
            (0..3u8).prop_map(
                |g| EntryPayload::Normal(GroupRequest::DeleteSubscriptionGroup(format!("G{g}")))
            ),
            Just(EntryPayload::Blank),
            proptest::collection::btree_set(1..5u64, 1..4).prop_map(|voters| {
                EntryPayload::Membership(openraft::Membership::new(vec![voters], None))
            }),
        ]
    }

    proptest! {
        /// A restart re-applies the entries after the saved state, and a follower
        /// re-applies those after a fuzzy snapshot's log id: both end where applying
        /// each entry once does.
        #[test]
        fn applying_a_suffix_again_changes_nothing(
            payloads in proptest::collection::vec(any_payload(), 1..40),
            split in 0..40usize,
        ) {
            let entries: Vec<_> = payloads
                .into_iter()
                .enumerate()
                .map(|(i, p)| entry(i as u64 + 1, p))
                .collect();
            let split = split.min(entries.len());
            let mut once = Applied::default();
            for e in &entries {
                once.apply(e.clone(), &mut Effects::default()).unwrap();
            }
            let mut again = once.clone();
            for e in &entries[split..] {
                again.apply(e.clone(), &mut Effects::default()).unwrap();
            }
            prop_assert_eq!(&again.offsets, &once.offsets);
            prop_assert_eq!(&again.topics, &once.topics);
            prop_assert_eq!(&again.groups, &once.groups);
            prop_assert_eq!(again.last_applied, once.last_applied);
            prop_assert_eq!(&again.membership, &once.membership);
        }
    }
}
