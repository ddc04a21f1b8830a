//! Opening a partition directory: stray-file cleanup, checkpoint, clean-shutdown
//! fast path, and the CRC scan that truncates a torn tail.
//!
//! The scan reads segments in large chunks and checks each batch's CRC in memory, so
//! it runs at memory/CRC speed with one `pread` per chunk, never one per batch.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use super::checkpoint::{self, Checkpoint, CLEAN_SHUTDOWN_NAME};
use super::index::{self, IndexPlanner};
use super::segment::{segment_path, HeaderWalk, Segment};
use super::writer::{Active, Unsynced};
use super::{WalConfig, WalError};
use crate::record_batch::header::{BatchHeader, CRC_START, HEADER_LEN, MAGIC_V2};

/// What recovery hands to the log.
pub(crate) struct Opened {
    pub segments: Vec<Segment>,
    pub active: Active,
    pub log_start: i64,
    pub recovery_point: i64,
    /// Scanned files whose contents may not be durable yet.
    pub unsynced: Unsynced,
}

/// Bytes read per `pread` by the recovery scan.
const SCAN_CHUNK: usize = 8 << 20;

const STRAY_SUFFIXES: [&str; 3] = [".deleted", ".tmp", ".cleaned"];

fn storage(path: &Path, what: &str, e: io::Error) -> WalError {
    WalError::Storage(format!("{}: {what}: {e}", path.display()))
}

/// A segment file found on disk, during recovery.
struct Found {
    base: i64,
    path: PathBuf,
    file: File,
    size: u64,
    index: Vec<(u32, u32)>,
    time_index: Vec<(i64, u32)>,
    next_offset: i64,
    /// Planner state to continue appending (the last segment only).
    planner: Option<IndexPlanner>,
    /// Index files must be rewritten from `index`/`time_index`.
    rewrite_indexes: bool,
    /// Contents were scanned (not known durable).
    scanned: bool,
}

fn parse_base(name: &str, suffix: &str) -> Option<i64> {
    let stem = name.strip_suffix(suffix)?;
    if stem.len() == 20 && stem.bytes().all(|b| b.is_ascii_digit()) {
        stem.parse().ok()
    } else {
        None
    }
}

/// Removes leftovers of a crash mid-deletion or mid-checkpoint, and index files
/// without a log; returns the bases of the `.log` files, ascending.
fn tidy_and_list(dir: &Path) -> Result<(Vec<i64>, bool), WalError> {
    let mut bases = Vec::new();
    let mut orphans = Vec::new();
    let mut changed = false;
    let entries = fs::read_dir(dir).map_err(|e| storage(dir, "listing", e))?;
    for entry in entries {
        let entry = entry.map_err(|e| storage(dir, "listing", e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if STRAY_SUFFIXES.iter().any(|s| name.ends_with(s)) {
            let p = entry.path();
            fs::remove_file(&p).map_err(|e| storage(&p, "removing stray file", e))?;
            changed = true;
        } else if let Some(b) = parse_base(name, ".log") {
            bases.push(b);
        } else if let Some(b) =
            parse_base(name, ".index").or_else(|| parse_base(name, ".timeindex"))
        {
            orphans.push((b, entry.path()));
        }
    }
    bases.sort_unstable();
    for (b, p) in orphans {
        if bases.binary_search(&b).is_err() {
            fs::remove_file(&p).map_err(|e| storage(&p, "removing orphan index", e))?;
            changed = true;
        }
    }
    Ok((bases, changed))
}

fn open_log(path: &Path) -> Result<(File, u64), WalError> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| storage(path, "opening", e))?;
    let size = file.metadata().map_err(|e| storage(path, "stat", e))?.len();
    Ok((file, size))
}

fn create_log(dir: &Path, base: i64) -> Result<Found, WalError> {
    let path = segment_path(dir, base, ".log");
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .map_err(|e| storage(&path, "creating", e))?;
    Ok(Found {
        base,
        path,
        file,
        size: 0,
        index: Vec::new(),
        time_index: Vec::new(),
        next_offset: base,
        planner: None,
        rewrite_indexes: true,
        scanned: false,
    })
}

/// Walks headers of trusted bytes and rebuilds both indexes (no CRC).
fn rebuild_from_headers(f: &mut Found, interval: u64) -> Result<(), WalError> {
    let mut planner = IndexPlanner::new(f.base, interval);
    f.index.clear();
    f.time_index.clear();
    let mut next = f.base;
    for item in HeaderWalk::new(&f.file, 0, f.size) {
        let (pos, h) = item.map_err(|e| storage(&f.path, "walking batch headers", e))?;
        planner.plan(
            h.base_offset,
            pos,
            h.max_timestamp,
            &mut f.index,
            &mut f.time_index,
        );
        next = h.next_offset();
    }
    f.next_offset = next;
    f.planner = Some(planner);
    f.rewrite_indexes = true;
    Ok(())
}

/// Loads the index files of a segment trusted without a CRC scan; rebuilds them
/// from the batch headers when missing or implausible.
fn load_trusted(f: &mut Found, interval: u64) -> Result<(), WalError> {
    let ip = segment_path(f.path.parent().unwrap_or(Path::new(".")), f.base, ".index");
    let tp = segment_path(
        f.path.parent().unwrap_or(Path::new(".")),
        f.base,
        ".timeindex",
    );
    let idx = index::load_index(&ip, f.size).map_err(|e| storage(&ip, "reading", e))?;
    let tix = index::load_time_index(&tp, f.size).map_err(|e| storage(&tp, "reading", e))?;
    match (idx, tix) {
        (Some(i), Some(t)) => {
            f.index = i;
            f.time_index = t;
            Ok(())
        }
        _ => rebuild_from_headers(f, interval),
    }
}

/// For the last segment of a cleanly closed log: walks from the last index entry to
/// the end. Returns false when the file does not end exactly after a whole batch
/// (then the caller scans it).
fn finish_clean_tail(f: &mut Found, interval: u64) -> Result<bool, WalError> {
    let Some(&(last_rel, last_pos)) = f.index.last() else {
        return Ok(f.size == 0);
    };
    let mut expected = f.base + last_rel as i64;
    let mut walk = HeaderWalk::new(&f.file, last_pos as u64, f.size);
    for item in walk.by_ref() {
        let Ok((pos, h)) = item else { return Ok(false) };
        if h.magic != MAGIC_V2 || h.base_offset != expected || h.last_offset_delta < 0 {
            return Ok(false);
        }
        if pos + h.checked_total_len().unwrap_or(u64::MAX / 2) > f.size {
            return Ok(false);
        }
        expected = h.next_offset();
    }
    if walk.position() != f.size {
        return Ok(false);
    }
    f.next_offset = expected;
    // Planner state: position of the batch behind the last time entry, and the
    // largest timestamp from there on.
    let (last_time_pos, max_ts) = match f.time_index.last() {
        None => (None, None),
        Some(&(ts, rel)) => {
            let target = f.base + rel as i64;
            let seg_like = floor_pos(&f.index, f.base, target);
            let mut found = None;
            let mut best = ts;
            for item in HeaderWalk::new(&f.file, seg_like, f.size) {
                let (pos, h) = item.map_err(|e| storage(&f.path, "walking batch headers", e))?;
                if h.base_offset == target {
                    found = Some(pos);
                }
                if found.is_some() {
                    best = best.max(h.max_timestamp);
                }
            }
            match found {
                Some(p) => (Some(p), Some(best)),
                None => return Ok(false),
            }
        }
    };
    f.planner = Some(IndexPlanner::resume(
        f.base,
        interval,
        Some(last_pos as u64),
        last_time_pos,
        max_ts,
    ));
    Ok(true)
}

fn floor_pos(index: &[(u32, u32)], base: i64, offset: i64) -> u64 {
    let i = index.partition_point(|e| (e.0 as i64) <= offset - base);
    if i == 0 {
        0
    } else {
        index[i - 1].1 as u64
    }
}

enum ScanEnd {
    /// Every byte of the file is whole, valid batches.
    Clean,
    /// A bad batch at this position ends the log.
    BadAt(u64, String),
}

/// CRC scan of one segment from its start, expecting offsets from `f.base`.
fn scan(f: &mut Found, interval: u64, buf: &mut Vec<u8>) -> Result<ScanEnd, WalError> {
    let mut planner = IndexPlanner::new(f.base, interval);
    f.index.clear();
    f.time_index.clear();
    f.rewrite_indexes = true;
    f.scanned = true;
    let size = f.size;
    let mut expected = f.base;
    let mut pos = 0u64; // file position of the next batch
    let mut buf_start = 0u64; // file position of buf[0]
    let mut filled = 0usize;
    let end = loop {
        if pos == size {
            break ScanEnd::Clean;
        }
        let mut off = (pos - buf_start) as usize;
        if filled - off < HEADER_LEN {
            refill(
                &f.file,
                &f.path,
                buf,
                &mut buf_start,
                &mut filled,
                pos,
                HEADER_LEN,
            )?;
            off = 0;
            if filled < HEADER_LEN {
                break ScanEnd::BadAt(pos, "batch header cut short by the end of the file".into());
            }
        }
        let h = BatchHeader::parse(&buf[off..off + HEADER_LEN]);
        let Some(total) = h.checked_total_len() else {
            break ScanEnd::BadAt(
                pos,
                format!("batchLength {} cannot frame a batch", h.batch_length),
            );
        };
        if h.magic != MAGIC_V2 {
            break ScanEnd::BadAt(pos, format!("magic {} is not 2", h.magic));
        }
        if pos + total > size {
            break ScanEnd::BadAt(
                pos,
                format!("batch of {total} bytes runs past the end of the file"),
            );
        }
        if ((filled - off) as u64) < total {
            refill(
                &f.file,
                &f.path,
                buf,
                &mut buf_start,
                &mut filled,
                pos,
                total as usize,
            )?;
            off = 0;
        }
        let batch = &buf[off..off + total as usize];
        let crc = crate::crc32c::crc32c(&batch[CRC_START..]);
        if crc != h.crc {
            break ScanEnd::BadAt(
                pos,
                format!(
                    "CRC32C mismatch (stored {:#010x}, computed {crc:#010x})",
                    h.crc
                ),
            );
        }
        if h.base_offset != expected {
            break ScanEnd::BadAt(
                pos,
                format!("baseOffset {} where {expected} was expected", h.base_offset),
            );
        }
        if h.last_offset_delta < 0 {
            break ScanEnd::BadAt(
                pos,
                format!("negative lastOffsetDelta {}", h.last_offset_delta),
            );
        }
        planner.plan(
            h.base_offset,
            pos,
            h.max_timestamp,
            &mut f.index,
            &mut f.time_index,
        );
        expected = h.next_offset();
        pos += total;
    };
    f.next_offset = expected;
    f.planner = Some(planner);
    if let ScanEnd::BadAt(p, _) = &end {
        f.size = *p;
    }
    Ok(end)
}

/// Makes `buf` hold file bytes from `pos`, at least `need` of them when the file has
/// them (growing `buf` for batches larger than a chunk).
fn refill(
    file: &File,
    path: &Path,
    buf: &mut Vec<u8>,
    buf_start: &mut u64,
    filled: &mut usize,
    pos: u64,
    need: usize,
) -> Result<(), WalError> {
    let keep_from = (pos - *buf_start) as usize;
    let kept = filled.saturating_sub(keep_from);
    if kept > 0 {
        buf.copy_within(keep_from..keep_from + kept, 0);
    }
    if buf.len() < need {
        buf.resize(need, 0);
    }
    *buf_start = pos;
    *filled = kept;
    while *filled < buf.len() {
        let n = file
            .read_at(&mut buf[*filled..], pos + *filled as u64)
            .map_err(|e| storage(path, "reading during recovery", e))?;
        if n == 0 {
            break;
        }
        *filled += n;
        if *filled >= need && *filled >= SCAN_CHUNK.min(buf.len()) {
            break;
        }
    }
    Ok(())
}

fn remove_segment_files(dir: &Path, base: i64) -> Result<(), WalError> {
    for suffix in [".log", ".index", ".timeindex"] {
        let p = segment_path(dir, base, suffix);
        match fs::remove_file(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(storage(&p, "removing", e)),
        }
    }
    Ok(())
}

/// Opens and recovers `dir` (see the module docs and the storage contract).
pub(crate) fn open_dir(dir: &Path, cfg: &WalConfig) -> Result<Opened, WalError> {
    fs::create_dir_all(dir).map_err(|e| storage(dir, "creating the directory", e))?;
    let interval = cfg.index_interval_bytes;
    let (bases, mut dir_changed) = tidy_and_list(dir)?;
    let ckpt = checkpoint::read(dir).map_err(WalError::Storage)?;
    let marker_path = dir.join(CLEAN_SHUTDOWN_NAME);
    let marker = marker_path.exists();

    let mut found: Vec<Found> = Vec::with_capacity(bases.len().max(1));
    for &b in &bases {
        let path = segment_path(dir, b, ".log");
        let (file, size) = open_log(&path)?;
        found.push(Found {
            base: b,
            path,
            file,
            size,
            index: Vec::new(),
            time_index: Vec::new(),
            next_offset: b,
            planner: None,
            rewrite_indexes: false,
            scanned: false,
        });
    }
    let (mut log_start, mut recovery_point) = match (ckpt, found.first()) {
        (Some(c), Some(f)) => (c.log_start_offset.max(f.base), c.recovery_point),
        (Some(c), None) => (c.log_start_offset, c.log_start_offset),
        (None, Some(f)) => (f.base, f.base),
        (None, None) => (0, 0),
    };
    if found.is_empty() {
        found.push(create_log(dir, log_start)?);
        dir_changed = true;
    }
    recovery_point = recovery_point.max(log_start);

    // Next offsets of segments followed by another are their successor's base.
    for i in 0..found.len().saturating_sub(1) {
        found[i].next_offset = found[i + 1].base;
    }

    let mut clean = false;
    if marker {
        for f in found.iter_mut() {
            load_trusted(f, interval)?;
        }
        let last = found.len() - 1;
        clean = finish_clean_tail(&mut found[last], interval)?;
        if clean {
            recovery_point = found[last].next_offset;
        }
    }
    if !clean {
        let start = found
            .partition_point(|f| f.base <= recovery_point)
            .saturating_sub(1);
        for f in found[..start].iter_mut() {
            load_trusted(f, interval)?;
        }
        let mut buf = vec![0u8; SCAN_CHUNK];
        let mut expected = found[start].base;
        let mut keep = found.len();
        for (i, f) in found.iter_mut().enumerate().skip(start) {
            if f.base != expected {
                if expected < recovery_point {
                    return Err(WalError::Storage(format!(
                        "{}: segment starts at offset {} but the log before it ends at {expected}, \
                         below the recovery point {recovery_point}: fsynced data is missing",
                        f.path.display(),
                        f.base
                    )));
                }
                keep = i;
                break;
            }
            match scan(f, interval, &mut buf)? {
                ScanEnd::Clean => expected = f.next_offset,
                ScanEnd::BadAt(pos, why) => {
                    if f.next_offset < recovery_point {
                        return Err(WalError::Storage(format!(
                            "{}: corrupt record batch at byte {pos} ({why}) below the recovery \
                             point {recovery_point}: data that was fsynced is damaged; refusing \
                             to truncate it",
                            f.path.display()
                        )));
                    }
                    f.file
                        .set_len(pos)
                        .map_err(|e| storage(&f.path, "truncating a torn tail", e))?;
                    keep = i + 1;
                    break;
                }
            }
        }
        let end = found[keep - 1].next_offset;
        if end < recovery_point {
            let last = &found[keep - 1];
            return Err(WalError::Storage(format!(
                "{}: the log ends at offset {end} (byte {}) below the recovery point \
                 {recovery_point}: data that was fsynced is missing",
                last.path.display(),
                last.size
            )));
        }
        for f in found.drain(keep..) {
            drop(f.file);
            remove_segment_files(dir, f.base)?;
            dir_changed = true;
        }
        // A segment truncated to nothing at the end that does not start where the
        // log ends cannot take appends at its name's offset: drop it.
        while found.len() > 1 {
            let last = &found[found.len() - 1];
            if last.size == 0 && last.base != found[found.len() - 2].next_offset {
                let f = found.pop().expect("len > 1");
                remove_segment_files(dir, f.base)?;
                dir_changed = true;
            } else {
                break;
            }
        }
    }
    let last_idx = found.len() - 1;
    if found[last_idx].planner.is_none() {
        rebuild_from_headers(&mut found[last_idx], interval)?;
    }
    let hw = found[last_idx].next_offset;
    log_start = log_start.min(hw);
    // Everything left on disk is whole, checked and (below) fsynced.
    recovery_point = hw;

    // Rewrite rebuilt indexes; the active segment's are reopened for appending.
    for f in found.iter_mut() {
        if f.rewrite_indexes {
            let ip = segment_path(dir, f.base, ".index");
            let tp = segment_path(dir, f.base, ".timeindex");
            index::write_index_files(&ip, &tp, &f.index, &f.time_index)
                .map_err(|e| storage(&ip, "writing index files", e))?;
            dir_changed = true;
        }
    }

    let unsynced = Unsynced {
        files: Vec::new(),
        logs: Vec::new(),
    };
    let mut segments = Vec::with_capacity(found.len());
    let mut active = None;
    let count = found.len();
    for (i, f) in found.into_iter().enumerate() {
        let file = Arc::new(f.file);
        let is_last = i + 1 == count;
        if f.scanned || f.rewrite_indexes {
            // Scanned bytes may sit only in the page cache (after a process crash):
            // make them durable so that the recovery point can move to the end.
            file.sync_data()
                .map_err(|e| storage(&f.path, "fsync after recovery", e))?;
            for p in [
                segment_path(dir, f.base, ".index"),
                segment_path(dir, f.base, ".timeindex"),
            ] {
                File::open(&p)
                    .and_then(|h| h.sync_data())
                    .map_err(|e| storage(&p, "fsync after recovery", e))?;
            }
        }
        if is_last {
            let ip = segment_path(dir, f.base, ".index");
            let tp = segment_path(dir, f.base, ".timeindex");
            let index_file = index::open_for_append(&ip).map_err(|e| storage(&ip, "opening", e))?;
            let time_file = index::open_for_append(&tp).map_err(|e| storage(&tp, "opening", e))?;
            (&*file)
                .seek(SeekFrom::Start(f.size))
                .map_err(|e| storage(&f.path, "seeking", e))?;
            let planner = f
                .planner
                .clone()
                .unwrap_or_else(|| IndexPlanner::new(f.base, interval));
            active = Some(Active {
                base: f.base,
                file: file.clone(),
                index_file,
                time_file,
                size: f.size,
                next_offset: f.next_offset,
                planner,
                // segment_ms counts from the first append of this process.
                first_append: None,
            });
        }
        let max_ts = if is_last {
            Some(f.planner.as_ref().and_then(|p| p.max_ts()))
        } else {
            None
        };
        segments.push(Segment {
            base: f.base,
            path: f.path,
            file,
            size: f.size,
            next_offset: f.next_offset,
            index: f.index,
            time_index: f.time_index,
            max_ts,
            lazy_max_ts: OnceLock::new(),
        });
    }
    let active = active.ok_or_else(|| WalError::Storage("no active segment".into()))?;

    let new_ckpt = Checkpoint {
        log_start_offset: log_start,
        recovery_point,
    };
    if ckpt != Some(new_ckpt) {
        checkpoint::write(dir, &new_ckpt).map_err(|e| storage(dir, "writing checkpoint", e))?;
    }
    if marker {
        fs::remove_file(&marker_path)
            .map_err(|e| storage(&marker_path, "removing clean-shutdown marker", e))?;
        dir_changed = true;
    }
    if dir_changed {
        checkpoint::fsync_dir(dir).map_err(|e| storage(dir, "fsync of the directory", e))?;
    }
    Ok(Opened {
        segments,
        active,
        log_start,
        recovery_point,
        unsynced,
    })
}
