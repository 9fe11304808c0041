//! The example configs parse and validate.

use raftmq::BrokerConfig;

#[test]
fn example_configs_are_valid() {
    for file in ["examples/broker-a.toml", "examples/broker-b-sync.toml"] {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
        let config = BrokerConfig::load(&path).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert!(config.broker_name.starts_with("broker-"));
    }
}
