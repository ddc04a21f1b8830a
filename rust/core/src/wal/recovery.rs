//! Opening a partition directory: stray-file cleanup, checkpoint, clean-shutdown
//! fast path, and the CRC scan that truncates a torn tail.
//!
//! The scan reads segments in large chunks and checks each batch's CRC in memory, so
//! it runs at memory/CRC speed with one `pread` per chunk, never one per batch.

use std::cell::RefCell;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use super::checkpoint::{self, Checkpoint, CLEAN_SHUTDOWN_NAME};
use super::files::FileCache;
use super::index::{self, IndexPlanner};
use super::segment::{segment_path, HeaderWalk, Segment};
use super::swap;
use super::writer::{Active, Unsynced};
use super::{Wal, WalConfig, WalError, WalHooks, WriterPool};
use crate::record_batch::header::{BatchHeader, CRC_START, HEADER_LEN, MAGIC_V2};

/// What recovery hands to the log.
pub(crate) struct Opened {
    pub segments: Vec<Segment>,
    pub active: Active,
    pub log_start: i64,
    pub recovery_point: i64,
    /// Scanned files whose contents may not be durable yet.
    pub unsynced: Unsynced,
    /// Offsets below it may be missing (removed by compaction); see `swap.rs`.
    pub compacted_offset: i64,
}

/// What opening a directory did to it: the basis of the WARNING an operator reads
/// when recovery dropped data. The pure-Python twin builds the same fields.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// The clean-shutdown marker was present.
    pub clean: bool,
    /// Segments whose every batch was CRC-checked.
    pub scanned_segments: usize,
    /// Bytes dropped: cut from the end of a segment plus the deleted segments' `.log` sizes.
    pub truncated_bytes: u64,
    /// Segments deleted because they came after the cut.
    pub segments_deleted: usize,
    /// First offset no longer in the log (the new end) when bytes were dropped.
    pub first_dropped_offset: Option<i64>,
    /// End of the log before the cut, as far as the dropped bytes' batch headers tell:
    /// a chain of well-formed headers with consecutive offsets from the cut on (in
    /// each deleted segment, from its base). Equal to `end_offset` when they tell nothing.
    pub old_end_offset: i64,
    /// End of the log (high watermark) after opening.
    pub end_offset: i64,
    /// The file where the log was cut, and the byte position of the cut.
    pub cut_file: Option<PathBuf>,
    pub cut_position: Option<u64>,
    /// Why the scan stopped at the cut.
    pub reason: Option<String>,
    /// Committed swaps of cleaned segments that a crash interrupted, completed.
    pub swaps_completed: usize,
}

thread_local! {
    // open_dir runs on the thread that opens the WAL: the report travels back to
    // Wal::open_with_report through here, without widening the Wal's own state.
    static LAST_REPORT: RefCell<Option<RecoveryReport>> = const { RefCell::new(None) };
}

impl Wal {
    /// [`Wal::open`], also returning what recovery did to the directory.
    pub fn open_with_report(
        dir: impl AsRef<Path>,
        cfg: WalConfig,
        hooks: WalHooks,
    ) -> Result<(Wal, RecoveryReport), WalError> {
        LAST_REPORT.with(|r| r.borrow_mut().take());
        let wal = Wal::open(dir, cfg, hooks)?;
        let report = LAST_REPORT
            .with(|r| r.borrow_mut().take())
            .unwrap_or_default();
        Ok((wal, report))
    }

    /// [`Wal::open_in`], also returning what recovery did to the directory.
    pub fn open_with_report_in(
        dir: impl AsRef<Path>,
        cfg: WalConfig,
        hooks: WalHooks,
        pool: &WriterPool,
    ) -> Result<(Wal, RecoveryReport), WalError> {
        LAST_REPORT.with(|r| r.borrow_mut().take());
        let wal = Wal::open_in(dir, cfg, hooks, pool)?;
        let report = LAST_REPORT
            .with(|r| r.borrow_mut().take())
            .unwrap_or_default();
        Ok((wal, report))
    }
}

/// The operator's way out of a refused open, appended to every such error.
fn way_out(dir: &Path) -> String {
    format!(
        "; to drop the damaged data and everything after it, run: streamcore log recover --truncate {}",
        dir.display()
    )
}

/// Next offset after the chain of well-formed batch headers with consecutive offsets
/// that starts at byte `pos` of `file` with offset `expected` (bytes about to be dropped:
/// nothing in them is trusted, so every header is checked before it is followed).
fn header_chain_end(file: &File, mut pos: u64, size: u64, mut expected: i64) -> i64 {
    let mut head = [0u8; HEADER_LEN];
    while pos + HEADER_LEN as u64 <= size {
        if file.read_exact_at(&mut head, pos).is_err() {
            break;
        }
        let h = BatchHeader::parse(&head);
        let Some(total) = h.checked_total_len() else {
            break;
        };
        if h.magic != MAGIC_V2 || h.base_offset != expected || h.last_offset_delta < 0 {
            break;
        }
        expected = h.next_offset();
        pos += total;
    }
    expected
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
    let dir = f.path.parent().unwrap_or(Path::new("."));
    let ip = segment_path(dir, f.base, ".index");
    let tp = segment_path(dir, f.base, ".timeindex");
    match index::load_indexes(&ip, &tp, f.size)
        .map_err(|e| storage(&ip, "reading the index files", e))?
    {
        Some((i, t)) => {
            f.index = i;
            f.time_index = t;
            Ok(())
        }
        None => rebuild_from_headers(f, interval),
    }
}

/// A segment that compaction left ending before the next one's base (at most the
/// compacted offset) still ends there: the offsets between were removed, not lost.
fn close_compaction_gaps(found: &mut [Found], compacted: i64) {
    for i in 1..found.len() {
        let next = found[i].base;
        if found[i - 1].next_offset < next && next <= compacted {
            found[i - 1].next_offset = next;
        }
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

/// CRC scan of one segment from its start, expecting offsets from `f.base`; a batch
/// may start above the expected offset when it starts below `gaps_below` (the
/// compacted offset: compaction removes offsets).
fn scan(
    f: &mut Found,
    interval: u64,
    buf: &mut Vec<u8>,
    gaps_below: i64,
) -> Result<ScanEnd, WalError> {
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
        if h.base_offset != expected && !(expected < h.base_offset && h.base_offset < gaps_below) {
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

/// What [`scan_file`] found in a file of batches (a cleaned segment).
pub(super) struct ScannedFile {
    /// Bytes in the file.
    pub size: u64,
    /// File position after the last good batch.
    pub stop: u64,
    /// Offset after the last good batch.
    pub next_offset: i64,
    /// Why the scan stopped before the end of the file (None: it did not).
    pub reason: Option<String>,
    /// Sparse offset index entries (relative offset, position).
    pub index: Vec<(u32, u32)>,
    /// Time index entries (max timestamp so far, relative offset).
    pub time_index: Vec<(i64, u32)>,
    /// Largest maxTimestamp of the good batches (None when there are none).
    pub max_ts: Option<i64>,
}

/// Scans `path` batch by batch as a segment of base `base` with recovery's rules
/// (a batch may start above the expected offset below `gaps_below`), building its
/// index entries on the way. Only reads the file.
pub(super) fn scan_file(
    path: &Path,
    base: i64,
    interval: u64,
    gaps_below: i64,
) -> Result<ScannedFile, WalError> {
    let file = File::open(path).map_err(|e| storage(path, "opening", e))?;
    let size = file.metadata().map_err(|e| storage(path, "stat", e))?.len();
    let mut f = Found {
        base,
        path: path.to_path_buf(),
        file,
        size,
        index: Vec::new(),
        time_index: Vec::new(),
        next_offset: base,
        planner: None,
        rewrite_indexes: false,
        scanned: false,
    };
    let mut buf = vec![0u8; SCAN_CHUNK.min(size as usize)];
    let reason = match scan(&mut f, interval, &mut buf, gaps_below)? {
        ScanEnd::Clean => None,
        ScanEnd::BadAt(_, why) => Some(why),
    };
    Ok(ScannedFile {
        size,
        stop: f.size,
        next_offset: f.next_offset,
        reason,
        index: f.index,
        time_index: f.time_index,
        max_ts: f.planner.and_then(|p| p.max_ts()),
    })
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
pub(crate) fn open_dir(
    dir: &Path,
    cfg: &WalConfig,
    files: &Arc<FileCache>,
) -> Result<Opened, WalError> {
    fs::create_dir_all(dir).map_err(|e| storage(dir, "creating the directory", e))?;
    let interval = cfg.index_interval_bytes;
    // A committed swap is finished before anything is listed; an uncommitted one (a
    // `.cleaned` file) is rolled back with the other strays.
    let swaps_completed = swap::complete_swaps(dir, files)?;
    let (bases, mut dir_changed) = tidy_and_list(dir)?;
    let ckpt = checkpoint::read(dir).map_err(WalError::Storage)?;
    let compacted = swap::read_compacted_offset(dir)?;
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

    let mut report = RecoveryReport {
        clean: marker,
        swaps_completed,
        ..RecoveryReport::default()
    };
    let mut clean = false;
    if marker {
        for f in found.iter_mut() {
            load_trusted(f, interval)?;
        }
        close_compaction_gaps(&mut found, compacted);
        let last = found.len() - 1;
        clean = finish_clean_tail(&mut found[last], interval)?;
        if clean {
            let end = found[last].next_offset;
            // A clean close leaves the recovery point at the end; one below it was
            // lowered by an operator asking for a scan (and truncation) from there.
            if ckpt.is_some() && recovery_point < end {
                clean = false;
            } else {
                recovery_point = end;
            }
        }
    }
    if !clean {
        let start = found
            .partition_point(|f| f.base <= recovery_point)
            .saturating_sub(1);
        for f in found[..start].iter_mut() {
            load_trusted(f, interval)?;
        }
        close_compaction_gaps(&mut found[..=start], compacted);
        let mut buf = vec![0u8; SCAN_CHUNK];
        let mut expected = found[start].base;
        let mut keep = found.len();
        for (i, f) in found.iter_mut().enumerate().skip(start) {
            // Below the compacted offset a segment may start after the previous one's end.
            if f.base != expected && !(expected < f.base && f.base <= compacted) {
                if expected < recovery_point {
                    return Err(WalError::Storage(format!(
                        "{}: segment starts at offset {} but the log before it ends at {expected}, \
                         below the recovery point {recovery_point}: fsynced data is missing{}",
                        f.path.display(),
                        f.base,
                        way_out(dir)
                    )));
                }
                report.cut_file = Some(f.path.clone());
                report.cut_position = Some(0);
                report.reason = Some(format!(
                    "segment starts at offset {} where {expected} was expected",
                    f.base
                ));
                keep = i;
                break;
            }
            report.scanned_segments += 1;
            let file_size = f.size;
            match scan(f, interval, &mut buf, compacted)? {
                ScanEnd::Clean => {
                    expected = f.next_offset;
                    // Compaction may leave a segment ending before the next one starts.
                    if let Some(&next) = bases.get(i + 1) {
                        if expected < next && next <= compacted {
                            expected = next;
                            f.next_offset = next;
                        }
                    }
                }
                ScanEnd::BadAt(pos, why) => {
                    if f.next_offset < recovery_point {
                        return Err(WalError::Storage(format!(
                            "{}: corrupt record batch at byte {pos} (offset {}: {why}) below the \
                             recovery point {recovery_point}: data that was fsynced is damaged; \
                             refusing to truncate it{}",
                            f.path.display(),
                            f.next_offset,
                            way_out(dir)
                        )));
                    }
                    report.old_end_offset =
                        header_chain_end(&f.file, pos, file_size, f.next_offset);
                    f.file
                        .set_len(pos)
                        .map_err(|e| storage(&f.path, "truncating a torn tail", e))?;
                    report.truncated_bytes += file_size - pos;
                    report.cut_file = Some(f.path.clone());
                    report.cut_position = Some(pos);
                    report.reason = Some(why);
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
                 {recovery_point}: data that was fsynced is missing{}",
                last.path.display(),
                last.size,
                way_out(dir)
            )));
        }
        for f in found.drain(keep..) {
            let chain_end = header_chain_end(&f.file, 0, f.size, f.base);
            report.old_end_offset = report.old_end_offset.max(chain_end);
            report.truncated_bytes += f.size;
            report.segments_deleted += 1;
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
                report.segments_deleted += 1;
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

    let unsynced = Unsynced { paths: Vec::new() };
    let mut segments = Vec::with_capacity(found.len());
    let mut active = None;
    let count = found.len();
    for (i, f) in found.into_iter().enumerate() {
        let file = f.file;
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
        // Recovery's own handle closes here: the log opens its files through the
        // pool's cache when it needs them, so an idle log holds none.
        drop(file);
        if is_last {
            let ip = segment_path(dir, f.base, ".index");
            let tp = segment_path(dir, f.base, ".timeindex");
            // The index files must exist for the writer to append to them.
            for p in [&ip, &tp] {
                index::open_for_append(p).map_err(|e| storage(p, "opening", e))?;
            }
            let planner = f
                .planner
                .clone()
                .unwrap_or_else(|| IndexPlanner::new(f.base, interval));
            active = Some(Active {
                base: f.base,
                path: f.path.clone(),
                index_path: ip,
                time_path: tp,
                size: f.size,
                next_offset: f.next_offset,
                planner,
                // segment_ms counts from the first append of this process.
                first_append: None,
                // What is on disk at open is the OS's business (or synced already).
                writeback_from: f.size,
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
            files: files.clone(),
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
    report.end_offset = recovery_point;
    report.old_end_offset = report.old_end_offset.max(recovery_point);
    if report.truncated_bytes > 0 {
        report.first_dropped_offset = Some(recovery_point);
    }
    LAST_REPORT.with(|r| *r.borrow_mut() = Some(report));
    Ok(Opened {
        segments,
        active,
        log_start,
        recovery_point,
        unsynced,
        compacted_offset: compacted,
    })
}

#[cfg(test)]
mod report_tests {
    use super::super::checkpoint::CHECKPOINT_NAME;
    use super::super::FsyncPolicy;
    use super::*;
    use crate::record_batch::header::LOG_OVERHEAD;

    /// A fresh directory, removed on drop.
    struct Dir(PathBuf);

    impl Dir {
        fn new(tag: &str) -> Dir {
            let p = std::env::temp_dir().join(format!(
                "streamcore-recovery-report-{}-{tag}",
                std::process::id()
            ));
            let _ = fs::remove_dir_all(&p);
            Dir(p)
        }
        fn log(&self, base: i64) -> PathBuf {
            segment_path(&self.0, base, ".log")
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    /// A v2 batch of `records` records and `payload` filler bytes with a valid CRC.
    fn batch(records: i32, payload: usize) -> Vec<u8> {
        let total = HEADER_LEN + payload;
        let mut b = vec![0u8; total];
        b[8..12].copy_from_slice(&((total - LOG_OVERHEAD) as i32).to_be_bytes());
        b[16] = MAGIC_V2 as u8;
        b[23..27].copy_from_slice(&(records - 1).to_be_bytes());
        b[57..61].copy_from_slice(&records.to_be_bytes());
        for (i, x) in b[HEADER_LEN..].iter_mut().enumerate() {
            *x = (i * 13) as u8;
        }
        let crc = crate::crc32c::crc32c(&b[CRC_START..]);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
        b
    }

    fn cfg() -> WalConfig {
        WalConfig {
            fsync: FsyncPolicy::Never,
            ..WalConfig::default()
        }
    }

    /// Four batches of 2 records (offsets 0..8), 100 payload bytes each, cleanly closed.
    fn four_batches(d: &Dir) -> usize {
        let wal = Wal::open(&d.0, cfg(), WalHooks::default()).unwrap();
        for _ in 0..4 {
            wal.append(&batch(2, 100)).unwrap();
        }
        wal.close().unwrap();
        HEADER_LEN + 100
    }

    fn set_recovery_point(d: &Dir, rp: i64) {
        fs::write(
            d.0.join(CHECKPOINT_NAME),
            format!("version 1\nlog_start_offset 0\nrecovery_point {rp}\n"),
        )
        .unwrap();
    }

    #[test]
    fn a_clean_open_reports_the_marker_and_drops_nothing() {
        let d = Dir::new("clean");
        four_batches(&d);
        let (_wal, r) = Wal::open_with_report(&d.0, cfg(), WalHooks::default()).unwrap();
        assert!(r.clean);
        assert_eq!((r.truncated_bytes, r.segments_deleted), (0, 0));
        assert_eq!(
            (r.first_dropped_offset, r.end_offset, r.old_end_offset),
            (None, 8, 8)
        );
    }

    #[test]
    fn a_torn_tail_is_reported_with_bytes_and_offsets_dropped() {
        let d = Dir::new("torn");
        let size = four_batches(&d);
        let full = fs::read(d.log(0)).unwrap();
        fs::write(d.log(0), &full[..full.len() - 10]).unwrap();
        fs::remove_file(d.0.join(CLEAN_SHUTDOWN_NAME)).unwrap();
        set_recovery_point(&d, 0);
        let (wal, r) = Wal::open_with_report(&d.0, cfg(), WalHooks::default()).unwrap();
        assert_eq!(wal.high_watermark(), 6);
        assert!(!r.clean);
        assert_eq!(r.scanned_segments, 1);
        assert_eq!(r.truncated_bytes, (size - 10) as u64);
        assert_eq!(r.first_dropped_offset, Some(6));
        assert_eq!((r.end_offset, r.old_end_offset), (6, 8));
        assert_eq!(r.cut_position, Some(3 * size as u64));
        assert_eq!(r.cut_file.as_deref(), Some(d.log(0).as_path()));
        assert!(r.reason.unwrap().contains("past the end of the file"));
    }

    #[test]
    fn a_lowered_recovery_point_is_honoured_after_a_clean_close() {
        let d = Dir::new("lowered");
        let size = four_batches(&d);
        let mut data = fs::read(d.log(0)).unwrap();
        data[size + 70] ^= 0x10; // in the second batch's records: CRC mismatch
        fs::write(d.log(0), &data).unwrap();
        set_recovery_point(&d, 2);
        assert!(d.0.join(CLEAN_SHUTDOWN_NAME).exists());
        let (wal, r) = Wal::open_with_report(&d.0, cfg(), WalHooks::default()).unwrap();
        assert_eq!(wal.high_watermark(), 2);
        assert!(r.clean);
        assert_eq!(r.first_dropped_offset, Some(2));
        assert_eq!(r.truncated_bytes, 3 * size as u64);
        assert_eq!(r.old_end_offset, 8);
        assert!(r.reason.unwrap().starts_with("CRC32C mismatch"));
        assert_eq!(wal.read(0, 1 << 20).unwrap(), &data[..size]);
    }

    #[test]
    fn damage_below_the_recovery_point_names_the_way_out() {
        let d = Dir::new("refused");
        let size = four_batches(&d);
        let mut data = fs::read(d.log(0)).unwrap();
        data[size + 70] ^= 0x10;
        fs::write(d.log(0), &data).unwrap();
        fs::remove_file(d.0.join(CLEAN_SHUTDOWN_NAME)).unwrap();
        let err = Wal::open(&d.0, cfg(), WalHooks::default())
            .err()
            .expect("open must fail")
            .to_string();
        let want = format!("streamcore log recover --truncate {}", d.0.display());
        assert!(err.contains(&want), "{err}");
        assert!(err.contains("offset 2"), "{err}");
        assert_eq!(fs::metadata(d.log(0)).unwrap().len(), 4 * size as u64);
    }
}
