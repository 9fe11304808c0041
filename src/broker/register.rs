//! Registration with every name server: at start, every `register_broker_interval_ms`,
//! at once when the topic table changes, and — in a replicated group — at once when this
//! replica's role changes, so routes flip without waiting for the next round. The
//! master registers as broker id 0, every other replica under its replica id (≥ 1),
//! as RocketMQ's name server expects.

use std::sync::Arc;
use std::time::Duration;

use proto::remoting::body::{to_json, RegisterBrokerBody};
use proto::remoting::codes::{request, response};
use proto::remoting::RemotingCommand;
use store::meta::MetaStore;
use store::Disk;

use super::Broker;

/// How soon a master that no quorum confirmed asks again.
const UNCONFIRMED_RETRY: Duration = Duration::from_millis(100);

const REGISTER_TIMEOUT: Duration = Duration::from_secs(3);

impl<D: Disk, M: MetaStore> Broker<D, M> {
    /// The broker id to register under now, and the Raft term that claim is made in (a
    /// replicated group only), read together.
    fn broker_id(&self) -> (u64, Option<u64>) {
        match &self.replica {
            Some(replica) => match replica.registration_role() {
                (true, term) => (0, Some(term)),
                (false, term) => (replica.id, Some(term)),
            },
            None => (self.config.broker_id, None),
        }
    }

    /// Registers with every name server; failures are logged (the next round retries).
    pub(super) async fn register_all(&self) {
        let (broker_id, term) = self.broker_id();
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
                .with_ext("brokerId", broker_id)
                .with_ext("compressed", false)
                .with_body(body.clone());
            // A replicated group's registrations carry the Raft term, so a name server
            // refuses a deposed master's late claim (one paused through an election
            // registers as master once more before it learns the new term).
            let request = match term {
                Some(term) => request.with_ext("raftmqTerm", term),
                None => request,
            };
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
        let (broker_id, _) = self.broker_id();
        for namesrv in self.config.namesrv_addrs() {
            let request = RemotingCommand::request(request::UNREGISTER_BROKER)
                .with_ext("brokerName", &self.config.broker_name)
                .with_ext("brokerAddr", self.addr)
                .with_ext("clusterName", &self.config.broker_cluster_name)
                .with_ext("brokerId", broker_id);
            let _ = self
                .namesrv
                .invoke(&namesrv, request, REGISTER_TIMEOUT)
                .await;
        }
    }

    /// Re-registers whenever this replica becomes or stops being the master (as a
    /// quorum confirms it).
    pub(super) async fn run_role_watch(self: Arc<Self>) {
        let Some(replica) = self.replica.clone() else {
            return;
        };
        let mut metrics = replica.watch();
        loop {
            metrics.borrow_and_update();
            if replica.confirm_role().await {
                let is_master = replica.confirmed_master();
                let leader = metrics.borrow().current_leader;
                tracing::info!(
                    replica = replica.id,
                    is_master,
                    ?leader,
                    "role changed; re-registering"
                );
                self.register_all().await;
                // The local view may have moved on while confirming: look again.
                continue;
            }
            let changed = metrics.changed();
            if replica.is_master() && !replica.confirmed_master() {
                // A master no quorum confirmed (cut off) tries again: nothing in the
                // server metrics changes when the quorum comes back.
                if let Ok(Err(_)) = tokio::time::timeout(UNCONFIRMED_RETRY, changed).await {
                    return;
                }
            } else if changed.await.is_err() {
                return;
            }
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
