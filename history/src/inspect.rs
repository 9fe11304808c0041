//! `sim inspect trace.jsonl`: a seed's trace as a timeline a person can read.
//!
//! Without filters it shows the story: faults, Raft role changes and elections, warnings
//! and errors, one line each, in simulated time, with a summary of what else the trace
//! holds. `--node broker-a-r2` shows everything one host did (its sends, deliveries,
//! debug events too); `--msg p1-17` follows one message from send to deliveries and
//! reads; `--from/--to` (ms) cut a window. Filters combine.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

#[derive(Clone, Debug, Default)]
pub struct Filter {
    pub node: Option<String>,
    pub msg: Option<String>,
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
}

impl Filter {
    fn focused(&self) -> bool {
        self.node.is_some() || self.msg.is_some()
    }
}

/// Lines of the story a bare `inspect` shows: the events that change who does what.
fn is_story(target: &str, level: &str, msg: &str) -> bool {
    if matches!(level, "WARN" | "ERROR") && !target.starts_with("openraft") {
        return true;
    }
    target == "sim::nemesis"
        || target == "sim::routes"
        || msg.contains("role changed")
        || msg.contains("vote is changing")
        || msg.contains("truncated")
        || msg.contains("recovered")
        || msg.contains("departed consumer")
}

/// A history event (the simulator's `sim::history` trace target) in one line.
fn history_line(event: &str) -> Option<String> {
    let e: Value = serde_json::from_str(event).ok()?;
    let get = |k: &str| e.get(k).and_then(Value::as_str).unwrap_or("");
    let queue = e.get("queue").map(|q| {
        format!(
            "{}:{}:{}@{}",
            q.get("broker").and_then(Value::as_str).unwrap_or(""),
            q.get("topic").and_then(Value::as_str).unwrap_or(""),
            q.get("queue_id").and_then(Value::as_u64).unwrap_or(0),
            e.get("queue_offset").and_then(Value::as_u64).unwrap_or(0)
        )
    });
    let mut line = format!("{} {} {}", get("f"), get("type"), get("value"));
    if let Some(q) = queue {
        line.push_str(&format!(" at {q}"));
    }
    if let Some(g) = e.get("group").and_then(Value::as_str) {
        line.push_str(&format!(" (group {g})"));
    }
    if let Some(err) = e.get("error").and_then(Value::as_str) {
        line.push_str(&format!(": {err}"));
    }
    Some(line)
}

fn is_value(event: &str, value: &str) -> bool {
    serde_json::from_str::<Value>(event)
        .ok()
        .and_then(|e| e.get("value").and_then(Value::as_str).map(|v| v == value))
        .unwrap_or(false)
}

/// Renders the trace `text` under `filter`.
pub fn render(text: &str, filter: &Filter) -> Result<String, String> {
    let mut out = String::new();
    let mut hidden: BTreeMap<String, usize> = BTreeMap::new();
    let mut nodes: BTreeMap<String, usize> = BTreeMap::new();
    let (mut shown, mut total, mut last_ms) = (0usize, 0usize, 0i64);
    for (n, line) in text.lines().enumerate() {
        let Value::Object(mut e) = serde_json::from_str::<Value>(line)
            .map_err(|err| format!("trace line {}: {err}", n + 1))?
        else {
            return Err(format!("trace line {}: not a JSON object", n + 1));
        };
        total += 1;
        let t_ms = e.get("t_ms").and_then(Value::as_i64).unwrap_or(0);
        last_ms = last_ms.max(t_ms);
        let take = |e: &mut Map<String, Value>, k: &str| match e.remove(k) {
            Some(Value::String(s)) => s,
            Some(other) => other.to_string(),
            None => String::new(),
        };
        let node = take(&mut e, "node");
        let level = take(&mut e, "level");
        let target = take(&mut e, "target");
        let msg = take(&mut e, "msg");
        e.remove("t_ms");
        *nodes.entry(node.clone()).or_default() += 1;
        if filter.from_ms.is_some_and(|f| t_ms < f) || filter.to_ms.is_some_and(|t| t_ms > t) {
            continue;
        }
        if filter.node.as_ref().is_some_and(|want| &node != want) {
            continue;
        }
        let text = if target == "sim::history" {
            let event = take(&mut e, "event");
            // A message is followed by its value exactly (p1-1 is not p1-10).
            if filter.msg.as_ref().is_some_and(|v| !is_value(&event, v)) {
                continue;
            }
            history_line(&event).unwrap_or_default()
        } else {
            if filter
                .msg
                .as_ref()
                .is_some_and(|v| !line.contains(v.as_str()))
            {
                continue;
            }
            let fields: Vec<String> = e
                .iter()
                .map(|(k, v)| match v {
                    Value::String(s) => format!("{k}={s}"),
                    other => format!("{k}={other}"),
                })
                .collect();
            format!("{msg} {}", fields.join(" ")).trim().to_string()
        };
        if !filter.focused() && !is_story(&target, &level, &text) {
            *hidden.entry(target.clone()).or_default() += 1;
            continue;
        }
        shown += 1;
        let short_target = target.rsplit("::").next().unwrap_or(&target);
        out.push_str(&format!(
            "{:>9.3}s  {node:<14} {level:<5} {short_target:<18} {text}\n",
            t_ms as f64 / 1000.0
        ));
    }
    let mut head = format!(
        "{total} events over {:.1} s of simulated time on {} hosts; showing {shown}\n",
        last_ms as f64 / 1000.0,
        nodes.len()
    );
    if !hidden.is_empty() {
        let mut by_count: Vec<(&String, &usize)> = hidden.iter().collect();
        by_count.sort_by(|a, b| b.1.cmp(a.1));
        let top: Vec<String> = by_count
            .iter()
            .take(6)
            .map(|(t, n)| format!("{t} {n}"))
            .collect();
        head.push_str(&format!(
            "hidden (use --node or --msg to see them): {}\n",
            top.join(", ")
        ));
    }
    Ok(head + &out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRACE: &str = r#"{"t_ms":5,"node":"broker-a-r1","level":"INFO","target":"raftmq::broker::register","msg":"role changed; re-registering","is_master":true}
{"t_ms":7,"node":"p1","level":"INFO","target":"sim::history","event":"{\"index\":0,\"time_ms\":7,\"process\":\"p1\",\"type\":\"invoke\",\"f\":\"send\",\"value\":\"p1-1\"}"}
{"t_ms":9,"node":"p1","level":"INFO","target":"sim::history","event":"{\"index\":1,\"time_ms\":9,\"process\":\"p1\",\"type\":\"ok\",\"f\":\"send\",\"value\":\"p1-1\",\"queue\":{\"topic\":\"T\",\"broker\":\"broker-a\",\"queue_id\":2},\"queue_offset\":4}"}
{"t_ms":1500,"node":"-","level":"INFO","target":"sim::nemesis","what":"kill broker-a-r1 (master)"}
{"t_ms":1600,"node":"broker-a-r2","level":"DEBUG","target":"raft::log_store","msg":"appended"}"#;

    #[test]
    fn the_story_by_default_and_everything_of_a_node_or_message_on_request() {
        let story = render(TRACE, &Filter::default()).unwrap();
        assert!(story.starts_with("5 events over 1.6 s of simulated time on 4 hosts; showing 2"));
        assert!(story.contains("role changed; re-registering is_master=true"));
        assert!(story.contains("what=kill broker-a-r1 (master)"));
        assert!(!story.contains("p1-1"));
        let msg = Filter {
            msg: Some("p1-1".into()),
            ..Filter::default()
        };
        let followed = render(TRACE, &msg).unwrap();
        assert!(followed.contains("send invoke p1-1"));
        assert!(followed.contains("send ok p1-1 at broker-a:T:2@4"));
        let node = Filter {
            node: Some("broker-a-r2".into()),
            ..Filter::default()
        };
        assert!(render(TRACE, &node).unwrap().contains("appended"));
        let window = Filter {
            from_ms: Some(1_000),
            to_ms: Some(1_550),
            ..Filter::default()
        };
        let cut = render(TRACE, &window).unwrap();
        assert!(cut.contains("showing 1") && cut.contains("kill"));
        assert!(render("not json", &Filter::default())
            .unwrap_err()
            .contains("trace line 1"));
    }
}
