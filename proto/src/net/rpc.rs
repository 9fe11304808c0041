//! `RpcClient`: one TCP connection carrying many requests at once, matched to responses
//! by opaque; and `RpcPool`, a connection per address.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};

use super::CommandReader;
use crate::remoting::command::FLAG_ONEWAY;
use crate::remoting::RemotingCommand;

#[derive(Debug, Clone, thiserror::Error)]
pub enum RpcError {
    #[error("connect to {addr}: {reason}")]
    Connect { addr: String, reason: String },
    #[error("connection to {0} closed")]
    Closed(String),
    #[error("request to {addr} timed out after {timeout_ms} ms")]
    Timeout { addr: String, timeout_ms: u64 },
}

/// Called with requests the server sends us (e.g. NOTIFY_CONSUMER_IDS_CHANGED) and the
/// server's address (where CHECK_TRANSACTION_STATE is answered).
pub type OnRequest = Arc<dyn Fn(RemotingCommand, &str) + Send + Sync>;

/// Ordered, so that failing every waiter at once (a closed connection) wakes them in the
/// same order on every run: the simulator needs that to replay a seed.
type Pending = Arc<Mutex<BTreeMap<i32, oneshot::Sender<RemotingCommand>>>>;

/// Requests a connection may have waiting to be written.
const QUEUE_DEPTH: usize = 4096;

/// Cheap to clone: every call through a pool clones one.
#[derive(Clone)]
pub struct RpcClient {
    inner: Arc<Inner>,
}

struct Inner {
    addr: String,
    tx: mpsc::Sender<RemotingCommand>,
    pending: Pending,
    next_opaque: AtomicI32,
    /// Set when either direction of the connection fails.
    closed: Arc<AtomicBool>,
}

impl RpcClient {
    pub async fn connect(addr: &str, on_request: Option<OnRequest>) -> Result<Self, RpcError> {
        let connect_error = |reason: String| RpcError::Connect {
            addr: addr.to_string(),
            reason,
        };
        let stream = tokio::time::timeout(Duration::from_secs(3), TcpStream::connect(addr))
            .await
            .map_err(|_| connect_error("timed out".into()))?
            .map_err(|e| connect_error(e.to_string()))?;
        let _ = stream.set_nodelay(true);
        let (read_half, write_half) = tokio::io::split(stream);
        let (tx, rx) = mpsc::channel::<RemotingCommand>(QUEUE_DEPTH);
        let pending: Pending = Arc::new(Mutex::new(BTreeMap::new()));
        let closed = Arc::new(AtomicBool::new(false));
        let writer_closed = closed.clone();
        tokio::spawn(async move {
            let _ = super::run_writer(rx, write_half).await;
            writer_closed.store(true, Ordering::Release);
        });
        let reader_pending = pending.clone();
        let reader_closed = closed.clone();
        let server = addr.to_string();
        tokio::spawn(async move {
            let mut reader = CommandReader::new(read_half);
            while let Ok(Some(command)) = reader.read().await {
                if command.is_response() {
                    let waiter = reader_pending
                        .lock()
                        .expect("pending poisoned")
                        .remove(&command.opaque);
                    if let Some(waiter) = waiter {
                        let _ = waiter.send(command);
                    }
                } else if let Some(on_request) = &on_request {
                    on_request(command, &server);
                }
            }
            // Closed: stop taking requests and fail everything waiting.
            reader_closed.store(true, Ordering::Release);
            reader_pending.lock().expect("pending poisoned").clear();
        });
        Ok(RpcClient {
            inner: Arc::new(Inner {
                addr: addr.to_string(),
                tx,
                pending,
                next_opaque: AtomicI32::new(1),
                closed,
            }),
        })
    }

    pub fn addr(&self) -> &str {
        &self.inner.addr
    }

    pub fn is_closed(&self) -> bool {
        self.inner.closed.load(Ordering::Acquire) || self.inner.tx.is_closed()
    }

    /// Sends `request` and waits for its response.
    pub async fn invoke(
        &self,
        mut request: RemotingCommand,
        timeout: Duration,
    ) -> Result<RemotingCommand, RpcError> {
        let opaque = self.inner.next_opaque.fetch_add(1, Ordering::Relaxed);
        request.opaque = opaque;
        let (done, response) = oneshot::channel();
        if self.is_closed() {
            return Err(RpcError::Closed(self.inner.addr.clone()));
        }
        self.inner
            .pending
            .lock()
            .expect("pending poisoned")
            .insert(opaque, done);
        // Network events for the simulator's traces (`sim replay --trace`).
        tracing::debug!(to = %self.inner.addr, code = request.code, opaque, "request sent");
        // One timer covers queuing the request too: a peer that stopped reading (a
        // paused process) fills the socket, then the writer's queue.
        let exchange = async {
            self.inner.tx.send(request).await.ok()?;
            response.await.ok()
        };
        match tokio::time::timeout(timeout, exchange).await {
            Ok(Some(response)) => {
                let code = response.code;
                tracing::debug!(from = %self.inner.addr, code, opaque, "response received");
                Ok(response)
            }
            // The writer or the reader stopped: the connection is gone.
            Ok(None) => {
                self.forget(opaque);
                Err(RpcError::Closed(self.inner.addr.clone()))
            }
            Err(_) => {
                self.forget(opaque);
                Err(RpcError::Timeout {
                    addr: self.inner.addr.clone(),
                    timeout_ms: timeout.as_millis() as u64,
                })
            }
        }
    }

    fn forget(&self, opaque: i32) {
        self.inner
            .pending
            .lock()
            .expect("pending poisoned")
            .remove(&opaque);
    }

    /// Sends `request` without waiting for (or getting) a response.
    pub async fn invoke_oneway(&self, mut request: RemotingCommand) -> Result<(), RpcError> {
        request.opaque = self.inner.next_opaque.fetch_add(1, Ordering::Relaxed);
        request.flag |= FLAG_ONEWAY;
        self.inner
            .tx
            .send(request)
            .await
            .map_err(|_| RpcError::Closed(self.inner.addr.clone()))
    }
}

/// One live connection per address, made on first use and again after it closes.
#[derive(Clone, Default)]
pub struct RpcPool {
    clients: Arc<Mutex<BTreeMap<String, RpcClient>>>,
    on_request: Option<OnRequest>,
}

impl RpcPool {
    pub fn new(on_request: Option<OnRequest>) -> Self {
        RpcPool {
            clients: Arc::default(),
            on_request,
        }
    }

    pub async fn get(&self, addr: &str) -> Result<RpcClient, RpcError> {
        if let Some(client) = self.clients.lock().expect("pool poisoned").get(addr) {
            if !client.is_closed() {
                return Ok(client.clone());
            }
        }
        let client = RpcClient::connect(addr, self.on_request.clone()).await?;
        self.clients
            .lock()
            .expect("pool poisoned")
            .insert(addr.to_string(), client.clone());
        Ok(client)
    }

    pub async fn invoke(
        &self,
        addr: &str,
        request: RemotingCommand,
        timeout: Duration,
    ) -> Result<RemotingCommand, RpcError> {
        let result = self.get(addr).await?.invoke(request, timeout).await;
        if matches!(result, Err(RpcError::Closed(_))) {
            self.clients.lock().expect("pool poisoned").remove(addr);
        }
        result
    }

    pub async fn invoke_oneway(
        &self,
        addr: &str,
        request: RemotingCommand,
    ) -> Result<(), RpcError> {
        self.get(addr).await?.invoke_oneway(request).await
    }

    /// Drops the connection to `addr` (after an error), so the next call reconnects.
    pub fn forget(&self, addr: &str) {
        self.clients.lock().expect("pool poisoned").remove(addr);
    }
}
