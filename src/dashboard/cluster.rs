//! The cluster page: name servers, then each broker group's replicas with their role,
//! Raft term and lag, traffic totals and disk.

use axum::extract::State;
use axum::response::Html;

use super::html::{esc, num, page, table, value};
use super::{failed, Shared};

async fn page_body(d: &super::Dashboard) -> String {
    let mut body = format!(
        "<div class=\"card\">Name servers: {}</div>",
        esc(&d.namesrv)
    );
    let info = match d.admin.cluster_info().await {
        Ok(info) => info,
        Err(e) => return body + &failed("cluster info", e),
    };
    for (cluster, names) in &info.cluster_addr_table {
        body.push_str(&format!("<h2>Cluster {}</h2>", esc(cluster)));
        for name in names {
            let Some(data) = info.broker_addr_table.get(name) else {
                continue;
            };
            body.push_str(&format!("<h2>Broker group {}</h2>", esc(name)));
            let status = d.admin.group_status(name).await.ok();
            if let Some(s) = &status {
                body.push_str(&format!(
                    "<div class=\"card\">Raft term <b>{}</b>, master <b>{}</b>, voters {:?}, learners {:?}, \
                     log index {} (applied {})</div>",
                    value(&format!("term-{name}"), s.term),
                    value(
                        &format!("master-{name}"),
                        s.master.map_or("none".to_string(), |m| format!("replica {m}"))
                    ),
                    s.voters,
                    s.learners,
                    s.last_log_index,
                    s.last_applied_index
                ));
            }
            let mut rows = Vec::new();
            for (id, addr) in &data.broker_addrs {
                let info = d.admin.broker_runtime_info(addr).await.unwrap_or_default();
                let get = |k: &str| esc(info.get(k).map(String::as_str).unwrap_or("?"));
                let role = if *id == 0 { "master" } else { "slave" };
                rows.push(vec![
                    esc(addr),
                    format!("\u{1}{id}"),
                    format!("<span id=\"role-{}\">{role}</span>", esc(addr)),
                    get("raftmqTerm"),
                    format!("\u{1}{}", get("msgPutTotalTodayNow")),
                    format!("\u{1}{}", get("msgGetTotalTodayNow")),
                    format!("\u{1}{}", get("commitLogDiskBytes")),
                    get("brokerVersionDesc"),
                ]);
            }
            body.push_str(&table(
                &[
                    "address",
                    "broker id",
                    "role",
                    "term",
                    "messages in",
                    "messages out",
                    "CommitLog bytes",
                    "version",
                ],
                &rows,
            ));
            if let Some(s) = status.filter(|s| !s.lag.is_empty()) {
                let rows: Vec<Vec<String>> = s
                    .lag
                    .iter()
                    .map(|(replica, behind)| {
                        vec![
                            format!("replica {replica}"),
                            num(&format!("lag-{name}-{replica}"), behind),
                        ]
                    })
                    .collect();
                body.push_str(&table(&["replica", "entries behind the master"], &rows));
            }
        }
    }
    body
}

pub async fn show(State(d): Shared) -> Html<String> {
    Html(page("Cluster", "/", &page_body(&d).await))
}
