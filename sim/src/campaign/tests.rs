//! Tests of `sim campaign`: cells, signatures, summaries, and resuming a directory.

use std::sync::atomic::AtomicU64;

use history::checker::Report;

use super::*;

fn passed(tail: usize) -> Outcome {
    Outcome {
        valid: true,
        report: Report {
            valid: true,
            acknowledged: 100,
            lost_tail: tail,
            ..Report::default()
        },
        faults: 7,
        ..Outcome::default()
    }
}

fn stuck(group: &str) -> Outcome {
    Outcome {
        valid: false,
        liveness: vec![format!(
            "replicas did not converge within 75000 ms: waiting: {group} logs differ"
        )],
        ..passed(0)
    }
}

fn lost() -> Outcome {
    Outcome {
        valid: false,
        report: Report {
            valid: false,
            lost: vec!["p1-40".into()],
            ..Report::default()
        },
        ..Outcome::default()
    }
}

fn record(cell: &str, seed: u64, outcome: Outcome) -> SeedRecord {
    SeedRecord {
        cell: cell.into(),
        seed,
        outcome: Some(outcome),
        error: None,
        elapsed_ms: 500,
    }
}

#[test]
fn the_mode_all_is_four_modes_and_the_sync_ones_with_every_fault() {
    let names: Vec<String> = cells("all", false)
        .unwrap()
        .iter()
        .map(Cell::name)
        .collect();
    assert_eq!(
        names,
        [
            "quorum+sync",
            "leader+sync",
            "quorum+async",
            "leader+async",
            "quorum+sync/all-faults",
            "leader+sync/all-faults"
        ]
    );
    for name in &names {
        assert_eq!(&Cell::parse(name).unwrap().name(), name);
    }
    assert!(cells("quorum+sometimes", false).is_err());
    assert!(cells("all", true).is_err());
    assert!(cells("leader+sync,leader+sync", false)
        .unwrap_err()
        .contains("twice"));
    assert!(Plan::new(u64::MAX - 3, 10, vec![], None).is_err());
}

#[test]
fn copies_of_one_bug_share_a_signature() {
    let a = signature(&record("leader+sync", 1, stuck("broker-a"))).unwrap();
    let b = signature(&record("leader+sync", 9, stuck("broker-a"))).unwrap();
    assert_eq!(a, b);
    assert_eq!(
        a,
        "liveness: replicas did not converge within N ms: waiting: broker-a logs differ"
    );
    let l = signature(&record("quorum+sync", 2, lost())).unwrap();
    assert_eq!(l, "checker: lost acknowledged sends");
    assert_eq!(signature(&record("quorum+sync", 3, passed(0))), None);
    let panicked = SeedRecord {
        outcome: None,
        error: Some("no verdict (exit 101): panicked at store/src/x.rs:12:5".into()),
        ..record("quorum+sync", 4, passed(0))
    };
    assert_eq!(
        signature(&panicked).unwrap(),
        "no verdict: no verdict (exit N): panicked at store/src/x.rs:N:N"
    );
}

#[test]
fn a_summary_counts_classes_and_tails_and_groups_failures() {
    let plan = Plan {
        base: 10,
        seeds: 5,
        cells: vec!["leader+sync".into(), "quorum+sync".into()],
        faults: None,
    };
    let records = vec![
        record("leader+sync", 10, passed(0)),
        record("leader+sync", 11, passed(4)),
        record("leader+sync", 12, stuck("broker-a")),
        record("leader+sync", 13, stuck("broker-a")),
        record("quorum+sync", 10, lost()),
        record("quorum+sync", 11, passed(0)),
    ];
    let s = summarize(&plan, &records, |c, seed| format!("replay {c} {seed}"));
    let ls = &s.cells[0];
    assert_eq!((ls.played, ls.passed, ls.failed), (4, 2, 2));
    assert_eq!(ls.failed_by_class["liveness"], 2);
    assert_eq!((ls.seeds_with_lost_tail, ls.lost_tail_max), (1, 4));
    assert_eq!(ls.acknowledged, 200);
    assert_eq!(s.failed(), 3);
    assert_eq!(s.failures.len(), 2);
    assert_eq!(s.failures[0].count, 2, "the larger group first");
    assert_eq!(s.failures[0].replay, "replay leader+sync 12");
    let report = render(&s, &BTreeMap::new());
    assert!(
        report.contains("| leader+sync | 4 | 2 | 2 | liveness 2 |"),
        "{report}"
    );
    assert!(report.contains("— 2 seeds"), "{report}");
}

/// Passes every seed but 3; counts plays; `interrupt_at` is killed from outside.
struct Fake {
    plays: AtomicU64,
    interrupt_at: u64,
}

impl Player for Fake {
    fn play(&self, _: &Cell, seed: u64) -> Result<Outcome, NoVerdict> {
        if seed == self.interrupt_at {
            return Err(NoVerdict::Interrupted("killed by SIGTERM".into()));
        }
        self.plays.fetch_add(1, Ordering::Relaxed);
        Ok(if seed == 3 {
            stuck("broker-b")
        } else {
            passed(0)
        })
    }
    fn replay_command(&self, cell: &Cell, seed: u64) -> String {
        format!("sim replay --seed {seed} --mode {}", cell.mode)
    }
    fn story(&self, _: &Cell, seed: u64, _: &Path) -> Result<String, String> {
        Ok(format!("story of {seed}\nthe end"))
    }
}

#[test]
fn a_campaign_resumes_where_it_stopped() {
    let dir = std::env::temp_dir().join(format!("sim-campaign-test-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    let plan = Plan {
        base: 0,
        seeds: 6,
        cells: vec!["quorum+sync".into()],
        faults: None,
    };
    open(&dir, Some(plan.clone())).unwrap();
    // As if killed after two seeds, mid-way through writing a third line.
    let played: Vec<String> = [0, 1]
        .iter()
        .map(|s| serde_json::to_string(&record("quorum+sync", *s, passed(0))).unwrap())
        .collect();
    fs::write(
        dir.join("results.jsonl"),
        format!("{}\n{{\"cell\":\"quo", played.join("\n")),
    )
    .unwrap();
    // Seed 4 is killed from outside: the campaign stops without a record of it.
    let interrupted = Fake {
        plays: AtomicU64::new(0),
        interrupt_at: 4,
    };
    let e = run(&dir, &plan, 1, &interrupted, |_, _, _| {}).unwrap_err();
    assert!(e.contains("seed 4") && e.contains("resume"), "{e}");
    assert_eq!(
        interrupted.plays.load(Ordering::Relaxed),
        2,
        "seeds 2 and 3"
    );
    let fake = Fake {
        plays: AtomicU64::new(0),
        interrupt_at: u64::MAX,
    };
    let summary = run(&dir, &plan, 2, &fake, |_, _, _| {}).unwrap();
    assert_eq!(fake.plays.load(Ordering::Relaxed), 2, "seeds 4 and 5 only");
    assert_eq!(summary.cells[0].played, 6);
    assert_eq!(summary.failed(), 1);
    let report = fs::read_to_string(dir.join("report.md")).unwrap();
    assert!(report.contains("sim replay --seed 3"), "{report}");
    assert!(report.contains("story of 3"), "{report}");
    // Nothing is left: running again plays nothing, and every record reads back.
    let again = run(&dir, &plan, 2, &fake, |_, _, _| {}).unwrap();
    assert_eq!(fake.plays.load(Ordering::Relaxed), 2);
    assert_eq!(again, summary);
    // A damaged line that is not the last is an error that names it.
    let mut text = fs::read_to_string(dir.join("results.jsonl")).unwrap();
    text.insert_str(0, "{\"cell\": 7}\n");
    fs::write(dir.join("results.jsonl"), text).unwrap();
    let e = load_records(&dir).unwrap_err();
    assert!(e.contains("line 1"), "{e}");
    // Another plan in the same directory is refused.
    let other = Plan { seeds: 7, ..plan };
    assert!(open(&dir, Some(other))
        .unwrap_err()
        .contains("another campaign"));
    let _ = fs::remove_dir_all(&dir);
}
