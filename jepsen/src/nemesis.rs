//! The nemesis: faults drawn from a seeded RNG, one at a time, each held for a while and
//! then healed, with quiet periods between. Each fault is recorded in the history (an
//! `info` event of process `nemesis` at its start and at its end: the boundaries of the
//! windows in which an async mode may lose an acknowledged tail) and returned as an
//! interval for the report.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::Rng;
use serde::Serialize;
use tokio::sync::Mutex;

use crate::cluster::Cluster;
use crate::opts::NemesisKind;
use crate::recorder::Recorder;

#[derive(Clone, Debug, Serialize)]
pub struct FaultInterval {
    pub kind: String,
    pub description: String,
    /// Whom it hit: the group's master, only followers, a majority, or the network.
    pub scope: Scope,
    pub start_ms: i64,
    pub end_ms: i64,
    /// From the heal to the next acknowledged send, if one came (filled in later).
    pub recovery_ms: Option<i64>,
    /// From the fault's start to the first acknowledged send invoked after it: how long
    /// writes stopped (`history::stall`; filled in later).
    pub write_stall_ms: Option<i64>,
}

/// Whom a fault hit, for telling a master's loss from a follower's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// The master (alone, or with a minority of followers).
    Master,
    /// A minority of followers; the master untouched.
    Followers,
    /// A majority of the group's processes.
    Majority,
    /// Links rather than processes (loss, partitions that are not the master's).
    Network,
}

impl Scope {
    /// The scope of a process fault on `victims`.
    fn of(victims: &[u64], n: usize, master: Option<u64>) -> Scope {
        if victims.len() > n / 2 {
            Scope::Majority
        } else if master.is_some_and(|m| victims.contains(&m)) {
            Scope::Master
        } else {
            Scope::Followers
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Scope::Master => "master",
            Scope::Followers => "followers",
            Scope::Majority => "majority",
            Scope::Network => "network",
        }
    }
}

/// Which processes a process fault hits.
fn targets(
    rng: &mut StdRng,
    ids: &[u64],
    master: Option<u64>,
    allow_majority: bool,
) -> (Vec<u64>, String) {
    let n = ids.len();
    let mut shuffled = ids.to_vec();
    shuffled.shuffle(rng);
    let choices = if allow_majority { 4 } else { 3 };
    match rng.gen_range(0..choices) {
        0 => (vec![shuffled[0]], "a random node".into()),
        1 => {
            let k = ((n - 1) / 2).max(1);
            (shuffled[..k].to_vec(), "a minority".into())
        }
        2 => match master {
            Some(m) => (vec![m], "the master".into()),
            None => (vec![shuffled[0]], "a random node (no master)".into()),
        },
        _ => (shuffled[..n / 2 + 1].to_vec(), "a majority".into()),
    }
}

fn names(ids: &[u64]) -> String {
    ids.iter()
        .map(|i| format!("n{i}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Applies one fault of `kind`; returns its description and whom it hit.
async fn inject(
    kind: NemesisKind,
    cluster: &Mutex<Cluster>,
    rng: &mut StdRng,
) -> anyhow::Result<(String, Scope)> {
    let mut c = cluster.lock().await;
    let ids = c.ids();
    let master = c.master().await;
    let network = |d: String| Ok((d, Scope::Network));
    match kind {
        NemesisKind::Kill => {
            let (victims, who) = targets(rng, &ids, master, true);
            victims.iter().for_each(|i| c.kill(*i));
            let scope = Scope::of(&victims, ids.len(), master);
            Ok((format!("kill -9 {} ({who})", names(&victims)), scope))
        }
        NemesisKind::Power => {
            let (victims, who) = targets(rng, &ids, master, true);
            let mut lost = 0;
            for i in &victims {
                lost += c.power_loss(*i)?;
            }
            let scope = Scope::of(&victims, ids.len(), master);
            let d = format!(
                "power loss on {} ({who}): {lost} unsynced bytes dropped",
                names(&victims)
            );
            Ok((d, scope))
        }
        NemesisKind::Pause => {
            let (victims, who) = targets(rng, &ids, master, true);
            victims.iter().for_each(|i| c.pause(*i));
            let scope = Scope::of(&victims, ids.len(), master);
            Ok((format!("SIGSTOP {} ({who})", names(&victims)), scope))
        }
        NemesisKind::Leader => {
            let Some(m) = master else {
                return network("leader: no master to hit".into());
            };
            let options = if c.net.can_partition() { 3 } else { 2 };
            let d = match rng.gen_range(0..options) {
                0 => {
                    c.kill(m);
                    format!("kill -9 n{m} (the master)")
                }
                1 => {
                    c.pause(m);
                    format!("SIGSTOP n{m} (the master)")
                }
                _ => {
                    let others: Vec<u64> = ids.iter().copied().filter(|i| *i != m).collect();
                    c.net.cut(&[m], &others)?;
                    format!("isolate n{m} (the master) from {}", names(&others))
                }
            };
            Ok((d, Scope::Master))
        }
        NemesisKind::Partition => {
            let mut ring = ids.clone();
            ring.shuffle(rng);
            if ring.len() < 2 {
                return network("partition: a single node, nothing to cut".into());
            }
            // A majority ring needs five nodes: with fewer, one of the other shapes.
            let shapes = if ring.len() >= 5 { 4 } else { 3 };
            match rng.gen_range(0..shapes) {
                0 => {
                    let (a, b) = ring.split_at(ring.len() / 2);
                    c.net.cut(a, b)?;
                    network(format!("partition {} | {}", names(a), names(b)))
                }
                3 => {
                    // Each node hears its k nearest ring neighbours on either side
                    // (symmetric, so connections work both ways): every node sees a
                    // majority, no two see the same one.
                    for (node, deaf) in majority_ring(&ring) {
                        c.net.drop_inbound(node, &deaf, None)?;
                    }
                    network(format!("majority ring {}", names(&ring)))
                }
                1 => {
                    let m = master.unwrap_or(ring[0]);
                    let others: Vec<u64> = ids.iter().copied().filter(|i| *i != m).collect();
                    c.net.cut(&[m], &others)?;
                    let scope = if master.is_some() {
                        Scope::Master
                    } else {
                        Scope::Network
                    };
                    Ok((
                        format!("isolate n{m} (master: {})", master.is_some()),
                        scope,
                    ))
                }
                _ => {
                    // One way: the source's packets never reach the sink; the sink's
                    // still reach the source.
                    let from = if rng.gen_bool(0.5) {
                        master.unwrap_or(ring[0])
                    } else {
                        ring[0]
                    };
                    let to = *ring.iter().find(|x| **x != from).expect("two nodes");
                    c.net.drop_inbound(to, &[from], None)?;
                    network(format!("one-way drop n{from} -> n{to}"))
                }
            }
        }
        NemesisKind::Loss => {
            let pct = rng.gen_range(20..=50);
            for &i in &ids {
                c.net.drop_inbound(i, &ids, Some(pct))?;
            }
            network(format!("{pct}% packet loss between {}", names(&ids)))
        }
    }
}

/// A majority ring over `ring`: each node and whom it must not hear. Each hears its k
/// nearest neighbours on either side (symmetric, so connections work both ways), so
/// every node sees a majority and no two see the same one.
fn majority_ring(ring: &[u64]) -> Vec<(u64, Vec<u64>)> {
    let n = ring.len();
    let k = (n / 2).div_ceil(2);
    (0..n)
        .map(|j| {
            let hears: Vec<u64> = (1..=k)
                .flat_map(|d| [ring[(j + d) % n], ring[(j + n - d) % n]])
                .collect();
            let deaf = ring
                .iter()
                .copied()
                .filter(|x| *x != ring[j] && !hears.contains(x))
                .collect();
            (ring[j], deaf)
        })
        .collect()
}

/// Runs faults until `duration` has passed since the nemesis started, then heals.
pub async fn run(
    kinds: Vec<NemesisKind>,
    cluster: &Mutex<Cluster>,
    recorder: &Recorder,
    mut rng: StdRng,
    duration: Duration,
    quiet: Duration,
    fault_max: Duration,
) -> anyhow::Result<Vec<FaultInterval>> {
    let deadline = tokio::time::Instant::now() + duration;
    let mut faults = Vec::new();
    loop {
        tokio::time::sleep_until((tokio::time::Instant::now() + quiet).min(deadline)).await;
        for crash in cluster.lock().await.check_alive() {
            recorder.record(|h, t| h.fault(t, &format!("crash (not the nemesis): {crash}")));
            eprintln!("jepsen: a broker crashed: {crash}");
        }
        if kinds.is_empty() || tokio::time::Instant::now() >= deadline {
            break;
        }
        let kind = *kinds.choose(&mut rng).expect("kinds not empty");
        // The window boundary comes first: sends invoked from here on are after it.
        let start_ms = recorder.now_ms();
        recorder.record(|h, t| h.fault(t, &format!("start {kind:?}").to_lowercase()));
        let (description, scope) = inject(kind, cluster, &mut rng).await?;
        recorder.record(|h, t| h.fault(t, &format!("started {description}")));
        eprintln!("jepsen: {:>7.1} s  {description}", start_ms as f64 / 1000.0);
        let hold_ms =
            rng.gen_range(fault_max.as_millis() as u64 / 2..=fault_max.as_millis() as u64);
        tokio::time::sleep_until(
            (tokio::time::Instant::now() + Duration::from_millis(hold_ms)).min(deadline),
        )
        .await;
        cluster.lock().await.heal()?;
        let end_ms = recorder.now_ms();
        recorder.record(|h, t| h.fault(t, &format!("end {description}")));
        eprintln!("jepsen: {:>7.1} s  healed", end_ms as f64 / 1000.0);
        faults.push(FaultInterval {
            kind: format!("{kind:?}").to_lowercase(),
            description,
            scope,
            start_ms,
            end_ms,
            recovery_ms: None,
            write_stall_ms: None,
        });
    }
    Ok(faults)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fault_is_scoped_by_whom_it_hit() {
        assert_eq!(Scope::of(&[2], 3, Some(2)), Scope::Master);
        assert_eq!(Scope::of(&[1], 3, Some(2)), Scope::Followers);
        assert_eq!(Scope::of(&[1], 3, None), Scope::Followers);
        assert_eq!(Scope::of(&[1, 2], 3, Some(3)), Scope::Majority);
        assert_eq!(Scope::of(&[1, 2], 5, Some(2)), Scope::Master);
    }

    #[test]
    fn a_majority_ring_is_symmetric_and_leaves_each_node_a_majority() {
        let grudge: std::collections::BTreeMap<u64, Vec<u64>> =
            majority_ring(&[1, 2, 3, 4, 5]).into_iter().collect();
        assert_eq!(grudge[&1], vec![3, 4]);
        for (a, deaf) in &grudge {
            assert_eq!(deaf.len(), 2, "n{a} hears itself and two others of five");
            for b in deaf {
                assert!(grudge[b].contains(a), "n{a} and n{b} cut both ways");
            }
        }
    }
}
