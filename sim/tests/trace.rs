//! A seed's trace is a pure function of the seed: two `sim replay --trace` runs in fresh
//! processes write the same bytes. The trace holds what the issue asks a reader to find
//! (faults, Raft role and term changes, network requests, sends, deliveries), and `sim
//! inspect` reads it.
//!
//! `RUSTFLAGS="--cfg madsim" CARGO_TARGET_DIR=target/sim cargo test -p sim --test trace`
#![cfg(madsim)]

use std::process::Command;

fn replay(seed: u64, trace: &std::path::Path) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_sim"))
        .args(["replay", "--seed", &seed.to_string(), "--trace"])
        .arg(trace)
        .output()
        .expect("the sim binary runs");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn the_same_seed_writes_a_byte_identical_trace() {
    let seed: u64 = std::env::var("TRACE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(7);
    println!("seed {seed} (TRACE_SEED=<n> to pick another)");
    let dir = std::env::temp_dir().join(format!("sim-trace-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (a, b) = (dir.join("a.jsonl"), dir.join("b.jsonl"));
    let first = replay(seed, &a);
    let second = replay(seed, &b);
    let verdict = |out: &str| {
        out.lines()
            .find(|l| l.starts_with(&format!("seed {seed} (")))
            .map(str::to_string)
    };
    assert!(verdict(&first).is_some(), "{first}");
    assert_eq!(verdict(&first), verdict(&second));
    let (ta, tb) = (std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    assert!(ta.len() > 100_000, "a trace of {} bytes", ta.len());
    if ta != tb {
        let at = ta
            .iter()
            .zip(&tb)
            .position(|(x, y)| x != y)
            .unwrap_or(ta.len().min(tb.len()));
        panic!(
            "seed {seed}: the traces differ from byte {at} ({} vs {} bytes)",
            ta.len(),
            tb.len()
        );
    }
    let text = String::from_utf8(ta).unwrap();
    for wanted in [
        "\"target\":\"sim::nemesis\"",
        "role changed; re-registering",
        "vote is changing",
        "request sent",
        "request received",
        "\\\"f\\\":\\\"send\\\"",
        "\\\"f\\\":\\\"deliver\\\"",
        "\\\"f\\\":\\\"read\\\"",
    ] {
        assert!(text.contains(wanted), "the trace has no {wanted}");
    }
    // The first plain send of the run (a lane's send may be a delayed one instead).
    let marker = "\\\"f\\\":\\\"send\\\",\\\"value\\\":\\\"";
    let at = text.find(marker).expect("a send in the trace") + marker.len();
    let value = &text[at..at + text[at..].find('\\').expect("the value ends")];
    let inspect = Command::new(env!("CARGO_BIN_EXE_sim"))
        .arg("inspect")
        .arg(&a)
        .args(["--msg", value])
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&inspect.stdout);
    assert!(inspect.status.success(), "{shown}");
    assert!(
        shown.contains(&format!("send invoke {value}")),
        "{value}: {shown}"
    );
    std::fs::remove_dir_all(&dir).ok();
}
