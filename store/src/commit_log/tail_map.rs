//! `TailMap`: where the most recent records start, by index.
//!
//! Raft reads entries by index (replication to followers, applying committed entries)
//! and truncates by index (a follower whose uncommitted tail conflicts with the leader).
//! Those touch the newest records almost always, so the CommitLog keeps the start
//! offset and log id of the last `TAIL_MAP_ENTRIES_MAX` records in memory;
//! an older index is found by scanning its segment (see `raft_log`).

use std::collections::VecDeque;

use crate::record::LogPosition;

/// Records remembered: 1 Mi records, 24 MiB.
pub(super) const TAIL_MAP_ENTRIES_MAX: usize = 1 << 20;

#[derive(Debug)]
pub(crate) struct TailMap {
    /// Index of `entries[0]`.
    first_index: u64,
    /// (record offset, term, leader) of consecutive indexes from `first_index`.
    entries: VecDeque<(u64, u64, u16)>,
}

/// Reserved at its bound up front: growing by doubling copied the map each time (a
/// fresh broker's first million records spent ≈ 3 % of its CPU there). Untouched
/// capacity costs address space, not memory.
impl Default for TailMap {
    fn default() -> Self {
        TailMap {
            first_index: 0,
            entries: VecDeque::with_capacity(TAIL_MAP_ENTRIES_MAX + 1),
        }
    }
}

impl TailMap {
    /// Remembers that record `index` starts at `offset`. Indexes arrive consecutively;
    /// a gap (recovery starting past the first records) restarts the map.
    pub(super) fn push(&mut self, offset: u64, at: LogPosition) {
        if self.entries.is_empty() || at.index != self.first_index + self.entries.len() as u64 {
            self.entries.clear();
            self.first_index = at.index;
        }
        if let Some(&(last_offset, last_term, _)) = self.entries.back() {
            assert!(offset > last_offset, "records start at increasing offsets");
            assert!(at.term >= last_term, "terms never go back in a log");
        }
        self.entries.push_back((offset, at.term, at.leader));
        if self.entries.len() > TAIL_MAP_ENTRIES_MAX {
            self.entries.pop_front();
            self.first_index += 1;
        }
    }

    /// Record offset and log id of `index`, if remembered.
    pub(super) fn get(&self, index: u64) -> Option<(u64, LogPosition)> {
        let i = index.checked_sub(self.first_index)?;
        let &(offset, term, leader) = self.entries.get(usize::try_from(i).ok()?)?;
        Some((
            offset,
            LogPosition {
                term,
                leader,
                index,
            },
        ))
    }

    /// Forgets `index` and every later one.
    pub(super) fn truncate_from(&mut self, index: u64) {
        let keep = index.saturating_sub(self.first_index) as usize;
        self.entries.truncate(keep);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(term: u64, index: u64) -> LogPosition {
        LogPosition {
            term,
            leader: 1,
            index,
        }
    }

    #[test]
    fn remembers_consecutive_indexes_and_truncates() {
        let mut map = TailMap::default();
        map.push(100, at(1, 5));
        map.push(150, at(1, 6));
        map.push(200, at(2, 7));
        assert_eq!(map.get(4), None);
        assert_eq!(map.get(6), Some((150, at(1, 6))));
        map.truncate_from(7);
        assert_eq!(map.get(7), None);
        map.push(200, at(3, 7));
        assert_eq!(map.get(7), Some((200, at(3, 7))));
        // A gap restarts the map.
        map.push(900, at(3, 20));
        assert_eq!(map.get(6), None);
        assert_eq!(map.get(20), Some((900, at(3, 20))));
    }
}
