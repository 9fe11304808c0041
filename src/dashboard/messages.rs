//! Message lookup (by key, by id, or by queue and offset, as `raftmq query` finds
//! them), resending a message to its topic, and the dead-letter topics
//! (`%DLQ%group`) with their messages.

use std::fmt::Write;

use axum::extract::{Query, State};
use axum::response::Html;
use client::MessageExt;
use proto::names::DLQ_PREFIX;
use proto::remoting::body::MessageQueue;

use super::html::{esc, num, page, table, url};
use super::{failed, Dashboard, Params, PostForm, Shared};

/// Messages shown per lookup or dead-letter topic.
const SHOWN_MAX: u32 = 20;

const FORMS: &str = "<div class=\"card\">\
<form action=\"/message\"><b>By key</b> <input name=\"topic\" placeholder=\"topic\"> \
<input name=\"key\" placeholder=\"key\"> <button>Find</button></form>\
<form action=\"/message\"><b>By id</b> <input name=\"id\" size=\"36\" placeholder=\"msgId or offsetMsgId\"> \
<input name=\"topic\" placeholder=\"topic (for a msgId)\"> <button>Find</button></form>\
<form action=\"/message\"><b>By queue</b> <input name=\"topic\" placeholder=\"topic\"> \
<input name=\"broker\" placeholder=\"broker\" size=\"10\"> <input name=\"queue\" placeholder=\"queue\" size=\"4\"> \
<input name=\"offset\" placeholder=\"offset\" size=\"8\"> <button>Find</button></form></div>";

pub async fn lookup(State(d): Shared, Query(q): Params) -> Html<String> {
    let mut body = FORMS.to_string();
    let get = |k: &str| q.get(k).map(String::as_str).filter(|v| !v.is_empty());
    let found = match (get("id"), get("key"), get("topic"), get("offset")) {
        (Some(id), ..) => Some(d.admin.find_by_id(id, get("topic")).await),
        (None, Some(key), Some(topic), _) => {
            Some(d.admin.query_by_key(topic, key, SHOWN_MAX).await)
        }
        (None, None, Some(topic), Some(offset)) => Some(by_queue(&d, &q, topic, offset).await),
        _ => None,
    };
    match found {
        None => {}
        Some(Err(e)) => body.push_str(&failed("lookup", e)),
        Some(Ok(messages)) if messages.is_empty() => {
            body.push_str("<div class=\"card muted\">no message found</div>")
        }
        Some(Ok(messages)) => {
            let _ = write!(body, "<h2>{} found</h2>", messages.len());
            for m in &messages {
                body.push_str(&message_card(m, &m.topic));
            }
        }
    }
    Html(page("Messages", "/message", &body))
}

async fn by_queue(
    d: &Dashboard,
    q: &std::collections::HashMap<String, String>,
    topic: &str,
    offset: &str,
) -> client::Result<Vec<MessageExt>> {
    let invalid = |what: &str| client::ClientError::Invalid(format!("{what} is not a number"));
    let offset: u64 = offset.trim().parse().map_err(|_| invalid("offset"))?;
    let queue_id: u32 = q
        .get("queue")
        .map_or(Ok(0), |v| v.trim().parse())
        .map_err(|_| invalid("queue"))?;
    let broker_name = match q.get("broker").filter(|b| !b.is_empty()) {
        Some(b) => b.clone(),
        None => d
            .puller
            .fetch_queues(topic)
            .await?
            .first()
            .map(|mq| mq.broker_name.clone())
            .unwrap_or_default(),
    };
    let mq = MessageQueue {
        topic: topic.to_string(),
        broker_name,
        queue_id,
    };
    Ok(d.puller.pull(&mq, "*", offset, 1).await?.messages)
}

/// One message with its fields, properties and body, and a form to resend it to
/// `resend_to`.
fn message_card(m: &MessageExt, resend_to: &str) -> String {
    let mut props: Vec<Vec<String>> = m
        .properties
        .iter()
        .map(|(k, v)| vec![esc(k), esc(v)])
        .collect();
    props.sort();
    format!(
        "<div class=\"card\"><b>{}</b> {}:{} offset {} · msgId <code id=\"msgid-{}\">{}</code> · \
         offsetMsgId <code>{}</code><br>tags {} · keys {} · born {} · stored {} · reconsumed {}\
         <pre>{}</pre>{}\
         <form method=\"post\" action=\"/message/resend\"><input type=\"hidden\" name=\"id\" value=\"{}\">\
         <input type=\"hidden\" name=\"topic\" value=\"{}\">\
         <input type=\"hidden\" name=\"to\" value=\"{}\"><button>Resend to {}</button></form></div>",
        esc(&m.topic),
        esc(&m.broker_name),
        m.queue_id,
        m.queue_offset,
        esc(&m.msg_id),
        esc(&m.msg_id),
        esc(&m.offset_msg_id),
        esc(m.tags.as_deref().unwrap_or("-")),
        esc(&m.keys.join(" ")),
        m.born_timestamp_ms,
        m.store_timestamp_ms,
        m.reconsume_times,
        esc(&String::from_utf8_lossy(&m.body)),
        table(&["property", "value"], &props),
        esc(&m.offset_msg_id),
        esc(&m.topic),
        esc(resend_to),
        esc(resend_to),
    )
}

/// Sends a copy of the message (body, tags, keys, user properties) to `to`, or to its
/// own topic. rocketmq-dashboard's "resend" asks a consumer to consume it again; here
/// the copy goes through the topic, so every group subscribed gets it.
pub async fn resend(State(d): Shared, form: PostForm) -> Html<String> {
    let form = form.0;
    let id = form.get("id").cloned().unwrap_or_default();
    let found = d
        .admin
        .find_by_id(&id, form.get("topic").map(String::as_str))
        .await;
    let body = match found.as_deref() {
        Err(e) => failed("finding the message", e),
        Ok([]) => failed("finding the message", format!("no message {id}")),
        Ok([m, ..]) => {
            let to = form
                .get("to")
                .filter(|t| !t.is_empty())
                .cloned()
                .unwrap_or_else(|| m.topic.clone());
            let copy = client::dead_letter::copy_to_topic(m, &to);
            match d.producer.send(copy).await {
                Ok(r) => format!(
                    "<div class=\"card ok\">resent {} to {} as msgId <code id=\"resent\">{}</code> ({:?})</div>",
                    esc(&id),
                    esc(&to),
                    esc(&r.msg_id),
                    r.status
                ),
                Err(e) => failed("resending", e),
            }
        }
    };
    Html(page("Resend", "/message", &(body + FORMS)))
}

pub async fn dead_letters(State(d): Shared) -> Html<String> {
    let topics = match d.admin.topic_list().await {
        Ok(t) => t,
        Err(e) => return Html(page("Dead letters", "/dlq", &failed("topic list", e))),
    };
    let dlq: Vec<&String> = topics
        .iter()
        .filter(|t| t.starts_with(DLQ_PREFIX))
        .collect();
    let mut body = String::from(
        "<p class=\"muted\">A consumer group's messages that failed more often than its \
         retry limit (<code>%DLQ%group</code>). Resend puts a copy back on the topic it came from.</p>",
    );
    if dlq.is_empty() {
        body.push_str("<div class=\"card\">No dead letters.</div>");
    }
    let mut rows = Vec::new();
    let mut cards = String::new();
    for topic in dlq {
        let stats = d.admin.topic_stats(topic).await.unwrap_or_default();
        let total: u64 = stats.iter().map(|(_, o)| o.max_offset - o.min_offset).sum();
        rows.push(vec![
            esc(topic.trim_start_matches(DLQ_PREFIX)),
            format!("<a href=\"/topic?name={}\">{}</a>", url(topic), esc(topic)),
            num(&format!("dlq-{topic}"), total),
        ]);
        let mut shown = 0;
        for (mq, o) in &stats {
            if shown >= SHOWN_MAX {
                break;
            }
            let Ok(r) = d
                .puller
                .pull(mq, "*", o.min_offset, SHOWN_MAX - shown)
                .await
            else {
                continue;
            };
            for m in &r.messages {
                cards.push_str(&message_card(m, client::dead_letter::origin_topic(m)));
                shown += 1;
            }
        }
    }
    if !rows.is_empty() {
        body.push_str(&table(&["consumer group", "topic", "messages"], &rows));
        body.push_str("<h2>Messages</h2>");
        body.push_str(&cards);
    }
    Html(page("Dead letters", "/dlq", &body))
}
