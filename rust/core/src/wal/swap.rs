//! Swapping a cleaned segment into a live log, and completing a swap at open.
//!
//! The contract is docs/storage.md, "Swapping cleaned segments into a live log"; the
//! pure-Python twin (`_reference/wal/swap.py`) follows the same steps. The `.cleaned`
//! file is checked and indexed first, without the state lock; then `compacted-offset`
//! is raised and the file renamed to `<base>-<end>.log.swap` (the commit point: from
//! then on recovery completes the swap); under the state lock the replaced segments'
//! files become `*.deleted` and the `.swap` becomes `<base>.log`; last the new indexes
//! are written and the `*.deleted` files unlinked.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};

use super::checkpoint;
use super::files::FileCache;
use super::index;
use super::recovery;
use super::segment::{segment_path, Segment};
use super::{lock, Shared, Wal, WalError};

/// One decimal line: below this offset compaction may have removed offsets.
pub const COMPACTED_OFFSET_NAME: &str = "compacted-offset";

/// The files of one segment, by suffix.
const SEGMENT_SUFFIXES: [&str; 3] = [".log", ".index", ".timeindex"];

/// File name of the committed swap of the segments with a base in [`base`, `end`).
pub(crate) fn swap_name(base: i64, end: i64) -> String {
    format!("{base:020}-{end:020}.log.swap")
}

/// (base, end) of a `<base:020>-<end:020>.log.swap` name.
fn parse_swap_name(name: &str) -> Option<(i64, i64)> {
    let stem = name.strip_suffix(".log.swap")?;
    let (base, end) = stem.split_once('-')?;
    let digits = |s: &str| s.len() == 20 && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(base) || !digits(end) {
        return None;
    }
    Some((base.parse().ok()?, end.parse().ok()?))
}

/// Base offset of a segment file name (`<base:020>` + `.log`, `.index` or `.timeindex`).
fn segment_file_base(name: &str) -> Option<i64> {
    let (stem, _) = name.split_once('.')?;
    let suffix = &name[stem.len()..];
    if stem.len() != 20
        || !stem.bytes().all(|b| b.is_ascii_digit())
        || !SEGMENT_SUFFIXES.contains(&suffix)
    {
        return None;
    }
    stem.parse().ok()
}

fn storage(path: &Path, what: &str, e: io::Error) -> WalError {
    WalError::Storage(format!("{}: {what}: {e}", path.display()))
}

/// The offset below which compaction may have left gaps (0 when the log was never
/// compacted). An unreadable file is a storage error: it is only replaced atomically.
pub(crate) fn read_compacted_offset(dir: &Path) -> Result<i64, WalError> {
    let path = dir.join(COMPACTED_OFFSET_NAME);
    let bytes = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(storage(&path, "reading", e)),
    };
    let parsed = match std::str::from_utf8(&bytes) {
        Err(e) => Err(format!("not UTF-8: {e}")),
        Ok(text) => match text.trim().parse::<i64>() {
            Ok(v) if v < 0 => Err(format!("negative offset {v}")),
            Ok(v) => Ok(v),
            Err(e) => Err(format!("{e}: {:?}", text.trim())),
        },
    };
    parsed.map_err(|why| {
        WalError::Storage(format!(
            "{}: unreadable compacted offset ({why}); expected one decimal line",
            path.display()
        ))
    })
}

/// Replaces `compacted-offset` with `offset` atomically (temporary file, fsync,
/// rename, fsync of the directory); a crash leaves the old value or the new one.
fn write_compacted_offset(dir: &Path, offset: i64) -> io::Result<()> {
    let path = dir.join(COMPACTED_OFFSET_NAME);
    let tmp = dir.join(format!("{COMPACTED_OFFSET_NAME}.tmp"));
    let written = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(format!("{offset}\n").as_bytes())?;
        f.sync_all()?;
        fs::rename(&tmp, &path)
    })();
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written?;
    checkpoint::fsync_dir(dir)
}

/// Unlinks `path`; a file already gone is fine.
fn unlink_quietly(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// Finishes every committed swap a crash left; returns how many there were.
///
/// For each `<base>-<end>.log.swap`: the files of every segment with a base in
/// [base, end) are deleted and the swap becomes `<base>.log` (the open that follows
/// rebuilds its missing indexes). The directory is fsynced once at the end.
pub(crate) fn complete_swaps(dir: &Path, files: &FileCache) -> Result<usize, WalError> {
    let list = || -> Result<Vec<String>, WalError> {
        let mut names = Vec::new();
        for entry in fs::read_dir(dir).map_err(|e| storage(dir, "listing", e))? {
            let entry = entry.map_err(|e| storage(dir, "listing", e))?;
            if let Ok(name) = entry.file_name().into_string() {
                names.push(name);
            }
        }
        Ok(names)
    };
    let names = list()?;
    let mut swaps: Vec<(String, i64, i64)> = names
        .iter()
        .filter_map(|n| parse_swap_name(n).map(|(b, e)| (n.clone(), b, e)))
        .collect();
    if swaps.is_empty() {
        return Ok(0);
    }
    // Zero-padded names sort by base, then end.
    swaps.sort();
    for (name, base, end) in &swaps {
        for other in &names {
            if let Some(b) = segment_file_base(other) {
                if *base <= b && b < *end {
                    let p = dir.join(other);
                    files.forget(&p);
                    unlink_quietly(&p)
                        .map_err(|e| storage(&p, "removing a replaced segment", e))?;
                }
            }
        }
        let target = segment_path(dir, *base, ".log");
        files.forget(&target);
        let from = dir.join(name);
        fs::rename(&from, &target).map_err(|e| storage(&from, "completing a swap", e))?;
    }
    checkpoint::fsync_dir(dir).map_err(|e| storage(dir, "fsync of the directory", e))?;
    Ok(swaps.len())
}

/// `path` made absolute (against the working directory) with `.` and `..` resolved
/// by name only, as Python's `os.path.abspath` does.
fn lexical_absolute(path: &Path) -> PathBuf {
    let joined = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().unwrap_or_default().join(path)
    };
    let mut out = PathBuf::new();
    for c in joined.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// Takes the log offline after an I/O failure in the swap; the error to return.
fn go_offline(shared: &Shared, e: io::Error) -> WalError {
    let msg = format!(
        "{}: storage failure while swapping in a cleaned segment, log is offline: {e}",
        shared.dir.display()
    );
    if shared.offline.set(msg.clone()).is_ok() {
        if let Some(hook) = &shared.hooks.on_offline {
            hook(&msg);
        }
    }
    WalError::Storage(msg)
}

/// Writes an index file and fsyncs it (not atomic: recovery rebuilds a torn one).
fn write_index_file(path: &Path, data: &[u8]) -> io::Result<()> {
    let mut f = File::create(path)?;
    f.write_all(data)?;
    f.sync_all()
}

/// Checks the cleaned file and builds the segment it becomes at `<base>.log`.
fn scan_cleaned(shared: &Shared, path: &Path, base: i64, end: i64) -> Result<Segment, WalError> {
    let interval = shared.cfg.index_interval_bytes;
    let s = recovery::scan_file(path, base, interval, end)?;
    let mut reason = s.reason;
    if reason.is_none() && s.stop < s.size {
        reason = Some("trailing bytes after the last batch".into());
    }
    if reason.is_none() && s.next_offset > end {
        reason = Some(format!(
            "offsets run to {}, past the replaced range's end {end}",
            s.next_offset - 1
        ));
    }
    if let Some(why) = reason {
        return Err(WalError::CorruptBatch(format!(
            "{}: cleaned segment is malformed at byte {}: {why}",
            path.display(),
            s.stop
        )));
    }
    Ok(Segment {
        base,
        path: segment_path(&shared.dir, base, ".log"),
        files: shared.files.clone(),
        size: s.size,
        next_offset: end,
        index: s.index,
        time_index: s.time_index,
        max_ts: Some(s.max_ts),
        lazy_max_ts: OnceLock::new(),
    })
}

/// Swaps `cleaned` in for the log's segments with a base in [`base`, `end`); see
/// [`Wal::replace_segments`].
fn replace_segments(
    shared: &Arc<Shared>,
    cleaned: &Path,
    base: i64,
    end: i64,
) -> Result<bool, WalError> {
    let dir = &shared.dir;
    if base < 0 || end <= base {
        return Err(WalError::InvalidArgument(format!(
            "replace_segments needs 0 <= base < end, not base={base} end={end}"
        )));
    }
    let expected_name = format!("{base:020}.log.cleaned");
    let named_right = cleaned.file_name().and_then(|n| n.to_str()) == Some(expected_name.as_str());
    let in_dir = lexical_absolute(cleaned).parent() == Some(lexical_absolute(dir).as_path());
    if !named_right || !in_dir {
        return Err(WalError::InvalidArgument(format!(
            "cleaned segment for base {base} must be {}/{expected_name}",
            dir.display()
        )));
    }
    let _retention = lock(&shared.retention_lock);
    let (bases, active_base) = {
        let state = shared.read_state();
        if shared.closed.load(Ordering::Acquire) {
            drop(state);
            let _ = unlink_quietly(cleaned);
            return Ok(false);
        }
        let bases: Vec<i64> = state.segments.iter().map(|s| s.base).collect();
        let active_base = *bases.last().expect("a log has an active segment");
        (bases, active_base)
    };
    if end > active_base {
        return Err(WalError::InvalidArgument(format!(
            "end {end} is past the active segment (base {active_base}): only closed segments are replaced"
        )));
    }
    if !bases.contains(&base) || !bases.contains(&end) {
        // Retention or DeleteRecords removed some of them meanwhile (or the caller is wrong).
        let _ = unlink_quietly(cleaned);
        return Ok(false);
    }
    if !cleaned.exists() {
        return Err(WalError::InvalidArgument(format!(
            "{}: no such cleaned segment",
            cleaned.display()
        )));
    }
    let seg = match scan_cleaned(shared, cleaned, base, end) {
        Ok(seg) => seg,
        Err(e) => {
            let _ = unlink_quietly(cleaned);
            return Err(e);
        }
    };
    let (mut idx, mut tidx) = (Vec::new(), Vec::new());
    index::encode_index(&seg.index, &mut idx);
    index::encode_time_index(&seg.time_index, &mut tidx);
    if let Some(cause) = shared.offline.get() {
        let _ = unlink_quietly(cleaned);
        return Err(WalError::Offline(cause.clone()));
    }
    let swap_path = dir.join(swap_name(base, end));
    let committed = (|| {
        if end > shared.compacted.load(Ordering::Acquire) {
            write_compacted_offset(dir, end)?;
            shared.compacted.store(end, Ordering::Release);
        }
        fs::rename(cleaned, &swap_path)?;
        checkpoint::fsync_dir(dir)
    })();
    committed.map_err(|e| go_offline(shared, e))?;
    // Committed: from here on recovery completes the swap whatever happens.
    let mut renamed: Vec<PathBuf> = Vec::new();
    let finished = (|| -> io::Result<()> {
        {
            let mut state = shared.write_state();
            let first = state.segments.iter().position(|s| s.base == base);
            let last = state.segments.iter().position(|s| s.base == end);
            let (Some(first), Some(last)) = (first, last) else {
                // Only a deletion that skipped the retention lock gets here; the next
                // open completes the swap from the files.
                return Err(io::Error::other(format!(
                    "the segments [{base}, {end}) left the log during the swap"
                )));
            };
            for old in &state.segments[first..last] {
                for suffix in SEGMENT_SUFFIXES {
                    let from = segment_path(dir, old.base, suffix);
                    // Reads that already hold a handle finish on the old file.
                    shared.files.forget(&from);
                    let to = segment_path(dir, old.base, &format!("{suffix}.deleted"));
                    match fs::rename(&from, &to) {
                        Ok(()) => renamed.push(to),
                        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                        Err(e) => return Err(e),
                    }
                }
            }
            fs::rename(&swap_path, &seg.path)?;
            // The name now holds the new file: no handle of the old one may serve it.
            for suffix in SEGMENT_SUFFIXES {
                shared.files.forget(&segment_path(dir, base, suffix));
            }
            state.segments.splice(first..last, [seg]);
        }
        write_index_file(&segment_path(dir, base, ".index"), &idx)?;
        write_index_file(&segment_path(dir, base, ".timeindex"), &tidx)?;
        checkpoint::fsync_dir(dir)?;
        for p in &renamed {
            unlink_quietly(p)?;
        }
        Ok(())
    })();
    finished.map_err(|e| go_offline(shared, e))?;
    Ok(true)
}

impl Wal {
    /// Swaps a cleaned file in for the closed segments with a base in [`base`,
    /// `end`), crash-safely, while appends and reads go on.
    ///
    /// `cleaned` must be `<dir>/<base:020>.log.cleaned`; `base` a segment's base and
    /// `end` a later segment's base, at most the active one's. Returns false (the
    /// file deleted) when those segments are no longer the log's or the log is
    /// closed. Errors: [`WalError::InvalidArgument`] for bad arguments (the file is
    /// left alone), [`WalError::CorruptBatch`] when the cleaned file is malformed (it
    /// is deleted), [`WalError::Storage`] on an I/O failure (the log goes offline
    /// once the swap is committed). Contract: docs/storage.md, "Swapping cleaned
    /// segments into a live log".
    pub fn replace_segments(
        &self,
        cleaned: impl AsRef<Path>,
        base: i64,
        end: i64,
    ) -> Result<bool, WalError> {
        replace_segments(&self.shared, cleaned.as_ref(), base, end)
    }

    /// Offset below which compaction may have removed offsets (0: never compacted).
    pub fn compacted_offset(&self) -> i64 {
        self.shared.compacted.load(Ordering::Acquire)
    }
}
