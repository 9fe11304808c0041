//! Where the nodes live and how the network between replicas is cut.
//!
//! As root with `ip` and `nft`, each replica runs in its own network namespace
//! (`rmqj-n<i>`, address 10.77.0.<i>), joined to the host by a veth pair on the bridge
//! `rmqj-br` (10.77.0.254, where the name server and the clients stay). A partition is
//! a set of nft `drop` rules in the receiving namespaces' `inet jepsen` table, matched
//! on the sender's address, so replica-to-replica traffic is cut while clients and the
//! name server still reach every node (as Jepsen's control node does). Otherwise the
//! nodes share loopback at 127.0.0.<10+i> and only process faults are possible.

use std::process::Command;

use anyhow::{bail, Context};

const PREFIX: &str = "rmqj";
const SUBNET: &str = "10.77.0";
const TABLE: &str = "jepsen";

#[derive(Debug)]
pub enum Net {
    Namespaces { nodes: u64 },
    Loopback,
}

fn run(args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .with_context(|| format!("running {}", args.join(" ")))?;
    if !out.status.success() {
        bail!(
            "{} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

fn have(program: &str) -> bool {
    let version = if program == "ip" { "-V" } else { "--version" };
    Command::new(program)
        .arg(version)
        .output()
        .is_ok_and(|o| o.status.success())
}

fn ns(i: u64) -> String {
    format!("{PREFIX}-n{i}")
}

impl Net {
    /// Namespaces when allowed and possible, else loopback; says which and why. One run
    /// at a time per machine: setup removes the namespaces a previous run left.
    pub fn setup(nodes: u64, allow_netns: bool) -> Net {
        if !allow_netns {
            eprintln!("jepsen: --no-netns: nodes on 127.0.0.x, process faults only");
            return Net::Loopback;
        }
        // SAFETY: geteuid has no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        if !root || !have("ip") || !have("nft") {
            eprintln!(
                "jepsen: network namespaces need root, iproute2 and nftables (root: {root}, ip: {}, nft: {}); \
                 falling back to 127.0.0.x with process faults only (partition and loss are skipped)",
                have("ip"),
                have("nft")
            );
            return Net::Loopback;
        }
        Self::cleanup(nodes.max(9));
        match Self::create(nodes) {
            Ok(()) => Net::Namespaces { nodes },
            Err(e) => {
                Self::cleanup(nodes);
                eprintln!("jepsen: could not create network namespaces ({e:#}); falling back to 127.0.0.x with process faults only");
                Net::Loopback
            }
        }
    }

    fn create(nodes: u64) -> anyhow::Result<()> {
        let bridge = format!("{PREFIX}-br");
        run(&["ip", "link", "add", &bridge, "type", "bridge"])?;
        run(&[
            "ip",
            "addr",
            "add",
            &format!("{SUBNET}.254/24"),
            "dev",
            &bridge,
        ])?;
        run(&["ip", "link", "set", &bridge, "up"])?;
        // Where br_netfilter is loaded (Docker hosts), bridged packets would otherwise
        // pass the host's iptables FORWARD chain, which may drop them.
        let _ = run(&[
            "ip",
            "link",
            "set",
            &bridge,
            "type",
            "bridge",
            "nf_call_iptables",
            "0",
        ]);
        for i in 1..=nodes {
            let (ns, veth) = (ns(i), format!("{PREFIX}-v{i}"));
            run(&["ip", "netns", "add", &ns])?;
            run(&[
                "ip", "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &ns,
            ])?;
            run(&["ip", "link", "set", &veth, "master", &bridge, "up"])?;
            run(&[
                "ip",
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{SUBNET}.{i}/24"),
                "dev",
                "eth0",
            ])?;
            run(&["ip", "-n", &ns, "link", "set", "eth0", "up"])?;
            run(&["ip", "-n", &ns, "link", "set", "lo", "up"])?;
            run(&[
                "ip", "netns", "exec", &ns, "nft", "add", "table", "inet", TABLE,
            ])?;
            run(&[
                "ip",
                "netns",
                "exec",
                &ns,
                "nft",
                "add",
                "chain",
                "inet",
                TABLE,
                "input",
                "{ type filter hook input priority 0; policy accept; }",
            ])?;
        }
        Ok(())
    }

    /// Removes namespaces and links a previous run may have left behind.
    fn cleanup(nodes: u64) {
        for i in 1..=nodes {
            let _ = run(&["ip", "netns", "del", &ns(i)]);
            let _ = run(&["ip", "link", "del", &format!("{PREFIX}-v{i}")]);
        }
        let _ = run(&["ip", "link", "del", &format!("{PREFIX}-br")]);
    }

    pub fn describe(&self) -> &'static str {
        match self {
            Net::Namespaces { .. } => "network namespaces (10.77.0.0/24, nft partitions)",
            Net::Loopback => "loopback 127.0.0.x (process faults only)",
        }
    }

    pub fn can_partition(&self) -> bool {
        matches!(self, Net::Namespaces { .. })
    }

    /// Replica `i`'s address (1-based).
    pub fn node_ip(&self, i: u64) -> String {
        match self {
            Net::Namespaces { .. } => format!("{SUBNET}.{i}"),
            Net::Loopback => format!("127.0.0.{}", 10 + i),
        }
    }

    /// Where the name server listens and the clients connect from.
    pub fn host_ip(&self) -> String {
        match self {
            Net::Namespaces { .. } => format!("{SUBNET}.254"),
            Net::Loopback => "127.0.0.10".into(),
        }
    }

    /// A command that runs `program` on replica `i`'s host.
    pub fn command(&self, i: u64, program: &std::path::Path) -> Command {
        match self {
            Net::Namespaces { .. } => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", &ns(i)]).arg(program);
                c
            }
            Net::Loopback => Command::new(program),
        }
    }

    /// Replica `at` drops what arrives from each of `from`; with `loss_pct`, only that
    /// share of it, at random.
    pub fn drop_inbound(&self, at: u64, from: &[u64], loss_pct: Option<u32>) -> anyhow::Result<()> {
        if !self.can_partition() {
            bail!("partitions need network namespaces");
        }
        for &f in from.iter().filter(|f| **f != at) {
            let saddr = self.node_ip(f);
            let mut rule = vec!["ip", "saddr", saddr.as_str()];
            let pct = loss_pct.map(|p| p.min(100).to_string());
            if let Some(p) = &pct {
                rule.extend(["numgen", "random", "mod", "100", "<", p.as_str()]);
            }
            rule.push("drop");
            let ns = ns(at);
            let mut args = vec![
                "ip",
                "netns",
                "exec",
                ns.as_str(),
                "nft",
                "add",
                "rule",
                "inet",
                TABLE,
                "input",
            ];
            args.extend(rule);
            run(&args)?;
        }
        Ok(())
    }

    /// Cuts `a` and `b` apart both ways.
    pub fn cut(&self, a: &[u64], b: &[u64]) -> anyhow::Result<()> {
        for &x in a {
            self.drop_inbound(x, b, None)?;
        }
        for &y in b {
            self.drop_inbound(y, a, None)?;
        }
        Ok(())
    }

    /// Removes every rule.
    pub fn heal(&self) -> anyhow::Result<()> {
        if let Net::Namespaces { nodes } = self {
            for i in 1..=*nodes {
                run(&[
                    "ip",
                    "netns",
                    "exec",
                    &ns(i),
                    "nft",
                    "flush",
                    "chain",
                    "inet",
                    TABLE,
                    "input",
                ])?;
            }
        }
        Ok(())
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        if let Net::Namespaces { nodes } = self {
            Self::cleanup(*nodes);
        }
    }
}
