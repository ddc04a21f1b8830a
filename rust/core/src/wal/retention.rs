//! Retention: deletes whole, non-active segments from the oldest on, first by age
//! (largest batch max timestamp older than now - retention_ms), then by size (while
//! the rest of the log without the oldest segment is still >= retention_bytes).
//!
//! Deletion is crash safe: rename to `*.deleted`, fsync the directory, move the log
//! start in the checkpoint, then unlink (a crash in between leaves `*.deleted` files
//! that the next open removes).

use std::fs;
use std::io;
use std::sync::atomic::Ordering;

use super::checkpoint;
use super::segment::segment_path;
use super::{lock, Shared, WalError};

pub(crate) fn apply(
    shared: &Shared,
    retention_ms: Option<i64>,
    retention_bytes: Option<i64>,
    now_ms: i64,
) -> Result<usize, WalError> {
    if retention_ms.is_none() && retention_bytes.is_none() {
        return Ok(0);
    }
    let io_err = |what: &str, e: io::Error| shared.storage_err(what, e);
    let victims = {
        let mut state = shared.write_state();
        let segs = &state.segments;
        // The last segment is the active one and is never deleted.
        let closed = segs.len() - 1;
        let mut n = 0;
        if let Some(ms) = retention_ms {
            let cutoff = now_ms.saturating_sub(ms);
            while n < closed {
                match segs[n]
                    .largest_timestamp()
                    .map_err(|e| io_err("reading", e))?
                {
                    Some(ts) if ts < cutoff => n += 1,
                    _ => break,
                }
            }
        }
        if let Some(limit) = retention_bytes {
            let mut total: u64 = segs[n..].iter().map(|s| s.size).sum();
            while n < closed && (total - segs[n].size) as i64 >= limit {
                total -= segs[n].size;
                n += 1;
            }
        }
        if n == 0 {
            return Ok(0);
        }
        let victims: Vec<_> = state.segments.drain(..n).collect();
        let new_start = state.segments[0].base;
        if new_start > shared.log_start.load(Ordering::Acquire) {
            shared.log_start.store(new_start, Ordering::Release);
        }
        if shared.recovery_point.load(Ordering::Acquire) < new_start {
            shared.recovery_point.store(new_start, Ordering::Release);
        }
        victims
    };
    let dir = &shared.dir;
    let mut renamed = Vec::new();
    for v in &victims {
        for suffix in [".log", ".index", ".timeindex"] {
            let from = segment_path(dir, v.base, suffix);
            let to = segment_path(dir, v.base, &format!("{suffix}.deleted"));
            // A deleted segment must not keep a descriptor in the pool's cache.
            shared.files.forget(&from);
            match fs::rename(&from, &to) {
                Ok(()) => renamed.push(to),
                Err(e) if e.kind() == io::ErrorKind::NotFound && suffix != ".log" => {}
                Err(e) => return Err(io_err("renaming a segment for deletion", e)),
            }
        }
    }
    checkpoint::fsync_dir(dir).map_err(|e| io_err("fsync of the directory", e))?;
    shared
        .write_checkpoint()
        .map_err(|e| io_err("writing checkpoint", e))?;
    for p in renamed {
        fs::remove_file(&p).map_err(|e| io_err("unlinking a deleted segment", e))?;
    }
    Ok(victims.len())
}

/// Moves the log start up to `offset` (Kafka's DeleteRecords) and deletes every
/// closed segment wholly below it; returns the log start afterwards.
///
/// The log start may land inside a segment: reads below it are refused from now on
/// and the checkpoint carries it across a restart, while the segment itself stays
/// until a later call (or retention) passes its end. An offset below the current
/// log start changes nothing; one above the high watermark is OffsetOutOfRange.
pub(crate) fn delete_records(shared: &Shared, offset: i64) -> Result<i64, WalError> {
    let io_err = |what: &str, e: io::Error| shared.storage_err(what, e);
    let (victims, new_start) = {
        let mut state = shared.write_state();
        // Both bounds are read under the write lock, as reads do under the read lock.
        let hw = shared.high_watermark.load(Ordering::Acquire);
        let start = shared.log_start.load(Ordering::Acquire);
        if offset < 0 || offset > hw {
            return Err(WalError::OffsetOutOfRange(format!(
                "cannot delete records before offset {offset}: the log holds [{start}, {hw}] ({})",
                shared.dir.display()
            )));
        }
        if offset <= start {
            return Ok(start);
        }
        let segs = &state.segments;
        // A closed segment goes when the next one starts at or below the new log start.
        let mut n = 0;
        while n + 1 < segs.len() && segs[n + 1].base <= offset {
            n += 1;
        }
        let victims: Vec<_> = state.segments.drain(..n).collect();
        shared.log_start.store(offset, Ordering::Release);
        // Only the first remaining segment's base is known fsynced by the deletion.
        let first_base = state.segments[0].base;
        if shared.recovery_point.load(Ordering::Acquire) < first_base {
            shared.recovery_point.store(first_base, Ordering::Release);
        }
        (victims, offset)
    };
    let dir = &shared.dir;
    let mut renamed = Vec::new();
    for v in &victims {
        for suffix in [".log", ".index", ".timeindex"] {
            let from = segment_path(dir, v.base, suffix);
            let to = segment_path(dir, v.base, &format!("{suffix}.deleted"));
            // A deleted segment must not keep a descriptor in the pool's cache.
            shared.files.forget(&from);
            match fs::rename(&from, &to) {
                Ok(()) => renamed.push(to),
                Err(e) if e.kind() == io::ErrorKind::NotFound && suffix != ".log" => {}
                Err(e) => return Err(io_err("renaming a segment for deletion", e)),
            }
        }
    }
    if !renamed.is_empty() {
        checkpoint::fsync_dir(dir).map_err(|e| io_err("fsync of the directory", e))?;
    }
    // The new log start is durable before the caller acknowledges it.
    shared
        .write_checkpoint()
        .map_err(|e| io_err("writing checkpoint", e))?;
    for p in renamed {
        fs::remove_file(&p).map_err(|e| io_err("unlinking a deleted segment", e))?;
    }
    Ok(new_start)
}

impl super::Wal {
    /// Moves the log start up to `offset` (DeleteRecords), deleting closed segments
    /// wholly below it; returns the new log start. `offset` above the high watermark
    /// (or negative) is [`WalError::OffsetOutOfRange`].
    pub fn delete_records(&self, offset: i64) -> Result<i64, WalError> {
        self.check_open()?;
        // Serialised with retention and with swaps of cleaned segments (swap.rs), which
        // must find the segments they replace still in place.
        let _serial = lock(&self.shared.retention_lock);
        delete_records(&self.shared, offset)
    }
}

#[cfg(test)]
mod delete_records_tests {
    use super::super::{Wal, WalConfig, WalError, WalHooks, HEADER_LEN, LOG_OVERHEAD};
    use std::fs;
    use std::path::PathBuf;

    /// A one-record v2 batch of `payload` filler bytes with a valid CRC.
    fn batch(payload: usize) -> Vec<u8> {
        let total = HEADER_LEN + payload;
        let mut b = vec![0u8; total];
        b[8..12].copy_from_slice(&((total - LOG_OVERHEAD) as i32).to_be_bytes());
        b[16] = 2;
        b[43..51].copy_from_slice(&(-1i64).to_be_bytes());
        b[57..61].copy_from_slice(&1i32.to_be_bytes());
        let crc = crate::crc32c::crc32c(&b[21..]);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
        b
    }

    fn dir(tag: &str) -> PathBuf {
        let p = std::env::temp_dir().join(format!(
            "streamcore-wal-delete-records-{}-{tag}",
            std::process::id()
        ));
        let _ = fs::remove_dir_all(&p);
        p
    }

    #[test]
    fn delete_records_moves_the_log_start_drops_whole_segments_and_survives_reopen() {
        let d = dir("moves");
        let c = WalConfig {
            // Two 161-byte batches per segment.
            segment_bytes: 2 * 161,
            ..WalConfig::default()
        };
        let wal = Wal::open(&d, c.clone(), WalHooks::default()).unwrap();
        for _ in 0..7 {
            wal.append(&batch(100)).unwrap();
        }
        assert_eq!(wal.segment_count(), 4);
        // Inside the second segment [2, 3]: the first segment goes, the second stays.
        assert_eq!(wal.delete_records(3).unwrap(), 3);
        assert_eq!(wal.log_start_offset(), 3);
        assert_eq!(wal.segment_count(), 3);
        assert!(matches!(
            wal.read(2, 1000),
            Err(WalError::OffsetOutOfRange(_))
        ));
        assert!(!wal.read(3, 1000).unwrap().is_empty());
        // Lower than the log start: nothing changes.
        assert_eq!(wal.delete_records(1).unwrap(), 3);
        // Beyond the high watermark: refused.
        assert!(matches!(
            wal.delete_records(8),
            Err(WalError::OffsetOutOfRange(_))
        ));
        // Up to the high watermark: every closed segment goes, the active one stays.
        assert_eq!(wal.delete_records(7).unwrap(), 7);
        assert_eq!(wal.segment_count(), 1);
        wal.close().unwrap();
        drop(wal);
        let wal = Wal::open(&d, c, WalHooks::default()).unwrap();
        assert_eq!((wal.log_start_offset(), wal.high_watermark()), (7, 7));
        wal.close().unwrap();
        let _ = fs::remove_dir_all(&d);
    }
}
