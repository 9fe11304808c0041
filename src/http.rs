//! raftmq's HTTP endpoints, on real sockets only (axum; never in simulation):
//! Prometheus' `/metrics` and RocketMQ's name-server address server
//! (`/rocketmq/{subgroup}`).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::Path;
use axum::http::header::CONTENT_TYPE;
use axum::routing::get;
use axum::Router;
use tokio::task::JoinHandle;

/// OpenMetrics' content type, which Prometheus asks for and `prometheus-client` writes.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Serves `router` on `addr`; `what` names it in errors and logs. Returns the bound
/// address (port 0 picks one) and the server task.
pub async fn serve(
    what: &str,
    addr: SocketAddr,
    router: Router,
) -> anyhow::Result<(SocketAddr, JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("{what}: listen on {addr}: {e}"))?;
    let local = listener.local_addr()?;
    let name = what.to_string();
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router).await {
            tracing::error!(error = %e, "{name} stopped");
        }
    });
    tracing::info!(%local, "{what} serving");
    Ok((local, task))
}

/// `GET /metrics`: what `render` returns at each scrape.
pub fn metrics(render: Arc<dyn Fn() -> String + Send + Sync>) -> Router {
    Router::new().route(
        "/metrics",
        get(move || {
            let render = render.clone();
            async move { ([(CONTENT_TYPE, OPENMETRICS)], render()) }
        }),
    )
}

/// `GET /rocketmq/{subgroup}` (RocketMQ clients poll `http://{domain}:8080/rocketmq/nsaddr`,
/// or `nsaddr-{unit}?nofix=1`): `addrs`, `host:port;host:port`, for every subgroup.
pub fn nsaddr(addrs: String) -> Router {
    let body = format!("{addrs}\n");
    Router::new().route(
        "/rocketmq/{subgroup}",
        get(move |Path(_subgroup): Path<String>| {
            let body = body.clone();
            async move { ([(CONTENT_TYPE, "text/plain; charset=utf-8")], body) }
        }),
    )
}
