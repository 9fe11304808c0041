//! What a run tests: workload, faults, durability mode, duration, seed.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use history::mode::{parse_mode, Mode};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Workload {
    /// Producers send unique values to any queue; a consumer group consumes them.
    Queue,
    /// Each producer sends under its own key through a selector, so its messages go to
    /// one queue in order: FIFO is checked on both sides.
    Ordered,
    /// Each producer is a transactional producer of one producer group: transactions
    /// committed, rolled back, left undecided for the broker's check-back, or never
    /// decided. A rolled-back or undecided one must never be seen, a committed one must.
    Tx,
    /// One send in three is delayed (delay level 1 or 2: 1 s or 5 s): never delivered
    /// before its delay, not lost.
    Delay,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, ValueEnum)]
pub enum NemesisKind {
    /// kill -9 a random node, a minority, a majority or the master; restart later.
    Kill,
    /// SIGSTOP a random node, a minority or the master; SIGCONT later.
    Pause,
    /// Partitions between replicas: random halves, majority ring, isolated master,
    /// one-way drop (network namespaces only).
    Partition,
    /// Faults aimed at the current master (kill, pause, or isolate it).
    Leader,
    /// Probabilistic packet loss between replicas (network namespaces only).
    Loss,
    /// Power loss: kill -9 a random node, a minority, a majority or the master, and drop
    /// every write it had not fsynced (data dirs on the lazy FUSE filesystem; root).
    Power,
}

/// How the broker group's master is chosen (the broker's `replication.election`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Election {
    /// Raft elects any replica; a lost master is replaced.
    Raft,
    /// Replica 1 is always master; nothing takes over when it is gone.
    Fixed,
}

/// As the flag spells it.
impl std::fmt::Display for Election {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Election::Raft => "raft",
            Election::Fixed => "fixed",
        })
    }
}

fn parse_election(s: &str) -> Result<Election, String> {
    match s {
        "raft" => Ok(Election::Raft),
        "fixed" => Ok(Election::Fixed),
        other => Err(format!("election {other:?} is not raft or fixed")),
    }
}

#[derive(Args, Clone, Debug)]
pub struct TestOptions {
    #[arg(long, value_enum, default_value = "queue")]
    pub workload: Workload,
    /// Faults to inject, comma-separated.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "kill,pause,partition,leader"
    )]
    pub nemesis: Vec<NemesisKind>,
    /// Seconds of the fault phase (then everything heals and the queues are drained).
    #[arg(long, default_value_t = 120)]
    pub time_limit: u64,
    /// Replicas of the broker group.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=9))]
    pub replicas: u64,
    /// Durability mode, `ack+flush`.
    #[arg(long, default_value = "quorum+sync", value_parser = parse_mode)]
    pub mode: Mode,
    /// `raft` (elected master) or `fixed` (replica 1 is always master).
    #[arg(long, default_value = "raft", value_parser = parse_election)]
    pub election: Election,
    /// Sends per second, all producers together.
    #[arg(long, default_value_t = 100.0)]
    pub rate: f64,
    /// Producer processes (each has one send in flight).
    #[arg(long, default_value_t = 4)]
    pub producers: usize,
    /// Consumer-group instances running at a time (they come and go during the run).
    #[arg(long, default_value_t = 2)]
    pub consumers: usize,
    /// Seconds between the end of one fault and the start of the next.
    #[arg(long, default_value_t = 5)]
    pub quiet_s: u64,
    /// Longest a fault lasts, seconds (each lasts between half of this and this).
    #[arg(long, default_value_t = 10)]
    pub fault_s: u64,
    /// Seed for every random choice of the harness (printed; replays the schedule).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Run a broker build with a planted bug (acknowledging `quorum` sends before a
    /// quorum has them): the run must come out invalid.
    #[arg(long)]
    pub unsafe_build: bool,
    /// Use these binaries instead of building them (a dir with raftmq-namesrv and
    /// raftmq-broker).
    #[arg(long)]
    pub bin_dir: Option<PathBuf>,
    /// Cargo profile for the binaries the harness builds.
    #[arg(long, default_value = "release")]
    pub build_profile: String,
    /// Where results go: `<store>/<test>/<time>/` (default: the jepsen crate's `store/`,
    /// as Jepsen keeps its own).
    #[arg(long)]
    pub store: Option<PathBuf>,
    /// Stay on 127.0.0.x with process faults only, even as root.
    #[arg(long)]
    pub no_netns: bool,
}

impl TestOptions {
    /// The test's name: its directory under the store.
    pub fn name(&self) -> String {
        let workload = match self.workload {
            Workload::Queue => "queue",
            Workload::Ordered => "ordered",
            Workload::Tx => "tx",
            Workload::Delay => "delay",
        };
        let nemesis: Vec<String> = self
            .nemesis
            .iter()
            .map(|n| format!("{n:?}").to_lowercase())
            .collect();
        let mut name = format!("{workload}-{}-{}", self.mode, nemesis.join(","));
        if self.unsafe_build {
            name.push_str("-unsafe");
        }
        name.replace('+', "_")
    }
}
