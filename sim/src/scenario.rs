//! One seed, start to end: build the cluster, run the workload under the swarm's faults
//! (the safety phase), heal everything and demand progress within bounds (the liveness
//! phase), read every replica, and judge the history.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use client::{ClientConfig, MessageModel};
use history::checker::{check, undelivered, LossAllowance};
use history::history::{History, F};

use crate::cluster::{group_name, namesrv_spec, Cluster, Spec, TX_CHECK_INTERVAL};
use crate::nemesis::{churn_consumers, Nemesis};
pub use crate::outcome::Outcome;
use crate::plant::Plant;
use crate::retries::{spawn_retry_consumer, RETRY_GROUP};
use crate::settle::{await_group_settled, await_zero, DELAYED_PENDING, TRANSACTIONS_PENDING};
use crate::swarm::{FaultKind, Swarm};
use crate::transactions::spawn_tx_producer;
use crate::workload::{
    read_replica, spawn_producer, ConsumerHost, Recorder, BROADCAST_GROUP, GROUP, PLAIN_TOPIC,
    QUEUES, TOPICS,
};
use madsim::rand::Rng;
use madsim::runtime::NodeHandle;

/// How a run is shaped, beyond the cluster.
#[derive(Clone, Debug)]
pub struct Options {
    pub spec: Spec,
    pub plant: Plant,
    /// Fault kinds the swarm draws from (`swarm::ALL` by default).
    pub faults: Vec<FaultKind>,
    /// Use these faults exactly instead of drawing a subset.
    pub all_faults: bool,
    pub producers: usize,
    pub ordered_producers: usize,
    /// Transactional producers (one producer group); with two or more, one dies
    /// mid-run and the others answer the broker's checks of its transactions.
    pub tx_producers: usize,
    pub consumers: usize,
    pub safety: Duration,
    /// Everything must have caught up this long after the heal: more than the 60 s a
    /// crashed orderly consumer's queue locks take to lapse (RocketMQ's
    /// `REBALANCE_LOCK_MAX_LIVE_TIME`; a consumer that leaves properly frees them).
    pub liveness_bound: Duration,
}

impl Options {
    pub fn standard(spec: Spec) -> Self {
        Options {
            spec,
            plant: Plant::None,
            faults: crate::swarm::ALL.to_vec(),
            all_faults: false,
            producers: 2,
            ordered_producers: 2,
            tx_producers: 2,
            consumers: 3,
            safety: Duration::from_secs(8),
            liveness_bound: Duration::from_secs(75),
        }
    }
}

/// Plays one seed (inside a madsim runtime). Returns the history and the verdict.
pub async fn run(options: Options) -> (History, Outcome) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("off"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).try_init();
    run_quietly(options).await
}

/// [`run`] without installing a log subscriber (the caller has one: `sim replay
/// --trace`).
pub async fn run_quietly(options: Options) -> (History, Outcome) {
    options.plant.apply_globally();
    let swarm = if options.all_faults {
        let mut s = Swarm::draw(&options.faults);
        s.faults = options.faults.clone();
        s
    } else {
        Swarm::draw(&options.faults)
    };
    let spec = Spec {
        disk_latency_us: swarm.disk_latency_us.clone(),
        segment_bytes: swarm.segment_bytes,
        ..options.spec.clone()
    };
    let cluster = Cluster::start(spec, options.plant);
    let handle = cluster.handle.clone();
    let namesrv = namesrv_spec(&cluster.spec);
    let recorder = Recorder::default();
    let mut outcome = Outcome {
        swarm: swarm.describe(),
        ..Outcome::default()
    };

    // Setup: masters elected, topics created on both groups.
    if !cluster.await_masters(Duration::from_secs(20)).await {
        outcome
            .liveness
            .push("no master elected within 20 s of start".into());
    }
    create_topics(&handle, &namesrv).await;
    // Buggify belongs to the safety phase, like every other fault: from here on.
    if swarm.buggify {
        madsim::buggify::enable();
    }

    // The clients.
    let stop = Arc::new(AtomicBool::new(false));
    let mut producing = Vec::new();
    let plain = (0..options.producers).map(|k| (format!("p{}", k + 1), None));
    let ordered = (0..options.ordered_producers).map(|k| (format!("o{}", k + 1), Some(k)));
    for (n, (process, key)) in plain.chain(ordered).enumerate() {
        let ip = format!("10.1.9.{}", n + 1).parse().unwrap();
        let (ns, rec, stop) = (namesrv.clone(), recorder.clone(), stop.clone());
        let name = process.clone();
        let (node, task) = spawn_producer(&handle, ip, process, ns, key, rec, stop);
        producing.push((name, node, task));
    }
    let tx_producers: Vec<NodeHandle> = (0..options.tx_producers)
        .map(|k| {
            let ip = format!("10.1.13.{}", k + 1).parse().unwrap();
            let (ns, rec, stop) = (namesrv.clone(), recorder.clone(), stop.clone());
            spawn_tx_producer(&handle, ip, format!("t{}", k + 1), ns, rec, stop)
        })
        .collect();
    let mut consumers: Vec<ConsumerHost> = (0..options.consumers)
        .map(|k| {
            let ip = format!("10.1.10.{}", k + 1).parse().unwrap();
            let (ns, rec) = (namesrv.clone(), recorder.clone());
            ConsumerHost::start(
                &handle,
                ip,
                format!("c{}", k + 1),
                ns,
                MessageModel::Clustering,
                rec,
            )
        })
        .collect();
    // The group that fails some messages: they go back and return, or die.
    let retry_consumer = spawn_retry_consumer(
        &handle,
        "10.1.14.1".parse().unwrap(),
        "r1".into(),
        namesrv.clone(),
        recorder.clone(),
    );
    let broadcast = ConsumerHost::start(
        &handle,
        "10.1.11.1".parse().unwrap(),
        "b1".into(),
        namesrv.clone(),
        MessageModel::Broadcasting,
        recorder.clone(),
    );

    // Safety phase.
    let clients: Vec<(String, madsim::task::NodeId)> = producing
        .iter()
        .map(|(name, node, _)| (name.clone(), node.id()))
        .chain(consumers.iter().map(|c| (c.process.clone(), c.node.id())))
        .collect();
    let nemesis = Nemesis::new(&cluster, recorder.clone(), swarm.clone(), clients);
    let churn = async {
        if swarm.consumer_churn {
            let rec = recorder.clone();
            churn_consumers(
                &mut consumers,
                &handle,
                &rec,
                swarm.consumer_crash,
                options.safety,
            )
            .await;
        }
    };
    // The last transactional producer dies at a random moment, likely between a half
    // message and its decision.
    let tx_death = async {
        if let [_, .., dies] = tx_producers.as_slice() {
            let at_ms =
                madsim::rand::thread_rng().gen_range(500..options.safety.as_millis() as u64);
            tokio::time::sleep(Duration::from_millis(at_ms)).await;
            recorder.record(|h, t| h.fault(t, "transactional producer killed"));
            handle.kill(dies.id());
        }
    };
    tokio::join!(nemesis.run(options.safety), churn, tx_death);

    // Liveness phase: everything healed (the nemesis undid its last fault); departed
    // consumers come back; the producers stop.
    recorder.record(|h, t| h.fault(t, "liveness phase: everything healed"));
    // Buggify is a fault too (FoundationDB turns it off for its quiescence check).
    // madsim's own buggify points delay a TCP connect or accept by 1-5 s; one already
    // sleeping finishes its delay, which the liveness bound absorbs.
    if swarm.buggify {
        madsim::buggify::disable();
    }
    for c in consumers.iter_mut().filter(|c| !c.up) {
        c.restart(&handle);
    }
    stop.store(true, Ordering::Release);
    for (_, node, task) in producing {
        let _ = task.await;
        // The producer process exits: a send it gave up on but still had queued (behind
        // a slow connect, say) must not land in the middle of the final reads. Nor may
        // one already on the wire: madsim's TCP holds what a partition blocked and
        // delivers it once the link heals, after a retransmission's backoff (doubling,
        // up to 10 s), so a send could reach its master seconds after the replicas
        // converged, between the final reads of its replicas.
        // The host goes with the process, its unsent bytes too.
        handle.kill(node.id());
        madsim::net::NetSim::current().clog_node_out(node.id());
    }
    // What is already on the wire arrives within the network's latency; a buggified
    // connect or accept within 5 s.
    let drain_s = if swarm.buggify { 5 } else { 1 };
    tokio::time::sleep(Duration::from_secs(drain_s)).await;
    let bound = options.liveness_bound;
    if !cluster.await_masters(bound).await {
        outcome.liveness.push(format!(
            "a group had no master {} s after the heal",
            bound.as_secs()
        ));
    }
    // Every transaction decided (or discarded) and every delayed message moved to its
    // topic before the final reads; then the transactional producers leave like the
    // others.
    for (key, what, ip) in [
        (
            TRANSACTIONS_PENDING,
            "transactions still undecided",
            "10.1.12.4",
        ),
        (
            DELAYED_PENDING,
            "delayed messages still undelivered",
            "10.1.12.5",
        ),
    ] {
        let settle_ns = namesrv.clone();
        let pending = on_host(&handle, key, ip, async move {
            await_zero(&settle_ns, key, bound, TX_CHECK_INTERVAL).await
        })
        .await
        .unwrap_or(usize::MAX);
        if pending > 0 {
            let count = match pending {
                usize::MAX => "a master did not say how many".to_string(),
                n => n.to_string(),
            };
            outcome.liveness.push(format!(
                "{what} {} s after the heal ({count})",
                bound.as_secs()
            ));
        }
    }
    // Nothing the failing group sent back is still on its way: a send-back is a write,
    // which must not land between the final reads of two replicas.
    let settle_ns = namesrv.clone();
    let settled = on_host(&handle, "settle-retries", "10.1.12.6", async move {
        await_group_settled(&settle_ns, RETRY_GROUP, bound, TX_CHECK_INTERVAL).await
    })
    .await
    .unwrap_or(false);
    if !settled {
        outcome.liveness.push(format!(
            "messages of {RETRY_GROUP} still on their way back {} s after the heal",
            bound.as_secs()
        ));
    }
    for node in &tx_producers {
        handle.kill(node.id());
        madsim::net::NetSim::current().clog_node_out(node.id());
    }
    match cluster.await_converged(bound).await {
        Ok(None) => tracing::info!(target: "sim::scenario", "replicas converged"),
        Ok(Some(why)) => outcome.liveness.push(why),
        Err(why) => outcome.safety.push(why),
    }
    log_routes(&handle, &namesrv).await;
    read_everything(&cluster, &handle, &namesrv, &recorder, &mut outcome).await;
    let allowance = options.spec.mode.allowance(swarm.power_loss());
    await_delivery(&recorder, allowance, bound, &mut outcome).await;
    let _ = (broadcast, retry_consumer);

    let history = recorder.take();
    outcome.report = check(&history, allowance, true);
    outcome.deliveries = history
        .events()
        .iter()
        .filter(|e| e.f == F::Deliver)
        .count();
    outcome.faults = history.events().iter().filter(|e| e.f == F::Fault).count();
    outcome.master_stalls_ms = crate::outcome::master_stalls_ms(history.events());
    outcome.undelivered = DELIVERED_TO
        .iter()
        .map(|(g, topics)| (g.to_string(), undelivered(&history, g, topics)))
        .collect();
    let undelivered_ok = outcome
        .undelivered
        .iter()
        .all(|(_, u)| u.violations(allowance) == 0);
    outcome.valid = outcome.report.valid
        && undelivered_ok
        && outcome.liveness.is_empty()
        && outcome.safety.is_empty();
    (history, outcome)
}

/// Runs `task` on a fresh host `name` at `ip` (a tool run beside the cluster) and waits
/// for it; `None` if the task panicked.
async fn on_host<T: Send + 'static>(
    handle: &madsim::runtime::Handle,
    name: &str,
    ip: &str,
    task: impl std::future::Future<Output = T> + Send + 'static,
) -> Option<T> {
    let node = handle
        .create_node()
        .name(name)
        .ip(ip.parse().expect("a host address"))
        .build();
    node.spawn(task).await.ok()
}

async fn create_topics(handle: &madsim::runtime::Handle, namesrv: &str) {
    let namesrv = namesrv.to_string();
    on_host(handle, "admin", "10.1.12.2", async move {
        let admin = client::admin::Admin::new(ClientConfig::with_namesrv(&namesrv));
        for topic in TOPICS {
            for _ in 0..40 {
                match admin.create_topic(topic, QUEUES, None, false).await {
                    Ok(masters) if masters.len() >= 2 => break,
                    _ => tokio::time::sleep(Duration::from_millis(250)).await,
                }
            }
        }
    })
    .await;
}

/// Writes each name server's view of the topics' routes into the trace (what clients
/// were told when the liveness phase ends).
async fn log_routes(handle: &madsim::runtime::Handle, namesrv: &str) {
    let spec = namesrv.to_string();
    on_host(handle, "route-probe", "10.1.12.3", async move {
        for addr in client::config::parse_addrs(&spec) {
            let config = ClientConfig::with_namesrv(&addr);
            let instance = client::instance::ClientInstance::new(config, None);
            for topic in TOPICS {
                match instance.refresh_route(topic).await {
                    Ok(route) => {
                        let brokers: Vec<String> = route
                            .broker_datas
                            .iter()
                            .map(|b| format!("{} {:?}", b.broker_name, b.broker_addrs))
                            .collect();
                        let queues: Vec<String> = route
                            .queue_datas
                            .iter()
                            .map(|q| format!("{} w{}", q.broker_name, q.write_queue_nums))
                            .collect();
                        tracing::info!(target: "sim::routes", %addr, topic, ?brokers, ?queues);
                    }
                    Err(e) => tracing::info!(target: "sim::routes", %addr, topic, error = %e),
                }
            }
        }
    })
    .await;
}

/// Reads every replica of every group into the history, from a reader host.
async fn read_everything(
    cluster: &Cluster,
    handle: &madsim::runtime::Handle,
    namesrv: &str,
    recorder: &Recorder,
    outcome: &mut Outcome,
) {
    let targets: Vec<(String, String, String)> = cluster
        .replicas()
        .map(|r| (group_name(r.group), r.addr(), r.name.clone()))
        .collect();
    let (namesrv, rec) = (namesrv.to_string(), recorder.clone());
    let errors = on_host(handle, "reader", "10.1.12.1", async move {
        let mut errors = Vec::new();
        for (group, addr, name) in targets {
            if let Err(e) = read_replica(&namesrv, &group, &addr, &name, &rec).await {
                errors.push(e);
            }
        }
        errors
    })
    .await
    .unwrap_or_default();
    outcome.liveness.extend(errors);
}

/// Each consumer group and the topics it must receive everything of.
const DELIVERED_TO: [(&str, &[&str]); 3] = [
    (GROUP, &TOPICS),
    (BROADCAST_GROUP, &TOPICS),
    (RETRY_GROUP, &[PLAIN_TOPIC]),
];

/// Waits until every consumer group has received everything the replicas hold.
async fn await_delivery(
    recorder: &Recorder,
    allowance: LossAllowance,
    bound: Duration,
    outcome: &mut Outcome,
) {
    let deadline = tokio::time::Instant::now() + bound;
    loop {
        let missing: usize = recorder.with(|h| {
            DELIVERED_TO
                .iter()
                .map(|(g, topics)| undelivered(h, g, topics).violations(allowance))
                .sum()
        });
        if missing == 0 {
            return;
        }
        if tokio::time::Instant::now() >= deadline {
            outcome.liveness.push(format!(
                "{missing} stored messages not delivered {} s after the heal",
                bound.as_secs()
            ));
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
