//! The timing wheel's geometry, a pure core: which queue of the timer topic a message
//! due at a given time waits in, and which of a queue's messages to move on now.
//!
//! Four rings of queues, each slot a queue: 62 slots of a second, 62 of a minute, 26 of
//! an hour and 62 of a day, 212 queues in all. A message is placed, when it arrives or
//! is moved on, in the finest ring whose span holds its remaining delay `D`:
//! ring `k` holds `D < (slots_k - 1) * granule_k`, in slot `floor(due / granule_k) mod
//! slots_k`.
//!
//! **Each queue is ordered by granule.** For a message placed at time `t`, the granules
//! its slot can stand for are `floor(t / g) .. floor(t / g) + slots - 1`: one per
//! residue, so the slot fixes the granule, and the granule never decreases as `t`
//! grows. Messages appended in placement order are therefore in granule order, and a
//! queue is read from its head like a delay level's queue, with one replicated offset
//! per queue as its progress: nothing is kept in memory per pending message, and
//! recovery reads one offset per queue.
//!
//! **Never early.** A second-ring message is delivered once its exact due time has
//! passed. A message in a coarser ring is only moved on when its granule begins: its
//! remaining delay is then under one granule, which the next finer ring spans (a minute
//! is under 61 s, an hour under 61 min, a day under 25 h), so it is placed there, or
//! delivered if already due. A message waits at most three moves, and within its second
//! it can wait for those before it in its slot: delivery is within a second of its time
//! on a healthy broker.
//!
//! **Out of order.** Two placements can reach the log in the other order (concurrent
//! sends), so a slot's head can be a whole turn ahead of the message behind it. A head
//! that is not ready while a message behind it is of an earlier granule is placed again
//! (at the tail of its slot, in order), so the one behind is not held back a turn.

/// One ring of slots.
#[derive(Clone, Copy, Debug)]
struct Ring {
    granule_ms: i64,
    slots: u32,
}

const SECOND_MS: i64 = 1_000;
const RINGS: [Ring; 4] = [
    Ring {
        granule_ms: SECOND_MS,
        slots: 62,
    },
    Ring {
        granule_ms: 60 * SECOND_MS,
        slots: 62,
    },
    Ring {
        granule_ms: 3_600 * SECOND_MS,
        slots: 26,
    },
    Ring {
        granule_ms: 86_400 * SECOND_MS,
        slots: 62,
    },
];

// A coarser ring's granule must fit in the span of the ring below it (see above).
const _: () = {
    let mut k = 1;
    while k < RINGS.len() {
        let below = RINGS[k - 1];
        assert!(RINGS[k].granule_ms <= (below.slots as i64 - 1) * below.granule_ms);
        k += 1;
    }
};

/// The number of queues of the timer topic.
pub const QUEUES: u32 = RINGS[0].slots + RINGS[1].slots + RINGS[2].slots + RINGS[3].slots;

/// The longest delay the wheel holds (just under 61 days); `timer_max_delay_sec` may
/// not exceed it.
pub const MAX_DELAY_MS: i64 = (RINGS[3].slots as i64 - 1) * RINGS[3].granule_ms - 1;

/// The ring of a queue of the timer topic, and whether it is the finest.
fn ring_of(queue_id: u32) -> (Ring, bool) {
    let mut first = 0;
    for (k, ring) in RINGS.iter().enumerate() {
        if queue_id < first + ring.slots {
            return (*ring, k == 0);
        }
        first += ring.slots;
    }
    // Queue ids come from `place`; a queue past the wheel (a corrupt unit) is read as
    // the coarsest ring, whose messages are only ever moved on, never delivered early.
    (RINGS[RINGS.len() - 1], false)
}

/// The queue a message due at `due_ms` waits in at `now_ms`, or `None` when it is due.
/// A delay beyond [`MAX_DELAY_MS`] (refused when the message arrives) waits in the
/// coarsest ring as if it were the longest.
pub fn place(due_ms: i64, now_ms: i64) -> Option<u32> {
    let delay_ms = due_ms.checked_sub(now_ms)?;
    if delay_ms <= 0 {
        return None;
    }
    let due_ms = due_ms.min(now_ms + MAX_DELAY_MS);
    let mut first = 0;
    for ring in RINGS {
        if due_ms - now_ms < (ring.slots as i64 - 1) * ring.granule_ms {
            let slot = due_ms
                .div_euclid(ring.granule_ms)
                .rem_euclid(ring.slots as i64);
            return Some(first + slot as u32);
        }
        first += ring.slots;
    }
    unreachable!("a delay up to MAX_DELAY_MS fits the coarsest ring")
}

/// The granule of `due_ms` in `queue_id`'s ring.
fn granule(queue_id: u32, due_ms: i64) -> i64 {
    due_ms.div_euclid(ring_of(queue_id).0.granule_ms)
}

/// When a message due at `due_ms` in `queue_id` is moved on: at its due time in the
/// finest ring, at the start of its granule in the others.
pub fn ready_at(queue_id: u32, due_ms: i64) -> i64 {
    let (ring, finest) = ring_of(queue_id);
    if finest {
        due_ms
    } else {
        granule(queue_id, due_ms) * ring.granule_ms
    }
}

/// What to do with the messages at a queue's head, given their due times in queue
/// order: move on the first `count` now (each [`place`]d again, or delivered when
/// `place` says it is due), then wait `wait_ms` for the next one (`None`: nothing left
/// in `dues`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Step {
    pub count: usize,
    pub wait_ms: Option<i64>,
}

/// Decides the [`Step`] for a queue's head at `now_ms`.
pub fn step(queue_id: u32, dues: &[i64], now_ms: i64) -> Step {
    for (i, &due) in dues.iter().enumerate() {
        let ready = ready_at(queue_id, due);
        if ready <= now_ms {
            continue;
        }
        let head = granule(queue_id, due);
        if dues[i + 1..].iter().any(|&d| granule(queue_id, d) < head) {
            continue; // out of order: placed again, behind the ones due first
        }
        return Step {
            count: i,
            wait_ms: Some(ready - now_ms),
        };
    }
    Step {
        count: dues.len(),
        wait_ms: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    const DAY_MS: i64 = 86_400_000;

    #[test]
    fn each_delay_goes_to_the_finest_ring_that_spans_it() {
        let now = 1_700_000_000_000;
        assert_eq!(place(now, now), None);
        assert_eq!(place(now - 5, now), None);
        let second = place(now + 1_500, now).unwrap();
        assert!(second < 62);
        assert!(ring_of(second).1);
        assert!((62..124).contains(&place(now + 61_000, now).unwrap()));
        assert!((62..124).contains(&place(now + 3_600_000, now).unwrap()));
        assert!((124..150).contains(&place(now + 3_660_000, now).unwrap()));
        assert!((150..QUEUES).contains(&place(now + 3 * DAY_MS, now).unwrap()));
        assert!((150..QUEUES).contains(&place(now + MAX_DELAY_MS, now).unwrap()));
        assert_eq!(QUEUES, 212);
    }

    #[test]
    fn a_coarse_message_moves_down_when_its_granule_begins() {
        let now = 1_700_000_000_000;
        let due = now + 2 * DAY_MS + 5 * 3_600_000 + 7 * 60_000 + 1_234;
        let mut at = now;
        let mut queue = place(due, at).unwrap();
        let mut moves = 0;
        loop {
            let ready = ready_at(queue, due);
            assert!(ready >= at && ready <= due, "ready {ready} for due {due}");
            at = ready;
            match place(due, at) {
                Some(next) => {
                    assert!(next < queue, "moved from {queue} to {next}");
                    queue = next;
                }
                None => break,
            }
            moves += 1;
        }
        assert_eq!(at, due, "delivered at its due time");
        assert_eq!(moves, 3, "day, hour, minute, then second ring");
    }

    #[test]
    fn a_head_waits_unless_one_behind_it_is_of_an_earlier_granule() {
        let now = 10_000_000;
        let q = place(now + 5_000, now).unwrap();
        // Due at once, then one not yet due: move one, wait for the second.
        assert_eq!(
            step(q, &[now - 1, now + 5_000], now),
            Step {
                count: 1,
                wait_ms: Some(5_000)
            }
        );
        // Same second, out of order by milliseconds: wait for the head.
        assert_eq!(step(q, &[now + 900, now + 100], now).count, 0);
        // A head a whole turn ahead of the message behind it is placed again.
        let turn_ms = 62_000;
        assert_eq!(
            step(q, &[now + 5_000 + turn_ms, now + 5_000], now),
            Step {
                count: 1,
                wait_ms: Some(5_000)
            }
        );
        assert_eq!(
            step(q, &[now - 3], now),
            Step {
                count: 1,
                wait_ms: None
            }
        );
    }

    /// A model of the broker's service over the wheel: sends at random times with
    /// random delays (some pairs reaching their queue in the other order), queues read
    /// every `TICK_MS`. Every message is delivered, never before its time and within a
    /// second (plus the tick) after it, after a few moves at most.
    fn run_model(sends: Vec<(i64, i64, bool)>) {
        const TICK_MS: i64 = 100;
        let mut queues: Vec<Vec<(i64, usize)>> = vec![Vec::new(); QUEUES as usize];
        let mut heads = vec![0usize; QUEUES as usize];
        let mut delivered: BTreeMap<usize, i64> = BTreeMap::new();
        let mut dues = Vec::new();
        let mut moves = Vec::new();
        let mut now = 0i64;
        let mut sends = sends.into_iter().peekable();
        let end = 62 * DAY_MS;
        while now < end && (sends.peek().is_some() || delivered.len() < dues.len()) {
            while let Some(&(gap_ms, delay_ms, swap)) = sends.peek() {
                if gap_ms > now {
                    break;
                }
                sends.next();
                let id = dues.len();
                let due = now + delay_ms;
                dues.push(due);
                moves.push(0u32);
                match place(due, now) {
                    None => {
                        delivered.insert(id, now);
                    }
                    Some(q) => {
                        let queue = &mut queues[q as usize];
                        queue.push((due, id));
                        let n = queue.len();
                        if swap && n - heads[q as usize] >= 2 {
                            queue.swap(n - 1, n - 2);
                        }
                    }
                }
            }
            let mut next_ms = sends.peek().map_or(i64::MAX, |s| s.0);
            for q in 0..QUEUES {
                loop {
                    let head = heads[q as usize];
                    let window: Vec<(i64, usize)> = queues[q as usize]
                        .iter()
                        .skip(head)
                        .take(64)
                        .copied()
                        .collect();
                    let s = step(q, &window.iter().map(|e| e.0).collect::<Vec<_>>(), now);
                    for &(due, id) in &window[..s.count] {
                        match place(due, now) {
                            None => {
                                assert!(now >= due, "message {id} delivered early");
                                delivered.insert(id, now);
                            }
                            Some(to) => {
                                moves[id] += 1;
                                assert!(moves[id] <= 6, "message {id} moved {} times", moves[id]);
                                queues[to as usize].push((due, id));
                                next_ms = next_ms.min(ready_at(to, due));
                            }
                        }
                    }
                    heads[q as usize] += s.count;
                    if let Some(wait_ms) = s.wait_ms {
                        next_ms = next_ms.min(now + wait_ms);
                    }
                    if s.count == 0 || s.count < window.len() {
                        break;
                    }
                }
            }
            // Idle ticks change nothing: skip to the tick of the next send or head.
            let next_ms = next_ms.min(end);
            now = (now + TICK_MS).max(next_ms.div_euclid(TICK_MS) * TICK_MS + TICK_MS);
        }
        assert_eq!(delivered.len(), dues.len(), "every message delivered");
        for (id, at) in delivered {
            let late = at - dues[id];
            assert!(
                (0..=SECOND_MS + TICK_MS).contains(&late),
                "message {id} {late} ms late"
            );
        }
    }

    #[test]
    fn the_model_delivers_each_message_once_due_and_within_a_second() {
        // Delays across every ring, sent in the same few seconds.
        let delays = [
            1,
            999,
            1_000,
            59_999,
            61_000,
            3_599_999,
            3_660_000,
            DAY_MS,
            MAX_DELAY_MS,
        ];
        let sends = delays
            .iter()
            .enumerate()
            .map(|(i, &d)| (i as i64 * 700, d, false))
            .collect();
        run_model(sends);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn the_model_holds_for_random_sends(
            sends in proptest::collection::vec(
                (0i64..400, prop_oneof![0i64..70_000, 0i64..4_000_000, 0i64..(3 * DAY_MS)],
                 proptest::bool::weighted(0.2)),
                1..120,
            )
        ) {
            let mut at = 0;
            let sends = sends
                .into_iter()
                .map(|(gap, delay, swap)| {
                    at += gap;
                    (at, delay, swap)
                })
                .collect();
            run_model(sends);
        }
    }
}
