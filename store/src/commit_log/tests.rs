//! Unit tests of the CommitLog.

use super::*;
use crate::disk::{SimDisk, SimDiskConfig};

/// A payload of `n` bytes of `byte`; not a RocketMQ message, so these tests open the
/// log without scanning (recovery checks the message layout).
struct Raw(u8, usize);

impl RecordPayload for Raw {
    fn payload_size(&self) -> usize {
        self.1
    }
    fn encode_payload(&self, _payload_offset: u64, out: &mut Vec<u8>) {
        out.extend(std::iter::repeat_n(self.0, self.1));
    }
    fn store_timestamp_ms(&self) -> i64 {
        i64::from(self.0)
    }
}

async fn empty_log(disk: &SimDisk, segment_size: u64) -> CommitLog<SimDisk> {
    CommitLog::open(
        disk.clone(),
        segment_size,
        256,
        &mut Checkpoint::default(),
        None,
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn appends_roll_segments_with_end_records_and_read_back() {
    let disk = SimDisk::new(SimDiskConfig::reliable(1));
    let log = empty_log(&disk, 512).await;
    let mut appended = Vec::new();
    for i in 0..20u8 {
        let a = log.append(&[Raw(i, 60 + usize::from(i))]).await.unwrap();
        appended.push(a.records[0]);
    }
    assert_eq!(log.last_index().await, 20);
    let segments = log.segment_infos();
    assert!(segments.len() > 3, "small segments roll");
    for s in &segments[..segments.len() - 1] {
        assert!(
            s.max_store_timestamp_ms.is_some(),
            "closed segments carry their max timestamp"
        );
        assert!(s.size <= 512);
    }
    for (i, r) in appended.iter().enumerate() {
        let bytes = log
            .read(r.payload_offset, r.payload_size)
            .await
            .unwrap()
            .unwrap();
        assert!(bytes.iter().all(|&b| b == i as u8));
        assert_eq!(
            log.read_unsized(r.payload_offset).await.unwrap().unwrap(),
            bytes
        );
        assert_eq!(r.at.index, i as u64 + 1);
    }
    // A wrong size or an offset that is not a record start is an error, not garbage.
    assert!(log
        .read(appended[3].payload_offset, appended[3].payload_size + 1)
        .await
        .is_err());
    assert!(log.read(appended[3].payload_offset + 4, 10).await.is_err());
    // Past the end: nothing.
    assert_eq!(log.read(log.write_offset() + 100, 10).await.unwrap(), None);
    assert_eq!(log.sync().await.unwrap(), log.write_offset());
    assert_eq!(log.flushed_offset(), log.write_offset());
}

#[tokio::test]
async fn scan_visits_records_in_order_across_segments() {
    let disk = SimDisk::new(SimDiskConfig::reliable(2));
    let log = empty_log(&disk, 512).await;
    let batch: Vec<Raw> = (0..12u8).map(|i| Raw(i, 100)).collect();
    let appended = log.append(&batch).await.unwrap();
    assert_eq!(appended.records.len(), 12);
    let mut seen = Vec::new();
    log.scan(0, log.write_offset(), |r| {
        seen.push((r.payload_offset, r.payload[0]));
        Ok(())
    })
    .await
    .unwrap();
    let expected: Vec<(u64, u8)> = appended
        .records
        .iter()
        .map(|r| r.payload_offset)
        .zip(0..12u8)
        .collect();
    assert_eq!(seen, expected);
}

#[tokio::test]
async fn retention_deletes_a_prefix_but_never_the_last_segment() {
    let disk = SimDisk::new(SimDiskConfig::reliable(3));
    let log = empty_log(&disk, 512).await;
    for i in 0..20u8 {
        log.append(&[Raw(i, 100)]).await.unwrap();
    }
    let count = log.segment_infos().len();
    let min = log.delete_oldest_segments(usize::MAX).await.unwrap();
    assert_eq!(log.segment_infos().len(), 1);
    assert_eq!(min, (count as u64 - 1) * 512);
    assert_eq!(disk.list(DIR).await.unwrap().len(), 1);
    assert_eq!(
        log.read(100, 10).await.unwrap(),
        None,
        "deleted data reads as absent"
    );
}

#[tokio::test]
async fn a_missing_middle_segment_is_reported_by_name() {
    let disk = SimDisk::new(SimDiskConfig::reliable(4));
    let log = empty_log(&disk, 512).await;
    for i in 0..20u8 {
        log.append(&[Raw(i, 100)]).await.unwrap();
    }
    log.sync().await.unwrap();
    disk.remove(&segment_name(1024)).await.unwrap();
    let e = CommitLog::open(disk.clone(), 512, 256, &mut Checkpoint::default(), None)
        .await
        .err()
        .unwrap();
    assert!(e.to_string().contains(&segment_name(1024)), "{e}");
}

/// Appends `bytes` (rounded up to whole records) as records of up to 256 bytes.
async fn fill(log: &CommitLog<SimDisk>, bytes: usize) -> u64 {
    let payloads: Vec<_> = (0..bytes.div_ceil(256))
        .map(|_| Raw(7, 256 - RECORD_HEADER_SIZE))
        .collect();
    log.append(&payloads).await.unwrap().end_offset
}

#[tokio::test]
async fn the_active_segment_is_reserved_ahead_of_the_writer_and_never_past_its_end() {
    let disk = SimDisk::new(SimDiskConfig::reliable(1));
    // A small segment is reserved whole at its first append.
    let small = empty_log(&disk, 4096).await;
    fill(&small, 256).await;
    assert_eq!(disk.reserved_len(&segment_name(0)), Some(4096));

    let disk = SimDisk::new(SimDiskConfig::reliable(2));
    let segment_size = 3 * RESERVE_AHEAD_BYTES;
    let log = empty_log(&disk, segment_size).await;
    let reserved = || disk.reserved_len(&segment_name(0)).unwrap();
    let pos = fill(&log, 1024).await;
    assert_eq!(reserved(), pos + RESERVE_AHEAD_BYTES);
    // Renewed only once half of the lead is written ...
    let first = reserved();
    let pos = fill(&log, (RESERVE_AHEAD_BYTES / 2) as usize - 4096).await;
    assert_eq!(
        reserved(),
        first,
        "renewed at {pos}, before half the lead was used"
    );
    let pos = fill(&log, 8192).await;
    assert_eq!(reserved(), pos + RESERVE_AHEAD_BYTES);
    // ... and up to the segment's end at most, which the last renewal reaches.
    let pos = fill(&log, (2 * RESERVE_AHEAD_BYTES) as usize).await;
    assert!(pos + RESERVE_AHEAD_BYTES > segment_size);
    assert_eq!(reserved(), segment_size);
    // The next segment gets its own reservation when the log rolls into it.
    let pos = fill(&log, (segment_size - pos) as usize).await;
    assert!(pos > segment_size, "the log rolled");
    assert_eq!(
        disk.reserved_len(&segment_name(segment_size)),
        Some(pos + RESERVE_AHEAD_BYTES - segment_size)
    );
}
