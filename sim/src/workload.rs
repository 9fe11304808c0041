//! The simulated clients: plain and ordered producers, a clustering consumer group whose
//! instances each run on their own host (so the nemesis can crash them), a broadcasting
//! consumer, and the final read of every replica. Everything they see goes into the
//! shared [`Recorder`].

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use client::instance::ClientInstance;
use client::pull::read_to_end;
use client::{
    ClientConfig, ConsumeFromWhere, ConsumeResult, MessageModel, Producer, PushConsumerBuilder,
};
use history::history::{History, QueueRef, SendOutcome};
use madsim::rand::Rng;
use madsim::runtime::{Handle, NodeHandle};

use crate::nodes::{queue_ref, send_outcome, send_value};
use raftmq::broker::retry::SCHEDULE_TOPIC;

/// Topic of the plain producers (round-robin over every queue of both groups).
pub const PLAIN_TOPIC: &str = "SimPlain";
/// Topic of the ordered producers (`send_with_selector`, one queue per producer).
pub const ORDERED_TOPIC: &str = "SimOrdered";
/// Every topic the consumers subscribe to and the final reads drain (the transactional
/// producers' too: see `transactions`).
pub const TOPICS: [&str; 3] = [PLAIN_TOPIC, ORDERED_TOPIC, crate::transactions::TX_TOPIC];
pub const QUEUES: u32 = 4;
/// The clustering group (orderly listener: FIFO per queue).
pub const GROUP: &str = "SimGroup";
/// The broadcasting consumer's group.
pub const BROADCAST_GROUP: &str = "SimBroadcast";

/// The run's history, shared by every simulated client. Each event recorded is also a
/// `sim::history` trace event, so a trace shows sends and deliveries among the
/// servers' own events.
#[derive(Clone, Default)]
pub struct Recorder(Arc<Mutex<History>>);

impl Recorder {
    pub fn record(&self, f: impl FnOnce(&mut History, i64)) {
        let mut h = self.0.lock().unwrap();
        let before = h.events().len();
        f(&mut h, proto::clock::now_ms());
        // Serialized only when a trace is being written.
        if !tracing::enabled!(target: "sim::history", tracing::Level::INFO) {
            return;
        }
        for e in &h.events()[before..] {
            let json = serde_json::to_string(e).expect("an event serializes");
            tracing::info!(target: "sim::history", event = %json);
        }
    }

    pub fn with<T>(&self, f: impl FnOnce(&History) -> T) -> T {
        f(&self.0.lock().unwrap())
    }

    pub fn take(&self) -> History {
        std::mem::take(&mut self.0.lock().unwrap())
    }
}

pub(crate) fn client_config(namesrv: &str, instance: &str) -> ClientConfig {
    ClientConfig {
        request_timeout: Duration::from_secs(2),
        route_refresh_interval: Duration::from_secs(2),
        instance_name: instance.into(),
        ..ClientConfig::with_namesrv(namesrv)
    }
}

/// A producer on its own host: one send in flight, a short random pause between sends,
/// until `stop`. `ordered = Some(k)` sends every message to queue `k % n` of the route.
pub fn spawn_producer(
    handle: &Handle,
    ip: IpAddr,
    process: String,
    namesrv: String,
    ordered: Option<usize>,
    recorder: Recorder,
    stop: Arc<AtomicBool>,
) -> (NodeHandle, madsim::task::JoinHandle<()>) {
    let node = handle.create_node().name(process.clone()).ip(ip).build();
    let task = node.spawn(async move {
        let mut producer = Producer::new("SimProducers", client_config(&namesrv, &process));
        // Back off a failed group for 1 s, not 30: a group electing a master is back
        // within the safety phase, and sends should keep reaching both groups.
        producer.broker_backoff = Duration::from_secs(1);
        let topic = if ordered.is_some() {
            ORDERED_TOPIC
        } else {
            PLAIN_TOPIC
        };
        // A plain producer sends bursts: one send per lane at once, each lane a process
        // of its own in the history (sequential, as the FIFO check expects), so sends
        // reach the master together and share Raft entries.
        let lanes = if ordered.is_some() { 1 } else { PLAIN_BURST };
        let lane_names: Vec<String> = match lanes {
            1 => vec![process.clone()],
            n => (0..n).map(|i| format!("{process}.{i}")).collect(),
        };
        let mut seq = 0u64;
        while !stop.load(Ordering::Acquire) {
            seq += 1;
            let sends = lane_names.iter().map(|lane| {
                let (producer, recorder) = (&producer, &recorder);
                async move {
                    // Now and then a plain lane sends a delayed message (1 s or 5 s), or
                    // a timer message: mostly within the wheel's second ring, rarely
                    // one that waits in its minute ring first.
                    let mut rng = madsim::rand::thread_rng();
                    let delay = match rng.gen_range(0..12) {
                        0 if ordered.is_none() => Some(Delay::Level(1)),
                        1 if ordered.is_none() => Some(Delay::Level(2)),
                        2 if ordered.is_none() => {
                            Some(Delay::TimerMs(match rng.gen_range(0..40) {
                                0 => rng.gen_range(61_000..66_000),
                                _ => rng.gen_range(200..5_000),
                            }))
                        }
                        _ => None,
                    };
                    drop(rng);
                    if let Some(delay) = delay {
                        return send_delayed(producer, recorder, lane, seq, delay).await;
                    }
                    let value = format!("{lane}-{seq}");
                    recorder.record(|h, t| h.send_invoke(t, lane, &value));
                    let result = send_value(producer, topic, &value, ordered).await;
                    let mut acked = false;
                    let outcome = send_outcome(&result);
                    recorder.record(|h, t| acked = h.record_send(t, lane, &value, outcome));
                    acked
                }
            });
            let acked = futures::future::join_all(sends).await;
            let pause_ms = if acked.iter().all(|a| *a) {
                madsim::rand::thread_rng().gen_range(10..60)
            } else {
                200
            };
            tokio::time::sleep(Duration::from_millis(pause_ms)).await;
        }
    });
    (node, task)
}

/// How a delayed send asks for its delay.
#[derive(Clone, Copy, Debug)]
enum Delay {
    /// A delay level of the brokers' `message_delay_level` (`DELAY`).
    Level(usize),
    /// A timer message (`TIMER_DELAY_MS`).
    TimerMs(u64),
}

/// Sends a delayed message to the plain topic, recorded as a delayed send (its value
/// names the delay); returns whether it was acknowledged.
async fn send_delayed(
    producer: &Producer,
    recorder: &Recorder,
    lane: &str,
    seq: u64,
    delay: Delay,
) -> bool {
    let delay_ms = match delay {
        Delay::Level(level) => crate::cluster::delay_ms(level),
        Delay::TimerMs(ms) => ms,
    };
    let value = history::delayed::value(lane, seq, delay_ms);
    recorder.record(|h, t| h.delayed_invoke(t, lane, &value));
    let message = client::Message::new(PLAIN_TOPIC, value.clone());
    let message = match delay {
        Delay::Level(level) => message.with_property("DELAY", level.to_string()),
        Delay::TimerMs(ms) => message.with_timer_delay_ms(ms),
    };
    let result = producer.send(message).await;
    // A delay level's send is acknowledged at its place in the level's schedule queue; a
    // timer's at its place in a wheel slot the client does not learn (no checker reads
    // a delayed send's position).
    let outcome = match delay {
        Delay::Level(level) => send_outcome(&result).staged_in(SCHEDULE_TOPIC, level as u32 - 1),
        Delay::TimerMs(_) => send_outcome(&result),
    };
    let acked = matches!(outcome, SendOutcome::Acked { .. });
    recorder.record(|h, t| h.record_delayed(t, lane, &value, outcome));
    acked
}

/// Concurrent sends per burst of a plain producer.
const PLAIN_BURST: usize = 3;

/// A push consumer on its own host, which the nemesis can crash (`Handle::kill`), stop
/// gracefully (`request_stop`: it commits its offsets and leaves the group) and start
/// again (`Handle::restart`).
pub struct ConsumerHost {
    pub process: String,
    pub node: NodeHandle,
    stop: Arc<AtomicBool>,
    pub up: bool,
}

impl ConsumerHost {
    pub fn start(
        handle: &Handle,
        ip: IpAddr,
        process: String,
        namesrv: String,
        model: MessageModel,
        recorder: Recorder,
    ) -> ConsumerHost {
        let stop = Arc::new(AtomicBool::new(false));
        let (name, stop_in) = (process.clone(), stop.clone());
        let node = handle
            .create_node()
            .name(process.clone())
            .ip(ip)
            .init(move || {
                let (process, namesrv, recorder, stop) = (
                    name.clone(),
                    namesrv.clone(),
                    recorder.clone(),
                    stop_in.clone(),
                );
                async move { run_consumer(process, namesrv, model, recorder, stop).await }
            })
            .build();
        ConsumerHost {
            process,
            node,
            stop,
            up: true,
        }
    }

    /// Asks the consumer to shut down (commit offsets, unregister).
    pub fn request_stop(&mut self) {
        self.stop.store(true, Ordering::Release);
        self.up = false;
    }

    pub fn crash(&mut self, handle: &Handle) {
        handle.kill(self.node.id());
        self.up = false;
    }

    pub fn restart(&mut self, handle: &Handle) {
        self.stop.store(false, Ordering::Release);
        handle.restart(self.node.id());
        self.up = true;
    }
}

async fn run_consumer(
    process: String,
    namesrv: String,
    model: MessageModel,
    recorder: Recorder,
    stop: Arc<AtomicBool>,
) {
    let group = match model {
        MessageModel::Clustering => GROUP,
        MessageModel::Broadcasting => BROADCAST_GROUP,
    };
    let builder = || {
        let mut b = PushConsumerBuilder::new(group, client_config(&namesrv, &process))
            .message_model(model)
            .consume_from(ConsumeFromWhere::FirstOffset)
            .orderly(model == MessageModel::Clustering)
            .intervals(Duration::from_secs(2), Duration::from_secs(1))
            .heartbeat_interval(Duration::from_secs(1));
        for topic in TOPICS {
            b = b.subscribe(topic, "*");
        }
        b
    };
    let name = process.clone();
    let listener = move |messages: &[client::MessageExt]| {
        recorder.record(|h, t| {
            for m in messages {
                let value = String::from_utf8_lossy(&m.body);
                let queue = QueueRef {
                    topic: m.topic.clone(),
                    broker: m.broker_name.clone(),
                    queue_id: m.queue_id,
                };
                h.deliver(t, &name, group, &value, queue, m.queue_offset);
            }
        });
        ConsumeResult::Success
    };
    let consumer = loop {
        // The name servers may not know the topics yet: retry as an application would.
        match builder().start(listener.clone()).await {
            Ok(c) => break c,
            Err(e) => {
                tracing::info!(%process, error = %e, "consumer start failed; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    };
    while !stop.load(Ordering::Acquire) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    consumer.shutdown().await;
    std::future::pending::<()>().await
}

/// Reads every queue of every topic from the broker at `addr` (one replica, named
/// `process`), from offset 0 to its end, as `read` events.
pub async fn read_replica(
    namesrv: &str,
    broker: &str,
    addr: &str,
    process: &str,
    recorder: &Recorder,
) -> Result<usize, String> {
    let instance = ClientInstance::new(client_config(namesrv, process), None);
    let mut n = 0;
    for topic in TOPICS {
        for queue_id in 0..QUEUES {
            let queue = client::MessageQueue {
                topic: topic.into(),
                broker_name: broker.into(),
                queue_id,
            };
            // A timeout is retried, as any reader would; three in a row fail the read.
            let messages = read_to_end(&instance, "SimReader", &queue, addr, 2)
                .await
                .map_err(|e| format!("reading {process}: {e}"))?;
            record_reads(recorder, process, &queue, &messages);
            n += messages.len();
        }
    }
    // The failing group's dead letters, where it has any.
    let queue = client::MessageQueue {
        topic: crate::retries::dead_letter_topic(),
        broker_name: broker.into(),
        queue_id: 0,
    };
    let messages = match read_to_end(&instance, "SimReader", &queue, addr, 2).await {
        Ok(messages) => messages,
        Err(client::ClientError::Broker { code, .. })
            if code == proto::remoting::codes::response::TOPIC_NOT_EXIST =>
        {
            Vec::new()
        }
        Err(e) => return Err(format!("reading {process}: {e}")),
    };
    record_reads(recorder, process, &queue, &messages);
    Ok(n + messages.len())
}

fn record_reads(
    recorder: &Recorder,
    process: &str,
    queue: &client::MessageQueue,
    messages: &[client::MessageExt],
) {
    recorder.record(|h, t| {
        for m in messages {
            let value = String::from_utf8_lossy(&m.body);
            h.read(t, process, &value, queue_ref(queue), m.queue_offset);
        }
    });
}
