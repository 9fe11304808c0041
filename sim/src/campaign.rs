//! `sim campaign`: many seeds per mode, from a base nobody chose, resumable, with the
//! failures grouped so that thirty copies of one bug read as one line.
//!
//! A campaign directory holds its plan (`plan.json`), one line per seed played
//! (`results.jsonl`, appended as seeds finish, so a killed campaign resumes where it
//! stopped), and what it found: `summary.json` and `report.md`, rewritten at the end,
//! plus `stories/`, the `sim inspect` timeline of the first seed of every failure group.
//!
//! This is the runner's code, never simulated: it plays each seed in a fresh `sim
//! replay` process (see [`Player`]), from plain threads.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use history::mode::{parse_mode, Flush, Mode};
use serde::{Deserialize, Serialize};

use crate::outcome::Outcome;

/// One mode of a campaign, with its default fault set or every fault at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cell {
    pub mode: Mode,
    pub all_faults: bool,
}

impl Cell {
    /// `quorum+sync`, or `quorum+sync/all-faults`.
    pub fn name(&self) -> String {
        match self.all_faults {
            true => format!("{}/all-faults", self.mode),
            false => self.mode.to_string(),
        }
    }

    pub fn parse(name: &str) -> Result<Cell, String> {
        let (mode, all_faults) = match name.strip_suffix("/all-faults") {
            Some(mode) => (mode, true),
            None => (name, false),
        };
        Ok(Cell {
            mode: parse_mode(mode)?,
            all_faults,
        })
    }
}

/// The cells of `--mode`: `all` is the four ack × flush modes with their default
/// faults, and the two sync modes again with every fault on; otherwise the modes
/// listed, with every fault on when `all_faults`.
pub fn cells(modes: &str, all_faults: bool) -> Result<Vec<Cell>, String> {
    const MODES: [&str; 4] = ["quorum+sync", "leader+sync", "quorum+async", "leader+async"];
    if modes == "all" && all_faults {
        return Err("--mode all already plays the sync modes with every fault; \
                    --all-faults goes with a list of modes"
            .into());
    }
    if modes == "all" {
        let mut cells: Vec<Cell> = MODES
            .iter()
            .map(|m| Cell::parse(m))
            .collect::<Result<_, _>>()?;
        let sync: Vec<Cell> = cells
            .iter()
            .filter(|c| c.mode.flush == Flush::Sync)
            .map(|c| Cell {
                all_faults: true,
                ..*c
            })
            .collect();
        cells.extend(sync);
        return Ok(cells);
    }
    let mut cells: Vec<Cell> = Vec::new();
    for m in modes.split(',') {
        let cell = Cell {
            mode: parse_mode(m)?,
            all_faults,
        };
        if cells.contains(&cell) {
            return Err(format!("--mode lists {m} twice"));
        }
        cells.push(cell);
    }
    Ok(cells)
}

/// What a campaign plays: seeds `base..base + seeds` in every cell.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub base: u64,
    pub seeds: u64,
    pub cells: Vec<String>,
    /// `--faults` as given, or the cells' default sets.
    pub faults: Option<String>,
}

impl Plan {
    /// A plan whose seeds fit in `u64`.
    pub fn new(
        base: u64,
        seeds: u64,
        cells: Vec<String>,
        faults: Option<String>,
    ) -> Result<Plan, String> {
        base.checked_add(seeds).ok_or(format!(
            "--base {base} + --seeds {seeds} is past the last seed"
        ))?;
        Ok(Plan {
            base,
            seeds,
            cells,
            faults,
        })
    }

    fn all(&self) -> impl Iterator<Item = (String, u64)> + '_ {
        self.cells
            .iter()
            .flat_map(move |c| (self.base..self.base + self.seeds).map(move |s| (c.clone(), s)))
    }
}

/// One seed played.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SeedRecord {
    pub cell: String,
    pub seed: u64,
    /// `None` when the run ended without a verdict (`error` says why).
    pub outcome: Option<Outcome>,
    pub error: Option<String>,
    pub elapsed_ms: u64,
}

impl SeedRecord {
    pub fn passed(&self) -> bool {
        self.outcome.as_ref().is_some_and(|o| o.valid)
    }
}

/// Why a seed has no verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoVerdict {
    /// The run ended without one (a panic in the cluster's code): a failure, recorded.
    Failed(String),
    /// The seed was not played out: the runner could not start it, or it was killed
    /// from outside. Not recorded; the campaign stops, and resuming plays it again.
    Interrupted(String),
}

impl std::fmt::Display for NoVerdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NoVerdict::Failed(e) => write!(f, "{e}"),
            NoVerdict::Interrupted(e) => write!(f, "interrupted: {e}"),
        }
    }
}

/// Plays seeds and tells how to replay them: the runner's side.
pub trait Player: Sync {
    /// Plays one seed in a fresh process.
    fn play(&self, cell: &Cell, seed: u64) -> Result<Outcome, NoVerdict>;
    /// The command that replays one seed, with its trace.
    fn replay_command(&self, cell: &Cell, seed: u64) -> String;
    /// Replays one seed with a trace under `dir` and renders its `sim inspect` story.
    fn story(&self, cell: &Cell, seed: u64, dir: &Path) -> Result<String, String>;
}

/// The class of a failure and what tells one bug from another: the checker that
/// failed and the first problem it names, numbers blanked.
pub fn signature(record: &SeedRecord) -> Option<String> {
    let Some(o) = &record.outcome else {
        let e = record.error.as_deref().unwrap_or("no verdict");
        return Some(format!("no verdict: {}", blank_numbers(e)));
    };
    if o.valid {
        return None;
    }
    let r = &o.report;
    let first = |v: &[String]| v.first().map(|s| blank_numbers(s)).unwrap_or_default();
    let class = if !o.safety.is_empty() {
        format!("safety: {}", first(&o.safety))
    } else if !r.diverged.is_empty() {
        "checker: diverged".to_string()
    } else if !r.valid && !r.lost.is_empty() {
        "checker: lost acknowledged sends".to_string()
    } else if !r.unexpected.is_empty() {
        "checker: unexpected deliveries".to_string()
    } else if !r.failed_but_read.is_empty() {
        "checker: failed but read".to_string()
    } else if !r.inconsistent_offsets.is_empty() {
        "checker: inconsistent offsets".to_string()
    } else if !r.fifo_violations.is_empty() {
        "checker: FIFO violated".to_string()
    } else if !r.tx_uncommitted_delivered.is_empty() {
        "checker: uncommitted transaction delivered".to_string()
    } else if !r.tx_committed_lost.is_empty() {
        "checker: committed transaction lost".to_string()
    } else if !r.delayed_early.is_empty() {
        "checker: delayed message early".to_string()
    } else if !r.delayed_lost.is_empty() {
        "checker: delayed message lost".to_string()
    } else if !r.sent_back_lost.is_empty() {
        "checker: sent-back message lost".to_string()
    } else if o.undelivered.iter().any(|(_, u)| !u.missing.is_empty()) {
        "checker: undelivered".to_string()
    } else if !o.liveness.is_empty() {
        format!("liveness: {}", first(&o.liveness))
    } else {
        format!("invalid: {}", blank_numbers(&o.problems()))
    };
    Some(class)
}

/// Digits become `N`, so two runs of one bug share a signature.
fn blank_numbers(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_number = false;
    for c in text.chars() {
        if c.is_ascii_digit() {
            if !in_number {
                out.push('N');
            }
            in_number = true;
        } else {
            out.push(c);
            in_number = false;
        }
    }
    out
}

/// One cell's figures.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CellSummary {
    pub cell: String,
    pub played: u64,
    pub passed: u64,
    pub failed: u64,
    /// Failed seeds by class (the signature up to its first colon).
    pub failed_by_class: BTreeMap<String, u64>,
    /// Over passing seeds.
    pub acknowledged: u64,
    pub faults: u64,
    /// Passing seeds that lost an acknowledged tail (allowed by the mode), and the
    /// tail's length across passing seeds.
    pub seeds_with_lost_tail: u64,
    pub lost_tail_p50: u64,
    pub lost_tail_p99: u64,
    pub lost_tail_max: u64,
    /// Faults aimed at a group's master, over passing seeds, and how long that group
    /// took no write after each (ms; `never` counts those it took none after).
    #[serde(default)]
    pub master_faults: u64,
    #[serde(default)]
    pub master_stall_p50_ms: i64,
    #[serde(default)]
    pub master_stall_p99_ms: i64,
    #[serde(default)]
    pub master_stall_max_ms: i64,
    #[serde(default)]
    pub master_stall_never: u64,
    /// Seeds a minute for one job.
    pub seeds_per_min_per_job: f64,
}

/// The seeds that share one signature.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FailureGroup {
    pub signature: String,
    pub count: u64,
    /// (cell, seed), in order.
    pub seeds: Vec<(String, u64)>,
    pub replay: String,
    /// The first seed's `sim inspect` story, under `stories/`.
    pub story: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub plan: Plan,
    pub cells: Vec<CellSummary>,
    pub failures: Vec<FailureGroup>,
}

impl Summary {
    pub fn failed(&self) -> u64 {
        self.cells.iter().map(|c| c.failed).sum()
    }
}

/// Figures and failure groups of the records played so far. `replay` names the
/// command for a (cell, seed).
pub fn summarize(
    plan: &Plan,
    records: &[SeedRecord],
    replay: impl Fn(&str, u64) -> String,
) -> Summary {
    let mut cells = Vec::new();
    for cell in &plan.cells {
        let mine: Vec<&SeedRecord> = records.iter().filter(|r| &r.cell == cell).collect();
        let mut s = CellSummary {
            cell: cell.clone(),
            played: mine.len() as u64,
            ..CellSummary::default()
        };
        let mut tails = Vec::new();
        let mut stalls = Vec::new();
        for r in &mine {
            match (r.passed(), &r.outcome) {
                (true, Some(o)) => {
                    s.passed += 1;
                    s.acknowledged += o.report.acknowledged as u64;
                    s.faults += o.faults as u64;
                    tails.push(o.report.lost_tail as u64);
                    s.master_faults += o.master_stalls_ms.len() as u64;
                    stalls.extend(o.master_stalls_ms.iter().flatten().copied());
                    s.master_stall_never +=
                        o.master_stalls_ms.iter().filter(|m| m.is_none()).count() as u64;
                }
                _ => {
                    s.failed += 1;
                    let sig = signature(r).unwrap_or_default();
                    let class = sig.split(':').next().unwrap_or_default().to_string();
                    *s.failed_by_class.entry(class).or_default() += 1;
                }
            }
        }
        tails.sort_unstable();
        let at = |q: f64| {
            tails
                .get(((tails.len().max(1) - 1) as f64 * q) as usize)
                .copied()
                .unwrap_or(0)
        };
        s.seeds_with_lost_tail = tails.iter().filter(|t| **t > 0).count() as u64;
        s.lost_tail_p50 = at(0.5);
        s.lost_tail_p99 = at(0.99);
        s.lost_tail_max = tails.last().copied().unwrap_or(0);
        let stall = |p| history::stall::percentile(&stalls, p).unwrap_or(0);
        s.master_stall_p50_ms = stall(50.0);
        s.master_stall_p99_ms = stall(99.0);
        s.master_stall_max_ms = stall(100.0);
        let ms: u64 = mine.iter().map(|r| r.elapsed_ms).sum();
        s.seeds_per_min_per_job = s.played as f64 * 60_000.0 / ms.max(1) as f64;
        cells.push(s);
    }
    let mut groups: BTreeMap<String, Vec<(String, u64)>> = BTreeMap::new();
    for r in records.iter().filter(|r| plan.cells.contains(&r.cell)) {
        if let Some(sig) = signature(r) {
            groups
                .entry(sig)
                .or_default()
                .push((r.cell.clone(), r.seed));
        }
    }
    let mut failures: Vec<FailureGroup> = groups
        .into_iter()
        .map(|(signature, mut seeds)| {
            seeds.sort();
            let (cell, seed) = seeds[0].clone();
            FailureGroup {
                signature,
                count: seeds.len() as u64,
                replay: replay(&cell, seed),
                story: None,
                seeds,
            }
        })
        .collect();
    failures.sort_by(|a, b| b.count.cmp(&a.count).then(a.signature.cmp(&b.signature)));
    Summary {
        plan: plan.clone(),
        cells,
        failures,
    }
}

/// The readable report: a table per cell, then one section per failure group.
pub fn render(summary: &Summary, stories: &BTreeMap<String, String>) -> String {
    let p = &summary.plan;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# sim campaign: seeds {}..{} in each of {} cells\n",
        p.base,
        p.base + p.seeds,
        p.cells.len()
    );
    if let Some(faults) = &p.faults {
        let _ = writeln!(out, "Faults: `{faults}`.\n");
    }
    let _ = writeln!(
        out,
        "| cell | played | passed | failed | by class | acknowledged | faults | lost tail: seeds, p50, p99, max | master faults: writes stopped p50, p99, max (ms), never resumed | seeds/min/job |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---|---:|---:|---|---|---:|");
    for c in &summary.cells {
        let classes: Vec<String> = c
            .failed_by_class
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {}, {}, {}, {} | {}: {}, {}, {}, {} | {:.0} |",
            c.cell,
            c.played,
            c.passed,
            c.failed,
            if classes.is_empty() {
                "-".into()
            } else {
                classes.join(", ")
            },
            c.acknowledged,
            c.faults,
            c.seeds_with_lost_tail,
            c.lost_tail_p50,
            c.lost_tail_p99,
            c.lost_tail_max,
            c.master_faults,
            c.master_stall_p50_ms,
            c.master_stall_p99_ms,
            c.master_stall_max_ms,
            c.master_stall_never,
            c.seeds_per_min_per_job,
        );
    }
    if summary.failures.is_empty() {
        let _ = writeln!(out, "\nNo failures.");
        return out;
    }
    let _ = writeln!(out, "\n## Failures, grouped by signature\n");
    for (i, g) in summary.failures.iter().enumerate() {
        let seeds: Vec<String> = g
            .seeds
            .iter()
            .take(20)
            .map(|(c, s)| format!("{s} ({c})"))
            .collect();
        let more = g.seeds.len().saturating_sub(20);
        let _ = writeln!(out, "### {}. {} — {} seeds\n", i + 1, g.signature, g.count);
        let _ = writeln!(
            out,
            "Seeds: {}{}\n",
            seeds.join(", "),
            if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            }
        );
        let _ = writeln!(out, "Replay the first:\n\n```sh\n{}\n```\n", g.replay);
        if let (Some(path), Some(story)) = (&g.story, stories.get(&g.signature)) {
            let lines: Vec<&str> = story.lines().collect();
            let tail = &lines[lines.len().saturating_sub(40)..];
            let _ = writeln!(
                out,
                "The end of its story (whole: `{path}`):\n\n```\n{}\n```\n",
                tail.join("\n")
            );
        }
    }
    out
}

/// The records a directory holds. A line that does not parse is an error naming it
/// (a record of another build, or damage), except a torn last line (the campaign was
/// killed while writing it), which [`run`] cuts off and plays again.
pub fn load_records(dir: &Path) -> Result<Vec<SeedRecord>, String> {
    let path = dir.join("results.jsonl");
    let bytes = match fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    let mut records = Vec::new();
    let whole = bytes.len() - bytes.iter().rev().take_while(|b| **b != b'\n').count();
    for (i, line) in bytes[..whole].split(|b| *b == b'\n').enumerate() {
        if line.is_empty() {
            continue;
        }
        let record = serde_json::from_slice::<SeedRecord>(line).map_err(|e| {
            format!(
                "{} line {}: {e}; was it written by another build? Start a new campaign \
                 with another --out",
                path.display(),
                i + 1
            )
        })?;
        records.push(record);
    }
    Ok(records)
}

/// Opens `dir` for `plan`: a new campaign writes its plan; an existing one must have
/// the same plan (`None` takes the stored one). Returns the plan in effect.
pub fn open(dir: &Path, plan: Option<Plan>) -> Result<Plan, String> {
    let path = dir.join("plan.json");
    let stored: Option<Plan> = match fs::read_to_string(&path) {
        Ok(text) => {
            Some(serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    match (stored, plan) {
        (Some(stored), None) => Ok(stored),
        (Some(stored), Some(plan)) if stored == plan => Ok(stored),
        (Some(stored), Some(plan)) => Err(format!(
            "{} holds another campaign ({stored:?}, asked for {plan:?}): resume it with the \
             same flags or --resume, or choose another --out",
            dir.display()
        )),
        (None, None) => Err(format!("{} holds no campaign to resume", dir.display())),
        (None, Some(plan)) => {
            fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            let text = serde_json::to_string_pretty(&plan).expect("a plan serializes");
            fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
            Ok(plan)
        }
    }
}

/// Plays what `plan` has left in `dir` on `jobs` threads, then writes the summary, the
/// stories of new failure groups and the report. `progress` hears of every seed.
pub fn run(
    dir: &Path,
    plan: &Plan,
    jobs: usize,
    player: &impl Player,
    progress: impl Fn(&SeedRecord, usize, usize) + Sync,
) -> Result<Summary, String> {
    let io_err = |what: &Path, e: io::Error| format!("{}: {e}", what.display());
    let records = load_records(dir)?;
    let done: BTreeSet<(String, u64)> = records.iter().map(|r| (r.cell.clone(), r.seed)).collect();
    let todo: Vec<(String, u64)> = plan.all().filter(|k| !done.contains(k)).collect();
    let results_path = dir.join("results.jsonl");
    let results = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&results_path)
        .map_err(|e| io_err(&results_path, e))?;
    // A torn last line is cut off, so the next record starts a line of its own.
    let bytes = fs::read(&results_path).map_err(|e| io_err(&results_path, e))?;
    let whole = bytes.len() - bytes.iter().rev().take_while(|b| **b != b'\n').count();
    if whole < bytes.len() {
        results
            .set_len(whole as u64)
            .map_err(|e| io_err(&results_path, e))?;
    }
    let results = Mutex::new((results, records));
    let next = AtomicUsize::new(0);
    let cells: BTreeMap<String, Cell> = plan
        .cells
        .iter()
        .map(|c| Ok((c.clone(), Cell::parse(c)?)))
        .collect::<Result<_, String>>()?;
    // Why the campaign stopped early: a record it could not write, or a seed that was
    // not played out.
    let stopped = Mutex::new(None);
    let finished = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..jobs {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((cell, seed)) = todo.get(i) else {
                    return;
                };
                let started = Instant::now();
                let (outcome, error) = match player.play(&cells[cell], *seed) {
                    Ok(outcome) => (Some(outcome), None),
                    Err(NoVerdict::Failed(e)) => (None, Some(e)),
                    Err(NoVerdict::Interrupted(e)) => {
                        let why = format!("seed {seed} ({cell}) was not played out: {e}");
                        stopped.lock().unwrap().get_or_insert(why);
                        next.store(todo.len(), Ordering::Relaxed);
                        return;
                    }
                };
                let record = SeedRecord {
                    cell: cell.clone(),
                    seed: *seed,
                    outcome,
                    error,
                    elapsed_ms: started.elapsed().as_millis() as u64,
                };
                let mut guard = results.lock().unwrap();
                let (file, records) = &mut *guard;
                let line = serde_json::to_string(&record).expect("a record serializes");
                if let Err(e) = writeln!(file, "{line}") {
                    stopped
                        .lock()
                        .unwrap()
                        .get_or_insert(io_err(&results_path, e));
                    next.store(todo.len(), Ordering::Relaxed);
                    return;
                }
                records.push(record);
                let done = finished.fetch_add(1, Ordering::Relaxed) + 1;
                progress(records.last().unwrap(), done, todo.len());
            });
        }
    });
    if let Some(e) = stopped.into_inner().unwrap() {
        return Err(format!("the campaign stopped: {e}; resume it to go on"));
    }
    let (_, records) = results.into_inner().unwrap();
    let mut summary = summarize(plan, &records, |c, s| player.replay_command(&cells[c], s));
    let stories_dir = dir.join("stories");
    let mut stories = BTreeMap::new();
    for group in &mut summary.failures {
        let (cell, seed) = group.seeds[0].clone();
        let name = format!("{}-{seed}.txt", cell.replace(['+', '/'], "_"));
        let path = stories_dir.join(&name);
        let story = match fs::read_to_string(&path) {
            Ok(story) => story,
            Err(_) => {
                fs::create_dir_all(&stories_dir).map_err(|e| io_err(&stories_dir, e))?;
                match player.story(&cells[&cell], seed, &stories_dir) {
                    Ok(story) => {
                        fs::write(&path, &story).map_err(|e| io_err(&path, e))?;
                        story
                    }
                    // Not kept: the next run of the campaign tries again.
                    Err(e) => format!("(no story: {e})"),
                }
            }
        };
        group.story = Some(format!("stories/{name}"));
        stories.insert(group.signature.clone(), story);
    }
    let write = |name: &str, text: String| {
        let path: PathBuf = dir.join(name);
        fs::write(&path, text).map_err(|e| io_err(&path, e))
    };
    write(
        "summary.json",
        serde_json::to_string_pretty(&summary).expect("a summary serializes"),
    )?;
    write("report.md", render(&summary, &stories))?;
    Ok(summary)
}

#[cfg(test)]
mod tests;
