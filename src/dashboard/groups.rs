//! The consumer group pages: every subscription group with its clients online and lag;
//! one group's clients, subscriptions and lag per queue (as `raftmq group lag` and
//! `group clients`).

use std::collections::BTreeSet;

use axum::extract::{Query, State};
use axum::response::Html;

use super::html::{esc, num, page, table, url};
use super::{failed, Params, Shared};

pub async fn list(State(d): Shared) -> Html<String> {
    let groups: BTreeSet<String> = match d.admin.subscription_groups(None).await {
        Ok(tables) => tables
            .into_iter()
            .flat_map(|(_, t)| t.subscription_group_table.into_keys())
            .filter(|g| !g.starts_with("raftmq-dashboard"))
            .collect(),
        Err(e) => return Html(page("Consumer groups", "/groups", &failed("groups", e))),
    };
    let mut rows = Vec::new();
    for group in &groups {
        let (clients, model, topics) = match d.admin.consumer_connection(group).await {
            Ok(c) => (
                c.connection_set.len(),
                c.message_model.clone(),
                c.subscription_table
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
            Err(_) => (0, "offline".to_string(), String::new()),
        };
        let lag = match d.admin.consumer_progress_all(group).await {
            Ok(rows) => rows.iter().map(|r| r.lag()).sum::<u64>().to_string(),
            Err(_) => "?".to_string(),
        };
        rows.push(vec![
            format!("<a href=\"/group?name={}\">{}</a>", url(group), esc(group)),
            num(&format!("clients-{group}"), clients),
            esc(&model),
            esc(&topics),
            num(&format!("lag-{group}"), lag),
        ]);
    }
    let body = table(
        &[
            "group",
            "clients online",
            "model",
            "subscribes",
            "lag (messages)",
        ],
        &rows,
    );
    Html(page("Consumer groups", "/groups", &body))
}

pub async fn one(State(d): Shared, Query(q): Params) -> Html<String> {
    let Some(group) = q.get("name") else {
        return Html(page(
            "Consumer group",
            "/groups",
            &failed("group", "no name given"),
        ));
    };
    let mut body = String::new();
    match d.admin.consumer_connection(group).await {
        Ok(c) => {
            body.push_str(&format!(
                "<div class=\"card\">{} · {} · {}</div><h2>Clients</h2>",
                esc(&c.message_model),
                esc(&c.consume_type),
                esc(&c.consume_from_where)
            ));
            let rows: Vec<Vec<String>> = c
                .connection_set
                .iter()
                .map(|k| {
                    vec![
                        esc(&k.client_id),
                        esc(&k.client_addr),
                        esc(&k.language),
                        format!("\u{1}{}", k.version),
                    ]
                })
                .collect();
            body.push_str(&table(
                &["client id", "address", "language", "version"],
                &rows,
            ));
            let subs: Vec<Vec<String>> = c
                .subscription_table
                .iter()
                .map(|(t, s)| vec![esc(t), esc(&s.sub_string)])
                .collect();
            body.push_str("<h2>Subscriptions</h2>");
            body.push_str(&table(&["topic", "expression"], &subs));
        }
        Err(e) => body.push_str(&format!(
            "<div class=\"card muted\">{}</div>",
            esc(&e.to_string())
        )),
    }
    match d.admin.consumer_progress_all(group).await {
        Ok(progress) => {
            let rows: Vec<Vec<String>> = progress
                .iter()
                .map(|p| {
                    let id = format!(
                        "{group}-{}-{}-{}",
                        p.queue.topic, p.queue.broker_name, p.queue.queue_id
                    );
                    vec![
                        esc(&p.queue.topic),
                        esc(&p.queue.broker_name),
                        format!("\u{1}{}", p.queue.queue_id),
                        num(&format!("broker-offset-{id}"), p.broker_offset),
                        num(&format!("consumer-offset-{id}"), p.consumer_offset),
                        num(&format!("lag-{id}"), p.lag()),
                    ]
                })
                .collect();
            body.push_str("<h2>Progress</h2>");
            body.push_str(&table(
                &[
                    "topic",
                    "broker",
                    "queue",
                    "broker offset",
                    "consumer offset",
                    "lag",
                ],
                &rows,
            ));
        }
        Err(e) => body.push_str(&failed("progress", e)),
    }
    Html(page(&format!("Consumer group {group}"), "/groups", &body))
}
