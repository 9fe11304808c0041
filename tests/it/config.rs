//! The example configs parse and validate.

use raftmq::BrokerConfig;

#[test]
fn example_configs_are_valid() {
    for file in ["examples/broker-a.toml", "examples/broker-b-sync.toml"] {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
        let config = BrokerConfig::load(&path).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert!(config.broker_name.starts_with("broker-"));
        assert!(config.replication.is_none());
    }
    for id in 1..=3u64 {
        let file = format!("examples/group-a/replica-{id}.toml");
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(&file);
        let config = BrokerConfig::load(&path).unwrap_or_else(|e| panic!("{file}: {e}"));
        let replication = config.replication.expect("a replicated group");
        assert_eq!(replication.replica_id, id);
        let replicas = replication.replica_map().unwrap();
        assert_eq!(replicas.len(), 3);
        assert_eq!(
            replicas[&id].broker,
            format!("127.0.0.1:{}", config.listen_port),
            "{file}: its own entry names its listen port"
        );
    }
    // compose.yaml's replicas: each advertises its own compose-network address.
    for id in 1..=3u64 {
        let file = format!("examples/compose/replica-{id}.toml");
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(&file);
        let config = BrokerConfig::load(&path).unwrap_or_else(|e| panic!("{file}: {e}"));
        let replication = config.replication.clone().expect("a replicated group");
        assert_eq!(replication.replica_id, id);
        let replicas = replication.replica_map().unwrap();
        assert_eq!(
            replicas[&id].broker,
            config.advertised_addr().unwrap().to_string(),
            "{file}: its own entry is the address it advertises"
        );
        assert_eq!(config.namesrv_addrs().len(), 2, "{file}: both name servers");
    }
}
