//! Topic configs: kept in memory, persisted in the `MetaStore`.

use std::collections::BTreeMap;
use std::sync::RwLock;

use proto::remoting::body::{perm, TopicConfigBody, TopicConfigSerializeWrapper};
use store::meta::{Meta, MetaStore, TopicConfig};

/// RocketMQ's auto-create template topic.
pub const AUTO_CREATE_TOPIC: &str = "TBW102";

pub struct Topics<M: MetaStore> {
    meta: Meta<M>,
    table: RwLock<BTreeMap<String, TopicConfig>>,
    version: std::sync::atomic::AtomicI64,
}

impl<M: MetaStore> Topics<M> {
    /// Loads the persisted topics; registers TBW102 when auto-create is on (it is how
    /// clients find a broker for a topic that does not exist yet).
    pub fn load(meta: Meta<M>, auto_create: bool, default_queue_nums: u32) -> store::Result<Self> {
        let mut table: BTreeMap<String, TopicConfig> = meta
            .topics()?
            .into_iter()
            .map(|t| (t.topic_name.clone(), t))
            .collect();
        if auto_create {
            table.insert(
                AUTO_CREATE_TOPIC.into(),
                TopicConfig {
                    topic_name: AUTO_CREATE_TOPIC.into(),
                    read_queue_nums: default_queue_nums,
                    write_queue_nums: default_queue_nums,
                    perm: perm::READ_WRITE | perm::INHERIT,
                    order: false,
                },
            );
        } else {
            table.remove(AUTO_CREATE_TOPIC);
        }
        Ok(Topics {
            meta,
            table: RwLock::new(table),
            version: std::sync::atomic::AtomicI64::new(1),
        })
    }

    pub fn get(&self, topic: &str) -> Option<TopicConfig> {
        self.table
            .read()
            .expect("topics poisoned")
            .get(topic)
            .cloned()
    }

    pub fn all(&self) -> Vec<TopicConfig> {
        self.table
            .read()
            .expect("topics poisoned")
            .values()
            .cloned()
            .collect()
    }

    /// Creates or updates a topic, durably.
    pub async fn put(&self, config: TopicConfig) -> store::Result<()> {
        self.meta.put_topic(&config)?;
        self.meta.flush().await?;
        self.table
            .write()
            .expect("topics poisoned")
            .insert(config.topic_name.clone(), config);
        self.version
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    /// What the broker registers with the name servers.
    pub fn wrapper(&self) -> TopicConfigSerializeWrapper {
        TopicConfigSerializeWrapper {
            topic_config_table: self
                .all()
                .into_iter()
                .map(|t| (t.topic_name.clone(), body(t)))
                .collect(),
            data_version: proto::remoting::body::DataVersion {
                timestamp: 0,
                counter: self.version.load(std::sync::atomic::Ordering::Relaxed),
            },
        }
    }
}

/// A topic as RocketMQ's `TopicConfig` JSON names it.
pub fn body(t: TopicConfig) -> TopicConfigBody {
    TopicConfigBody {
        topic_name: t.topic_name,
        read_queue_nums: t.read_queue_nums,
        write_queue_nums: t.write_queue_nums,
        perm: t.perm,
        topic_filter_type: Some("SINGLE_TAG".into()),
        topic_sys_flag: 0,
        order: t.order,
    }
}
