//! `TailMap`: where the most recent records start, by index.
//!
//! Raft reads entries by index (replication to followers, applying committed entries)
//! and truncates by index (a follower whose uncommitted tail conflicts with the leader).
//! Those touch the newest records almost always, so the CommitLog keeps the start
//! offset and term of the last `TAIL_MAP_ENTRIES_MAX` records in memory, 16 bytes each;
//! an older index is found by scanning its segment (see `raft_log`).

use std::collections::VecDeque;

/// Records remembered: 1 Mi records, 16 MiB.
pub(super) const TAIL_MAP_ENTRIES_MAX: usize = 1 << 20;

#[derive(Debug, Default)]
pub(crate) struct TailMap {
    /// Index of `entries[0]`.
    first_index: u64,
    /// (record offset, term) of consecutive indexes from `first_index`.
    entries: VecDeque<(u64, u64)>,
}

impl TailMap {
    /// Remembers that record `index` starts at `offset`. Indexes arrive consecutively;
    /// a gap (recovery starting past the first records) restarts the map.
    pub(super) fn push(&mut self, index: u64, offset: u64, term: u64) {
        if self.entries.is_empty() || index != self.first_index + self.entries.len() as u64 {
            self.entries.clear();
            self.first_index = index;
        }
        if let Some(&(last_offset, last_term)) = self.entries.back() {
            assert!(offset > last_offset, "records start at increasing offsets");
            assert!(term >= last_term, "terms never go back in a log");
        }
        self.entries.push_back((offset, term));
        if self.entries.len() > TAIL_MAP_ENTRIES_MAX {
            self.entries.pop_front();
            self.first_index += 1;
        }
    }

    /// (record offset, term) of `index`, if remembered.
    pub(super) fn get(&self, index: u64) -> Option<(u64, u64)> {
        let i = index.checked_sub(self.first_index)?;
        self.entries.get(usize::try_from(i).ok()?).copied()
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

    #[test]
    fn remembers_consecutive_indexes_and_truncates() {
        let mut map = TailMap::default();
        map.push(5, 100, 1);
        map.push(6, 150, 1);
        map.push(7, 200, 2);
        assert_eq!(map.get(4), None);
        assert_eq!(map.get(6), Some((150, 1)));
        map.truncate_from(7);
        assert_eq!(map.get(7), None);
        map.push(7, 200, 3);
        assert_eq!(map.get(7), Some((200, 3)));
        // A gap restarts the map.
        map.push(20, 900, 3);
        assert_eq!(map.get(6), None);
        assert_eq!(map.get(20), Some((900, 3)));
    }
}
