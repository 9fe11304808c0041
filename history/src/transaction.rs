//! The transactional workload's values: each names what its producer decides, so a
//! checker knows from the value alone whether the message may be delivered, and every
//! producer of the group answers a check of it the same way (the one that sent it may
//! have died mid-transaction).
//!
//! A value is `{lane}-{seq}-{kind}`, `kind` one of `c` (the local transaction commits),
//! `r` (rolls back), `uc` / `ur` (undecided; a check commits / rolls back) and `un`
//! (undecided, and every check answers unknown: the broker discards it).

/// What a producer says about a transaction: END_TRANSACTION's three states.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Commit,
    Rollback,
    Unknown,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxKind {
    Commit,
    Rollback,
    UnknownThenCommit,
    UnknownThenRollback,
    NeverDecided,
}

impl TxKind {
    pub const ALL: [TxKind; 5] = [
        TxKind::Commit,
        TxKind::Rollback,
        TxKind::UnknownThenCommit,
        TxKind::UnknownThenRollback,
        TxKind::NeverDecided,
    ];

    fn suffix(self) -> &'static str {
        match self {
            TxKind::Commit => "c",
            TxKind::Rollback => "r",
            TxKind::UnknownThenCommit => "uc",
            TxKind::UnknownThenRollback => "ur",
            TxKind::NeverDecided => "un",
        }
    }

    /// The value of a lane's `seq`th transaction of this kind.
    pub fn value(self, lane: &str, seq: u64) -> String {
        format!("{lane}-{seq}-{}", self.suffix())
    }

    /// The kind a transactional value was sent as; `None` for any other value.
    pub fn of(value: &str) -> Option<TxKind> {
        let suffix = value.rsplit('-').next()?;
        TxKind::ALL.into_iter().find(|k| k.suffix() == suffix)
    }

    /// What the local transaction decides.
    pub fn local(self) -> Decision {
        match self {
            TxKind::Commit => Decision::Commit,
            TxKind::Rollback => Decision::Rollback,
            _ => Decision::Unknown,
        }
    }

    /// How any producer of the group answers a check: as the local transaction decided,
    /// or, for an undecided one, as its kind says.
    pub fn on_check(self) -> Decision {
        match self {
            TxKind::Commit | TxKind::UnknownThenCommit => Decision::Commit,
            TxKind::Rollback | TxKind::UnknownThenRollback => Decision::Rollback,
            TxKind::NeverDecided => Decision::Unknown,
        }
    }

    /// Whether the message ends up committed (and so must be delivered).
    pub fn commits(self) -> bool {
        self.on_check() == Decision::Commit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_names_its_kind() {
        for kind in TxKind::ALL {
            let value = kind.value("t1", 17);
            assert_eq!(TxKind::of(&value), Some(kind), "{value}");
        }
        assert_eq!(TxKind::of("p1.0-3"), None);
        assert!(TxKind::UnknownThenCommit.commits());
        assert!(!TxKind::NeverDecided.commits());
        assert_eq!(TxKind::UnknownThenRollback.local(), Decision::Unknown);
    }
}
