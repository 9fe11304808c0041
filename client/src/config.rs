//! Client configuration: where the name servers are, and timeouts.

use std::time::Duration;

use crate::error::{ClientError, Result};

#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// Name server addresses (`host:port`). Empty means: ask `namesrv_domain`'s
    /// address server if one is set, else read NAMESRV_ADDR.
    pub namesrv_addrs: Vec<String>,
    /// An address server to discover the name servers from (RocketMQ's
    /// `rocketmq.namesrv.domain`: `host[:port]`, or an `http://` URL); see `nsaddr`.
    pub namesrv_domain: Option<String>,
    /// Per-request timeout (RocketMQ `sendMsgTimeout` is 3 s).
    pub request_timeout: Duration,
    /// How often routes are refreshed from the name servers (RocketMQ: 30 s).
    pub route_refresh_interval: Duration,
    /// A name for this client instance; part of the client id.
    pub instance_name: String,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            namesrv_addrs: Vec::new(),
            namesrv_domain: None,
            request_timeout: Duration::from_secs(3),
            route_refresh_interval: Duration::from_secs(30),
            instance_name: "DEFAULT".into(),
        }
    }
}

impl ClientConfig {
    /// Name servers from `spec` (`a:9876;b:9876`, RocketMQ's separator; commas work too).
    pub fn with_namesrv(spec: &str) -> Self {
        ClientConfig {
            namesrv_addrs: parse_addrs(spec),
            ..ClientConfig::default()
        }
    }

    /// Name servers discovered through the address server at `domain` (see `nsaddr`).
    pub fn with_namesrv_domain(domain: &str) -> Self {
        ClientConfig {
            namesrv_domain: Some(domain.to_string()),
            ..ClientConfig::default()
        }
    }

    /// The configured name servers, or those in `NAMESRV_ADDR`.
    pub fn resolved_namesrv_addrs(&self) -> Result<Vec<String>> {
        if !self.namesrv_addrs.is_empty() {
            return Ok(self.namesrv_addrs.clone());
        }
        let from_env = std::env::var("NAMESRV_ADDR")
            .map(|s| parse_addrs(&s))
            .unwrap_or_default();
        if from_env.is_empty() {
            return Err(ClientError::NoNameServer);
        }
        Ok(from_env)
    }
}

pub fn parse_addrs(spec: &str) -> Vec<String> {
    spec.split([';', ','])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}
