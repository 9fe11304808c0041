//! How long writes stopped around a fault, as the producers saw it: from the fault's
//! start to the first acknowledged send (of any kind) that was *invoked* after it
//! started. A send invoked before the fault and acknowledged during it proves nothing
//! about the fault: it may have been written before. Stalls are summarized by percentile.

use std::collections::BTreeMap;

use crate::history::{Event, Type};

/// Milliseconds from `start_ms` to the first acknowledgement of a send invoked at or
/// after `start_ms` (by broker group `broker`, when given: a fault on one group's master
/// stops only that group's writes); `None` if no such send was ever acknowledged.
pub fn write_stall_ms(events: &[Event], start_ms: i64, broker: Option<&str>) -> Option<i64> {
    let mut invoked: BTreeMap<(&str, &str), i64> = BTreeMap::new();
    let mut first: Option<i64> = None;
    for e in events.iter().filter(|e| e.f.is_send()) {
        let key = (e.process.as_str(), e.value.as_str());
        match e.kind {
            Type::Invoke => {
                invoked.insert(key, e.time_ms);
            }
            Type::Ok => {
                let after = invoked.get(&key).is_some_and(|t| *t >= start_ms);
                let there = broker.is_none_or(|b| e.queue.as_ref().is_some_and(|q| q.broker == b));
                if after && there && e.time_ms >= start_ms {
                    first = Some(first.map_or(e.time_ms, |f| f.min(e.time_ms)));
                }
            }
            _ => {}
        }
    }
    first.map(|t| t - start_ms)
}

/// The `p` percentile (0..=100) of `values`, nearest rank; `None` when empty.
pub fn percentile(values: &[i64], p: f64) -> Option<i64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{History, QueueRef};

    fn q() -> QueueRef {
        QueueRef {
            topic: "T".into(),
            broker: "b".into(),
            queue_id: 0,
        }
    }

    #[test]
    fn a_stall_ends_with_the_first_send_invoked_after_the_fault() {
        let mut h = History::new();
        h.send_invoke(90, "p1", "before");
        // Invoked before the fault: its acknowledgement during it does not count.
        h.send_ok(130, "p1", "before", q(), 0);
        h.send_invoke(140, "p1", "during");
        h.send_info(900, "p1", "during", "timeout");
        h.send_invoke(905, "p2", "late");
        h.send_ok(1_250, "p2", "late", q(), 1);
        h.send_invoke(1_260, "p1", "later");
        h.send_ok(1_270, "p1", "later", q(), 2);
        assert_eq!(write_stall_ms(h.events(), 100, None), Some(1_150));
        assert_eq!(write_stall_ms(h.events(), 100, Some("b")), Some(1_150));
        assert_eq!(write_stall_ms(h.events(), 100, Some("other")), None);
        assert_eq!(write_stall_ms(h.events(), 2_000, None), None);
    }

    #[test]
    fn percentiles_by_nearest_rank() {
        let v: Vec<i64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), Some(50));
        assert_eq!(percentile(&v, 99.0), Some(99));
        assert_eq!(percentile(&[7], 99.0), Some(7));
        assert_eq!(percentile(&[], 50.0), None);
    }
}
