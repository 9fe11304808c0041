//! `MetaStore`: topic configs, subscription groups and consumer offsets.
//!
//! The trait is a small key-value interface with named trees; [`Meta`] puts typed
//! accessors on top. The real binary uses [`SledMetaStore`]; simulation uses
//! [`MemMetaStore`], which has sled's crash semantics (every write before a completed
//! `flush` survives a crash, and of later writes some prefix survives) and never touches
//! sled, which cannot run under madsim.

use std::future::Future;

use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::error::{Result, StoreError};

mod mem;
#[cfg(not(madsim))]
mod sled_store;

pub use mem::MemMetaStore;
#[cfg(not(madsim))]
pub use sled_store::SledMetaStore;

/// The key spaces of the metadata store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MetaTree {
    Topics,
    SubscriptionGroups,
    ConsumerOffsets,
}

impl MetaTree {
    pub const ALL: [MetaTree; 3] = [
        MetaTree::Topics,
        MetaTree::SubscriptionGroups,
        MetaTree::ConsumerOffsets,
    ];

    pub fn name(self) -> &'static str {
        match self {
            MetaTree::Topics => "topics",
            MetaTree::SubscriptionGroups => "subscription_groups",
            MetaTree::ConsumerOffsets => "consumer_offsets",
        }
    }
}

pub trait MetaStore: Send + Sync + 'static {
    fn get(&self, tree: MetaTree, key: &str) -> Result<Option<Vec<u8>>>;
    fn put(&self, tree: MetaTree, key: &str, value: &[u8]) -> Result<()>;
    fn remove(&self, tree: MetaTree, key: &str) -> Result<()>;
    /// Every entry of `tree`, sorted by key.
    fn scan(&self, tree: MetaTree) -> Result<Vec<(String, Vec<u8>)>>;
    /// Makes every earlier write durable.
    fn flush(&self) -> impl Future<Output = Result<()>> + Send;
}

/// Shared ownership: several owners (the broker's topics and its offsets) use one store.
impl<M: MetaStore> MetaStore for std::sync::Arc<M> {
    fn get(&self, tree: MetaTree, key: &str) -> Result<Option<Vec<u8>>> {
        (**self).get(tree, key)
    }
    fn put(&self, tree: MetaTree, key: &str, value: &[u8]) -> Result<()> {
        (**self).put(tree, key, value)
    }
    fn remove(&self, tree: MetaTree, key: &str) -> Result<()> {
        (**self).remove(tree, key)
    }
    fn scan(&self, tree: MetaTree) -> Result<Vec<(String, Vec<u8>)>> {
        (**self).scan(tree)
    }
    fn flush(&self) -> impl Future<Output = Result<()>> + Send {
        (**self).flush()
    }
}

/// RocketMQ's `TopicConfig`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicConfig {
    pub topic_name: String,
    pub read_queue_nums: u32,
    pub write_queue_nums: u32,
    /// Permission bits: 2 = write, 4 = read (RocketMQ `PermName`).
    pub perm: u32,
    /// Ordered topic: producers pick queues with a selector.
    pub order: bool,
}

/// RocketMQ's `SubscriptionGroupConfig`, the fields raftmq uses.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriptionGroupConfig {
    pub group_name: String,
    pub consume_enable: bool,
    pub consume_broadcast_enable: bool,
    pub retry_max_times: u32,
}

/// Typed access to a `MetaStore`.
pub struct Meta<M: MetaStore> {
    store: M,
}

fn offset_key(group: &str, topic: &str, queue_id: u32) -> String {
    // '@' never appears in group or topic names (RocketMQ's charset), as in RocketMQ's
    // `topic@group` offset table keys.
    format!("{group}@{topic}@{queue_id}")
}

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    bincode::serialize(value).map_err(|e| StoreError::Meta(format!("encode: {e}")))
}

fn decode<T: DeserializeOwned>(tree: MetaTree, key: &str, bytes: &[u8]) -> Result<T> {
    bincode::deserialize(bytes)
        .map_err(|e| StoreError::Meta(format!("{}/{key} is damaged: {e}", tree.name())))
}

impl<M: MetaStore> Meta<M> {
    pub fn new(store: M) -> Self {
        Meta { store }
    }

    pub fn inner(&self) -> &M {
        &self.store
    }

    pub fn put_topic(&self, config: &TopicConfig) -> Result<()> {
        self.store
            .put(MetaTree::Topics, &config.topic_name, &encode(config)?)
    }

    pub fn topic(&self, name: &str) -> Result<Option<TopicConfig>> {
        self.store
            .get(MetaTree::Topics, name)?
            .map(|b| decode(MetaTree::Topics, name, &b))
            .transpose()
    }

    pub fn remove_topic(&self, name: &str) -> Result<()> {
        self.store.remove(MetaTree::Topics, name)
    }

    pub fn topics(&self) -> Result<Vec<TopicConfig>> {
        self.store
            .scan(MetaTree::Topics)?
            .iter()
            .map(|(k, v)| decode(MetaTree::Topics, k, v))
            .collect()
    }

    pub fn put_group(&self, config: &SubscriptionGroupConfig) -> Result<()> {
        self.store.put(
            MetaTree::SubscriptionGroups,
            &config.group_name,
            &encode(config)?,
        )
    }

    pub fn remove_group(&self, name: &str) -> Result<()> {
        self.store.remove(MetaTree::SubscriptionGroups, name)
    }

    pub fn group(&self, name: &str) -> Result<Option<SubscriptionGroupConfig>> {
        let tree = MetaTree::SubscriptionGroups;
        self.store
            .get(tree, name)?
            .map(|b| decode(tree, name, &b))
            .transpose()
    }

    pub fn groups(&self) -> Result<Vec<SubscriptionGroupConfig>> {
        let tree = MetaTree::SubscriptionGroups;
        self.store
            .scan(tree)?
            .iter()
            .map(|(k, v)| decode(tree, k, v))
            .collect()
    }

    pub fn put_consumer_offset(
        &self,
        group: &str,
        topic: &str,
        queue_id: u32,
        offset: u64,
    ) -> Result<()> {
        self.store.put(
            MetaTree::ConsumerOffsets,
            &offset_key(group, topic, queue_id),
            &offset.to_be_bytes(),
        )
    }

    pub fn consumer_offset(&self, group: &str, topic: &str, queue_id: u32) -> Result<Option<u64>> {
        let key = offset_key(group, topic, queue_id);
        let Some(bytes) = self.store.get(MetaTree::ConsumerOffsets, &key)? else {
            return Ok(None);
        };
        let bytes: [u8; 8] = bytes
            .try_into()
            .map_err(|_| StoreError::Meta(format!("consumer_offsets/{key} is not 8 bytes")))?;
        Ok(Some(u64::from_be_bytes(bytes)))
    }

    /// Every committed offset of `group`: (topic, queue id, offset).
    pub fn consumer_offsets(&self, group: &str) -> Result<Vec<(String, u32, u64)>> {
        Ok(self
            .all_consumer_offsets()?
            .into_iter()
            .filter(|(g, ..)| g == group)
            .map(|(_, topic, queue_id, offset)| (topic, queue_id, offset))
            .collect())
    }

    /// Every committed offset: (group, topic, queue id, offset).
    pub fn all_consumer_offsets(&self) -> Result<Vec<(String, String, u32, u64)>> {
        let mut out = Vec::new();
        for (key, value) in self.store.scan(MetaTree::ConsumerOffsets)? {
            let damaged = || StoreError::Meta(format!("consumer_offsets/{key} is damaged"));
            // Neither group nor topic names may hold '@' (`proto::names`).
            let (group, rest) = key.split_once('@').ok_or_else(damaged)?;
            let (topic, queue) = rest.rsplit_once('@').ok_or_else(damaged)?;
            let (Ok(queue_id), Ok(bytes)) = (queue.parse::<u32>(), <[u8; 8]>::try_from(value))
            else {
                return Err(damaged());
            };
            out.push((
                group.to_string(),
                topic.to_string(),
                queue_id,
                u64::from_be_bytes(bytes),
            ));
        }
        Ok(out)
    }

    pub async fn flush(&self) -> Result<()> {
        self.store.flush().await
    }
}

/// Checks shared by both implementations.
#[cfg(test)]
pub(crate) async fn conformance<M: MetaStore>(meta: Meta<M>) {
    let topic = TopicConfig {
        topic_name: "T".into(),
        read_queue_nums: 4,
        write_queue_nums: 4,
        perm: 6,
        order: false,
    };
    meta.put_topic(&topic).unwrap();
    assert_eq!(meta.topic("T").unwrap(), Some(topic.clone()));
    assert_eq!(meta.topics().unwrap(), vec![topic]);
    meta.remove_topic("T").unwrap();
    assert_eq!(meta.topic("T").unwrap(), None);
    let group = SubscriptionGroupConfig {
        group_name: "G".into(),
        consume_enable: true,
        consume_broadcast_enable: false,
        retry_max_times: 16,
    };
    meta.put_group(&group).unwrap();
    assert_eq!(meta.group("G").unwrap(), Some(group.clone()));
    assert_eq!(meta.groups().unwrap(), vec![group]);
    meta.put_consumer_offset("G", "T", 1, 10).unwrap();
    meta.put_consumer_offset("G", "T", 1, 11).unwrap();
    meta.put_consumer_offset("G", "U", 0, 5).unwrap();
    meta.put_consumer_offset("G2", "T", 1, 99).unwrap();
    assert_eq!(meta.consumer_offset("G", "T", 1).unwrap(), Some(11));
    assert_eq!(meta.consumer_offset("G", "T", 2).unwrap(), None);
    assert_eq!(
        meta.consumer_offsets("G").unwrap(),
        vec![("T".into(), 1, 11), ("U".into(), 0, 5)]
    );
    meta.flush().await.unwrap();
}
