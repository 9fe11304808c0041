//! The clients: producers whose every send is recorded as invoke then ok / info, a
//! consumer group whose instances come and go and whose deliveries are recorded, and the
//! final drain that reads every queue from every replica.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use client::pull::read_to_end;
use client::{
    instance::ClientInstance, ClientConfig, ConsumeResult, LocalTransactionState, Message,
    MessageModel, MessageQueue, Producer, PushConsumer, PushConsumerBuilder, SendResult,
    SendStatus, TransactionProducer,
};
use history::history::{QueueRef, SendOutcome, Type, F};
use history::transaction::{Decision, TxKind};
use proto::names::{HALF_TOPIC, SCHEDULE_TOPIC};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::opts::Workload;
use crate::recorder::Recorder;

pub const TOPIC: &str = "jepsen";
pub const QUEUES: u32 = 4;
pub const GROUP: &str = "JepsenConsumers";

fn client_config(namesrv: &str, instance: &str) -> ClientConfig {
    ClientConfig {
        request_timeout: Duration::from_secs(3),
        route_refresh_interval: Duration::from_secs(2),
        instance_name: instance.into(),
        ..ClientConfig::with_namesrv(namesrv)
    }
}

/// Sends one value and records invoke and its outcome. A send the broker did not
/// acknowledge (an error, a timeout, FLUSH_SLAVE_TIMEOUT) is `info`: it may still be
/// stored. Returns whether it was acknowledged.
pub async fn send_one(
    producer: &Producer,
    recorder: &Recorder,
    process: &str,
    value: &str,
    queue_choice: Option<usize>,
) -> bool {
    recorder.record(|h, t| h.send_invoke(t, process, value));
    let result = send_value(producer, value, queue_choice).await;
    let outcome = send_outcome(&result);
    let mut acked = false;
    recorder.record(|h, t| acked = h.record_send(t, process, value, outcome));
    acked
}

/// Sends `value` with itself as its key: to queue `k % n` of the route when
/// `queue_choice` is `Some(k)` (ordered), round-robin otherwise.
async fn send_value(
    producer: &Producer,
    value: &str,
    queue_choice: Option<usize>,
) -> client::Result<SendResult> {
    let message = Message::new(TOPIC, value.to_string()).with_keys([value.to_string()]);
    match queue_choice {
        Some(k) => {
            producer
                .send_with_selector(message, |qs| k % qs.len())
                .await
        }
        None => producer.send(message).await,
    }
}

/// How a send ended, in the history's terms: acknowledged at its queue and offset by the
/// master that stored it (the store host of its offset msg id), or unknown.
fn send_outcome(result: &client::Result<SendResult>) -> SendOutcome {
    match result {
        Ok(r) if r.status == SendStatus::Ok => SendOutcome::Acked {
            queue: queue_ref(&r.queue),
            queue_offset: r.queue_offset,
            node: r
                .offset_msg_id
                .parse::<proto::MessageId>()
                .ok()
                .map(|id| id.store_host.to_string()),
        },
        Ok(r) => SendOutcome::Unknown(format!("{:?}", r.status)),
        Err(e) => SendOutcome::Unknown(e.to_string()),
    }
}

/// A client's queue as the history names it.
fn queue_ref(q: &MessageQueue) -> QueueRef {
    QueueRef {
        topic: q.topic.clone(),
        broker: q.broker_name.clone(),
        queue_id: q.queue_id,
    }
}

/// Delays of levels 1 and 2 in the brokers' default `message_delay_level`.
const DELAY_LEVEL_MS: [u64; 2] = [1_000, 5_000];
/// The `tx` workload's producer group.
pub const TX_GROUP: &str = "JepsenTxProducers";

/// Producer `k` (process `p<k>`): one send in flight, at `rate_per_s`, until `stop`. A
/// transactional one (`tx`) then stays, answering the broker's checks, until `release`.
pub async fn produce(
    k: usize,
    namesrv: String,
    workload: Workload,
    rate_per_s: f64,
    recorder: Recorder,
    stop: Arc<AtomicBool>,
    release: Arc<AtomicBool>,
) {
    let process = format!("p{k}");
    let period = Duration::from_secs_f64(1.0 / rate_per_s.max(0.01));
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    if workload == Workload::Tx {
        return produce_transactions(&process, &namesrv, tick, &recorder, &stop, &release).await;
    }
    let producer = Producer::new("JepsenProducers", client_config(&namesrv, &process));
    let choice = (workload == Workload::Ordered).then_some(k);
    let mut seq = 0u64;
    while !stop.load(Ordering::Acquire) {
        tick.tick().await;
        seq += 1;
        if workload == Workload::Delay && seq.is_multiple_of(3) {
            let level = if seq.is_multiple_of(6) { 2 } else { 1 };
            send_delayed(&producer, &recorder, &process, seq, Delay::Level(level)).await;
            continue;
        }
        if workload == Workload::Delay && seq % 6 == 4 {
            // A timer message, due 0.5 to 5 s after its send.
            let delay_ms = 500 + (seq * 389) % 4_500;
            send_delayed(
                &producer,
                &recorder,
                &process,
                seq,
                Delay::TimerMs(delay_ms),
            )
            .await;
            continue;
        }
        send_one(
            &producer,
            &recorder,
            &process,
            &format!("{process}-{seq}"),
            choice,
        )
        .await;
    }
}

/// How a delayed send asks for its delay.
#[derive(Clone, Copy, Debug)]
enum Delay {
    /// Delay level 1 or 2 (`DELAY`).
    Level(u32),
    /// A timer message (`TIMER_DELAY_MS`).
    TimerMs(u64),
}

/// Sends a delayed message, recorded as a delayed send whose value names its delay.
async fn send_delayed(
    producer: &Producer,
    recorder: &Recorder,
    process: &str,
    seq: u64,
    delay: Delay,
) {
    let delay_ms = match delay {
        Delay::Level(level) => DELAY_LEVEL_MS[level as usize - 1],
        Delay::TimerMs(ms) => ms,
    };
    let value = history::delayed::value(process, seq, delay_ms);
    recorder.record(|h, t| h.delayed_invoke(t, process, &value));
    let message = Message::new(TOPIC, value.clone());
    let message = match delay {
        Delay::Level(level) => message.with_property("DELAY", level.to_string()),
        Delay::TimerMs(ms) => message.with_timer_delay_ms(ms),
    };
    let result = producer.send(message).await;
    // A timer's acknowledgement is at a place in a wheel slot the client does not
    // learn; no checker reads a delayed send's position.
    let outcome = match delay {
        Delay::Level(level) => send_outcome(&result).staged_in(SCHEDULE_TOPIC, level - 1),
        Delay::TimerMs(_) => send_outcome(&result),
    };
    recorder.record(|h, t| h.record_delayed(t, process, &value, outcome));
}

fn local_state(decision: Decision) -> LocalTransactionState {
    match decision {
        Decision::Commit => LocalTransactionState::Commit,
        Decision::Rollback => LocalTransactionState::Rollback,
        Decision::Unknown => LocalTransactionState::Unknown,
    }
}

/// Answers a check from the value alone, as every producer of the group does: any of
/// them answers for a transaction another began.
fn check(message: &client::MessageExt) -> LocalTransactionState {
    let value = String::from_utf8_lossy(&message.body);
    TxKind::of(&value).map_or(LocalTransactionState::Unknown, |k| {
        local_state(k.on_check())
    })
}

/// One transaction per tick, of each kind in turn ([`TxKind`]: committed, rolled back,
/// undecided then decided by the check, never decided), until `stop`; then answers
/// checks until `release`.
async fn produce_transactions(
    process: &str,
    namesrv: &str,
    mut tick: tokio::time::Interval,
    recorder: &Recorder,
    stop: &AtomicBool,
    release: &AtomicBool,
) {
    let config = client_config(namesrv, process);
    let producer = match TransactionProducer::start(TX_GROUP, config, check) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("jepsen: transactional producer {process}: {e}");
            return;
        }
    };
    // A restarted replica learns of the group's producers within a second.
    producer.set_heartbeat_interval(Duration::from_secs(1));
    let mut seq = 0u64;
    while !stop.load(Ordering::Acquire) {
        tick.tick().await;
        seq += 1;
        let kind = TxKind::ALL[seq as usize % TxKind::ALL.len()];
        let value = kind.value(process, seq);
        recorder.record(|h, t| h.tx_invoke(t, process, &value));
        let local = local_state(kind.local());
        let message = Message::new(TOPIC, value.clone());
        let result = producer
            .send_in_transaction(message, |_, _| async move { local })
            .await;
        let outcome = send_outcome(&result.map(|r| r.send)).staged_in(HALF_TOPIC, 0);
        recorder.record(|h, t| h.record_tx(t, process, &value, outcome));
    }
    while !release.load(Ordering::Acquire) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    producer.shutdown().await;
}

/// The consumer group: instances `c<k>` started and stopped during the run. A delivery
/// is recorded by `c<k>.g<generation>`, the generation counting membership changes,
/// so a consumer whose queues were rebalanced away and back is a new process to the
/// FIFO check (re-reading from the committed offset is then allowed).
pub struct Consumers {
    namesrv: String,
    orderly: bool,
    recorder: Recorder,
    generation: Arc<AtomicU64>,
    next: usize,
    running: Vec<(usize, PushConsumer)>,
}

impl Consumers {
    pub fn new(namesrv: String, workload: Workload, recorder: Recorder) -> Self {
        Consumers {
            namesrv,
            orderly: workload == Workload::Ordered,
            recorder,
            generation: Arc::default(),
            next: 1,
            running: Vec::new(),
        }
    }

    pub fn running(&self) -> usize {
        self.running.len()
    }

    pub async fn start_one(&mut self) -> anyhow::Result<()> {
        let k = self.next;
        self.next += 1;
        self.generation.fetch_add(1, Ordering::AcqRel);
        let (recorder, generation) = (self.recorder.clone(), self.generation.clone());
        let name = format!("c{k}");
        let config = client_config(&self.namesrv, &name);
        let consumer = PushConsumerBuilder::new(GROUP, config)
            .subscribe(TOPIC, "*")
            .message_model(MessageModel::Clustering)
            .orderly(self.orderly)
            .intervals(Duration::from_secs(2), Duration::from_secs(1))
            .heartbeat_interval(Duration::from_secs(1))
            .start(move |messages| {
                let process = format!("{name}.g{}", generation.load(Ordering::Acquire));
                let mut h = recorder.lock();
                let t = recorder.now_ms();
                for m in messages {
                    let value = String::from_utf8_lossy(&m.body).into_owned();
                    let queue = QueueRef {
                        topic: m.topic.clone(),
                        broker: crate::cluster::GROUP.into(),
                        queue_id: m.queue_id,
                    };
                    h.deliver(t, &process, GROUP, &value, queue, m.queue_offset);
                }
                ConsumeResult::Success
            })
            .await?;
        self.running.push((k, consumer));
        Ok(())
    }

    /// Stops a random instance (it commits its offsets and leaves the group).
    pub async fn stop_one(&mut self, rng: &mut StdRng) {
        if self.running.is_empty() {
            return;
        }
        let (_, consumer) = self.running.remove(rng.gen_range(0..self.running.len()));
        self.generation.fetch_add(1, Ordering::AcqRel);
        consumer.shutdown().await;
    }

    pub async fn shutdown(&mut self) {
        for (_, c) in self.running.drain(..) {
            c.shutdown().await;
        }
    }
}

/// Values delivered to the consumer group so far.
pub fn delivered(recorder: &Recorder) -> BTreeSet<String> {
    recorder
        .lock()
        .events()
        .iter()
        .filter(|e| e.f == F::Deliver && e.kind == Type::Ok)
        .map(|e| e.value.clone())
        .collect()
}

/// Reads every queue of the topic from the broker at `addr` (one replica), from offset
/// 0 to its end, recording each message as read by `process`.
pub async fn read_replica(
    namesrv: &str,
    addr: &str,
    process: &str,
    recorder: &Recorder,
) -> anyhow::Result<usize> {
    let instance = ClientInstance::new(client_config(namesrv, process), None);
    let mut n = 0;
    for queue_id in 0..QUEUES {
        let queue = MessageQueue {
            topic: TOPIC.into(),
            broker_name: crate::cluster::GROUP.into(),
            queue_id,
        };
        let messages = read_to_end(&instance, "JepsenReader", &queue, addr, 0).await?;
        let mut h = recorder.lock();
        let t = recorder.now_ms();
        for m in &messages {
            let value = String::from_utf8_lossy(&m.body).into_owned();
            h.read(t, process, &value, queue_ref(&queue), m.queue_offset);
        }
        n += messages.len();
    }
    Ok(n)
}

/// A seeded RNG for the consumer churn (apart from the nemesis's).
pub fn churn_rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed ^ 0x6a65_7073_656e)
}
