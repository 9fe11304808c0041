//! What one seed found: the verdict `sim replay` prints and `sim run` / `sim campaign`
//! read back. Plain data, so it builds outside the simulator too.

use history::checker::{Report, Undelivered};
use serde::Serialize;

/// What one seed found.
#[derive(Clone, Debug, Default, Serialize, serde::Deserialize)]
pub struct Outcome {
    pub valid: bool,
    pub swarm: String,
    pub report: Report,
    pub undelivered: Vec<(String, Undelivered)>,
    /// Liveness failures: no master, no convergence, consumers that never caught up.
    pub liveness: Vec<String>,
    /// Safety failures the checker does not see in the history (divergent logs).
    pub safety: Vec<String>,
    pub deliveries: usize,
    /// Fault events (injections and heals, consumer churn).
    pub faults: usize,
    /// For each fault aimed at a group's master: how long that group took no write
    /// (`history::stall`), in ms; `None` when it took none for the rest of the run.
    #[serde(default)]
    pub master_stalls_ms: Vec<Option<i64>>,
}

impl Outcome {
    /// One line: what failed.
    pub fn problems(&self) -> String {
        let r = &self.report;
        let mut p = Vec::new();
        let list = |p: &mut Vec<String>, name: &str, v: &[String]| {
            if !v.is_empty() {
                p.push(format!("{name} {:?}", &v[..v.len().min(5)]));
            }
        };
        if r.lost.len() != r.lost_tail || !r.valid {
            list(&mut p, "lost", &r.lost);
        }
        list(&mut p, "unexpected", &r.unexpected);
        list(&mut p, "failed-but-read", &r.failed_but_read);
        list(&mut p, "inconsistent", &r.inconsistent_offsets);
        list(&mut p, "fifo", &r.fifo_violations);
        list(&mut p, "diverged", &r.diverged);
        list(
            &mut p,
            "tx-uncommitted-delivered",
            &r.tx_uncommitted_delivered,
        );
        list(&mut p, "tx-committed-lost", &r.tx_committed_lost);
        list(&mut p, "delayed-early", &r.delayed_early);
        list(&mut p, "delayed-lost", &r.delayed_lost);
        list(&mut p, "sent-back-lost", &r.sent_back_lost);
        for (group, u) in &self.undelivered {
            if !u.missing.is_empty() {
                p.push(format!(
                    "undelivered to {group}: {} ({} after a loss) {:?}",
                    u.missing.len(),
                    u.skipped_after_loss.len(),
                    &u.missing[..u.missing.len().min(5)]
                ));
            }
        }
        list(&mut p, "safety", &self.safety);
        list(&mut p, "liveness", &self.liveness);
        p.join("; ")
    }
}

/// The broker group whose master a fault description names (`kill broker-a-r2 (master)`).
fn master_group(description: &str) -> Option<&str> {
    let at = description.find(" (master)")?;
    let node = description[..at].rsplit(' ').next()?;
    let (group, replica) = node.rsplit_once('-')?;
    replica.strip_prefix('r')?.parse::<u32>().ok()?;
    Some(group)
}

/// Each master fault's write stall in `events` (see [`Outcome::master_stalls_ms`]).
pub fn master_stalls_ms(events: &[history::history::Event]) -> Vec<Option<i64>> {
    use history::history::F;
    events
        .iter()
        .filter(|e| e.f == F::Fault)
        .filter_map(|e| Some((e.time_ms, master_group(&e.value)?)))
        .map(|(at, group)| history::stall::write_stall_ms(events, at, Some(group)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn master_faults_name_their_group() {
        assert_eq!(master_group("kill broker-a-r2 (master)"), Some("broker-a"));
        assert_eq!(
            master_group("isolate broker-b-r1 (master) from everyone"),
            Some("broker-b")
        );
        assert_eq!(master_group("pause broker-a-r3"), None);
        assert_eq!(
            master_group("power loss on every replica of broker-a"),
            None
        );
    }
}
