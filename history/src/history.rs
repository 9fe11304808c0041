//! The history format shared by the simulator and the Jepsen harness: one JSON object a
//! line, in Jepsen's vocabulary.
//!
//! ```text
//! {"index":0,"time_ms":12,"process":"p1","type":"invoke","f":"send","value":"v17"}
//! {"index":1,"time_ms":15,"process":"p1","type":"ok","f":"send","value":"v17",
//!  "queue":{"topic":"T","broker":"broker-a","queue_id":2},"queue_offset":41}
//! {"index":2,"time_ms":40,"process":"c1","type":"ok","f":"deliver","value":"v17",
//!  "queue":{...},"queue_offset":41,"group":"G"}
//! ```
//! A send is `invoke`, then `ok` (acknowledged), `fail` (definitely not stored) or
//! `info` (unknown, e.g. a timeout: it may still appear). A delivery is one `ok` event
//! with `f = "deliver"`; a final drain of every replica uses `f = "read"` with the
//! replica in `process`. A fault is an `info` event with `f = "fault"` from process
//! `nemesis`. A transaction's half message is `f = "tx"` (see [`F::Tx`]).

use serde::{Deserialize, Serialize};

/// A queue as the history names it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct QueueRef {
    pub topic: String,
    pub broker: String,
    pub queue_id: u32,
}

/// How a send ended, as its client saw it. A harness records no send as failed (`fail`)
/// from what a client sees: a refusal such as FLUSH_SLAVE_TIMEOUT, an error or a
/// timeout may still leave the message stored, so anything short of an acknowledgement
/// is unknown.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SendOutcome {
    /// Acknowledged at this position, by this master (its store address) when known.
    Acked {
        queue: QueueRef,
        queue_offset: u64,
        node: Option<String>,
    },
    /// Not acknowledged, and why (a status, an error): it may still appear.
    Unknown(String),
}

impl SendOutcome {
    /// The outcome of a send the broker stored first in a queue of its own (a half
    /// message in the half topic, a delayed one in its level's schedule queue): the
    /// acknowledgement's offset is that queue's, whatever queue it names.
    pub fn staged_in(self, topic: &str, queue_id: u32) -> SendOutcome {
        match self {
            SendOutcome::Acked {
                queue,
                queue_offset,
                node,
            } => SendOutcome::Acked {
                queue: QueueRef {
                    topic: topic.into(),
                    queue_id,
                    ..queue
                },
                queue_offset,
                node,
            },
            unknown => unknown,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Type {
    Invoke,
    Ok,
    Fail,
    Info,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum F {
    Send,
    Deliver,
    Read,
    /// A committed message read from a replica right before compaction deleted it
    /// (process: the replica): durable until then, and every consumer had it.
    Compact,
    /// A fault the nemesis injected (process "nemesis", value describes it).
    Fault,
    /// A transaction's half message: `invoke`, then `ok` (stored, at its half-queue
    /// position) or `info` (unknown). Its value names its decision
    /// ([`crate::transaction::TxKind`]); a committed one appears as a message.
    Tx,
    /// A delayed send: `invoke`, then `ok` (stored, at its schedule-queue position) or
    /// `info`. Its value names its delay ([`crate::delayed`]).
    Delayed,
    /// A consumer's listener answered a delivery "later" (RECONSUME_LATER): one `ok`
    /// event, with the group and where the message was pulled from. The message must
    /// come back to the group or reach its dead-letter topic.
    Reject,
}

impl F {
    /// A send of any kind: plain, a transaction's half message, or delayed. Each is
    /// `invoke`, then `ok` or `info`, and shows the cluster taking writes.
    pub fn is_send(self) -> bool {
        matches!(self, F::Send | F::Tx | F::Delayed)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub index: u64,
    pub time_ms: i64,
    pub process: String,
    #[serde(rename = "type")]
    pub kind: Type,
    pub f: F,
    pub value: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<QueueRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_offset: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Who acknowledged a send (the master's store address), when known: a lost tail
    /// is judged per acknowledging master.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
}

/// Appends events with increasing indexes.
#[derive(Debug, Default)]
pub struct History {
    events: Vec<Event>,
}

impl History {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn events(&self) -> &[Event] {
        &self.events
    }

    /// Appends a copy of an event, re-indexed (filtering or rewriting a history).
    pub fn push_event(&mut self, mut e: Event) {
        e.index = self.events.len() as u64;
        self.events.push(e);
    }

    fn push(&mut self, time_ms: i64, process: &str, kind: Type, f: F, value: &str) -> &mut Event {
        self.events.push(Event {
            index: self.events.len() as u64,
            time_ms,
            process: process.to_string(),
            kind,
            f,
            value: value.to_string(),
            queue: None,
            queue_offset: None,
            group: None,
            error: None,
            node: None,
        });
        self.events.last_mut().expect("just pushed")
    }

    pub fn send_invoke(&mut self, time_ms: i64, process: &str, value: &str) {
        self.push(time_ms, process, Type::Invoke, F::Send, value);
    }

    /// Records how a send ended: `ok` with its queue, offset and acknowledging master,
    /// or `info` (unknown, never failed). Returns whether it was acknowledged. The
    /// simulator's and the Jepsen harness's producers share it.
    pub fn record_send(
        &mut self,
        time_ms: i64,
        process: &str,
        value: &str,
        outcome: SendOutcome,
    ) -> bool {
        let acked = matches!(outcome, SendOutcome::Acked { .. });
        self.record_outcome(F::Send, time_ms, process, value, outcome);
        acked
    }

    pub fn send_ok(
        &mut self,
        time_ms: i64,
        process: &str,
        value: &str,
        queue: QueueRef,
        queue_offset: u64,
    ) {
        self.send_ok_by(time_ms, process, value, queue, queue_offset, None);
    }

    /// An acknowledged send, with the master that acknowledged it.
    pub fn send_ok_by(
        &mut self,
        time_ms: i64,
        process: &str,
        value: &str,
        queue: QueueRef,
        queue_offset: u64,
        node: Option<&str>,
    ) {
        let e = self.push(time_ms, process, Type::Ok, F::Send, value);
        e.queue = Some(queue);
        e.queue_offset = Some(queue_offset);
        e.node = node.map(str::to_string);
    }

    /// A delayed message sent.
    pub fn delayed_invoke(&mut self, time_ms: i64, process: &str, value: &str) {
        self.push(time_ms, process, Type::Invoke, F::Delayed, value);
    }

    /// How a delayed send ended: `ok` at its schedule-queue position, or `info`.
    pub fn record_delayed(
        &mut self,
        time_ms: i64,
        process: &str,
        value: &str,
        outcome: SendOutcome,
    ) {
        self.record_outcome(F::Delayed, time_ms, process, value, outcome);
    }

    /// A transaction's half message sent.
    pub fn tx_invoke(&mut self, time_ms: i64, process: &str, value: &str) {
        self.push(time_ms, process, Type::Invoke, F::Tx, value);
    }

    /// How a half message's send ended: `ok` at its half-queue position, or `info`.
    pub fn record_tx(&mut self, time_ms: i64, process: &str, value: &str, outcome: SendOutcome) {
        self.record_outcome(F::Tx, time_ms, process, value, outcome);
    }

    /// How a send of kind `f` ended: `ok` at its position (for a transaction or a
    /// delayed send, the half or schedule queue's) by its master, or `info`.
    fn record_outcome(
        &mut self,
        f: F,
        time_ms: i64,
        process: &str,
        value: &str,
        outcome: SendOutcome,
    ) {
        match outcome {
            SendOutcome::Acked {
                queue,
                queue_offset,
                node,
            } => {
                let e = self.push(time_ms, process, Type::Ok, f, value);
                e.queue = Some(queue);
                e.queue_offset = Some(queue_offset);
                e.node = node;
            }
            SendOutcome::Unknown(error) => {
                self.push(time_ms, process, Type::Info, f, value).error = Some(error);
            }
        }
    }

    /// Definitely not stored (the broker refused it).
    pub fn send_fail(&mut self, time_ms: i64, process: &str, value: &str, error: &str) {
        self.push(time_ms, process, Type::Fail, F::Send, value)
            .error = Some(error.to_string());
    }

    /// Unknown: a timeout or a lost connection. The message may appear later.
    pub fn send_info(&mut self, time_ms: i64, process: &str, value: &str, error: &str) {
        self.push(time_ms, process, Type::Info, F::Send, value)
            .error = Some(error.to_string());
    }

    pub fn deliver(
        &mut self,
        time_ms: i64,
        consumer: &str,
        group: &str,
        value: &str,
        queue: QueueRef,
        queue_offset: u64,
    ) {
        let at = (queue, queue_offset);
        self.consumed(F::Deliver, time_ms, consumer, group, value, at);
    }

    /// `consumer`'s listener failed this delivery: the message goes back to `group`.
    pub fn reject(
        &mut self,
        time_ms: i64,
        consumer: &str,
        group: &str,
        value: &str,
        queue: QueueRef,
        queue_offset: u64,
    ) {
        let at = (queue, queue_offset);
        self.consumed(F::Reject, time_ms, consumer, group, value, at);
    }

    /// What a consumer of `group` did with the message at `at`.
    fn consumed(
        &mut self,
        f: F,
        time_ms: i64,
        consumer: &str,
        group: &str,
        value: &str,
        (queue, queue_offset): (QueueRef, u64),
    ) {
        let e = self.push(time_ms, consumer, Type::Ok, f, value);
        e.queue = Some(queue);
        e.queue_offset = Some(queue_offset);
        e.group = Some(group.to_string());
    }

    /// A message found on `replica` by the final drain.
    pub fn read(
        &mut self,
        time_ms: i64,
        replica: &str,
        value: &str,
        queue: QueueRef,
        queue_offset: u64,
    ) {
        self.found(F::Read, time_ms, replica, value, (queue, queue_offset));
    }

    /// A message `replica` held, committed, when compaction deleted it.
    pub fn compact(
        &mut self,
        time_ms: i64,
        replica: &str,
        value: &str,
        queue: QueueRef,
        queue_offset: u64,
    ) {
        self.found(F::Compact, time_ms, replica, value, (queue, queue_offset));
    }

    /// A message found on a replica at a position.
    fn found(&mut self, f: F, time_ms: i64, replica: &str, value: &str, at: (QueueRef, u64)) {
        let e = self.push(time_ms, replica, Type::Ok, f, value);
        e.queue = Some(at.0);
        e.queue_offset = Some(at.1);
    }

    /// A fault that may lose unsynced data (a power loss, a kill): the boundary of the
    /// windows in which an async mode may lose an acknowledged tail.
    pub fn fault(&mut self, time_ms: i64, what: &str) {
        self.push(time_ms, "nemesis", Type::Info, F::Fault, what);
    }

    pub fn to_jsonl(&self) -> String {
        let mut out = String::new();
        for e in &self.events {
            out.push_str(&serde_json::to_string(e).expect("events serialize"));
            out.push('\n');
        }
        out
    }

    /// Parses JSONL; the error names the line.
    pub fn from_jsonl(text: &str) -> Result<Self, String> {
        let mut events = Vec::new();
        for (i, line) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            events.push(
                serde_json::from_str(line).map_err(|e| format!("history line {}: {e}", i + 1))?,
            );
        }
        Ok(History { events })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jsonl_round_trips_in_jepsen_vocabulary() {
        let q = QueueRef {
            topic: "T".into(),
            broker: "b".into(),
            queue_id: 1,
        };
        let mut h = History::new();
        h.send_invoke(1, "p1", "v1");
        h.send_ok(2, "p1", "v1", q.clone(), 0);
        h.send_info(3, "p1", "v2", "timeout");
        h.deliver(4, "c1", "G", "v1", q, 0);
        let text = h.to_jsonl();
        assert!(text
            .lines()
            .next()
            .unwrap()
            .contains(r#""type":"invoke","f":"send""#));
        assert_eq!(History::from_jsonl(&text).unwrap().events(), h.events());
        assert!(History::from_jsonl("{}\n").unwrap_err().contains("line 1"));
    }

    #[test]
    fn a_send_is_recorded_as_acknowledged_or_unknown() {
        let q = QueueRef {
            topic: "T".into(),
            broker: "b".into(),
            queue_id: 1,
        };
        let mut h = History::new();
        let acked = SendOutcome::Acked {
            queue: q.clone(),
            queue_offset: 3,
            node: Some("10.0.0.1:10911".into()),
        };
        assert!(h.record_send(1, "p1", "v1", acked));
        assert!(!h.record_send(2, "p1", "v2", SendOutcome::Unknown("timeout".into())));
        let [ok, info] = h.events() else {
            panic!("two events: {:?}", h.events())
        };
        assert_eq!((ok.kind, ok.f), (Type::Ok, F::Send));
        assert_eq!(ok.queue, Some(q));
        assert_eq!(ok.queue_offset, Some(3));
        assert_eq!(ok.node.as_deref(), Some("10.0.0.1:10911"));
        assert_eq!((info.kind, info.f), (Type::Info, F::Send));
        assert_eq!(info.error.as_deref(), Some("timeout"));
    }
}
