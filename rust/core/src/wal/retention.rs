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
use super::{Shared, WalError};

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
