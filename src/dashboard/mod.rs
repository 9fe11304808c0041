//! `raftmq dashboard`: a web dashboard over a cluster's name servers, with the pages
//! users know from rocketmq-dashboard: the cluster (broker groups, replicas, Raft role,
//! term and lag, disk), topics (queues, offsets, rates, route), consumer groups
//! (clients, subscriptions, lag per queue), message lookup (by key, id or queue and
//! offset, with resend), dead letters, and charts of rates and send latency.
//!
//! Server-rendered HTML (`html`) from the admin API the CLI uses, so a page shows what
//! `raftmq topic status`, `group lag` and `group replicas` print; charts come from the
//! dashboard's own samples (`sampler`). Nothing is fetched by the browser but the page.

mod cluster;
mod groups;
pub mod html;
mod messages;
pub mod sampler;
mod topics;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Form, Query, State};
use axum::response::Html;
use axum::routing::{get, post};
use axum::Router;
use client::{Admin, ClientConfig, Producer, PullConsumer};
use tokio::task::JoinHandle;

use sampler::History;

/// What every page handler shares.
pub struct Dashboard {
    pub(crate) admin: Arc<Admin>,
    pub(crate) producer: Producer,
    pub(crate) puller: PullConsumer,
    pub(crate) history: Arc<Mutex<History>>,
    pub(crate) namesrv: String,
    pub(crate) sample_interval: Duration,
}

type Params = Query<HashMap<String, String>>;
type Shared = State<Arc<Dashboard>>;

/// Whether a topic is the broker's own (auto-create template, schedule, retry): left
/// out of the topic list and its charts. Dead-letter topics have their own page.
pub fn is_internal_topic(topic: &str) -> bool {
    crate::metrics::traffic::is_system_topic(topic) || topic.starts_with('%')
}

/// Serves the dashboard for the cluster `config` names on `listen`, sampling every
/// `sample_interval`. Returns the bound address and the tasks.
pub async fn serve(
    config: ClientConfig,
    listen: SocketAddr,
    sample_interval: Duration,
) -> anyhow::Result<(SocketAddr, Vec<JoinHandle<()>>)> {
    let namesrv = config.namesrv_addrs.join(";");
    let admin = Arc::new(Admin::new(config.clone()));
    let history = Arc::new(Mutex::new(History::default()));
    let dashboard = Arc::new(Dashboard {
        admin: admin.clone(),
        producer: Producer::new("raftmq-dashboard", config.clone()),
        puller: PullConsumer::new("raftmq-dashboard", config),
        history: history.clone(),
        namesrv,
        sample_interval,
    });
    let sampler = tokio::spawn(sampler::run(admin, history, sample_interval));
    let router = Router::new()
        .route("/", get(cluster::show))
        .route("/topics", get(topics::list))
        .route("/topic", get(topics::one))
        .route("/groups", get(groups::list))
        .route("/group", get(groups::one))
        .route("/message", get(messages::lookup))
        .route("/message/resend", post(messages::resend))
        .route("/dlq", get(messages::dead_letters))
        .route("/charts", get(charts))
        .with_state(dashboard);
    let (local, server) = crate::http::serve("dashboard", listen, router).await?;
    Ok((local, vec![sampler, server]))
}

async fn charts(State(d): Shared) -> Html<String> {
    let (rates_in, rates_out, p50, p99) = {
        let h = d.history.lock().expect("history poisoned");
        (
            h.rates_in(),
            h.rates_out(),
            h.send_latency(0.5),
            h.send_latency(0.99),
        )
    };
    let body = format!(
        "<p class=\"muted\">Sampled every {:?}; the last ten minutes. Latency is the upper \
         bound of the bucket holding the percentile, per interval.</p><div class=\"charts\">{}{}{}{}</div>",
        d.sample_interval,
        html::chart("Messages in, by topic", "msg/s", &rates_in),
        html::chart("Messages out, by broker group", "msg/s", &rates_out),
        html::chart("Send latency p50, by broker group", "ms", &p50),
        html::chart("Send latency p99, by broker group", "ms", &p99),
    );
    Html(html::page("Charts", "/charts", &body))
}

/// An error shown in place of a page's content.
fn failed(what: &str, e: impl std::fmt::Display) -> String {
    format!(
        "<div class=\"card bad\">{}: {}</div>",
        html::esc(what),
        html::esc(&e.to_string())
    )
}

/// The `Form` extractor, re-exported for the handlers.
pub(crate) type PostForm = Form<HashMap<String, String>>;
