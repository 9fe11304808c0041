//! Registration with every name server: at start, every `register_broker_interval_ms`,
//! and at once when the topic table changes.

use std::sync::Arc;
use std::time::Duration;

use proto::remoting::body::{to_json, RegisterBrokerBody};
use proto::remoting::codes::{request, response};
use proto::remoting::RemotingCommand;
use store::meta::MetaStore;
use store::Disk;

use super::Broker;

const REGISTER_TIMEOUT: Duration = Duration::from_secs(3);

impl<D: Disk, M: MetaStore> Broker<D, M> {
    /// Registers with every name server; failures are logged (the next round retries).
    pub(super) async fn register_all(&self) {
        let body = RegisterBrokerBody {
            topic_config_serialize_wrapper: self.topics.wrapper(),
            filter_server_list: vec![],
        };
        let body = to_json(&body);
        for namesrv in self.config.namesrv_addrs() {
            let request = RemotingCommand::request(request::REGISTER_BROKER)
                .with_ext("brokerName", &self.config.broker_name)
                .with_ext("brokerAddr", self.addr)
                .with_ext("clusterName", &self.config.broker_cluster_name)
                .with_ext("haServerAddr", self.addr)
                .with_ext("brokerId", self.config.broker_id)
                .with_ext("compressed", false)
                .with_body(body.clone());
            match self
                .namesrv
                .invoke(&namesrv, request, REGISTER_TIMEOUT)
                .await
            {
                Ok(r) if r.code == response::SUCCESS => {}
                Ok(r) => {
                    tracing::warn!(%namesrv, code = r.code, remark = ?r.remark, "registration refused")
                }
                Err(e) => {
                    self.namesrv.forget(&namesrv);
                    tracing::warn!(%namesrv, error = %e, "registration failed");
                }
            }
        }
    }

    pub(super) async fn unregister(&self) {
        for namesrv in self.config.namesrv_addrs() {
            let request = RemotingCommand::request(request::UNREGISTER_BROKER)
                .with_ext("brokerName", &self.config.broker_name)
                .with_ext("brokerAddr", self.addr)
                .with_ext("clusterName", &self.config.broker_cluster_name)
                .with_ext("brokerId", self.config.broker_id);
            let _ = self
                .namesrv
                .invoke(&namesrv, request, REGISTER_TIMEOUT)
                .await;
        }
    }

    pub(super) async fn run_registration(self: Arc<Self>) {
        let interval = Duration::from_millis(self.config.register_broker_interval_ms);
        loop {
            tokio::time::sleep(interval).await;
            self.register_all().await;
        }
    }
}
