//! A durability mode as the seed runner and the Jepsen harness spell it (`quorum+sync`,
//! `leader+async`, ...), and what it may lose.
//!
//! These are the harnesses' own names for the broker's `ack` and `flush_disk_type`
//! settings; each harness maps them onto the broker's configuration where it writes one.

use crate::checker::LossAllowance;

/// When the broker acknowledges a send (the broker's `replication.ack`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ack {
    /// Once a majority of the group holds the message.
    Quorum,
    /// Once the master holds it: a failover may lose a tail.
    Leader,
}

/// When the broker's store syncs an append (the broker's `flush_disk_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flush {
    /// Before the append is acknowledged.
    Sync,
    /// Later, in the background: a power loss may lose a tail.
    Async,
}

/// `ack+flush`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mode {
    pub ack: Ack,
    pub flush: Flush,
}

impl Mode {
    /// What the mode may lose under these faults: `ack = leader` an acknowledged tail at
    /// any master change; `flush = async` only on a power loss (kill -9 and pauses keep
    /// the page cache); `quorum + sync` nothing.
    pub fn allowance(self, power_loss: bool) -> LossAllowance {
        let async_loss = self.flush == Flush::Async && power_loss;
        if self.ack == Ack::Leader || async_loss {
            LossAllowance::Tail
        } else {
            LossAllowance::None
        }
    }
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ack = match self.ack {
            Ack::Quorum => "quorum",
            Ack::Leader => "leader",
        };
        let flush = match self.flush {
            Flush::Sync => "sync",
            Flush::Async => "async",
        };
        write!(f, "{ack}+{flush}")
    }
}

pub fn parse_mode(s: &str) -> Result<Mode, String> {
    let (ack, flush) = s
        .split_once('+')
        .ok_or_else(|| format!("mode {s:?}: expected ack+flush, e.g. quorum+sync"))?;
    let ack = match ack {
        "quorum" => Ack::Quorum,
        "leader" => Ack::Leader,
        other => return Err(format!("mode {s:?}: ack {other:?} is not quorum or leader")),
    };
    let flush = match flush {
        "sync" => Flush::Sync,
        "async" => Flush::Async,
        other => return Err(format!("mode {s:?}: flush {other:?} is not sync or async")),
    };
    Ok(Mode { ack, flush })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_and_name_what_is_wrong() {
        let m = parse_mode("leader+async").unwrap();
        assert_eq!(m.to_string(), "leader+async");
        assert_eq!(m.allowance(false), LossAllowance::Tail);
        assert_eq!(
            parse_mode("quorum+sync").unwrap().allowance(true),
            LossAllowance::None
        );
        let quorum_async = parse_mode("quorum+async").unwrap();
        assert_eq!(quorum_async.allowance(false), LossAllowance::None);
        assert_eq!(quorum_async.allowance(true), LossAllowance::Tail);
        assert!(parse_mode("quorum").unwrap_err().contains("ack+flush"));
        assert!(parse_mode("all+sync").unwrap_err().contains("\"all\""));
        assert!(parse_mode("quorum+lazy").unwrap_err().contains("\"lazy\""));
    }
}
