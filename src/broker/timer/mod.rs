//! Timer messages (RocketMQ 5): a producer's `TIMER_DELAY_SEC`, `TIMER_DELAY_MS` or
//! `TIMER_DELIVER_MS` delivers the message to its topic at that time, with second
//! precision, up to `timer_max_delay_sec` ahead (RocketMQ: 3 days).
//!
//! The broker keeps a timer message in the timer topic (`rmq_sys_wheel_timer`), whose
//! queues are the slots of a hierarchical timing wheel ([`wheel`]): one task on the
//! group's master reads each queue from its head and moves its due messages on, to a
//! finer slot or to their topic. The ConsumeQueue unit of a timer message holds its
//! delivery time, so the task decides from units and reads a body only to move it.
//!
//! Everything is in the replicated log: the timer message, each move (a new message in
//! the next slot or the topic, then the queue's offset, committed as a consumer offset
//! of `%TIMER%`), so a new master carries on where the old one stopped, and a crash
//! repeats at most the moves of one read (at least once, never early). Nothing is held
//! in memory per pending message, and recovery reads one offset per queue: a million
//! pending timers cost disk, not send latency or restart time (docs/design/timers.md).

pub mod wheel;

use std::sync::Arc;
use std::time::Duration;

use proto::message::DecodeError;
use proto::properties::keys::TIMER_OUT_MS;
use proto::{MessageRef, NewMessage};
use store::meta::MetaStore;
use store::{Disk, StoreError};

use super::park::{park, unpark};
use super::write::PutError;
use super::Broker;

pub use proto::names::TIMER_TOPIC;
/// The offsets of the timer task are kept as this group's consumer offsets.
pub(super) const TIMER_GROUP: &str = "%TIMER%";

/// Message properties of timer messages.
pub mod property {
    pub use proto::properties::keys::TIMER_OUT_MS;
    /// Delay in seconds from the send (takes precedence over the two below).
    pub const DELAY_SEC: &str = "TIMER_DELAY_SEC";
    /// Delay in milliseconds from the send.
    pub const DELAY_MS: &str = "TIMER_DELAY_MS";
    /// Delivery time, epoch milliseconds.
    pub const DELIVER_MS: &str = "TIMER_DELIVER_MS";
    /// When the broker delivered the message to its topic (epoch ms).
    pub const DEQUEUE_MS: &str = "TIMER_DEQUEUE_MS";
    pub(crate) use proto::properties::keys::DELAY;
}

/// Units read from a queue's head at a time: the moves of one read go in one write,
/// and a queue's reads wait for each other's writes, so a read's size bounds how fast
/// one slot drains (256 per write).
const READ_UNITS: usize = 256;
/// Bytes of messages moved in one write (at least one message).
const MOVE_BYTES_MAX: usize = 1 << 20;
/// The longest the task sleeps: a master that just took over, a missed wake-up and a
/// failed round are noticed within it.
const IDLE: Duration = Duration::from_secs(1);

/// A timer message the broker refuses; the send is answered MESSAGE_ILLEGAL with this.
#[derive(Debug, PartialEq, thiserror::Error)]
pub(super) enum BadTimer {
    #[error("property {name} {value:?} is not a whole number of {unit}")]
    NotANumber {
        name: &'static str,
        value: String,
        unit: &'static str,
    },
    #[error(
        "property {name} {value} asks for delivery {delay_s} s from now, beyond this \
         broker's timer_max_delay_sec ({max_s} s)"
    )]
    TooFar {
        name: &'static str,
        value: String,
        delay_s: i64,
        max_s: i64,
    },
    #[error("timer messages ({name}) are off on this broker (timer_wheel_enable = false)")]
    Disabled { name: &'static str },
}

/// Where a timer message was placed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Placed {
    /// The wheel's queue it waits in.
    pub queue_id: u32,
    /// When it is due (`TIMER_OUT_MS`).
    pub due_ms: i64,
    /// The queue the producer named.
    pub real_queue: u32,
}

/// Takes a timer message in, as Java's `HookUtils.transformTimerMessage`: its delivery
/// time goes to `TIMER_OUT_MS`, and it is parked ([`park`]) in the wheel's queue for
/// that time. The delay properties are dropped (a copy sent on later must not be
/// delayed again). A message due already is stored as it is; a `DELAY` level wins over
/// the timer properties, which are then dropped, as in Java.
pub(super) fn schedule_if_timer(
    message: &mut NewMessage,
    now_ms: i64,
    max_delay_ms: i64,
    enabled: bool,
) -> Result<Option<Placed>, BadTimer> {
    // Every send passes here: one scan of the properties for the common case.
    if !message.properties.as_str().contains("TIMER_") {
        return Ok(None);
    }
    let delay_level = message.properties.get(property::DELAY);
    if delay_level.is_some_and(|l| l.trim().parse::<i32>().is_ok_and(|l| l > 0)) {
        for name in [
            property::DELAY_SEC,
            property::DELAY_MS,
            property::DELIVER_MS,
        ] {
            message.properties.remove(name);
        }
        return Ok(None);
    }
    let given = [
        (property::DELAY_SEC, "seconds", 1_000),
        (property::DELAY_MS, "milliseconds", 1),
        (property::DELIVER_MS, "milliseconds", 0),
    ]
    .into_iter()
    .find_map(|(name, unit, scale)| {
        let value = message.properties.get(name)?.trim().to_string();
        Some((name, unit, scale, value))
    });
    let Some((name, unit, scale, value)) = given else {
        return Ok(None);
    };
    if !enabled {
        return Err(BadTimer::Disabled { name });
    }
    let not_a_number = || BadTimer::NotANumber {
        name,
        value: value.clone(),
        unit,
    };
    let number: i64 = value.parse().map_err(|_| not_a_number())?;
    let deliver_ms = match scale {
        0 => number,
        scale => number
            .checked_mul(scale)
            .and_then(|d| d.checked_add(now_ms))
            .ok_or_else(not_a_number)?,
    };
    if deliver_ms.saturating_sub(now_ms) > max_delay_ms {
        return Err(BadTimer::TooFar {
            name,
            value: value.clone(),
            delay_s: deliver_ms.saturating_sub(now_ms) / 1_000,
            max_s: max_delay_ms / 1_000,
        });
    }
    for name in [
        property::DELAY_SEC,
        property::DELAY_MS,
        property::DELIVER_MS,
    ] {
        message.properties.remove(name);
    }
    let Some(queue_id) = wheel::place(deliver_ms, now_ms) else {
        return Ok(None);
    };
    message
        .properties
        .insert(TIMER_OUT_MS, deliver_ms.to_string());
    Ok(Some(Placed {
        queue_id,
        due_ms: deliver_ms,
        real_queue: park(message, TIMER_TOPIC, queue_id),
    }))
}

/// PLANTED BUG (`fault-injection` builds only), which the simulator's checkers must
/// catch: the timer task runs 3 s ahead of the clock, delivering messages early.
#[cfg(feature = "fault-injection")]
pub fn plant_deliver_timers_early() {
    TIMERS_EARLY.store(true, std::sync::atomic::Ordering::Relaxed);
}

#[cfg(feature = "fault-injection")]
static TIMERS_EARLY: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// The clock the timer task moves messages by.
fn timer_now_ms() -> i64 {
    #[cfg(feature = "fault-injection")]
    if TIMERS_EARLY.load(std::sync::atomic::Ordering::Relaxed) {
        return proto::clock::now_ms() + 3_000;
    }
    proto::clock::now_ms()
}

/// Why a round of the timer task stopped; the task logs it and tries again.
#[derive(Debug, thiserror::Error)]
enum TimerError {
    #[error("reading the wheel: {0}")]
    Read(#[from] StoreError),
    #[error("a timer message is malformed: {0}")]
    Malformed(#[from] DecodeError),
    #[error("moving due timer messages on: {0}")]
    Move(#[source] PutError),
    #[error("saving the wheel's offset: {0}")]
    SaveOffset(#[source] PutError),
}

/// What the task learned of a queue's head the last time it read it: unless the queue
/// moved or grew, nothing is due there before `ready_ms`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct HeadSeen {
    offset: u64,
    end: u64,
    ready_ms: i64,
}

impl<D: Disk, M: MetaStore> Broker<D, M> {
    /// Moves due timer messages on, forever (on the group's master; idle elsewhere).
    pub(super) async fn run_timers(self: Arc<Self>) {
        let mut woken = self.timer_wake.subscribe();
        let mut heads: Vec<Option<HeadSeen>> = vec![None; wheel::QUEUES as usize];
        loop {
            // While a round runs, every message placed wakes the next one: the round may
            // have passed its queue already.
            self.plan_timer_round(i64::MAX);
            woken.borrow_and_update();
            let wait = match self.move_due_timers(&mut heads).await {
                Ok(wait) => wait.min(IDLE),
                Err(e) => {
                    tracing::warn!(error = %e, "timer round failed; retrying");
                    heads.fill(None);
                    IDLE
                }
            };
            self.plan_timer_round(proto::clock::now_ms().saturating_add(wait.as_millis() as i64));
            let _ = tokio::time::timeout(wait, woken.changed()).await;
        }
    }

    /// Notes when the timer task's next round is, without waking it.
    fn plan_timer_round(&self, at_ms: i64) {
        self.timer_wake.send_if_modified(|next_ms| {
            *next_ms = at_ms;
            false
        });
    }

    /// Timer messages not yet delivered to their topic.
    pub(super) fn timers_pending(&self) -> u64 {
        (0..wheel::QUEUES)
            .map(|queue_id| {
                let end = self.store.max_offset(TIMER_TOPIC, queue_id);
                let moved = self
                    .consumer_offset(TIMER_GROUP, TIMER_TOPIC, queue_id)
                    .ok()
                    .flatten()
                    .unwrap_or(0);
                end.saturating_sub(moved)
            })
            .sum()
    }

    /// One round over every queue of the wheel; returns how long to wait before the next.
    async fn move_due_timers(
        &self,
        heads: &mut [Option<HeadSeen>],
    ) -> Result<Duration, TimerError> {
        if self.replica.as_ref().is_some_and(|r| !r.is_master()) {
            heads.fill(None); // a master's successor reads afresh
            return Ok(IDLE);
        }
        let mut wait = IDLE;
        for queue_id in 0..wheel::QUEUES {
            loop {
                let end = self.store.max_offset(TIMER_TOPIC, queue_id);
                let offset = self
                    .consumer_offset(TIMER_GROUP, TIMER_TOPIC, queue_id)?
                    .unwrap_or(0)
                    .max(self.store.min_offset(TIMER_TOPIC, queue_id));
                if offset >= end {
                    break;
                }
                let now_ms = timer_now_ms();
                let seen = &mut heads[queue_id as usize];
                if let Some(s) = seen.filter(|s| s.offset == offset && s.end == end) {
                    if s.ready_ms > now_ms {
                        wait = wait.min(Duration::from_millis((s.ready_ms - now_ms) as u64));
                        break;
                    }
                }
                let units = self
                    .store
                    .queue_units(TIMER_TOPIC, queue_id, offset, READ_UNITS)
                    .await?;
                if units.is_empty() {
                    break; // not readable yet (uncommitted): its placement wakes the task
                }
                let dues: Vec<i64> = units.iter().map(|u| u.tag_hash).collect();
                let step = wheel::step(queue_id, &dues, now_ms);
                *seen = step.wait_ms.map(|w| HeadSeen {
                    offset: offset + step.count as u64,
                    end,
                    ready_ms: now_ms + w,
                });
                if step.count == 0 {
                    let w = step.wait_ms.unwrap_or(0).max(0) as u64;
                    wait = wait.min(Duration::from_millis(w));
                    break;
                }
                let moved = self.move_on(&units[..step.count], now_ms).await?;
                self.commit_offset(TIMER_GROUP, TIMER_TOPIC, queue_id, offset + moved as u64)
                    .await
                    .map_err(TimerError::SaveOffset)?;
                // Moves may have filled a finer slot read earlier in this round.
                wait = Duration::ZERO;
                if moved < step.count || step.wait_ms.is_some() {
                    break;
                }
            }
        }
        Ok(wait)
    }

    /// Moves the messages of `units` on (in one write, up to [`MOVE_BYTES_MAX`]): each to
    /// its topic when due, else to the wheel's queue for its time now. Returns how many
    /// of `units` were handled.
    async fn move_on(
        &self,
        units: &[store::consume_queue::CqUnit],
        now_ms: i64,
    ) -> Result<usize, TimerError> {
        let mut batch = Vec::with_capacity(units.len());
        let mut handled = 0;
        let mut bytes = 0;
        for unit in units {
            if handled > 0 && bytes + unit.size as usize > MOVE_BYTES_MAX {
                break;
            }
            handled += 1;
            bytes += unit.size as usize;
            let Some(stored) = self.store.message_of(unit).await? else {
                tracing::warn!(
                    offset = unit.commitlog_offset,
                    "timer message no longer stored; skipped"
                );
                continue;
            };
            let stored = MessageRef::parse(&stored)?;
            let mut message = stored.to_new_message();
            match wheel::place(unit.tag_hash, now_ms) {
                Some(queue_id) => message.queue_id = queue_id,
                None => {
                    if !unpark(&mut message) {
                        tracing::warn!(
                            offset = unit.commitlog_offset,
                            "timer message without a real topic; dropped"
                        );
                        continue;
                    }
                    message
                        .properties
                        .insert(property::DEQUEUE_MS, now_ms.to_string());
                }
            }
            batch.push(message);
        }
        if !batch.is_empty() {
            self.put_messages(batch).await.map_err(TimerError::Move)?;
        }
        Ok(handled)
    }

    /// Wakes the timer task if a message just placed in `queue_id`, due at `due_ms`, is
    /// ready before the task's next round.
    pub(crate) fn timer_placed(&self, queue_id: u32, due_ms: i64) {
        let ready_ms = wheel::ready_at(queue_id, due_ms);
        self.timer_wake.send_if_modified(|next_ms| {
            let sooner = ready_ms < *next_ms;
            if sooner {
                *next_ms = ready_ms;
            }
            sooner
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000_000;

    fn timer(name: &str, value: &str) -> NewMessage {
        let mut m = NewMessage::new("Orders", 3, "body");
        m.properties.insert(name, value);
        m
    }

    fn admit(m: &mut NewMessage) -> Result<Option<Placed>, BadTimer> {
        schedule_if_timer(m, NOW, 3 * 86_400_000, true)
    }

    #[test]
    fn a_timer_send_waits_in_the_wheel_with_its_time_and_real_queue() {
        for (name, value) in [
            (property::DELAY_SEC, "90"),
            (property::DELAY_MS, "90000"),
            (property::DELIVER_MS, "1700000090000"),
        ] {
            let mut m = timer(name, value);
            assert_eq!(
                admit(&mut m).map(|p| p.map(|p| p.real_queue)),
                Ok(Some(3)),
                "{name}"
            );
            assert_eq!(m.topic, TIMER_TOPIC);
            assert_eq!(m.queue_id, wheel::place(NOW + 90_000, NOW).unwrap());
            assert_eq!(m.properties.get(TIMER_OUT_MS), Some("1700000090000"));
            assert_eq!(
                m.properties.get(super::super::park::REAL_TOPIC),
                Some("Orders")
            );
            assert_eq!(
                m.properties.get(super::super::park::REAL_QUEUE_ID),
                Some("3")
            );
            assert_eq!(m.properties.get(name), None, "{name} dropped");
        }
        // Seconds first, as in Java.
        let mut both = timer(property::DELAY_SEC, "2");
        both.properties.insert(property::DELAY_MS, "60000");
        admit(&mut both).unwrap();
        assert_eq!(both.properties.get(TIMER_OUT_MS), Some("1700000002000"));
    }

    #[test]
    fn due_plain_and_delay_level_messages_are_left_alone() {
        let mut due = timer(property::DELIVER_MS, "1699999999000");
        assert_eq!(admit(&mut due), Ok(None));
        assert_eq!(due.topic, "Orders");
        let mut plain = NewMessage::new("Orders", 3, "body");
        assert_eq!(admit(&mut plain), Ok(None));
        let mut level = timer(property::DELAY_SEC, "30");
        level.properties.insert(property::DELAY, "2");
        assert_eq!(admit(&mut level), Ok(None));
        assert_eq!(level.topic, "Orders");
        assert_eq!(level.properties.get(property::DELAY_SEC), None);
    }

    #[test]
    fn bad_far_or_disabled_timers_are_refused_by_name() {
        let e = admit(&mut timer(property::DELAY_SEC, "soon")).unwrap_err();
        assert!(e.to_string().contains("TIMER_DELAY_SEC \"soon\""), "{e}");
        let e = admit(&mut timer(property::DELAY_MS, "9223372036854775807")).unwrap_err();
        assert!(
            matches!(e, BadTimer::NotANumber { .. } | BadTimer::TooFar { .. }),
            "{e}"
        );
        let e = admit(&mut timer(property::DELAY_SEC, "259201")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "property TIMER_DELAY_SEC 259201 asks for delivery 259201 s from now, beyond \
             this broker's timer_max_delay_sec (259200 s)"
        );
        admit(&mut timer(property::DELAY_SEC, "259200")).unwrap();
        let e = schedule_if_timer(&mut timer(property::DELAY_MS, "5"), NOW, 1, false);
        assert_eq!(
            e,
            Err(BadTimer::Disabled {
                name: "TIMER_DELAY_MS"
            })
        );
    }
}
