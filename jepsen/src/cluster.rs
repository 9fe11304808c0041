//! The real processes: one name server on the host and one `raftmq-broker` per replica,
//! each replica in its own network namespace when the harness has them. Each node's
//! output goes to `<out>/n<i>.log` (appended across restarts, with a marker line per
//! start); the name server's to `<out>/namesrv.log`.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use client::instance::ClientInstance;
use client::ClientConfig;
use proto::remoting::body::{from_json, GroupStatus};
use proto::remoting::codes::request;
use proto::remoting::RemotingCommand;

use crate::broker_config::Group;
use crate::lazyfs::LazyFs;
use crate::net::Net;
use crate::opts::{NemesisKind, TestOptions};
use crate::provision::Binaries;

pub const GROUP: &str = "broker-j";
const BROKER_PORT: u16 = 10911;
const REPLICA_PORT: u16 = 10912;
const NAMESRV_PORT: u16 = 9876;

/// A replica's process state as the nemesis left it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Running,
    Paused,
    Killed,
}

struct Node {
    config: PathBuf,
    log: PathBuf,
    child: Option<Child>,
    state: State,
    /// The data dir's lazy filesystem, with the `power` nemesis.
    fs: Option<LazyFs>,
}

pub struct Cluster {
    pub net: Net,
    bins: Binaries,
    out: PathBuf,
    planted: bool,
    namesrv: Option<Child>,
    nodes: BTreeMap<u64, Node>,
    /// For status requests to single replicas.
    instance: Arc<ClientInstance>,
    /// Brokers that exited on their own (not by the nemesis): each one a problem.
    pub crashes: Vec<String>,
}

fn log_file(path: &Path, marker: &str) -> anyhow::Result<File> {
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    writeln!(
        f,
        "=== jepsen: {marker} at {}",
        humantime::format_rfc3339_millis(std::time::SystemTime::now())
    )?;
    Ok(f)
}

fn signal(child: &Child, sig: libc::c_int) {
    // SAFETY: kill(2) on a pid we spawned and have not reaped.
    unsafe {
        libc::kill(child.id() as libc::pid_t, sig);
    }
}

impl Cluster {
    pub fn new(net: Net, bins: Binaries, out: &Path, opts: &TestOptions) -> anyhow::Result<Self> {
        let namesrv_addr = format!("{}:{NAMESRV_PORT}", net.host_ip());
        let group = Group {
            name: GROUP.into(),
            replica_ips: (1..=opts.replicas).map(|i| net.node_ip(i)).collect(),
            broker_port: BROKER_PORT,
            replica_port: REPLICA_PORT,
            namesrv_addr: namesrv_addr.clone(),
            mode: opts.mode,
            election: opts.election,
        };
        let mut nodes = BTreeMap::new();
        let lazy = opts.nemesis.contains(&NemesisKind::Power);
        for i in 1..=opts.replicas {
            let data = out.join("data").join(format!("n{i}"));
            let fs = if lazy {
                let backing = out.join("data").join(format!("n{i}.disk"));
                Some(LazyFs::mount(&backing, &data)?)
            } else {
                None
            };
            let path = out.join(format!("n{i}.toml"));
            std::fs::write(&path, group.replica(i, data).to_toml()?)?;
            nodes.insert(
                i,
                Node {
                    config: path,
                    log: out.join(format!("n{i}.log")),
                    child: None,
                    state: State::Killed,
                    fs,
                },
            );
        }
        let instance = ClientInstance::new(
            ClientConfig {
                request_timeout: Duration::from_secs(1),
                ..ClientConfig::with_namesrv(&namesrv_addr)
            },
            None,
        );
        Ok(Cluster {
            net,
            bins,
            out: out.to_path_buf(),
            planted: opts.unsafe_build,
            namesrv: None,
            nodes,
            instance,
            crashes: Vec::new(),
        })
    }

    pub fn namesrv_addr(&self) -> String {
        format!("{}:{NAMESRV_PORT}", self.net.host_ip())
    }

    pub fn ids(&self) -> Vec<u64> {
        self.nodes.keys().copied().collect()
    }

    pub fn state(&self, i: u64) -> State {
        self.nodes[&i].state
    }

    pub fn broker_addr(&self, i: u64) -> String {
        format!("{}:{BROKER_PORT}", self.net.node_ip(i))
    }

    pub fn start_all(&mut self) -> anyhow::Result<()> {
        let log = log_file(&self.out.join("namesrv.log"), "start")?;
        let child = Command::new(&self.bins.namesrv)
            .args(["--listen", &self.namesrv_addr()])
            .stdout(log.try_clone()?)
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .context("starting raftmq-namesrv")?;
        self.namesrv = Some(child);
        for i in self.ids() {
            self.start(i)?;
        }
        Ok(())
    }

    pub fn start(&mut self, i: u64) -> anyhow::Result<()> {
        let mut cmd = self.net.command(i, &self.bins.broker);
        let node = self.nodes.get_mut(&i).expect("a node of the cluster");
        assert_eq!(node.state, State::Killed, "n{i} is already running");
        let log = log_file(&node.log, "start")?;
        cmd.arg("-c")
            .arg(&node.config)
            .env(
                "RUST_LOG",
                std::env::var("RAFTMQ_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdout(log.try_clone()?)
            .stderr(log)
            .stdin(Stdio::null());
        if self.planted {
            cmd.env("RAFTMQ_PLANT_ACK_BEFORE_QUORUM", "1");
        }
        node.child = Some(cmd.spawn().with_context(|| format!("starting n{i}"))?);
        node.state = State::Running;
        Ok(())
    }

    /// kill -9.
    pub fn kill(&mut self, i: u64) {
        self.check_alive();
        let node = self.nodes.get_mut(&i).expect("a node of the cluster");
        if let Some(mut child) = node.child.take() {
            signal(&child, libc::SIGKILL);
            let _ = child.wait();
            let _ = log_file(&node.log, "killed (SIGKILL)");
        }
        node.state = State::Killed;
    }

    /// Power loss: kill -9, then every write the node had not fsynced is gone. Returns
    /// the bytes lost.
    pub fn power_loss(&mut self, i: u64) -> anyhow::Result<u64> {
        self.kill(i);
        let node = &self.nodes[&i];
        let fs = node
            .fs
            .as_ref()
            .context("power loss needs the lazy filesystem")?;
        let lost = fs.lose_unsynced();
        let _ = log_file(
            &node.log,
            &format!("power loss: {lost} unsynced bytes dropped"),
        );
        Ok(lost)
    }

    pub fn pause(&mut self, i: u64) {
        let node = self.nodes.get_mut(&i).expect("a node of the cluster");
        if let (Some(child), State::Running) = (&node.child, node.state) {
            signal(child, libc::SIGSTOP);
            node.state = State::Paused;
        }
    }

    pub fn resume(&mut self, i: u64) {
        let node = self.nodes.get_mut(&i).expect("a node of the cluster");
        if let (Some(child), State::Paused) = (&node.child, node.state) {
            signal(child, libc::SIGCONT);
            node.state = State::Running;
        }
    }

    /// Resumes paused nodes, restarts killed ones, removes every partition.
    pub fn heal(&mut self) -> anyhow::Result<()> {
        self.net.heal()?;
        for i in self.ids() {
            match self.state(i) {
                State::Paused => self.resume(i),
                State::Killed => self.start(i)?,
                State::Running => {}
            }
        }
        Ok(())
    }

    /// Finds nodes that exited on their own (a crash, not the nemesis), records them in
    /// `crashes` and returns them; they stay down until the next heal restarts them.
    pub fn check_alive(&mut self) -> Vec<String> {
        let mut found = Vec::new();
        for (i, node) in &mut self.nodes {
            if let Some(child) = &mut node.child {
                if let Ok(Some(status)) = child.try_wait() {
                    node.child = None;
                    node.state = State::Killed;
                    found.push(format!(
                        "n{i} exited ({status}); see {}",
                        node.log.display()
                    ));
                }
            }
        }
        self.crashes.extend(found.iter().cloned());
        found
    }

    /// Replica `i`'s own view of the group (any replica answers for itself).
    pub async fn status(&self, i: u64) -> anyhow::Result<GroupStatus> {
        let request = RemotingCommand::request(request::RAFTMQ_GROUP_STATUS);
        let response = self
            .instance
            .invoke_ok(&self.broker_addr(i), request)
            .await?;
        Ok(from_json(&response.body)?)
    }

    /// The replica that some running replica names as master, confirmed by the master
    /// itself.
    pub async fn master(&self) -> Option<u64> {
        for i in self.ids() {
            if self.state(i) != State::Running {
                continue;
            }
            if let Ok(s) = self.status(i).await {
                if s.master == Some(s.replica_id) {
                    return Some(i);
                }
            }
        }
        None
    }

    pub fn shutdown(&mut self) {
        for i in self.ids() {
            self.resume(i);
            self.kill(i);
        }
        if let Some(mut child) = self.namesrv.take() {
            signal(&child, libc::SIGKILL);
            let _ = child.wait();
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.shutdown();
    }
}
