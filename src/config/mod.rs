//! Broker configuration: a TOML file with RocketMQ's names in snake case
//! (`broker_cluster_name`, `broker_name`, `listen_port`, `namesrv_addr`,
//! `flush_disk_type`, ...). Unknown fields are rejected with their name.

mod delay_levels;
mod replication;
mod runtime;

pub use delay_levels::{parse_delay_levels, DEFAULT_MESSAGE_DELAY_LEVEL};
pub use replication::{AckMode, Election, ReplicaAddrs, ReplicationSettings};
pub use runtime::{effective_workers, BUSY_POLL_US_MAX};

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use store::{FlushMode, StoreConfig};

/// Bound on `worker_threads`: a typo such as 10000 should fail loudly, not spawn them.
pub const WORKER_THREADS_MAX: usize = 1024;

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BrokerConfig {
    pub broker_cluster_name: String,
    pub broker_name: String,
    /// 0 is the master (RocketMQ's BrokerId).
    pub broker_id: u64,
    /// The address clients are told to use (RocketMQ `brokerIP1`).
    pub broker_ip1: String,
    /// Address to bind.
    pub listen_addr: String,
    pub listen_port: u16,
    /// Name servers, `;`-separated (RocketMQ `namesrvAddr`).
    pub namesrv_addr: String,
    /// Data directory (RocketMQ `storePathRootDir`).
    pub store_path_root_dir: PathBuf,
    pub flush_disk_type: FlushMode,
    /// Create unknown topics on first send (RocketMQ `autoCreateTopicEnable`, TBW102).
    pub auto_create_topic_enable: bool,
    /// Create a consumer group's subscription group on its first heartbeat or pull
    /// (RocketMQ `autoCreateSubscriptionGroup`); when off, unknown groups cannot pull.
    pub auto_create_subscription_group: bool,
    /// Queues of an auto-created topic (RocketMQ `defaultTopicQueueNums`).
    pub default_topic_queue_nums: u32,
    /// Let a pull with nothing new wait for data (RocketMQ `longPollingEnable`).
    pub long_polling_enable: bool,
    /// How often the broker registers with every name server (RocketMQ: 30 s).
    pub register_broker_interval_ms: u64,
    /// How often consumer offsets are flushed (RocketMQ `flushConsumerOffsetInterval`).
    pub flush_consumer_offset_interval_ms: u64,
    /// A client not heard from for this long leaves its group (RocketMQ: 120 s).
    pub client_channel_expired_ms: u64,
    /// Runtime worker threads; 0 means one per CPU core. On a machine the broker shares
    /// with its clients (or with a benchmark), fewer workers than cores spend less CPU
    /// per message: tasks stop migrating between workers (docs/benchmarks.md).
    pub worker_threads: usize,
    /// Keep polling for I/O this many µs after each frame instead of parking (0: off).
    /// Needs `worker_threads` 1 (0 then means 1). For one-in-flight latency on VMs,
    /// where waking a parked thread costs as much as the request; it spends CPU
    /// spinning in gaps between frames shorter than the window (docs/benchmarks.md).
    pub busy_poll_us: u64,
    /// Serve Prometheus metrics at `http://listen_addr:metrics_port/metrics` (0: off,
    /// the default; RocketMQ 5's exporter uses 5557). Served by `raftmq-broker`.
    pub metrics_port: u16,
    /// The delays of the levels a producer's `DELAY` property and a consumer's send-back
    /// choose from (RocketMQ `messageDelayLevel`): "1s 5s 10s 30s 1m ... 2h". Changing
    /// a delay re-times the messages waiting at its level; removing levels strands the
    /// messages waiting at them (nothing delivers them), so keep their count.
    pub message_delay_level: String,
    /// Take timer messages (`TIMER_DELAY_SEC`, `TIMER_DELAY_MS`, `TIMER_DELIVER_MS`);
    /// when off they are refused by name (RocketMQ `timerWheelEnable`).
    pub timer_wheel_enable: bool,
    /// How far ahead a timer message may be due, in seconds (RocketMQ
    /// `timerMaxDelaySec`, 3 days); at most 60 days, what the wheel spans, and at most
    /// `store.file_reserved_hours`, so retention never deletes a pending timer.
    pub timer_max_delay_sec: u64,
    /// Store settings beyond the flush mode.
    pub store: StoreSettings,
    /// Transactional messages: when and how often the broker asks producers about
    /// undecided ones (a `[transaction]` table).
    pub transaction: TransactionSettings,
    /// Present for a replicated broker group (see `replication`); absent for a single
    /// replica.
    pub replication: Option<ReplicationSettings>,
}

/// The store's tunables, as a `[store]` table.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreSettings {
    pub flush_interval_ms: u64,
    pub sync_flush_timeout_ms: u64,
    pub commitlog_segment_size: u64,
    pub consume_queue_units_per_file: u64,
    pub message_size_max: usize,
    pub file_reserved_hours: u64,
    pub disk_max_used_space_ratio: f64,
}

impl Default for StoreSettings {
    fn default() -> Self {
        let d = StoreConfig::default();
        StoreSettings {
            flush_interval_ms: d.flush_interval_ms,
            sync_flush_timeout_ms: d.sync_flush_timeout_ms,
            commitlog_segment_size: d.commitlog_segment_size,
            consume_queue_units_per_file: d.consume_queue_units_per_file,
            message_size_max: d.message_size_max,
            file_reserved_hours: d.file_reserved_hours,
            disk_max_used_space_ratio: d.disk_max_used_space_ratio,
        }
    }
}

/// RocketMQ's `transactionTimeOut`, `transactionCheckInterval` and
/// `transactionCheckMax`, as a `[transaction]` table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TransactionSettings {
    /// A half message is first checked this long after it was stored, unless it carries
    /// its own `CHECK_IMMUNITY_TIME_IN_SECONDS`.
    pub timeout_ms: u64,
    /// How often the master looks for half messages to check.
    pub check_interval_ms: u64,
    /// Checks a transaction gets before it is discarded (to
    /// `TRANS_CHECK_MAX_TIME_TOPIC`, never delivered).
    pub check_max: u32,
}

impl Default for TransactionSettings {
    fn default() -> Self {
        TransactionSettings {
            timeout_ms: 6_000,
            check_interval_ms: 30_000,
            check_max: 15,
        }
    }
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            broker_cluster_name: "DefaultCluster".into(),
            broker_name: "broker-a".into(),
            broker_id: 0,
            broker_ip1: "127.0.0.1".into(),
            listen_addr: "0.0.0.0".into(),
            listen_port: 10911,
            namesrv_addr: "127.0.0.1:9876".into(),
            store_path_root_dir: PathBuf::from("raftmq-data/broker-a"),
            flush_disk_type: FlushMode::Async,
            auto_create_topic_enable: true,
            auto_create_subscription_group: true,
            default_topic_queue_nums: 4,
            long_polling_enable: true,
            register_broker_interval_ms: 30_000,
            flush_consumer_offset_interval_ms: 5_000,
            client_channel_expired_ms: 120_000,
            worker_threads: 0,
            busy_poll_us: 0,
            metrics_port: 0,
            message_delay_level: DEFAULT_MESSAGE_DELAY_LEVEL.into(),
            timer_wheel_enable: true,
            timer_max_delay_sec: 3 * 86_400,
            store: StoreSettings::default(),
            transaction: TransactionSettings::default(),
            replication: None,
        }
    }
}

impl BrokerConfig {
    /// Reads a TOML file; errors name the file and the offending field.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("read {}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
    }

    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let config: BrokerConfig =
            toml::from_str(text).map_err(|e| anyhow::anyhow!("{}", e.to_string().trim()))?;
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        proto::names::validate_name("broker_name", &self.broker_name)
            .map_err(|e| anyhow::anyhow!("broker_name: {e}"))?;
        proto::names::validate_name("broker_cluster_name", &self.broker_cluster_name)
            .map_err(|e| anyhow::anyhow!("broker_cluster_name: {e}"))?;
        if self.default_topic_queue_nums == 0 || self.default_topic_queue_nums > 1024 {
            anyhow::bail!(
                "default_topic_queue_nums: {} is not in 1..=1024",
                self.default_topic_queue_nums
            );
        }
        if self.worker_threads > WORKER_THREADS_MAX {
            anyhow::bail!(
                "worker_threads: {} is more than {WORKER_THREADS_MAX}",
                self.worker_threads
            );
        }
        effective_workers(self.worker_threads, self.busy_poll_us)?;
        for addr in self.namesrv_addrs() {
            // Registration connects to each as host:port (a name is looked up); a
            // malformed entry is said now rather than in a warning every 30 s.
            let port = addr.rsplit_once(':').filter(|(host, _)| !host.is_empty());
            if port.is_none_or(|(_, port)| port.parse::<u16>().is_err()) {
                anyhow::bail!(
                    "namesrv_addr: {addr:?} is not host:port (e.g. 127.0.0.1:9876 or \
                     namesrv-1:9876)"
                );
            }
        }
        self.advertised_addr()?;
        self.delay_levels_ms()?;
        let wheel_max_sec = crate::broker::timer::wheel::MAX_DELAY_MS as u64 / 1_000;
        if self.timer_max_delay_sec > wheel_max_sec {
            anyhow::bail!(
                "timer_max_delay_sec: {} is more than the timing wheel spans ({wheel_max_sec})",
                self.timer_max_delay_sec
            );
        }
        // A timer message waits in the CommitLog segment it was written to until its
        // slot moves it on (at most its delay): that segment must outlive it.
        let reserved_sec = self.store.file_reserved_hours.saturating_mul(3_600);
        if self.timer_max_delay_sec > reserved_sec {
            anyhow::bail!(
                "timer_max_delay_sec: {} s is longer than store.file_reserved_hours ({} h keeps \
                 {reserved_sec} s): a timer message would be deleted before it is due",
                self.timer_max_delay_sec,
                self.store.file_reserved_hours
            );
        }
        if self.transaction.check_interval_ms == 0 {
            anyhow::bail!("transaction.check_interval_ms: must be more than 0");
        }
        self.store_config()?.validate()?;
        if let Some(replication) = &self.replication {
            replication.validate()?;
        }
        Ok(())
    }

    /// `message_delay_level` in milliseconds per level (level 1 first).
    pub fn delay_levels_ms(&self) -> anyhow::Result<Vec<u64>> {
        parse_delay_levels(&self.message_delay_level)
            .map_err(|e| anyhow::anyhow!("message_delay_level: {e}"))
    }

    /// `broker_ip1:listen_port`, what clients and name servers are told.
    pub fn advertised_addr(&self) -> anyhow::Result<SocketAddr> {
        format!("{}:{}", self.broker_ip1, self.listen_port)
            .parse()
            .map_err(|e| {
                anyhow::anyhow!(
                    "broker_ip1: {:?} is not an IP address: {e}",
                    self.broker_ip1
                )
            })
    }

    pub fn listen_socket(&self) -> anyhow::Result<SocketAddr> {
        format!("{}:{}", self.listen_addr, self.listen_port)
            .parse()
            .map_err(|e| {
                anyhow::anyhow!(
                    "listen_addr: {:?} is not an IP address: {e}",
                    self.listen_addr
                )
            })
    }

    /// Where metrics are served, if they are (`metrics_port` not 0).
    pub fn metrics_socket(&self) -> anyhow::Result<Option<SocketAddr>> {
        if self.metrics_port == 0 {
            return Ok(None);
        }
        let ip = self.listen_socket()?.ip();
        Ok(Some(SocketAddr::new(ip, self.metrics_port)))
    }

    pub fn namesrv_addrs(&self) -> Vec<String> {
        self.namesrv_addr
            .split([';', ','])
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    }

    pub fn store_config(&self) -> anyhow::Result<StoreConfig> {
        let s = &self.store;
        Ok(StoreConfig {
            flush_disk_type: self.flush_disk_type,
            flush_interval_ms: s.flush_interval_ms,
            sync_flush_timeout_ms: s.sync_flush_timeout_ms,
            commitlog_segment_size: s.commitlog_segment_size,
            consume_queue_units_per_file: s.consume_queue_units_per_file,
            message_size_max: s.message_size_max,
            file_reserved_hours: s.file_reserved_hours,
            disk_max_used_space_ratio: s.disk_max_used_space_ratio,
            store_host: self.advertised_addr()?,
            ..StoreConfig::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rocketmq_names_and_rejects_unknown_fields_by_name() {
        let c = BrokerConfig::parse(
            r#"
            broker_cluster_name = "C"
            broker_name = "broker-b"
            listen_port = 10921
            namesrv_addr = "127.0.0.1:9876;127.0.0.1:9877"
            flush_disk_type = "sync"
            [store]
            commitlog_segment_size = 1073741824
            "#,
        )
        .unwrap();
        assert_eq!(c.broker_name, "broker-b");
        assert_eq!(c.flush_disk_type, FlushMode::Sync);
        assert_eq!(c.namesrv_addrs().len(), 2);
        let e = BrokerConfig::parse("namesrv_addr = \"127.0.0.1:9876;localhost\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("namesrv_addr") && e.contains("localhost"), "{e}");
        for bad in [":9876", "namesrv-1:", "namesrv-1:98765"] {
            let toml = format!("namesrv_addr = \"{bad}\"");
            assert!(BrokerConfig::parse(&toml).is_err(), "{bad} accepted");
        }
        let c = BrokerConfig::parse("namesrv_addr = \"namesrv-1:9876; [::1]:9876\"").unwrap();
        assert_eq!(c.namesrv_addrs(), ["namesrv-1:9876", "[::1]:9876"]);
        let e = BrokerConfig::parse("brokerName = \"x\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("brokerName"), "{e}");
        let e = BrokerConfig::parse("flush_disk_type = \"sometimes\"")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("sometimes") || e.contains("flush_disk_type"),
            "{e}"
        );
        let e = BrokerConfig::parse("broker_ip1 = \"not-an-ip\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("broker_ip1"), "{e}");
        let e = BrokerConfig::parse("[store]\ncommitlog_segment_size = 10")
            .unwrap_err()
            .to_string();
        assert!(e.contains("commitlog_segment_size"), "{e}");
        let e = BrokerConfig::parse("worker_threads = 100000")
            .unwrap_err()
            .to_string();
        assert!(e.contains("worker_threads"), "{e}");
        let e = BrokerConfig::parse("busy_poll_us = 200\nworker_threads = 2")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("busy_poll_us") && e.contains("worker_threads"),
            "{e}"
        );
        assert_eq!(
            BrokerConfig::parse("busy_poll_us = 200")
                .unwrap()
                .busy_poll_us,
            200
        );
        assert_eq!(
            BrokerConfig::parse("worker_threads = 1")
                .unwrap()
                .worker_threads,
            1
        );
    }

    #[test]
    fn a_timer_may_not_outlive_the_wheel_or_its_segment() {
        let base = "broker_name = \"b\"\n";
        BrokerConfig::parse(&format!("{base}timer_max_delay_sec = 259200")).unwrap();
        let e = BrokerConfig::parse(&format!("{base}timer_max_delay_sec = 5270400"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("more than the timing wheel spans"), "{e}");
        let e = BrokerConfig::parse(&format!(
            "{base}timer_max_delay_sec = 259201\n[store]\nfile_reserved_hours = 72"
        ))
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with(
                "timer_max_delay_sec: 259201 s is longer than store.file_reserved_hours (72 h"
            ),
            "{e}"
        );
    }
}
