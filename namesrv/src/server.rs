//! The name server's remoting service.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use proto::net::server::{serve, Channel, Service, Shutdown};
use proto::remoting::body::{from_json, to_json, RegisterBrokerBody};
use proto::remoting::codes::{request, response};
use proto::remoting::{ProtoError, RemotingCommand};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::route_table::{Registration, RouteStats, RouteTable};

/// How often expired brokers are swept (RocketMQ: every 10 s).
const EXPIRY_SCAN_INTERVAL: Duration = Duration::from_secs(10);

pub struct NameServer {
    table: Mutex<RouteTable>,
}

impl NameServer {
    pub fn new() -> Self {
        NameServer {
            table: Mutex::new(RouteTable::new()),
        }
    }

    fn table(&self) -> std::sync::MutexGuard<'_, RouteTable> {
        self.table.lock().expect("route table poisoned")
    }

    /// What the route table holds, counted (operators' metrics).
    pub fn stats(&self) -> RouteStats {
        self.table().stats()
    }

    fn handle(&self, req: &RemotingCommand) -> Result<RemotingCommand, ProtoError> {
        let ok = |body: Vec<u8>| {
            RemotingCommand::response_to(req, response::SUCCESS, None).with_body(body)
        };
        match req.code {
            request::REGISTER_BROKER => {
                let body: RegisterBrokerBody = if req.body.is_empty() {
                    RegisterBrokerBody::default()
                } else {
                    from_json(&req.body)?
                };
                let registration = Registration {
                    cluster: req.ext_parse("clusterName")?,
                    broker_name: req.ext_parse("brokerName")?,
                    broker_addr: req.ext_parse("brokerAddr")?,
                    broker_id: req.ext_parse("brokerId")?,
                    term: req.ext_parse_opt("raftmqTerm")?,
                    topics: body.topic_config_serialize_wrapper,
                };
                tracing::debug!(broker = %registration.broker_addr, id = registration.broker_id, term = ?registration.term, "register");
                match self.table().register(registration, proto::clock::now_ms()) {
                    Ok(()) => Ok(ok(Vec::new())),
                    Err(stale) => {
                        tracing::warn!(%stale, "registration refused");
                        Ok(RemotingCommand::response_to(
                            req,
                            response::SYSTEM_ERROR,
                            Some(stale),
                        ))
                    }
                }
            }
            request::UNREGISTER_BROKER => {
                let addr: String = req.ext_parse("brokerAddr")?;
                self.table().unregister(&addr);
                Ok(ok(Vec::new()))
            }
            request::GET_ROUTEINFO_BY_TOPIC => {
                let topic: String = req.ext_parse("topic")?;
                Ok(match self.table().route(&topic) {
                    Some(route) => ok(to_json(&route)),
                    None => RemotingCommand::response_to(
                        req,
                        response::TOPIC_NOT_EXIST,
                        Some(format!(
                            "No topic route info in name server for the topic: {topic}"
                        )),
                    ),
                })
            }
            request::GET_BROKER_CLUSTER_INFO => Ok(ok(to_json(&self.table().cluster_info()))),
            request::GET_ALL_TOPIC_LIST_FROM_NAMESERVER => {
                Ok(ok(to_json(&self.table().topic_list())))
            }
            code => Ok(RemotingCommand::response_to(
                req,
                response::REQUEST_CODE_NOT_SUPPORTED,
                Some(format!(
                    "request code {code} is not supported by the name server"
                )),
            )),
        }
    }
}

impl Default for NameServer {
    fn default() -> Self {
        Self::new()
    }
}

impl Service for NameServer {
    async fn call(&self, req: RemotingCommand, _channel: Channel) -> Option<RemotingCommand> {
        Some(self.handle(&req).unwrap_or_else(|e| {
            RemotingCommand::response_to(&req, response::SYSTEM_ERROR, Some(e.to_string()))
        }))
    }
}

/// Binds `addr` and serves until the returned tasks are aborted. Returns the bound
/// address (useful with port 0) and the tasks.
pub async fn start(addr: SocketAddr) -> std::io::Result<(SocketAddr, Vec<JoinHandle<()>>)> {
    let (local, _, tasks) = start_server(addr).await?;
    Ok((local, tasks))
}

/// [`start`], also returning the server (to read its [`NameServer::stats`]).
pub async fn start_server(
    addr: SocketAddr,
) -> std::io::Result<(SocketAddr, Arc<NameServer>, Vec<JoinHandle<()>>)> {
    let listener = TcpListener::bind(addr).await.map_err(|e| {
        std::io::Error::new(e.kind(), format!("name server: listen on {addr}: {e}"))
    })?;
    let local = listener.local_addr()?;
    let server = Arc::new(NameServer::new());
    let expiry = {
        let server = server.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(EXPIRY_SCAN_INTERVAL).await;
                for addr in server.table().expire(proto::clock::now_ms()) {
                    tracing::warn!(broker = %addr, "broker expired after 120 s without a heartbeat");
                }
            }
        })
    };
    tracing::info!(%local, "name server listening");
    // The name server lives as long as its process (or test): no shutdown signal.
    Ok((
        local,
        server.clone(),
        vec![
            tokio::spawn(serve(listener, server, Shutdown::new())),
            expiry,
        ],
    ))
}
