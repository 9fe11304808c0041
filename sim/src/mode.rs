//! A durability mode as the seed runner and the Jepsen harness spell it (`quorum+sync`,
//! `leader+async`, ...), and what it may lose.

use raftmq::config::AckMode;
use store::FlushMode;

use crate::checker::LossAllowance;

/// `ack+flush`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mode {
    pub ack: AckMode,
    pub flush: FlushMode,
}

impl Mode {
    /// What the mode may lose under these faults: `ack = leader` an acknowledged tail at
    /// any master change; `flush = async` only on a power loss (kill -9 and pauses keep
    /// the page cache); `quorum + sync` nothing.
    pub fn allowance(self, power_loss: bool) -> LossAllowance {
        let async_loss = self.flush == FlushMode::Async && power_loss;
        if self.ack == AckMode::Leader || async_loss {
            LossAllowance::Tail
        } else {
            LossAllowance::None
        }
    }
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ack = match self.ack {
            AckMode::Quorum => "quorum",
            AckMode::Leader => "leader",
        };
        let flush = match self.flush {
            FlushMode::Sync => "sync",
            FlushMode::Async => "async",
        };
        write!(f, "{ack}+{flush}")
    }
}

pub fn parse_mode(s: &str) -> Result<Mode, String> {
    let (ack, flush) = s
        .split_once('+')
        .ok_or_else(|| format!("mode {s:?}: expected ack+flush, e.g. quorum+sync"))?;
    let ack = match ack {
        "quorum" => AckMode::Quorum,
        "leader" => AckMode::Leader,
        other => return Err(format!("mode {s:?}: ack {other:?} is not quorum or leader")),
    };
    let flush = match flush {
        "sync" => FlushMode::Sync,
        "async" => FlushMode::Async,
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
