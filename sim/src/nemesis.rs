//! The nemesis: injects the swarm's faults into a [`Cluster`] one at a time, records
//! each in the history (before it takes effect, so the checker's windows hold it), and
//! heals everything for the liveness phase.

use std::time::Duration;

use madsim::net::NetSim;
use madsim::rand::Rng;

use crate::cluster::Cluster;
use crate::swarm::{FaultKind, Swarm};
use crate::workload::{ConsumerHost, Recorder};

/// How often, and how far apart, a compaction is tried before the follower returns.
const COMPACT_TRIES: usize = 20;
const COMPACT_RETRY_MS: u64 = 250;

/// madsim's default one-way latency.
const LATENCY_DEFAULT: std::ops::Range<Duration> =
    Duration::from_millis(1)..Duration::from_millis(10);

/// Replicas are named by (group, index in group).
type At = (usize, usize);

/// What a fault in force needs undone.
enum Undo {
    Restart(Vec<At>),
    Resume(At),
    Unclog(Vec<(madsim::task::NodeId, madsim::task::NodeId)>),
    UncloggedNode(madsim::task::NodeId),
    NetDefaults,
    /// Fsyncs work again; the replica restarts (its process may have stopped).
    EioOff(At),
    /// Restart name server `i`.
    RestartNamesrv(usize),
    /// Compact the group's log on its master (or another running replica), past the
    /// CommitLog offset the master had reached when the follower went down if the
    /// consumers get there soon, then restart the follower that was down.
    CompactThenRestart(At, u64),
}

pub struct Nemesis<'a> {
    cluster: &'a Cluster,
    recorder: Recorder,
    swarm: Swarm,
    /// Client hosts (name, node) that `client-partition` may cut off.
    clients: Vec<(String, madsim::task::NodeId)>,
}

impl<'a> Nemesis<'a> {
    pub fn new(
        cluster: &'a Cluster,
        recorder: Recorder,
        swarm: Swarm,
        clients: Vec<(String, madsim::task::NodeId)>,
    ) -> Self {
        Nemesis {
            cluster,
            recorder,
            swarm,
            clients,
        }
    }

    fn fault(&self, what: String) {
        tracing::info!(target: "sim::nemesis", %what);
        self.recorder.record(|h, t| h.fault(t, &what));
    }

    /// Injects faults until `duration` has passed, healing each before the next.
    pub async fn run(&self, duration: Duration) {
        if self.swarm.faults.is_empty() {
            tokio::time::sleep(duration).await;
            return;
        }
        let end = tokio::time::Instant::now() + duration;
        loop {
            let mut rng = madsim::rand::thread_rng();
            let gap = rng.gen_range(self.swarm.gap_ms.0..=self.swarm.gap_ms.1);
            let hold = rng.gen_range(self.swarm.fault_ms.0..=self.swarm.fault_ms.1);
            let kind = self.swarm.faults[rng.gen_range(0..self.swarm.faults.len())];
            drop(rng);
            tokio::time::sleep(Duration::from_millis(gap)).await;
            if tokio::time::Instant::now() >= end {
                return;
            }
            let undo = self.inject(kind);
            tokio::time::sleep(Duration::from_millis(hold)).await;
            self.undo(undo).await;
        }
    }

    /// A replica to hit: a group's master (as often as the swarm says), else any.
    fn target(&self) -> (At, bool) {
        let mut rng = madsim::rand::thread_rng();
        let g = rng.gen_range(0..self.cluster.groups.len());
        if rng.gen_range(0..100) < self.swarm.aim_at_master_pct {
            if let Some(i) = self.cluster.master(g) {
                return ((g, i), true);
            }
        }
        ((g, rng.gen_range(0..self.cluster.groups[g].len())), false)
    }

    fn name(&self, (g, i): At, master: bool) -> String {
        let name = &self.cluster.groups[g][i].name;
        if master {
            format!("{name} (master)")
        } else {
            name.clone()
        }
    }

    fn kill(&self, (g, i): At, power: bool) {
        let r = &self.cluster.groups[g][i];
        self.cluster.handle.kill(r.node.id());
        r.forget();
        if power {
            r.disk.crash();
            r.meta.crash();
        }
    }

    fn inject(&self, kind: FaultKind) -> Undo {
        let ((g, i), master) = self.target();
        let who = self.name((g, i), master);
        let handle = &self.cluster.handle;
        let net = NetSim::current();
        let mut rng = madsim::rand::thread_rng();
        match kind {
            FaultKind::Kill | FaultKind::Power => {
                let what = if kind == FaultKind::Kill {
                    "kill"
                } else {
                    "power loss on"
                };
                self.fault(format!("{what} {who}"));
                self.kill((g, i), kind == FaultKind::Power);
                Undo::Restart(vec![(g, i)])
            }
            FaultKind::GroupPower => {
                let group = crate::cluster::group_name(g);
                self.fault(format!("power loss on every replica of {group}"));
                let all: Vec<At> = (0..self.cluster.groups[g].len()).map(|i| (g, i)).collect();
                for at in &all {
                    self.kill(*at, true);
                }
                Undo::Restart(all)
            }
            FaultKind::Pause => {
                self.fault(format!("pause {who}"));
                handle.pause(self.cluster.groups[g][i].node.id());
                Undo::Resume((g, i))
            }
            FaultKind::Partition if rng.gen_bool(0.3) => {
                self.fault(format!("isolate {who} from everyone"));
                let id = self.cluster.groups[g][i].node.id();
                net.clog_node(id);
                Undo::UncloggedNode(id)
            }
            FaultKind::Partition | FaultKind::OneWay => {
                let victim = self.cluster.groups[g][i].node.id();
                let peers: Vec<_> = self.cluster.groups[g]
                    .iter()
                    .enumerate()
                    .filter(|(j, _)| *j != i)
                    .map(|(_, r)| r.node.id())
                    .collect();
                let mut links = Vec::new();
                let (out, inbound) = match kind {
                    FaultKind::Partition => (true, true),
                    _ => {
                        let out = rng.gen_bool(0.5);
                        (out, !out)
                    }
                };
                let shape = match (out, inbound) {
                    (true, true) => "isolate",
                    (true, false) => "cut the links out of",
                    _ => "cut the links into",
                };
                self.fault(format!("{shape} {who} (from its peers)"));
                for peer in peers {
                    if out {
                        links.push((victim, peer));
                    }
                    if inbound {
                        links.push((peer, victim));
                    }
                }
                for (a, b) in &links {
                    net.clog_link(*a, *b);
                }
                Undo::Unclog(links)
            }
            FaultKind::Loss => {
                let rate = self.swarm.loss_rate;
                self.fault(format!("drop {:.0}% of packets everywhere", rate * 100.0));
                net.update_config(|c| c.packet_loss_rate = rate);
                Undo::NetDefaults
            }
            FaultKind::Latency => {
                let ms = self.swarm.latency_ms;
                self.fault(format!("latency up to {ms} ms everywhere"));
                net.update_config(|c| {
                    c.send_latency = Duration::from_millis(1)..Duration::from_millis(ms)
                });
                Undo::NetDefaults
            }
            FaultKind::Namesrv => {
                let k = rng.gen_range(0..self.cluster.namesrvs.len());
                self.fault(format!("kill namesrv-{}", k + 1));
                handle.kill(self.cluster.namesrvs[k].id());
                Undo::RestartNamesrv(k)
            }
            FaultKind::ClientPartition if !self.clients.is_empty() => {
                let (name, client) = &self.clients[rng.gen_range(0..self.clients.len())];
                let group = crate::cluster::group_name(g);
                self.fault(format!("cut {name} off from {group}"));
                let mut links = Vec::new();
                for r in &self.cluster.groups[g] {
                    links.push((*client, r.node.id()));
                    links.push((r.node.id(), *client));
                }
                for (a, b) in &links {
                    net.clog_link(*a, *b);
                }
                Undo::Unclog(links)
            }
            FaultKind::ClientPartition => {
                self.fault("no client to cut off".into());
                Undo::Unclog(Vec::new())
            }
            FaultKind::Compact => {
                // The follower to take down: the target, unless it is the master.
                let master = self.cluster.master(g);
                let down = if Some(i) != master {
                    i
                } else {
                    (i + 1) % self.cluster.groups[g].len()
                };
                let name = &self.cluster.groups[g][down].name;
                self.fault(format!(
                    "kill {name}; its group's log is compacted meanwhile"
                ));
                self.kill((g, down), false);
                let reached = master
                    .and_then(|m| self.cluster.groups[g][m].broker())
                    .map_or(0, |b| b.store().commitlog_max_offset());
                Undo::CompactThenRestart((g, down), reached)
            }
            FaultKind::Eio => {
                let p = self.swarm.eio_probability;
                self.fault(format!("fsync fails with EIO ({:.0}%) on {who}", p * 100.0));
                self.cluster.groups[g][i].disk.set_sync_eio_probability(p);
                Undo::EioOff((g, i))
            }
        }
    }

    async fn undo(&self, undo: Undo) {
        let handle = &self.cluster.handle;
        let net = NetSim::current();
        match undo {
            Undo::Restart(at) => {
                self.fault(format!("restart {}", self.names(&at)));
                for (g, i) in at {
                    handle.restart(self.cluster.groups[g][i].node.id());
                }
            }
            Undo::Resume((g, i)) => {
                self.fault(format!("resume {}", self.cluster.groups[g][i].name));
                handle.resume(self.cluster.groups[g][i].node.id());
            }
            Undo::Unclog(links) => {
                self.fault("heal the partition".into());
                for (a, b) in links {
                    net.unclog_link(a, b);
                }
            }
            Undo::UncloggedNode(id) => {
                self.fault("heal the partition".into());
                net.unclog_node(id);
            }
            Undo::NetDefaults => {
                self.fault("network back to normal".into());
                net.update_config(|c| {
                    c.packet_loss_rate = 0.0;
                    c.send_latency = LATENCY_DEFAULT;
                });
            }
            Undo::RestartNamesrv(k) => {
                self.fault(format!("restart namesrv-{}", k + 1));
                handle.restart(self.cluster.namesrvs[k].id());
            }
            Undo::CompactThenRestart((g, down), reached) => {
                self.compact(g, down, reached).await;
                self.fault(format!("restart {}", self.cluster.groups[g][down].name));
                handle.restart(self.cluster.groups[g][down].node.id());
            }
            Undo::EioOff((g, i)) => {
                let r = &self.cluster.groups[g][i];
                self.fault(format!("fsync works again; restart {}", r.name));
                r.disk.set_sync_eio_probability(0.0);
                handle.kill(r.node.id());
                r.forget();
                handle.restart(r.node.id());
            }
        }
    }

    /// Compacts group `g`'s log on its master, else on any running replica but `down`;
    /// tries again for a few seconds until it deletes past `reached` (so that `down`
    /// surely needs a snapshot), as the consumers catch up.
    async fn compact(&self, g: usize, down: usize, reached: u64) {
        for _ in 0..COMPACT_TRIES {
            if self
                .compact_once(g, down)
                .await
                .is_some_and(|to| to > reached)
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(COMPACT_RETRY_MS)).await;
        }
    }

    /// One compaction; where the log now starts, if anything went.
    async fn compact_once(&self, g: usize, down: usize) -> Option<u64> {
        let replicas = &self.cluster.groups[g];
        let at = self.cluster.master(g).filter(|m| *m != down).or_else(|| {
            (0..replicas.len()).find(|k| *k != down && replicas[*k].broker().is_some())
        });
        let (r, broker) = at.and_then(|k| Some((&replicas[k], replicas[k].broker()?)))?;
        self.fault(format!(
            "compact {}'s log below what every consumer has",
            r.name
        ));
        let group = crate::cluster::group_name(g);
        let compacted = crate::compaction::compact(&broker, &group, &r.name, &self.recorder).await;
        let what = match &compacted {
            Ok(offset) => format!("{} deleted its log below offset {offset}", r.name),
            Err(e) => format!("{} did not compact: {e}", r.name),
        };
        tracing::info!(target: "sim::nemesis", %what);
        compacted.ok()
    }

    fn names(&self, at: &[At]) -> String {
        let names: Vec<&str> = at
            .iter()
            .map(|(g, i)| self.cluster.groups[*g][*i].name.as_str())
            .collect();
        names.join(", ")
    }
}

/// Consumer churn for the safety phase: every few seconds one clustering instance
/// leaves (gracefully, or by crashing when the swarm says so) or a departed one comes
/// back.
pub async fn churn_consumers(
    consumers: &mut [ConsumerHost],
    handle: &madsim::runtime::Handle,
    recorder: &Recorder,
    crash: bool,
    duration: Duration,
) {
    let end = tokio::time::Instant::now() + duration;
    loop {
        let wait = madsim::rand::thread_rng().gen_range(1_500..5_000);
        tokio::time::sleep(Duration::from_millis(wait)).await;
        if tokio::time::Instant::now() >= end {
            return;
        }
        let (k, crash_it) = {
            let mut rng = madsim::rand::thread_rng();
            (
                rng.gen_range(0..consumers.len()),
                crash && rng.gen_bool(0.5),
            )
        };
        let c = &mut consumers[k];
        let what = if !c.up {
            c.restart(handle);
            format!("consumer {} joins", c.process)
        } else if crash_it {
            c.crash(handle);
            format!("consumer {} crashes", c.process)
        } else {
            c.request_stop();
            format!("consumer {} leaves", c.process)
        };
        tracing::info!(target: "sim::nemesis", %what);
        recorder.record(|h, t| h.fault(t, &what));
    }
}
