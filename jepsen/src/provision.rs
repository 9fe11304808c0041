//! The binaries under test: given, or built by cargo as Jepsen's `db` step installs its
//! database. The unsafe build (a planted bug) goes to a target dir of its own, so it can
//! never replace the binaries people run.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context};

#[derive(Clone, Debug)]
pub struct Binaries {
    pub namesrv: PathBuf,
    pub broker: PathBuf,
}

const NAMESRV: &str = "raftmq-namesrv";
const BROKER: &str = "raftmq-broker";

impl Binaries {
    pub fn in_dir(dir: &Path) -> anyhow::Result<Self> {
        let b = Binaries {
            namesrv: dir.join(NAMESRV),
            broker: dir.join(BROKER),
        };
        for p in [&b.namesrv, &b.broker] {
            if !p.is_file() {
                bail!("--bin-dir {}: {} is missing", dir.display(), p.display());
            }
        }
        Ok(b)
    }

    /// Builds the name server and broker with cargo (`profile`; the planted-bug feature
    /// when `planted`) and returns the executables cargo reports.
    pub fn build(workspace: &Path, profile: &str, planted: bool) -> anyhow::Result<Self> {
        let mut cargo = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        cargo
            .current_dir(workspace)
            .args(["build", "-p", "raftmq", "--bin", NAMESRV, "--bin", BROKER])
            .args([
                "--profile",
                profile,
                "--message-format=json-render-diagnostics",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if planted {
            let target = workspace.join("target").join("jepsen-unsafe");
            cargo
                .args(["--features", "fault-injection", "--target-dir"])
                .arg(target);
        }
        eprintln!(
            "jepsen: building the binaries under test ({profile}{})",
            if planted { ", planted bug" } else { "" }
        );
        let out = cargo.output().context("running cargo build")?;
        if !out.status.success() {
            bail!(
                "cargo build of the binaries under test failed ({})",
                out.status
            );
        }
        let mut namesrv = None;
        let mut broker = None;
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let Ok(msg) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            let Some(exe) = msg.get("executable").and_then(|e| e.as_str()) else {
                continue;
            };
            match msg["target"]["name"].as_str() {
                Some(NAMESRV) => namesrv = Some(PathBuf::from(exe)),
                Some(BROKER) => broker = Some(PathBuf::from(exe)),
                _ => {}
            }
        }
        Ok(Binaries {
            namesrv: namesrv.context("cargo reported no raftmq-namesrv executable")?,
            broker: broker.context("cargo reported no raftmq-broker executable")?,
        })
    }
}
