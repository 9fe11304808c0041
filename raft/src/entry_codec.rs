//! How a Raft entry that carries no messages (blank, membership, consumer offsets,
//! topic and subscription group changes) is stored in the log: bincode behind a
//! version tag (see `store::versioned`).
//!
//! Entries written before the tag are read in the layout they had then, whose request
//! enum had one more variant (opaque bytes for tests) before the subscription group
//! ones, so its variant numbers differ from today's: [`legacy`] mirrors it.

use std::io;

use openraft::EntryPayload;
use store::versioned::{self, DecodeError, Versioned};

use crate::types::GroupRaft;

/// The layout of a control entry written now.
const LAYOUT_VERSION: u8 = 1;

pub(crate) fn encode(payload: &EntryPayload<GroupRaft>) -> io::Result<Vec<u8>> {
    versioned::encode(LAYOUT_VERSION, payload).map_err(io::Error::other)
}

pub(crate) fn decode(bytes: &[u8]) -> io::Result<EntryPayload<GroupRaft>> {
    const RECORD: &str = "a Raft control entry";
    let decoded = match versioned::split(bytes) {
        Versioned::Tagged {
            version: LAYOUT_VERSION,
            body,
        } => bincode::deserialize(body).map_err(|source| DecodeError::Body {
            record: RECORD,
            version: LAYOUT_VERSION,
            source,
        }),
        Versioned::Tagged { version, .. } => Err(DecodeError::UnknownVersion {
            record: RECORD,
            found: version,
            known: LAYOUT_VERSION,
        }),
        Versioned::Untagged(body) => bincode::deserialize::<legacy::Payload>(body)
            .map(legacy::Payload::upgrade)
            .map_err(|source| DecodeError::Body {
                record: RECORD,
                version: 0,
                source,
            }),
    };
    decoded.map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// The untagged layout.
mod legacy {
    use bytes::Bytes;
    use openraft::{BasicNode, EntryPayload, Membership};
    use serde::Deserialize;
    use store::meta::{SubscriptionGroupConfig, TopicConfig};

    use crate::types::{GroupRaft, GroupRequest, OffsetUpdate};

    /// `openraft::EntryPayload` over the old request enum: same variants, same order.
    #[derive(Deserialize)]
    pub(super) enum Payload {
        Blank,
        Normal(Request),
        Membership(Membership<u64, BasicNode>),
    }

    /// The request enum as it was. Message entries never took this path (the log
    /// stores their messages as records), but their variants held numbers in it.
    #[derive(Deserialize)]
    #[allow(dead_code)] // Fields read only by serde.
    pub(super) enum Request {
        Messages {
            messages: Vec<Bytes>,
            ticket: Option<u64>,
        },
        Stored(Vec<Bytes>),
        ConsumerOffsets(Vec<OffsetUpdate>),
        Topic(TopicConfig),
        /// Opaque bytes that tests of Raft replicated; applying one did nothing.
        Raw(Vec<u8>),
        SubscriptionGroup(SubscriptionGroupConfig),
        DeleteSubscriptionGroup(String),
    }

    impl Payload {
        pub(super) fn upgrade(self) -> EntryPayload<GroupRaft> {
            let request = match self {
                Payload::Blank => return EntryPayload::Blank,
                Payload::Membership(m) => return EntryPayload::Membership(m),
                Payload::Normal(request) => request,
            };
            EntryPayload::Normal(match request {
                Request::Messages { messages, ticket } => {
                    GroupRequest::Messages { messages, ticket }
                }
                Request::Stored(messages) => GroupRequest::Stored(messages),
                Request::ConsumerOffsets(updates) => GroupRequest::ConsumerOffsets(updates),
                Request::Topic(config) => GroupRequest::Topic(config),
                // It changed nothing when applied; a blank entry changes nothing too.
                Request::Raw(_) => return EntryPayload::Blank,
                Request::SubscriptionGroup(config) => GroupRequest::SubscriptionGroup(config),
                Request::DeleteSubscriptionGroup(name) => {
                    GroupRequest::DeleteSubscriptionGroup(name)
                }
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use openraft::{BasicNode, Membership};
    use serde::Serialize;
    use store::meta::SubscriptionGroupConfig;

    use super::*;
    use crate::types::{GroupRequest, OffsetUpdate};

    fn offsets() -> GroupRequest {
        GroupRequest::ConsumerOffsets(vec![OffsetUpdate {
            group: "G".into(),
            topic: "T".into(),
            queue_id: 2,
            offset: 9,
        }])
    }

    #[test]
    fn control_entries_read_back_as_written() {
        let members = Membership::<u64, BasicNode>::new(vec![BTreeSet::from([1, 2, 3])], None);
        for payload in [
            EntryPayload::Blank,
            EntryPayload::Membership(members),
            EntryPayload::Normal(offsets()),
            EntryPayload::Normal(GroupRequest::SubscriptionGroup(SubscriptionGroupConfig {
                group_name: "G".into(),
                consume_enable: true,
                consume_broadcast_enable: false,
                retry_max_times: 16,
            })),
            EntryPayload::Normal(GroupRequest::DeleteSubscriptionGroup("G".into())),
        ] {
            let bytes = encode(&payload).unwrap();
            assert_eq!(decode(&bytes).unwrap(), payload);
        }
    }

    /// The untagged layout, as builds before the tag serialized it.
    #[derive(Serialize)]
    enum OldPayload {
        #[allow(dead_code)]
        Blank,
        Normal(OldRequest),
    }
    #[derive(Serialize)]
    #[allow(dead_code)]
    enum OldRequest {
        Messages,
        Stored,
        ConsumerOffsets(Vec<OffsetUpdate>),
        Topic,
        Raw(Vec<u8>),
        SubscriptionGroup,
        DeleteSubscriptionGroup(String),
    }

    #[test]
    fn untagged_entries_keep_their_old_variant_numbers() {
        let old = |r: OldRequest| bincode::serialize(&OldPayload::Normal(r)).unwrap();
        let GroupRequest::ConsumerOffsets(updates) = offsets() else {
            unreachable!()
        };
        assert_eq!(
            decode(&old(OldRequest::ConsumerOffsets(updates))).unwrap(),
            EntryPayload::Normal(offsets())
        );
        assert_eq!(
            decode(&old(OldRequest::DeleteSubscriptionGroup("G".into()))).unwrap(),
            EntryPayload::Normal(GroupRequest::DeleteSubscriptionGroup("G".into()))
        );
        assert_eq!(
            decode(&old(OldRequest::Raw(vec![7]))).unwrap(),
            EntryPayload::Blank
        );
    }

    #[test]
    fn an_entry_of_a_newer_layout_is_refused() {
        let bytes =
            versioned::encode(LAYOUT_VERSION + 1, &EntryPayload::<GroupRaft>::Blank).unwrap();
        let e = decode(&bytes).unwrap_err().to_string();
        assert!(e.contains("layout version 2"), "{e}");
    }
}
