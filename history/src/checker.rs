//! Checks a [`History`] against raftmq's guarantees (DESIGN §6). Pure: no runtime, no
//! I/O, compiled in both builds, so the simulator and the Jepsen harness share it.
//!
//! - **lost**: acknowledged but not in the final reads (`read` events: the durable state
//!   once everything healed); a history without reads falls back to deliveries. A
//!   delivery before a fault proves nothing about durability. Under `quorum + sync` a
//!   message delivered (so committed) and then missing from the final reads is lost too,
//!   acknowledged or not. Under `quorum + sync` any loss
//!   is an anomaly. In the async modes only a *tail* may be lost: between two faults,
//!   per queue and acknowledging master (when the history names it), the lost
//!   acknowledgements must be the last ones before the fault (the highest offsets of
//!   that window, among sends invoked in it; a survivor counts against a loss only if
//!   it was also acknowledged in it, since a retried send may land much later):
//!   a master cut off from its group may go on acknowledging while a new one is elected,
//!   and loses everything it acknowledged from then on, interleaved in time with the
//!   new master's surviving acknowledgements. A loss with no fault after it is an
//!   anomaly. The tail's size
//!   is reported, and a lost message's acknowledged position does not count against the
//!   offset and FIFO checks (a power loss voids it; the offset is reused).
//! - **unexpected**: delivered or read but never sent.
//! - **failed but read**: a send reported as definitely failed that appears anyway.
//! - **recovered**: a send with an unknown outcome (`info`) that appears: fine, counted.
//! - **duplicated**: delivered more than once to one group: allowed (at least once), counted.
//! - **inconsistent offsets**: one (queue, offset) holding two different messages, across
//!   acknowledgements, deliveries and replicas.
//! - **fifo** (ordered workloads): a producer's acknowledged sends to one queue must get
//!   increasing offsets in send order, and the group's *first* deliveries of a queue's
//!   messages must come in increasing offset order. Re-deliveries from an earlier offset
//!   (after a rebalance, a restart, an offset reset) are at-least-once replays, allowed.
//! - **diverged**: when the final drain reads several replicas of a group (`read`
//!   events from more than one process), they must hold the same (queue, offset)
//!   positions; a position some replica lacks is a divergence (different values at one
//!   position are inconsistent offsets).
//! - **compacted** (`compact` events): a message compaction deleted from a replica's
//!   log was read, committed, right before; it counts as surviving (durability ended by
//!   design, after every consumer had it), its position counts for the offset checks,
//!   and replicas are compared only above the highest compacted offset of each queue.
//! - **undelivered** ([`undelivered`], a separate call once the consumers had time to
//!   catch up): at least once per consumer group, what the final reads hold and the
//!   group never received.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::history::{Event, History, QueueRef, Type, F};

/// How much loss the durability mode allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LossAllowance {
    /// `ack = quorum`, `flush = sync`: nothing acknowledged may be lost.
    None,
    /// `ack = leader` or `flush = async`: an acknowledged tail per queue may be lost.
    Tail,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Report {
    pub valid: bool,
    pub attempted: usize,
    pub acknowledged: usize,
    pub lost: Vec<String>,
    /// Lost messages that form an allowed tail (async modes).
    pub lost_tail: usize,
    pub unexpected: Vec<String>,
    pub failed_but_read: Vec<String>,
    pub recovered: usize,
    pub duplicated: usize,
    pub inconsistent_offsets: Vec<String>,
    pub fifo_violations: Vec<String>,
    /// Positions the final drain found on some replicas and not on others.
    #[serde(default)]
    pub diverged: Vec<String>,
}

fn position(e: &Event) -> Option<(QueueRef, u64)> {
    Some((e.queue.clone()?, e.queue_offset?))
}

/// Checks `history`. `ordered` turns on the FIFO checks.
pub fn check(history: &History, allowance: LossAllowance, ordered: bool) -> Report {
    let events = history.events();
    let mut r = Report::default();
    let attempted: BTreeSet<&str> = events
        .iter()
        .filter(|e| e.f == F::Send && e.kind == Type::Invoke)
        .map(|e| e.value.as_str())
        .collect();
    let acked: BTreeMap<&str, &Event> = events
        .iter()
        .filter(|e| e.f == F::Send && e.kind == Type::Ok)
        .map(|e| (e.value.as_str(), e))
        .collect();
    let failed: BTreeSet<&str> = events
        .iter()
        .filter(|e| e.f == F::Send && e.kind == Type::Fail)
        .map(|e| e.value.as_str())
        .collect();
    let unknown: BTreeSet<&str> = events
        .iter()
        .filter(|e| e.f == F::Send && e.kind == Type::Info)
        .map(|e| e.value.as_str())
        .collect();
    let seen: Vec<&Event> = events
        .iter()
        .filter(|e| matches!(e.f, F::Deliver | F::Read | F::Compact) && e.kind == Type::Ok)
        .collect();
    let seen_values: BTreeSet<&str> = seen.iter().map(|e| e.value.as_str()).collect();
    // What survived: the final reads (and what compaction deleted after reading it),
    // or (a history without reads) every delivery.
    let read_values: BTreeSet<&str> = seen
        .iter()
        .filter(|e| matches!(e.f, F::Read | F::Compact))
        .map(|e| e.value.as_str())
        .collect();
    let survivors = if read_values.is_empty() {
        &seen_values
    } else {
        &read_values
    };
    r.attempted = attempted.len();
    r.acknowledged = acked.len();

    r.unexpected = seen_values
        .iter()
        .filter(|v| !attempted.contains(*v))
        .map(|v| v.to_string())
        .collect();
    r.failed_but_read = seen_values
        .iter()
        .filter(|v| failed.contains(*v))
        .map(|v| v.to_string())
        .collect();
    r.recovered = seen_values.iter().filter(|v| unknown.contains(*v)).count();

    let mut per_group: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    for e in seen.iter().filter(|e| e.f == F::Deliver) {
        *per_group
            .entry((e.group.as_deref().unwrap_or(""), e.value.as_str()))
            .or_default() += 1;
    }
    r.duplicated = per_group.values().map(|n| n.saturating_sub(1)).sum();

    check_loss(events, &acked, survivors, allowance, &mut r);
    if allowance == LossAllowance::None {
        // Delivered means committed: it must still be there, acknowledged or not.
        let gone: BTreeSet<&str> = seen
            .iter()
            .filter(|e| e.f == F::Deliver && !survivors.contains(e.value.as_str()))
            .filter(|e| !acked.contains_key(e.value.as_str()))
            .map(|e| e.value.as_str())
            .collect();
        r.lost.extend(gone.into_iter().map(str::to_string));
    }
    // Where a tail may be lost, a lost message's position was never durable and may be
    // reused: only survivors count. Where nothing may be lost, every position counts.
    let counts = |v: &str| allowance == LossAllowance::None || survivors.contains(v);
    let durable: BTreeMap<&str, &Event> = acked
        .iter()
        .filter(|(v, _)| counts(v))
        .map(|(v, e)| (*v, *e))
        .collect();
    let surviving: Vec<&Event> = seen
        .iter()
        .copied()
        .filter(|e| counts(e.value.as_str()))
        .collect();
    check_offsets(&durable, &surviving, &mut r);
    if ordered {
        check_fifo(events, survivors, &mut r);
    }
    check_replicas(&seen, &mut r);
    let loss_allowed = match allowance {
        LossAllowance::None => r.lost.is_empty(),
        LossAllowance::Tail => r.lost.len() == r.lost_tail,
    };
    r.valid = loss_allowed
        && r.unexpected.is_empty()
        && r.failed_but_read.is_empty()
        && r.inconsistent_offsets.is_empty()
        && r.fifo_violations.is_empty()
        && r.diverged.is_empty();
    r
}

/// Every replica of a broker group that the final drain read must hold the same
/// positions.
fn check_replicas(seen: &[&Event], r: &mut Report) {
    type Held<'a> = BTreeMap<&'a str, BTreeSet<(QueueRef, u64)>>;
    // Below its highest compacted offset a queue may be held by some replicas only.
    let mut compacted: BTreeMap<QueueRef, u64> = BTreeMap::new();
    for (queue, offset) in seen
        .iter()
        .filter(|e| e.f == F::Compact)
        .filter_map(|e| position(e))
    {
        let floor = compacted.entry(queue).or_default();
        *floor = (*floor).max(offset + 1);
    }
    let mut by_group: BTreeMap<&str, Held> = BTreeMap::new();
    for e in seen.iter().filter(|e| e.f == F::Read) {
        if let Some(pos) = position(e) {
            if compacted.get(&pos.0).is_some_and(|floor| pos.1 < *floor) {
                continue;
            }
            by_group
                .entry(e.queue.as_ref().map_or("", |q| q.broker.as_str()))
                .or_default()
                .entry(e.process.as_str())
                .or_default()
                .insert(pos);
        }
    }
    for by_replica in by_group.values() {
        check_group_replicas(by_replica, r);
    }
}

fn check_group_replicas(by_replica: &BTreeMap<&str, BTreeSet<(QueueRef, u64)>>, r: &mut Report) {
    if by_replica.len() < 2 {
        return;
    }
    let all: BTreeSet<&(QueueRef, u64)> = by_replica.values().flatten().collect();
    for (queue, offset) in all {
        let missing: Vec<&str> = by_replica
            .iter()
            .filter(|(_, held)| !held.contains(&(queue.clone(), *offset)))
            .map(|(replica, _)| *replica)
            .collect();
        if !missing.is_empty() {
            r.diverged.push(format!(
                "{}:{}:{}@{offset} missing on {}",
                queue.broker,
                queue.topic,
                queue.queue_id,
                missing.join(", ")
            ));
        }
    }
}

/// One (queue, offset) must hold one message everywhere it is observed.
fn check_offsets(acked: &BTreeMap<&str, &Event>, seen: &[&Event], r: &mut Report) {
    let mut at: BTreeMap<(QueueRef, u64), BTreeSet<&str>> = BTreeMap::new();
    for e in acked.values().copied().chain(seen.iter().copied()) {
        if let Some(pos) = position(e) {
            at.entry(pos).or_default().insert(e.value.as_str());
        }
    }
    for ((queue, offset), values) in at {
        if values.len() > 1 {
            r.inconsistent_offsets.push(format!(
                "{}:{}:{}@{offset} holds {values:?}",
                queue.broker, queue.topic, queue.queue_id
            ));
        }
    }
}

/// Acknowledged and never seen. With a tail allowance, the lost acknowledgements of each
/// queue must be a suffix of their fault window (see the module doc).
fn check_loss(
    events: &[Event],
    acked: &BTreeMap<&str, &Event>,
    seen: &BTreeSet<&str>,
    allowance: LossAllowance,
    r: &mut Report,
) {
    type Window<'a> = (QueueRef, usize, Option<&'a str>);
    let mut windows: BTreeMap<Window, Vec<(u64, bool)>> = BTreeMap::new();
    let faults: Vec<u64> = events
        .iter()
        .filter(|e| e.f == F::Fault)
        .map(|e| e.index)
        .collect();
    // A send belongs to the window it was *invoked* in: its acknowledgement may arrive
    // after the fault (a reply already on the wire), but it was written before.
    let invoked: BTreeMap<&str, u64> = events
        .iter()
        .filter(|e| e.f == F::Send && e.kind == Type::Invoke)
        .map(|e| (e.value.as_str(), e.index))
        .collect();
    for (value, e) in acked {
        let survived = seen.contains(value);
        if !survived {
            r.lost.push(value.to_string());
        }
        if let Some((queue, offset)) = position(e) {
            let at = invoked.get(value).copied().unwrap_or(e.index);
            let window = faults.partition_point(|f| *f < at);
            // A survivor proves a loss is not a tail only if it was surely written in
            // the window: acknowledged before the next fault too. A send the client
            // retried for seconds may land with a *later* leadership of the same
            // master, at an offset a truncated tail had used (the simulator's seed
            // 40070 in leader+sync).
            if survived && faults.partition_point(|f| *f < e.index) != window {
                continue;
            }
            // A tail of the master's log: ordered by where the sends landed, which for
            // concurrent producers need not be the order they were invoked in.
            windows
                .entry((queue, window, e.node.as_deref()))
                .or_default()
                .push((offset, survived));
        }
    }
    if allowance == LossAllowance::None {
        return;
    }
    for ((_, window, _), mut acks) in windows {
        if window == faults.len() {
            continue; // No fault after these acks: any loss here is not a tail.
        }
        acks.sort();
        let last_survivor = acks.iter().rposition(|(_, survived)| *survived);
        let tail_from = last_survivor.map_or(0, |i| i + 1);
        r.lost_tail += acks[tail_from..].len();
    }
}

fn check_fifo(events: &[Event], seen: &BTreeSet<&str>, r: &mut Report) {
    // Producer side: acknowledged sends of one process to one queue, in invoke order.
    let mut invoked: BTreeMap<(&str, &str), u64> = BTreeMap::new();
    for e in events
        .iter()
        .filter(|e| e.f == F::Send && e.kind == Type::Invoke)
    {
        invoked.insert((e.process.as_str(), e.value.as_str()), e.index);
    }
    // (process, queue) → (invoke index, offset, value) of its acknowledged sends.
    type Sends<'a> = BTreeMap<(&'a str, QueueRef), Vec<(u64, u64, &'a str)>>;
    let mut by_producer: Sends = BTreeMap::new();
    for e in events
        .iter()
        .filter(|e| e.f == F::Send && e.kind == Type::Ok && seen.contains(e.value.as_str()))
    {
        if let (Some((queue, offset)), Some(order)) = (
            position(e),
            invoked.get(&(e.process.as_str(), e.value.as_str())),
        ) {
            by_producer
                .entry((e.process.as_str(), queue))
                .or_default()
                .push((*order, offset, e.value.as_str()));
        }
    }
    for ((process, queue), mut sends) in by_producer {
        sends.sort();
        for pair in sends.windows(2) {
            if pair[1].1 <= pair[0].1 {
                r.fifo_violations.push(format!(
                    "{process} sent {} then {} to {}:{} but they got offsets {} and {}",
                    pair[0].2, pair[1].2, queue.topic, queue.queue_id, pair[0].1, pair[1].1
                ));
            }
        }
    }
    // Consumer side: per group and queue, first deliveries come in offset order; going
    // back to an offset the group already received is a replay.
    let mut delivered: BTreeSet<(&str, QueueRef, u64)> = BTreeSet::new();
    let mut newest: BTreeMap<(&str, QueueRef), (u64, &str)> = BTreeMap::new();
    for e in events
        .iter()
        .filter(|e| e.f == F::Deliver && e.kind == Type::Ok && seen.contains(e.value.as_str()))
    {
        let Some((queue, offset)) = position(e) else {
            continue;
        };
        let group = e.group.as_deref().unwrap_or("");
        if !delivered.insert((group, queue.clone(), offset)) {
            continue; // A replay.
        }
        let key = (group, queue);
        if let Some((prev, by)) = newest.get(&key) {
            if offset < *prev {
                r.fifo_violations.push(format!(
                    "group {group} first received {}:{} offset {offset} ({}) after offset {prev} ({by})",
                    key.1.topic, key.1.queue_id, e.process
                ));
            }
        }
        let top = newest.entry(key).or_insert((offset, e.process.as_str()));
        if offset >= top.0 {
            *top = (offset, e.process.as_str());
        }
    }
}

/// At least once, checked after the liveness phase: what the final reads found but
/// `group` never received.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Undelivered {
    /// Stored (read from a replica) and never delivered to the group.
    pub missing: Vec<String>,
    /// Of those, the ones at a position where the group had received another message
    /// that was then lost (a lost tail whose offsets were reused): a consumer already
    /// past that offset skips them. Part of the loss, allowed only where a tail is.
    pub skipped_after_loss: Vec<String>,
}

impl Undelivered {
    /// The violations under `allowance`.
    pub fn violations(&self, allowance: LossAllowance) -> usize {
        match allowance {
            LossAllowance::None => self.missing.len(),
            LossAllowance::Tail => self.missing.len() - self.skipped_after_loss.len(),
        }
    }
}

/// What the final reads hold of `topics` (all topics when empty) that `group` never
/// received.
pub fn undelivered(history: &History, group: &str, topics: &[&str]) -> Undelivered {
    let mut delivered: BTreeSet<&str> = BTreeSet::new();
    let mut delivered_at: BTreeMap<(QueueRef, u64), BTreeSet<&str>> = BTreeMap::new();
    let mut stored: BTreeMap<&str, (QueueRef, u64)> = BTreeMap::new();
    for e in history.events().iter().filter(|e| e.kind == Type::Ok) {
        let Some(pos) = position(e) else { continue };
        match e.f {
            F::Deliver if e.group.as_deref() == Some(group) => {
                delivered.insert(&e.value);
                delivered_at.entry(pos).or_default().insert(&e.value);
            }
            F::Read if topics.is_empty() || topics.contains(&pos.0.topic.as_str()) => {
                stored.insert(&e.value, pos);
            }
            _ => {}
        }
    }
    let mut u = Undelivered::default();
    for (value, pos) in stored {
        if delivered.contains(value) {
            continue;
        }
        u.missing.push(value.to_string());
        if delivered_at
            .get(&pos)
            .is_some_and(|seen| seen.iter().any(|d| *d != value))
        {
            u.skipped_after_loss.push(value.to_string());
        }
    }
    u
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(id: u32) -> QueueRef {
        QueueRef {
            topic: "T".into(),
            broker: "b".into(),
            queue_id: id,
        }
    }

    /// p1 sends v0..v4 to queue 0 (offsets 0..4), all acknowledged.
    fn base() -> History {
        let mut h = History::new();
        for i in 0..5 {
            h.send_invoke(i, "p1", &format!("v{i}"));
            h.send_ok(i, "p1", &format!("v{i}"), q(0), i as u64);
        }
        h
    }

    fn deliver_all(h: &mut History, upto: usize) {
        for i in 0..upto {
            h.deliver(100, "c1", "G", &format!("v{i}"), q(0), i as u64);
        }
    }

    #[test]
    fn a_clean_history_is_valid() {
        let mut h = base();
        deliver_all(&mut h, 5);
        let r = check(&h, LossAllowance::None, true);
        assert!(r.valid, "{r:?}");
        assert_eq!(r.acknowledged, 5);
    }

    #[test]
    fn catches_lost_messages_and_allows_only_a_tail_in_async_modes() {
        let mut h = base();
        deliver_all(&mut h, 3);
        let r = check(&h, LossAllowance::None, false);
        assert!(!r.valid);
        assert_eq!(r.lost, vec!["v3", "v4"]);
        let r = check(&h, LossAllowance::Tail, false);
        assert!(!r.valid, "no fault explains the loss: {r:?}");
        let mut h = base();
        h.fault(50, "power loss on broker b");
        deliver_all(&mut h, 3);
        let r = check(&h, LossAllowance::Tail, false);
        assert!(r.valid, "a lost tail before a fault is allowed: {r:?}");
        assert_eq!(r.lost_tail, 2);
        // A hole is not a tail: v1 lost while v2 survived.
        let mut h = base();
        h.fault(50, "power loss on broker b");
        for i in [0, 2, 3, 4] {
            h.deliver(100, "c1", "G", &format!("v{i}"), q(0), i as u64);
        }
        let r = check(&h, LossAllowance::Tail, false);
        assert!(!r.valid, "{r:?}");
        assert_eq!(r.lost_tail, 0);
    }

    #[test]
    fn catches_unexpected_and_failed_but_read_and_counts_recovered_and_duplicates() {
        let mut h = base();
        h.send_invoke(10, "p1", "vfail");
        h.send_fail(11, "p1", "vfail", "refused");
        h.send_invoke(12, "p1", "vinfo");
        h.send_info(13, "p1", "vinfo", "timeout");
        deliver_all(&mut h, 5);
        deliver_all(&mut h, 2);
        h.deliver(200, "c1", "G", "vinfo", q(1), 0);
        let r = check(&h, LossAllowance::None, false);
        assert!(r.valid, "{r:?}");
        assert_eq!(r.recovered, 1);
        assert_eq!(r.duplicated, 2);
        h.deliver(201, "c1", "G", "vfail", q(1), 1);
        h.deliver(202, "c1", "G", "never-sent", q(1), 2);
        let r = check(&h, LossAllowance::None, false);
        assert!(!r.valid);
        assert_eq!(r.failed_but_read, vec!["vfail"]);
        assert_eq!(r.unexpected, vec!["never-sent"]);
    }

    #[test]
    fn a_tail_is_judged_per_acknowledging_master() {
        // n1, cut off, acknowledges a1 and a2 while n2 (elected) acknowledges b1 and b2
        // in between: n1's acknowledgements are all lost, a tail of n1's.
        let mut h = History::new();
        h.fault(0, "isolate n1");
        for (i, (v, node)) in [("a1", "n1"), ("b1", "n2"), ("a2", "n1"), ("b2", "n2")]
            .into_iter()
            .enumerate()
        {
            h.send_invoke(i as i64, "p1", v);
            h.send_ok_by(i as i64, "p1", v, q(0), i as u64, Some(node));
        }
        h.fault(10, "heal");
        h.read(20, "n2", "b1", q(0), 1);
        h.read(20, "n2", "b2", q(0), 3);
        let r = check(&h, LossAllowance::Tail, false);
        assert!(r.valid, "{r:?}");
        assert_eq!(r.lost_tail, 2);
        // Without the master named, the same loss is not a tail of the window.
        let mut h2 = History::new();
        for e in h.events() {
            let mut e = e.clone();
            e.node = None;
            h2.push_event(e);
        }
        assert!(!check(&h2, LossAllowance::Tail, false).valid);
        // n2 losing b1 but keeping b2 is not a tail of n2's acknowledgements.
        let mut h3 = History::new();
        for e in h
            .events()
            .iter()
            .filter(|e| !(e.f == F::Read && e.value == "b1"))
        {
            h3.push_event(e.clone());
        }
        h3.read(20, "n2", "b1x", q(0), 1);
        assert!(!check(&h3, LossAllowance::Tail, false).valid);
    }

    #[test]
    fn a_survivor_acknowledged_after_later_faults_does_not_void_a_tail() {
        // n1 acknowledges a1 at offset 2, is cut off, and loses a1 to a new master.
        // Sent before the cut but retried until n1 is master again, a2 lands at the
        // reused offset 2 and survives: a1 was still a tail.
        let mut h = History::new();
        h.send_invoke(0, "p1", "a1");
        h.send_invoke(0, "p2", "a2");
        h.send_ok_by(1, "p1", "a1", q(0), 2, Some("n1"));
        h.fault(2, "isolate n1");
        h.fault(3, "heal");
        h.fault(4, "isolate n2");
        h.send_ok_by(5, "p2", "a2", q(0), 2, Some("n1"));
        h.fault(6, "heal");
        h.read(20, "n1", "a2", q(0), 2);
        let r = check(&h, LossAllowance::Tail, false);
        assert!(r.valid, "{r:?}");
        assert_eq!(r.lost_tail, 1);
        // Acknowledged inside the window, the same survivor does void it.
        let mut h2 = History::new();
        h2.send_invoke(0, "p1", "a1");
        h2.send_invoke(0, "p2", "a2");
        h2.send_ok_by(1, "p1", "a1", q(0), 2, Some("n1"));
        h2.send_ok_by(1, "p2", "a2", q(0), 3, Some("n1"));
        h2.fault(2, "isolate n1");
        h2.read(20, "n1", "a2", q(0), 3);
        assert!(!check(&h2, LossAllowance::Tail, false).valid);
    }

    #[test]
    fn a_lost_tail_may_have_its_offsets_reused_after_the_fault() {
        let mut h = base();
        h.fault(50, "power loss on broker b");
        // v3 and v4 were lost; new sends reuse offsets 3 and 4.
        h.send_invoke(60, "p1", "v5");
        h.send_ok(61, "p1", "v5", q(0), 3);
        deliver_all(&mut h, 3);
        h.deliver(100, "c1", "G", "v5", q(0), 3);
        let r = check(&h, LossAllowance::Tail, true);
        assert!(r.valid, "{r:?}");
        assert_eq!(r.lost_tail, 2);
        // Under sync durability the same history is a loss.
        assert!(!check(&h, LossAllowance::None, true).valid);
    }

    #[test]
    fn catches_two_messages_at_one_offset() {
        let mut h = base();
        deliver_all(&mut h, 5);
        h.read(300, "replica-2", "v9", q(0), 3);
        let r = check(&h, LossAllowance::None, false);
        assert!(!r.valid);
        assert_eq!(r.inconsistent_offsets.len(), 1);
        assert!(r.unexpected.contains(&"v9".to_string()));
    }

    #[test]
    fn durability_is_judged_by_the_final_reads_not_by_deliveries() {
        // v3 and v4 were delivered before a power loss and are gone from every replica.
        let mut h = base();
        deliver_all(&mut h, 5);
        for i in 0..3 {
            h.read(300, "n1", &format!("v{i}"), q(0), i);
        }
        let r = check(&h, LossAllowance::None, false);
        assert!(!r.valid);
        assert_eq!(r.lost, vec!["v3", "v4"]);
        // An unacknowledged send that was delivered (committed) must survive too.
        let mut h = base();
        h.send_invoke(10, "p2", "u");
        h.send_info(11, "p2", "u", "timeout");
        h.deliver(12, "c1", "G", "u", q(0), 5);
        for i in 0..5 {
            h.read(300, "n1", &format!("v{i}"), q(0), i);
        }
        let r = check(&h, LossAllowance::None, false);
        assert_eq!(r.lost, vec!["u"]);
        // In a tail mode a lost tail's offsets may be reused: no inconsistency.
        let mut h = base();
        deliver_all(&mut h, 5);
        h.fault(50, "power loss");
        h.send_invoke(60, "p1", "w");
        h.send_ok(61, "p1", "w", q(0), 4);
        for (i, v) in ["v0", "v1", "v2", "v3", "w"].iter().enumerate() {
            h.read(300, "n1", v, q(0), i as u64);
        }
        let r = check(&h, LossAllowance::Tail, false);
        assert!(r.valid, "{r:?}");
        assert_eq!(r.lost_tail, 1);
    }

    #[test]
    fn compacted_messages_survive_and_replicas_are_compared_above_compaction() {
        let mut h = base();
        deliver_all(&mut h, 5);
        // n1 compacted v0..v1 away; n2 (a follower that never compacted) still has them.
        for i in 0..2 {
            h.compact(150, "n1", &format!("v{i}"), q(0), i);
        }
        for i in 2..5 {
            h.read(200, "n1", &format!("v{i}"), q(0), i);
        }
        for i in 0..5 {
            h.read(200, "n2", &format!("v{i}"), q(0), i);
        }
        let r = check(&h, LossAllowance::None, true);
        assert!(r.valid, "{r:?}");
        // Above the compacted offsets a missing position is still a divergence, and a
        // message neither read nor compacted is still lost.
        let mut h2 = base();
        deliver_all(&mut h2, 5);
        h2.compact(150, "n1", "v0", q(0), 0);
        for i in 2..5 {
            h2.read(200, "n1", &format!("v{i}"), q(0), i);
        }
        for i in 1..5 {
            h2.read(200, "n2", &format!("v{i}"), q(0), i);
        }
        let r = check(&h2, LossAllowance::None, true);
        assert_eq!(r.diverged, vec!["b:T:0@1 missing on n1"]);
        let mut h3 = base();
        deliver_all(&mut h3, 5);
        h3.compact(150, "n1", "v0", q(0), 0);
        for i in 2..5 {
            h3.read(200, "n1", &format!("v{i}"), q(0), i);
        }
        let r = check(&h3, LossAllowance::None, true);
        assert_eq!(r.lost, vec!["v1"]);
    }

    #[test]
    fn catches_a_replica_missing_a_position() {
        let mut h = base();
        for replica in ["n1", "n2"] {
            for i in 0..5 {
                h.read(200, replica, &format!("v{i}"), q(0), i);
            }
        }
        assert!(check(&h, LossAllowance::None, false).valid);
        for i in 0..4 {
            h.read(200, "n3", &format!("v{i}"), q(0), i);
        }
        let r = check(&h, LossAllowance::None, false);
        assert!(!r.valid);
        assert_eq!(r.diverged, vec!["b:T:0@4 missing on n3"]);
    }

    #[test]
    fn catches_fifo_violations_on_both_sides() {
        let mut h = History::new();
        h.send_invoke(0, "p1", "a");
        h.send_ok(1, "p1", "a", q(0), 5);
        h.send_invoke(2, "p1", "b");
        h.send_ok(3, "p1", "b", q(0), 4);
        h.deliver(4, "c1", "G", "b", q(0), 4);
        h.deliver(5, "c1", "G", "a", q(0), 5);
        let r = check(&h, LossAllowance::Tail, true);
        assert_eq!(r.fifo_violations.len(), 1, "{r:?}");
        let mut h = base();
        h.deliver(100, "c1", "G", "v0", q(0), 0);
        h.deliver(101, "c1", "G", "v2", q(0), 2);
        h.deliver(102, "c1", "G", "v1", q(0), 1);
        let r = check(&h, LossAllowance::Tail, true);
        assert!(
            r.fifo_violations
                .iter()
                .any(|v| v.contains("offset 1 (c1) after offset 2")),
            "{r:?}"
        );
        // Replays from an earlier offset, by the same consumer or another, are fine.
        let mut h = base();
        for (c, o) in [
            ("c1", 0),
            ("c1", 1),
            ("c1", 2),
            ("c2", 1),
            ("c2", 2),
            ("c1", 0),
            ("c2", 3),
        ] {
            h.deliver(100, c, "G", &format!("v{o}"), q(0), o);
        }
        let r = check(&h, LossAllowance::Tail, true);
        assert!(r.fifo_violations.is_empty(), "{r:?}");
        // Without the ordered flag, order is not checked.
        assert!(check(&h, LossAllowance::Tail, false)
            .fifo_violations
            .is_empty());
    }

    #[test]
    fn undelivered_names_what_a_group_never_received() {
        let mut h = base();
        h.fault(50, "power loss");
        for i in 0..5 {
            h.read(60, "n1", &format!("v{i}"), q(0), i as u64);
        }
        deliver_all(&mut h, 3);
        // v9 was delivered at offset 3, then lost; v3 took its offset afterwards.
        h.deliver(70, "c1", "G", "v9", q(0), 3);
        let u = undelivered(&h, "G", &[]);
        assert_eq!(u.missing, vec!["v3", "v4"]);
        assert_eq!(u.skipped_after_loss, vec!["v3"]);
        assert_eq!(u.violations(LossAllowance::None), 2);
        assert_eq!(u.violations(LossAllowance::Tail), 1);
        assert_eq!(undelivered(&h, "other", &["T"]).missing.len(), 5);
        assert!(undelivered(&h, "G", &["U"]).missing.is_empty());
    }
}
