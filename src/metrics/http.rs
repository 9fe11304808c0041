//! The `/metrics` endpoint: Prometheus scrapes it over HTTP (axum, on real sockets, so
//! never in simulation).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::http::header::CONTENT_TYPE;
use axum::routing::get;
use axum::Router;
use tokio::task::JoinHandle;

/// OpenMetrics' content type, which Prometheus asks for and `prometheus-client` writes.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Serves `GET /metrics` on `addr` with what `render` returns at each scrape. Returns
/// the bound address (port 0 picks one) and the server task.
pub async fn serve(
    addr: SocketAddr,
    render: Arc<dyn Fn() -> String + Send + Sync>,
) -> anyhow::Result<(SocketAddr, JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("metrics: listen on {addr}: {e}"))?;
    let local = listener.local_addr()?;
    let app = Router::new().route(
        "/metrics",
        get(move || {
            let render = render.clone();
            async move { ([(CONTENT_TYPE, OPENMETRICS)], render()) }
        }),
    );
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "metrics endpoint stopped");
        }
    });
    tracing::info!(%local, "metrics served at /metrics");
    Ok((local, task))
}
