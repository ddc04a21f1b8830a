//! Sparse `.index` (8-byte entries) and `.timeindex` (12-byte entries) files, and the
//! rule that decides which batches get an entry (shared by the writer and recovery,
//! and identical in the reference twin).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

/// Bytes of one `.index` entry: relative offset u32 BE, file position u32 BE.
pub const INDEX_ENTRY_SIZE: usize = 8;
/// Bytes of one `.timeindex` entry: max timestamp i64 BE, relative offset u32 BE.
pub const TIME_INDEX_ENTRY_SIZE: usize = 12;

/// Encodes an offset index entry.
pub fn encode_index_entry(rel: u32, pos: u32) -> [u8; INDEX_ENTRY_SIZE] {
    let mut e = [0u8; INDEX_ENTRY_SIZE];
    e[..4].copy_from_slice(&rel.to_be_bytes());
    e[4..].copy_from_slice(&pos.to_be_bytes());
    e
}

/// Encodes a time index entry.
pub fn encode_time_entry(ts: i64, rel: u32) -> [u8; TIME_INDEX_ENTRY_SIZE] {
    let mut e = [0u8; TIME_INDEX_ENTRY_SIZE];
    e[..8].copy_from_slice(&ts.to_be_bytes());
    e[8..].copy_from_slice(&rel.to_be_bytes());
    e
}

/// Decides the index entries of batches appended to one segment.
///
/// * offset index: an entry for the segment's first batch, and for a batch starting
///   at least `interval` bytes after the position of the last entry;
/// * time index: an entry for the first batch, and for a batch that raises the
///   segment's max timestamp starting at least `interval` bytes after the position of
///   the last time entry. Entries hold (new max timestamp, batch base offset).
#[derive(Clone, Debug)]
pub(crate) struct IndexPlanner {
    base: i64,
    interval: u64,
    last_index_pos: Option<u64>,
    last_time_pos: Option<u64>,
    max_ts: Option<i64>,
}

impl IndexPlanner {
    pub fn new(base: i64, interval: u64) -> Self {
        IndexPlanner {
            base,
            interval,
            last_index_pos: None,
            last_time_pos: None,
            max_ts: None,
        }
    }

    /// A planner continuing a segment whose last entries are known.
    pub fn resume(
        base: i64,
        interval: u64,
        last_index_pos: Option<u64>,
        last_time_pos: Option<u64>,
        max_ts: Option<i64>,
    ) -> Self {
        IndexPlanner {
            base,
            interval,
            last_index_pos,
            last_time_pos,
            max_ts,
        }
    }

    /// Largest max timestamp seen so far.
    pub fn max_ts(&self) -> Option<i64> {
        self.max_ts
    }

    /// Accounts one batch at `pos`; pushes its entries (if any) to the two lists.
    pub fn plan(
        &mut self,
        base_offset: i64,
        pos: u64,
        max_ts: i64,
        index: &mut Vec<(u32, u32)>,
        time_index: &mut Vec<(i64, u32)>,
    ) {
        let rel = (base_offset - self.base) as u32;
        let due = |last: Option<u64>| match last {
            None => true,
            Some(l) => pos == 0 || pos - l >= self.interval,
        };
        if due(self.last_index_pos) {
            index.push((rel, pos as u32));
            self.last_index_pos = Some(pos);
        }
        match self.max_ts {
            Some(cur) if pos != 0 => {
                if max_ts > cur {
                    self.max_ts = Some(max_ts);
                    if due(self.last_time_pos) {
                        time_index.push((max_ts, rel));
                        self.last_time_pos = Some(pos);
                    }
                }
            }
            _ => {
                time_index.push((max_ts, rel));
                self.last_time_pos = Some(pos);
                self.max_ts = Some(max_ts);
            }
        }
    }
}

/// Appends the encoding of `entries` to `out`.
pub(crate) fn encode_index(entries: &[(u32, u32)], out: &mut Vec<u8>) {
    for &(rel, pos) in entries {
        out.extend_from_slice(&encode_index_entry(rel, pos));
    }
}

/// Appends the encoding of `entries` to `out`.
pub(crate) fn encode_time_index(entries: &[(i64, u32)], out: &mut Vec<u8>) {
    for &(ts, rel) in entries {
        out.extend_from_slice(&encode_time_entry(ts, rel));
    }
}

/// Reads an offset index; None when missing or not plausible for a segment of
/// `log_size` bytes (the caller rebuilds it from the log).
pub(crate) fn load_index(path: &Path, log_size: u64) -> io::Result<Option<Vec<(u32, u32)>>> {
    let data = match fs::read(path) {
        Ok(d) => d,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    if data.len() % INDEX_ENTRY_SIZE != 0 {
        return Ok(None);
    }
    let entries: Vec<(u32, u32)> = data
        .chunks_exact(INDEX_ENTRY_SIZE)
        .map(|c| {
            (
                u32::from_be_bytes([c[0], c[1], c[2], c[3]]),
                u32::from_be_bytes([c[4], c[5], c[6], c[7]]),
            )
        })
        .collect();
    // The first entry is the segment's first batch, at byte 0; its offset may lie
    // above the segment's base once compaction removed offsets.
    let ok = match entries.first() {
        None => log_size == 0,
        Some(&first) => {
            first.1 == 0
                && entries
                    .windows(2)
                    .all(|w| w[1].0 > w[0].0 && w[1].1 > w[0].1)
                && (entries[entries.len() - 1].1 as u64) < log_size
        }
    };
    Ok(if ok { Some(entries) } else { None })
}

/// Reads a time index; None when missing or not plausible (see [`load_index`]):
/// its first entry must name the segment's first batch, `first_rel`.
pub(crate) fn load_time_index(
    path: &Path,
    log_size: u64,
    first_rel: u32,
) -> io::Result<Option<Vec<(i64, u32)>>> {
    let data = match fs::read(path) {
        Ok(d) => d,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    if data.len() % TIME_INDEX_ENTRY_SIZE != 0 {
        return Ok(None);
    }
    let entries: Vec<(i64, u32)> = data
        .chunks_exact(TIME_INDEX_ENTRY_SIZE)
        .map(|c| {
            let mut ts = [0u8; 8];
            ts.copy_from_slice(&c[..8]);
            (
                i64::from_be_bytes(ts),
                u32::from_be_bytes([c[8], c[9], c[10], c[11]]),
            )
        })
        .collect();
    let ok = match entries.first() {
        None => log_size == 0,
        Some(&(_, rel)) => {
            rel == first_rel
                && entries
                    .windows(2)
                    .all(|w| w[1].0 > w[0].0 && w[1].1 > w[0].1)
        }
    };
    Ok(if ok { Some(entries) } else { None })
}

/// A segment's offset index and time index entries.
pub(crate) type LoadedIndexes = (Vec<(u32, u32)>, Vec<(i64, u32)>);

/// Reads both index files of a segment of `log_size` bytes; None when either is
/// missing or not plausible, or when they disagree on the first batch (the caller
/// then rebuilds them from the log).
pub(crate) fn load_indexes(
    index_path: &Path,
    time_path: &Path,
    log_size: u64,
) -> io::Result<Option<LoadedIndexes>> {
    let Some(index) = load_index(index_path, log_size)? else {
        return Ok(None);
    };
    let first_rel = index.first().map_or(0, |e| e.0);
    let Some(time_index) = load_time_index(time_path, log_size, first_rel)? else {
        return Ok(None);
    };
    // An empty segment has empty indexes, and a non-empty one entries in both.
    if index.is_empty() != time_index.is_empty() {
        return Ok(None);
    }
    Ok(Some((index, time_index)))
}

/// Replaces both index files of a segment with `index` and `time_index`.
pub(crate) fn write_index_files(
    index_path: &Path,
    time_path: &Path,
    index: &[(u32, u32)],
    time_index: &[(i64, u32)],
) -> io::Result<()> {
    let mut buf = Vec::with_capacity(index.len() * INDEX_ENTRY_SIZE);
    encode_index(index, &mut buf);
    File::create(index_path)?.write_all(&buf)?;
    buf.clear();
    encode_time_index(time_index, &mut buf);
    File::create(time_path)?.write_all(&buf)?;
    Ok(())
}

/// Opens an index file for appending (creating it).
pub(crate) fn open_for_append(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_entries_are_big_endian_relative_offset_then_position() {
        assert_eq!(encode_index_entry(1, 0x0102_0304), [0, 0, 0, 1, 1, 2, 3, 4]);
        assert_eq!(
            encode_time_entry(0x0102_0304_0506_0708, 9),
            [1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 9]
        );
    }

    #[test]
    fn planner_indexes_first_batch_then_every_interval_bytes() {
        let mut p = IndexPlanner::new(100, 4096);
        let (mut idx, mut t) = (Vec::new(), Vec::new());
        // 1000-byte batches of 10 records, timestamps rising by 1 each batch.
        for i in 0..10u64 {
            p.plan(
                100 + 10 * i as i64,
                1000 * i,
                5 + i as i64,
                &mut idx,
                &mut t,
            );
        }
        assert_eq!(idx, vec![(0, 0), (50, 5000)]);
        assert_eq!(t, vec![(5, 0), (10, 50)]);
        assert_eq!(p.max_ts(), Some(14));
    }

    #[test]
    fn loaded_indexes_may_start_above_the_base_but_at_byte_zero_and_agreeing() {
        let dir =
            std::env::temp_dir().join(format!("streamcore-index-load-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let (ip, tp) = (dir.join("i"), dir.join("t"));
        let load = |index: &[(u32, u32)], time: &[(i64, u32)]| {
            write_index_files(&ip, &tp, index, time).unwrap();
            load_indexes(&ip, &tp, 1000).unwrap()
        };
        // Compaction removed the segment's first offsets: the first batch is at rel 3.
        assert_eq!(
            load(&[(3, 0), (9, 500)], &[(7, 3)]),
            Some((vec![(3, 0), (9, 500)], vec![(7, 3)]))
        );
        // The first entry must be at byte 0, and both indexes must name the same batch.
        assert_eq!(load(&[(3, 10)], &[(7, 3)]), None);
        assert_eq!(load(&[(3, 0)], &[(7, 0)]), None);
        assert_eq!(load(&[(3, 0)], &[]), None);
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn planner_adds_time_entry_only_when_max_timestamp_rises() {
        let mut p = IndexPlanner::new(0, 10);
        let (mut idx, mut t) = (Vec::new(), Vec::new());
        p.plan(0, 0, 50, &mut idx, &mut t);
        p.plan(1, 100, 40, &mut idx, &mut t);
        p.plan(2, 200, 50, &mut idx, &mut t);
        p.plan(3, 300, 60, &mut idx, &mut t);
        assert_eq!(idx.len(), 4);
        assert_eq!(t, vec![(50, 0), (60, 3)]);
    }
}
