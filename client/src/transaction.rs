//! `TransactionProducer` (RocketMQ `TransactionMQProducer`): sends a half message,
//! runs the local transaction, and tells the broker to commit or roll back. A half
//! message the producer left undecided (its local transaction answered
//! [`LocalTransactionState::Unknown`], or the process died before deciding) is checked
//! back later: the broker asks a producer of the same group, and its [`TransactionChecker`]
//! answers.
//!
//! The producer heartbeats to every broker it knows, under its group, so the brokers
//! know where to send checks; decisions and check answers are oneway, as in RocketMQ.

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use proto::remoting::body::{to_json, HeartbeatData, ProducerData};
use proto::remoting::codes::request;
use proto::remoting::RemotingCommand;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::config::ClientConfig;
use crate::error::{ClientError, Result};
use crate::instance::ClientInstance;
use crate::message::{Message, MessageExt};
use crate::producer::{Producer, SendResult, SendStatus, TRAN_MSG};

/// What a local transaction (or a check of one) decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LocalTransactionState {
    Commit,
    Rollback,
    /// Not decided yet: the broker will check back.
    Unknown,
}

impl LocalTransactionState {
    /// END_TRANSACTION's `commitOrRollback`.
    fn wire(self) -> i32 {
        match self {
            LocalTransactionState::Commit => 8,
            LocalTransactionState::Rollback => 12,
            LocalTransactionState::Unknown => 0,
        }
    }
}

/// Answers the broker's check of a transaction this group left undecided.
pub trait TransactionChecker: Send + Sync + 'static {
    fn check(&self, message: &MessageExt) -> LocalTransactionState;
}

impl<F: Fn(&MessageExt) -> LocalTransactionState + Send + Sync + 'static> TransactionChecker for F {
    fn check(&self, message: &MessageExt) -> LocalTransactionState {
        self(message)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransactionSendResult {
    /// The half message's send: `offset_msg_id` and `queue_offset` are the half copy's.
    pub send: SendResult,
    /// What the local transaction decided (and the broker was told).
    pub state: LocalTransactionState,
}

pub struct TransactionProducer {
    producer: Producer,
    heartbeated: Mutex<BTreeSet<String>>,
    stopped: AtomicBool,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    heartbeat_interval: Mutex<Duration>,
}

/// A CHECK_TRANSACTION_STATE and the broker it came from.
type Check = (RemotingCommand, String);

impl TransactionProducer {
    /// A producer of `group` whose undecided transactions `checker` resolves.
    pub fn start(
        group: impl Into<String>,
        config: ClientConfig,
        checker: impl TransactionChecker,
    ) -> Result<Arc<Self>> {
        let group = group.into();
        proto::names::validate_name("producer group", &group).map_err(ClientError::Invalid)?;
        let (checks_tx, checks_rx) = mpsc::unbounded_channel::<Check>();
        let on_request: proto::net::rpc::OnRequest =
            Arc::new(move |command: RemotingCommand, broker: &str| {
                if command.code == request::CHECK_TRANSACTION_STATE {
                    let _ = checks_tx.send((command, broker.to_string()));
                }
            });
        let instance = ClientInstance::new(config, Some(on_request));
        let producer = Arc::new(TransactionProducer {
            producer: Producer::with_instance(group, instance),
            heartbeated: Mutex::default(),
            stopped: AtomicBool::new(false),
            tasks: Mutex::default(),
            heartbeat_interval: Mutex::new(Duration::from_secs(30)),
        });
        let checker: Arc<dyn TransactionChecker> = Arc::new(checker);
        let tasks = [
            tokio::spawn(Self::run_checks(
                Arc::downgrade(&producer),
                checks_rx,
                checker,
            )),
            tokio::spawn(Self::run_heartbeat(Arc::downgrade(&producer))),
        ];
        producer.tasks.lock().expect("tasks poisoned").extend(tasks);
        Ok(producer)
    }

    pub fn producer(&self) -> &Producer {
        &self.producer
    }

    /// How often it heartbeats to every broker it knows (RocketMQ: 30 s). A broker
    /// that restarted learns of the producer only then, and its checks of this
    /// group's transactions before that reach no one (and count).
    pub fn set_heartbeat_interval(&self, interval: Duration) {
        *self
            .heartbeat_interval
            .lock()
            .expect("heartbeat interval poisoned") = interval;
    }

    /// Sends `message` as a half message, runs `local` (the local transaction) once the
    /// broker stored it, and ends the transaction as `local` decided. A half message
    /// the broker did not store is not run: the error is returned. Once it is stored the
    /// result is returned whatever happens to the END (oneway): one that does not arrive
    /// is settled by the broker's check-back, as with Java's producer. Sending the
    /// message again instead would make a second transaction.
    pub async fn send_in_transaction<F, Fut>(
        &self,
        message: Message,
        local: F,
    ) -> Result<TransactionSendResult>
    where
        F: FnOnce(&Message, &SendResult) -> Fut,
        Fut: Future<Output = LocalTransactionState>,
    {
        if self.stopped.load(Ordering::Acquire) {
            return Err(ClientError::Invalid("the producer is shut down".into()));
        }
        if message.properties.contains_key("DELAY") {
            return Err(ClientError::Invalid(
                "a transactional message cannot have a delay level (DELAY)".into(),
            ));
        }
        let mut half = message.clone();
        half.properties.insert(TRAN_MSG.into(), "true".into());
        half.properties
            .insert("PGROUP".into(), self.producer.group().to_string());
        let send = self.producer.send(half).await?;
        let addr = self.end_addr(&send);
        // Every replica must know this producer before there is anything to check: the
        // one that checks may be a slave elected master later.
        let unknown_to: Vec<String> = {
            let heartbeated = self.heartbeated.lock().expect("heartbeated poisoned");
            let mut addrs = self.producer.instance().all_broker_addrs();
            addrs.extend(addr.clone());
            addrs.retain(|a| !heartbeated.contains(a));
            addrs
        };
        if !unknown_to.is_empty() {
            self.heartbeat(&unknown_to).await;
        }
        let state = match send.status {
            SendStatus::Ok => local(&message, &send).await,
            // Stored, but maybe not durably or replicated: Java rolls these back.
            _ => LocalTransactionState::Rollback,
        };
        let ended = match &addr {
            Some(addr) => self.end(addr, &send, state).await,
            None => Err(ClientError::NoRoute(send.queue.broker_name.clone())),
        };
        if let Err(e) = ended {
            tracing::warn!(msg_id = %send.msg_id, ?state, error = %e, "END_TRANSACTION not sent; the broker's check-back will ask");
        }
        Ok(TransactionSendResult { send, state })
    }

    /// Where the END of a stored half message goes: its group's master, or, while the
    /// route names none (an election), the broker that stored it.
    fn end_addr(&self, send: &SendResult) -> Option<String> {
        let master = self
            .producer
            .instance()
            .master_addr(&send.queue.broker_name);
        master.or_else(|| {
            let id = send
                .offset_msg_id
                .parse::<proto::message::MessageId>()
                .ok()?;
            Some(id.store_host.to_string())
        })
    }

    /// END_TRANSACTION for a half message this producer sent, oneway.
    async fn end(&self, addr: &str, send: &SendResult, state: LocalTransactionState) -> Result<()> {
        let offset_id: proto::message::MessageId =
            send.offset_msg_id.parse().map_err(|e: String| {
                ClientError::Invalid(format!("the broker's msgId {:?}: {e}", send.offset_msg_id))
            })?;
        let transaction_id = send.transaction_id.as_deref().unwrap_or(&send.msg_id);
        let request = end_request(
            self.producer.group(),
            send.queue_offset,
            offset_id.physical_offset,
            state,
            false,
            &send.msg_id,
            transaction_id,
        );
        self.producer
            .instance()
            .pool()
            .invoke_oneway(addr, request)
            .await?;
        Ok(())
    }

    /// Heartbeats to `addrs` under this producer's group.
    async fn heartbeat(&self, addrs: &[String]) {
        let body = to_json(&HeartbeatData {
            client_id: self.producer.instance().client_id.clone(),
            producer_data_set: vec![ProducerData {
                group_name: self.producer.group().to_string(),
            }],
            consumer_data_set: Vec::new(),
        });
        for addr in addrs {
            let request = RemotingCommand::request(request::HEART_BEAT).with_body(body.clone());
            match self.producer.instance().invoke_ok(addr, request).await {
                Ok(_) => {
                    self.heartbeated
                        .lock()
                        .expect("heartbeated poisoned")
                        .insert(addr.clone());
                }
                Err(e) => tracing::debug!(addr, error = %e, "producer heartbeat failed"),
            }
        }
    }

    async fn run_heartbeat(me: std::sync::Weak<Self>) {
        loop {
            let interval = match me.upgrade() {
                Some(me) if !me.stopped.load(Ordering::Acquire) => {
                    let mut addrs = me.producer.instance().all_broker_addrs();
                    addrs.extend(
                        me.heartbeated
                            .lock()
                            .expect("heartbeated poisoned")
                            .iter()
                            .cloned(),
                    );
                    addrs.sort();
                    addrs.dedup();
                    me.heartbeat(&addrs).await;
                    *me.heartbeat_interval
                        .lock()
                        .expect("heartbeat interval poisoned")
                }
                _ => return,
            };
            tokio::time::sleep(interval).await;
        }
    }

    async fn run_checks(
        me: std::sync::Weak<Self>,
        mut checks: mpsc::UnboundedReceiver<Check>,
        checker: Arc<dyn TransactionChecker>,
    ) {
        while let Some((check, broker)) = checks.recv().await {
            let Some(me) = me.upgrade() else { return };
            if me.stopped.load(Ordering::Acquire) {
                return;
            }
            if let Err(e) = me.answer_check(&check, &broker, checker.as_ref()).await {
                tracing::warn!(broker, error = %e, "transaction check not answered");
            }
        }
    }

    /// Runs the checker on a CHECK_TRANSACTION_STATE and answers the broker that asked,
    /// echoing the offsets it named (Java's `checkTransactionState`).
    async fn answer_check(
        &self,
        check: &RemotingCommand,
        broker: &str,
        checker: &dyn TransactionChecker,
    ) -> Result<()> {
        let messages = MessageExt::decode_all(&check.body)
            .map_err(|e| ClientError::Invalid(format!("a transaction check's body: {e}")))?;
        let Some(mut message) = messages.into_iter().next() else {
            return Err(ClientError::Invalid(
                "a transaction check without a message".into(),
            ));
        };
        if let Some(uniq) = message.properties.get("UNIQ_KEY") {
            message.msg_id = uniq.clone();
        }
        let state = checker.check(&message);
        let queue_offset: u64 = check.ext_parse("tranStateTableOffset")?;
        let commit_log_offset: u64 = check.ext_parse("commitLogOffset")?;
        let transaction_id = check
            .ext("transactionId")
            .unwrap_or(&message.msg_id)
            .to_string();
        let request = end_request(
            self.producer.group(),
            queue_offset,
            commit_log_offset,
            state,
            true,
            &message.msg_id,
            &transaction_id,
        );
        self.producer
            .instance()
            .pool()
            .invoke_oneway(broker, request)
            .await?;
        Ok(())
    }

    /// Stops heartbeating and answering checks, and leaves the group at every broker
    /// (checks then go to the group's other producers).
    pub async fn shutdown(&self) {
        self.stopped.store(true, Ordering::Release);
        for task in self.tasks.lock().expect("tasks poisoned").drain(..) {
            task.abort();
        }
        let addrs: Vec<String> = self
            .heartbeated
            .lock()
            .expect("heartbeated poisoned")
            .iter()
            .cloned()
            .collect();
        for addr in addrs {
            let request = RemotingCommand::request(request::UNREGISTER_CLIENT)
                .with_ext("clientID", &self.producer.instance().client_id)
                .with_ext("producerGroup", self.producer.group());
            let _ = self.producer.instance().invoke(&addr, request).await;
        }
    }
}

/// An END_TRANSACTION request (`EndTransactionRequestHeader`).
fn end_request(
    group: &str,
    queue_offset: u64,
    commit_log_offset: u64,
    state: LocalTransactionState,
    from_check: bool,
    msg_id: &str,
    transaction_id: &str,
) -> RemotingCommand {
    RemotingCommand::request(request::END_TRANSACTION)
        .with_ext("producerGroup", group)
        .with_ext("tranStateTableOffset", queue_offset)
        .with_ext("commitLogOffset", commit_log_offset)
        .with_ext("commitOrRollback", state.wire())
        .with_ext("fromTransactionCheck", from_check)
        .with_ext("msgId", msg_id)
        .with_ext("transactionId", transaction_id)
}
