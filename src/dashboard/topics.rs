//! The topic pages: every topic with its queues, messages stored and rate in; one
//! topic's queues with their min and max offsets (as `raftmq topic status`) and route.

use axum::extract::{Query, State};
use axum::response::Html;

use super::html::{esc, num, page, table, url};
use super::{failed, Params, Shared};

pub async fn list(State(d): Shared) -> Html<String> {
    let topics = match d.admin.topic_list().await {
        Ok(t) => t,
        Err(e) => return Html(page("Topics", "/topics", &failed("topic list", e))),
    };
    let rates = d.history.lock().expect("history poisoned").rates_in();
    let mut rows = Vec::new();
    for topic in topics.iter().filter(|t| !super::is_internal_topic(t)) {
        let (queues, stored, brokers) = match d.admin.topic_stats(topic).await {
            Ok(stats) => {
                let mut brokers: Vec<&str> = stats
                    .iter()
                    .map(|(mq, _)| mq.broker_name.as_str())
                    .collect();
                brokers.dedup();
                (
                    stats.len().to_string(),
                    stats
                        .iter()
                        .map(|(_, o)| o.max_offset)
                        .sum::<u64>()
                        .to_string(),
                    brokers.join(", "),
                )
            }
            Err(_) => ("?".into(), "?".into(), String::new()),
        };
        let rate = rates
            .iter()
            .find(|(name, _)| name == topic)
            .and_then(|(_, points)| points.last())
            .map_or("–".to_string(), |(_, v)| format!("{v:.1}"));
        rows.push(vec![
            format!("<a href=\"/topic?name={}\">{}</a>", url(topic), esc(topic)),
            format!("\u{1}{queues}"),
            num(&format!("messages-{topic}"), stored),
            format!("\u{1}{rate}"),
            esc(&brokers),
        ]);
    }
    let body = table(
        &[
            "topic",
            "queues",
            "messages stored",
            "in, msg/s",
            "broker groups",
        ],
        &rows,
    );
    Html(page("Topics", "/topics", &body))
}

pub async fn one(State(d): Shared, Query(q): Params) -> Html<String> {
    let Some(topic) = q.get("name") else {
        return Html(page("Topic", "/topics", &failed("topic", "no name given")));
    };
    let mut body = String::new();
    match d.admin.topic_stats(topic).await {
        Ok(stats) => {
            let rows: Vec<Vec<String>> = stats
                .iter()
                .map(|(mq, o)| {
                    let id = format!("{topic}-{}-{}", mq.broker_name, mq.queue_id);
                    vec![
                        esc(&mq.broker_name),
                        format!("\u{1}{}", mq.queue_id),
                        num(&format!("min-{id}"), o.min_offset),
                        num(&format!("max-{id}"), o.max_offset),
                    ]
                })
                .collect();
            body.push_str("<h2>Queues</h2>");
            body.push_str(&table(
                &["broker", "queue", "min offset", "max offset"],
                &rows,
            ));
        }
        Err(e) => body.push_str(&failed("topic status", e)),
    }
    match d.admin.topic_route(topic).await {
        Ok(route) => {
            let rows: Vec<Vec<String>> = route
                .queue_datas
                .iter()
                .map(|qd| {
                    let addrs = route
                        .broker_datas
                        .iter()
                        .find(|b| b.broker_name == qd.broker_name)
                        .map(|b| b.addrs_by_id())
                        .unwrap_or_default();
                    vec![
                        esc(&qd.broker_name),
                        format!("\u{1}{}", qd.read_queue_nums),
                        format!("\u{1}{}", qd.write_queue_nums),
                        format!("\u{1}{}", qd.perm),
                        esc(&addrs),
                    ]
                })
                .collect();
            body.push_str("<h2>Route</h2>");
            body.push_str(&table(
                &[
                    "broker",
                    "read queues",
                    "write queues",
                    "perm",
                    "addresses (id=addr)",
                ],
                &rows,
            ));
        }
        Err(e) => body.push_str(&failed("route", e)),
    }
    Html(page(&format!("Topic {topic}"), "/topics", &body))
}
