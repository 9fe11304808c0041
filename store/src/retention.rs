//! Retention policy: which CommitLog segments to delete. Pure, so it is tested without
//! a disk; `MessageStore` applies it and moves ConsumeQueue min offsets along.
//!
//! Like RocketMQ's `CleanCommitLogService`: a segment goes when its newest message is
//! older than `file_reserved_hours`, or, while the disk is fuller than
//! `disk_max_used_space_ratio`, oldest first until the ratio would be met. The active
//! (last) segment is never deleted, and deletion only ever takes a prefix, so the log
//! stays contiguous.
//!
//! A replicated group's master also passes a *floor*: the CommitLog offset of the first
//! entry some replica has not yet received. Expired segments at or above it are kept,
//! so a replica that was down for longer than `file_reserved_hours` still catches up by
//! log. Disk pressure overrides the floor: a full disk stops the whole broker.

use crate::commit_log::SegmentInfo;

#[derive(Clone, Copy, Debug)]
pub struct RetentionPolicy {
    pub file_reserved_hours: u64,
    pub disk_max_used_space_ratio: f64,
}

/// Number of oldest segments whose newest message is older than `file_reserved_hours`
/// (and, with `floor_offset`, that hold no byte at or above it): what age alone deletes.
pub fn expired_prefix(
    policy: &RetentionPolicy,
    segments: &[SegmentInfo],
    now_ms: i64,
    floor_offset: Option<u64>,
) -> usize {
    let reserved_ms =
        i64::try_from(policy.file_reserved_hours.saturating_mul(3_600_000)).unwrap_or(i64::MAX);
    let deletable = segments.len().saturating_sub(1);
    segments[..deletable]
        .iter()
        .take_while(|s| {
            floor_offset.is_none_or(|floor| s.base + s.size <= floor)
                && s.max_store_timestamp_ms
                    .is_some_and(|ts| now_ms.saturating_sub(ts) > reserved_ms)
        })
        .count()
}

/// Number of oldest segments to delete: the [expired prefix](expired_prefix), then,
/// while the disk is over its ratio, more. `floor_offset`: keep expired segments
/// holding bytes at or above it.
pub fn segments_to_delete(
    policy: &RetentionPolicy,
    segments: &[SegmentInfo],
    now_ms: i64,
    disk_total_bytes: u64,
    disk_used_bytes: u64,
    floor_offset: Option<u64>,
) -> usize {
    let deletable = segments.len().saturating_sub(1);
    let expired = expired_prefix(policy, segments, now_ms, floor_offset);
    let mut count = expired;
    let mut used = disk_used_bytes.saturating_sub(segments[..expired].iter().map(|s| s.size).sum());
    let limit = (disk_total_bytes as f64 * policy.disk_max_used_space_ratio) as u64;
    while count < deletable && used > limit {
        used = used.saturating_sub(segments[count].size);
        count += 1;
    }
    assert!(count <= deletable, "retention must keep the active segment");
    count
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR_MS: i64 = 3_600_000;

    fn segs(timestamps: &[Option<i64>]) -> Vec<SegmentInfo> {
        timestamps
            .iter()
            .enumerate()
            .map(|(i, ts)| SegmentInfo {
                base: i as u64 * 100,
                size: 100,
                max_store_timestamp_ms: *ts,
            })
            .collect()
    }

    #[test]
    fn deletes_expired_prefix_only() {
        let policy = RetentionPolicy {
            file_reserved_hours: 72,
            disk_max_used_space_ratio: 0.75,
        };
        let now = 100 * HOUR_MS;
        let s = segs(&[Some(0), Some(HOUR_MS), Some(99 * HOUR_MS), Some(0), None]);
        // The fourth is old too, but a young one precedes it: only the prefix goes.
        assert_eq!(
            segments_to_delete(&policy, &s, now, 1_000_000, 500, None),
            2
        );
    }

    #[test]
    fn never_deletes_the_active_segment() {
        let policy = RetentionPolicy {
            file_reserved_hours: 0,
            disk_max_used_space_ratio: 0.0,
        };
        let s = segs(&[Some(0), Some(0), None]);
        assert_eq!(
            segments_to_delete(&policy, &s, i64::MAX, 1000, 1000, None),
            2
        );
        assert_eq!(
            segments_to_delete(&policy, &segs(&[None]), i64::MAX, 1000, 1000, None),
            0
        );
    }

    #[test]
    fn disk_pressure_deletes_oldest_until_under_ratio() {
        let policy = RetentionPolicy {
            file_reserved_hours: 72,
            disk_max_used_space_ratio: 0.5,
        };
        let s = segs(&[Some(0), Some(0), Some(0), Some(0), None]);
        // 1000 total, 700 used, limit 500: two segments of 100 must go, none for age.
        assert_eq!(segments_to_delete(&policy, &s, 0, 1000, 700, None), 2);
        assert_eq!(expired_prefix(&policy, &s, 0, None), 0);
        assert_eq!(segments_to_delete(&policy, &s, 0, 1000, 400, None), 0);
    }

    #[test]
    fn a_floor_keeps_expired_segments_a_replica_needs_but_not_under_disk_pressure() {
        let policy = RetentionPolicy {
            file_reserved_hours: 1,
            disk_max_used_space_ratio: 0.5,
        };
        let s = segs(&[Some(0), Some(0), Some(0), Some(0), None]);
        let now = 10 * HOUR_MS;
        assert_eq!(segments_to_delete(&policy, &s, now, 1000, 100, None), 4);
        // A replica still needs offset 150 (in the second segment): one goes.
        assert_eq!(
            segments_to_delete(&policy, &s, now, 1000, 100, Some(150)),
            1
        );
        // Exactly at a segment's end: that segment may go too.
        assert_eq!(
            segments_to_delete(&policy, &s, now, 1000, 100, Some(200)),
            2
        );
        assert_eq!(segments_to_delete(&policy, &s, now, 1000, 100, Some(0)), 0);
        // A disk over its ratio deletes past the floor; age alone would delete none.
        assert_eq!(segments_to_delete(&policy, &s, now, 1000, 700, Some(0)), 2);
        assert_eq!(expired_prefix(&policy, &s, now, Some(0)), 0);
        assert_eq!(expired_prefix(&policy, &s, now, Some(150)), 1);
    }
}
