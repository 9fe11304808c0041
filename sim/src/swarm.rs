//! Swarm testing: each seed draws which faults are on and how hard, so that across
//! seeds the faults meet in many combinations (a seed with only pauses explores other
//! interleavings than one where everything happens at once).

use madsim::rand::Rng;
use serde::Serialize;

/// A kind of fault the nemesis can inject.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultKind {
    /// A replica process crashes (kill -9) and restarts; its page cache survives.
    Kill,
    /// A replica loses power: unsynced bytes gone, tails torn; then it restarts.
    Power,
    /// Every replica of one group loses power at once (a rack or datacenter outage).
    GroupPower,
    /// A replica stops (SIGSTOP) and later resumes.
    Pause,
    /// A replica is cut off from its peers (or from everyone), both ways.
    Partition,
    /// One direction of a replica's links is cut: it can send but not hear, or the
    /// reverse.
    OneWay,
    /// Every link drops a share of packets (TCP retransmits: delays, not loss).
    Loss,
    /// Every link gets slow.
    Latency,
    /// A replica's fsyncs fail with EIO for a while; it is then restarted, as a
    /// supervisor restarts a process that stopped on a storage error.
    Eio,
    /// A name server crashes and restarts (empty: brokers register again).
    Namesrv,
    /// A client host (producer or consumer) is cut off from one group's replicas.
    ClientPartition,
    /// A follower goes down; meanwhile its master deletes the oldest part of its log
    /// (below what every consumer has), so the follower comes back to a snapshot.
    Compact,
}

pub const ALL: [FaultKind; 12] = [
    FaultKind::Kill,
    FaultKind::Power,
    FaultKind::GroupPower,
    FaultKind::Pause,
    FaultKind::Partition,
    FaultKind::OneWay,
    FaultKind::Loss,
    FaultKind::Latency,
    FaultKind::Eio,
    FaultKind::Namesrv,
    FaultKind::ClientPartition,
    FaultKind::Compact,
];

impl std::str::FromStr for FaultKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        ALL.into_iter().find(|k| k.name() == s).ok_or_else(|| {
            let names: Vec<&str> = ALL.iter().map(|k| k.name()).collect();
            format!("fault {s:?}: expected one of {}", names.join(", "))
        })
    }
}

impl FaultKind {
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Kill => "kill",
            FaultKind::Power => "power",
            FaultKind::GroupPower => "group-power",
            FaultKind::Pause => "pause",
            FaultKind::Partition => "partition",
            FaultKind::OneWay => "one-way",
            FaultKind::Loss => "loss",
            FaultKind::Latency => "latency",
            FaultKind::Eio => "eio",
            FaultKind::Namesrv => "namesrv",
            FaultKind::ClientPartition => "client-partition",
            FaultKind::Compact => "compact",
        }
    }
}

/// One seed's draw.
#[derive(Clone, Debug, Serialize)]
pub struct Swarm {
    pub faults: Vec<FaultKind>,
    /// Consumer instances leave (gracefully) and join during the run.
    pub consumer_churn: bool,
    /// Consumer instances also crash (no offset commit, no unregister).
    pub consumer_crash: bool,
    /// Share of faults aimed at a group's current master, in percent.
    pub aim_at_master_pct: u32,
    /// How long a fault lasts, and the quiet between faults.
    pub fault_ms: (u64, u64),
    pub gap_ms: (u64, u64),
    /// Packet loss rate while `loss` is on.
    pub loss_rate: f64,
    /// Highest one-way latency while `latency` is on.
    pub latency_ms: u64,
    /// Chance an fsync fails while `eio` is on.
    pub eio_probability: f64,
    /// madsim's buggify on: the buggify points in `raft` (late AppendEntries, so
    /// entries commit on a bare majority; late fsync completions) fire.
    pub buggify: bool,
    /// How long each disk operation takes, in µs (none: instant).
    pub disk_latency_us: Option<std::ops::Range<u64>>,
    /// Small CommitLog segments (bytes), so segment ends are met often.
    pub segment_bytes: Option<u64>,
}

impl Swarm {
    /// Each fault kind on with probability 1/2 (at least one), consumer churn likewise,
    /// and how hard each is, from the simulation's seeded RNG.
    pub fn draw(allowed: &[FaultKind]) -> Swarm {
        let mut rng = madsim::rand::thread_rng();
        let mut faults: Vec<FaultKind> = allowed
            .iter()
            .copied()
            .filter(|_| rng.gen_bool(0.5))
            .collect();
        if faults.is_empty() && !allowed.is_empty() {
            faults.push(allowed[rng.gen_range(0..allowed.len())]);
        }
        let consumer_churn = rng.gen_bool(0.5);
        let short = rng.gen_range(200..1_000);
        let quiet = rng.gen_range(100..1_500);
        let mut swarm = Swarm {
            faults,
            consumer_churn,
            consumer_crash: consumer_churn && rng.gen_bool(0.5),
            aim_at_master_pct: [0, 30, 70, 100][rng.gen_range(0..4)],
            fault_ms: (short, short + rng.gen_range(200..2_500)),
            gap_ms: (quiet / 2, quiet),
            loss_rate: [0.05, 0.2, 0.4][rng.gen_range(0..3)],
            latency_ms: [50, 200, 800][rng.gen_range(0..3)],
            eio_probability: [0.1, 0.5, 1.0][rng.gen_range(0..3)],
            buggify: rng.gen_bool(0.5),
            disk_latency_us: [None, Some(20..200), Some(200..2_000)][rng.gen_range(0..3)].clone(),
            segment_bytes: [None, Some(64 << 10), Some(16 << 10)][rng.gen_range(0..3)],
        };
        // Compaction deletes whole segments: with 1 GiB ones nothing would go.
        if swarm.faults.contains(&FaultKind::Compact) && swarm.segment_bytes.is_none() {
            swarm.segment_bytes = Some(16 << 10);
        }
        swarm
    }

    /// Whether any fault can lose a replica's unsynced writes.
    pub fn power_loss(&self) -> bool {
        self.faults
            .iter()
            .any(|k| matches!(k, FaultKind::Power | FaultKind::GroupPower))
    }

    /// One line for the runner's output.
    pub fn describe(&self) -> String {
        let names: Vec<&str> = self.faults.iter().map(|k| k.name()).collect();
        format!(
            "faults {} (each {}–{} ms, {}% at masters){}{}{}{}",
            names.join(","),
            self.fault_ms.0,
            self.fault_ms.1,
            self.aim_at_master_pct,
            match (self.consumer_churn, self.consumer_crash) {
                (false, _) => "",
                (true, false) => ", consumers churn",
                (true, true) => ", consumers churn and crash",
            },
            if self.buggify { ", buggify" } else { "" },
            match &self.disk_latency_us {
                Some(r) => format!(", disk ops {}–{} µs", r.start, r.end),
                None => String::new(),
            },
            match self.segment_bytes {
                Some(b) => format!(", {} KiB segments", b >> 10),
                None => String::new(),
            }
        )
    }
}
