//! The newest log entries, in memory, as the log reads them back.
//!
//! openraft reads entries right after appending them: the leader to replicate them to
//! each follower, every replica to apply them once committed. Served from the CommitLog,
//! each of those reads copies the whole unread tail of a segment out of the page cache
//! into a fresh buffer; served from here, it clones reference-counted `Bytes`.
//! Entries are cached in their read-back form (a message as `Stored`, offsets assigned),
//! so a read gives the same entries whichever way it is served.

use std::collections::VecDeque;

use openraft::{Entry, EntryPayload};

use crate::types::{GroupRaft, GroupRequest};

/// Bytes of message bodies kept at most.
const CACHE_BYTES_MAX: usize = 32 << 20;
/// Entries kept at most.
const CACHE_ENTRIES_MAX: usize = 1 << 16;

#[derive(Default)]
pub(crate) struct EntryCache {
    /// Raft index of `entries[0]`.
    first: u64,
    entries: VecDeque<Entry<GroupRaft>>,
    bytes: usize,
}

fn size_of(entry: &Entry<GroupRaft>) -> usize {
    match &entry.payload {
        EntryPayload::Normal(GroupRequest::Stored(messages)) => {
            messages.iter().map(|m| m.len()).sum()
        }
        _ => 64,
    }
}

impl EntryCache {
    /// Caches an entry just appended. Entries arrive consecutively; a gap restarts the
    /// cache.
    pub(crate) fn push(&mut self, entry: Entry<GroupRaft>) {
        let index = entry.log_id.index;
        if self.entries.is_empty() || index != self.first + self.entries.len() as u64 {
            self.entries.clear();
            self.bytes = 0;
            self.first = index;
        }
        self.bytes += size_of(&entry);
        self.entries.push_back(entry);
        while self.bytes > CACHE_BYTES_MAX || self.entries.len() > CACHE_ENTRIES_MAX {
            let old = self
                .entries
                .pop_front()
                .expect("over a limit means not empty");
            self.bytes -= size_of(&old);
            self.first += 1;
        }
    }

    /// Entries `[from, to)`, if every one of them is cached.
    pub(crate) fn get(&self, from: u64, to: u64) -> Option<Vec<Entry<GroupRaft>>> {
        let end = self.first + self.entries.len() as u64;
        if from < self.first || to > end || from >= to {
            return None;
        }
        let (a, b) = ((from - self.first) as usize, (to - self.first) as usize);
        Some(self.entries.range(a..b).cloned().collect())
    }

    /// Forgets entry `index` and every later one.
    pub(crate) fn truncate_from(&mut self, index: u64) {
        let keep = index.saturating_sub(self.first) as usize;
        while self.entries.len() > keep {
            let gone = self.entries.pop_back().expect("longer than keep");
            self.bytes -= size_of(&gone);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use openraft::{CommittedLeaderId, LogId};

    fn entry(index: u64) -> Entry<GroupRaft> {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
            payload: EntryPayload::Normal(GroupRequest::Stored(vec![Bytes::from(vec![0; 100])])),
        }
    }

    #[test]
    fn serves_only_complete_ranges_and_truncates() {
        let mut cache = EntryCache::default();
        for i in 5..10 {
            cache.push(entry(i));
        }
        assert_eq!(cache.get(5, 10).unwrap().len(), 5);
        assert!(cache.get(4, 6).is_none());
        assert!(cache.get(8, 11).is_none());
        cache.truncate_from(8);
        assert!(cache.get(7, 9).is_none());
        assert_eq!(cache.get(6, 8).unwrap()[1].log_id.index, 7);
        cache.push(entry(8));
        assert_eq!(cache.get(8, 9).unwrap().len(), 1);
        // A gap restarts it.
        cache.push(entry(20));
        assert!(cache.get(8, 9).is_none());
        assert_eq!(cache.get(20, 21).unwrap().len(), 1);
    }
}
