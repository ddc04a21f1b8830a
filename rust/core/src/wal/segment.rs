//! Segments: file names, batch header walks and the reader-visible state of one
//! `<base>.log` with its in-memory sparse indexes. Header fields are read with
//! [`crate::record_batch::header`].

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use super::files::{Access, FileCache};
use crate::record_batch::header::{BatchHeader, HEADER_LEN};

/// Header bytes a walk reads per batch: the whole fixed header.
const WALK_PREFIX: usize = HEADER_LEN;

/// `<base:020>` + suffix inside `dir`.
pub(crate) fn segment_path(dir: &Path, base: i64, suffix: &str) -> PathBuf {
    dir.join(format!("{base:020}{suffix}"))
}

/// Walks batch headers of committed bytes `[pos, end)` with chunked `pread`s.
///
/// Only for bytes already validated (by the writer's framing check or by recovery's
/// CRC scan); a length field that cannot frame a batch ends the walk with
/// `InvalidData` rather than looping.
pub(crate) struct HeaderWalk<'a> {
    file: &'a File,
    pos: u64,
    end: u64,
    buf: Vec<u8>,
    buf_start: u64,
    buf_len: usize,
    nowait: bool,
    /// The last batch was larger than a chunk.
    big: bool,
}

/// `pread` that takes only what the page cache holds (Linux's `RWF_NOWAIT`): a read
/// that would wait for the disk fails with `WouldBlock`, and a kernel or file system
/// without the flag answers `EOPNOTSUPP`, `EINVAL` or `ENOSYS`.
fn pread_nowait(file: &File, buf: &mut [u8], pos: u64) -> io::Result<usize> {
    use std::os::fd::AsRawFd;
    let iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let pos = libc::off_t::try_from(pos)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "file position too large"))?;
    // SAFETY: one iovec over `buf`, which outlives the call; the descriptor is open.
    let n = unsafe { libc::preadv2(file.as_raw_fd(), &iov, 1, pos, libc::RWF_NOWAIT) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// Whether `e` came from a `nowait` read refusing to wait or to run at all (rather
/// than from the file): the walk can be done again without `nowait`.
pub(crate) fn is_nowait_refusal(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock
        || matches!(
            e.raw_os_error(),
            Some(libc::EOPNOTSUPP) | Some(libc::EINVAL) | Some(libc::ENOSYS)
        )
}

/// Bytes read per `pread` while walking: a handful of small batches per call.
const WALK_CHUNK: usize = 8192;

impl<'a> HeaderWalk<'a> {
    pub fn new(file: &'a File, pos: u64, end: u64) -> Self {
        HeaderWalk {
            file,
            pos,
            end,
            buf: vec![0; WALK_CHUNK],
            buf_start: 0,
            buf_len: 0,
            nowait: false,
            big: false,
        }
    }

    /// Reads only from the page cache (see [`pread_nowait`]); a header that is not
    /// cached ends the walk with a `WouldBlock` error.
    pub fn nowait(mut self, nowait: bool) -> Self {
        self.nowait = nowait;
        self
    }

    /// Position of the next batch the walk would yield.
    pub fn position(&self) -> u64 {
        self.pos
    }

    fn header_at(&mut self, pos: u64) -> io::Result<Option<BatchHeader>> {
        let in_buf = pos >= self.buf_start
            && pos + WALK_PREFIX as u64 <= self.buf_start + self.buf_len as u64;
        if !in_buf {
            // After a batch larger than a chunk the next is likely large too: read its
            // header alone rather than a chunk that is mostly record bytes.
            let chunk = if self.big { WALK_PREFIX } else { WALK_CHUNK };
            let want = (self.end - pos).min(chunk as u64) as usize;
            let mut got = 0;
            while got < want {
                let at = pos + got as u64;
                let n = if self.nowait {
                    pread_nowait(self.file, &mut self.buf[got..want], at)?
                } else {
                    self.file.read_at(&mut self.buf[got..want], at)?
                };
                if n == 0 {
                    break;
                }
                got += n;
            }
            self.buf_start = pos;
            self.buf_len = got;
            if got < WALK_PREFIX {
                return Ok(None);
            }
        }
        let off = (pos - self.buf_start) as usize;
        Ok(Some(BatchHeader::parse(&self.buf[off..off + WALK_PREFIX])))
    }
}

impl Iterator for HeaderWalk<'_> {
    type Item = io::Result<(u64, BatchHeader)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.pos + WALK_PREFIX as u64 > self.end {
            return None;
        }
        let pos = self.pos;
        match self.header_at(pos) {
            Err(e) => {
                self.pos = self.end;
                Some(Err(e))
            }
            Ok(None) => {
                self.pos = self.end;
                None
            }
            Ok(Some(h)) => match h.checked_total_len() {
                Some(total) => {
                    self.big = total > WALK_CHUNK as u64;
                    self.pos = pos + total;
                    Some(Ok((pos, h)))
                }
                None => {
                    self.pos = self.end;
                    Some(Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!(
                            "batchLength {} at byte {pos} cannot frame a batch",
                            h.batch_length
                        ),
                    )))
                }
            },
        }
    }
}

/// Reader-visible state of one segment. Only the writer thread changes the active
/// (last) segment, under the log's state lock; other segments are immutable until
/// retention removes them. The `.log` is opened through the pool's cache when read.
pub(crate) struct Segment {
    pub base: i64,
    pub path: PathBuf,
    pub files: Arc<FileCache>,
    /// Bytes of whole batches; readers never look past it.
    pub size: u64,
    /// Offset after the last batch.
    pub next_offset: i64,
    /// Sparse offset index: (relative offset, file position).
    pub index: Vec<(u32, u32)>,
    /// Time index: (max timestamp so far, relative offset).
    pub time_index: Vec<(i64, u32)>,
    /// Largest maxTimestamp when known (always for the active segment).
    pub max_ts: Option<Option<i64>>,
    /// Largest maxTimestamp of a segment opened without it, computed on first use.
    pub lazy_max_ts: OnceLock<Option<i64>>,
}

impl Segment {
    /// The open `.log` (from the cache, opened if it was closed).
    pub fn file(&self) -> io::Result<Arc<File>> {
        self.files.get(&self.path, Access::Read)
    }

    /// File position of the last indexed batch whose base offset is <= `offset`.
    pub fn index_floor(&self, offset: i64) -> u64 {
        let rel = offset - self.base;
        let i = self.index.partition_point(|e| (e.0 as i64) <= rel);
        if i == 0 {
            0
        } else {
            self.index[i - 1].1 as u64
        }
    }

    /// (position, header) of the batch containing `offset`, walking from the index.
    /// With `nowait`, headers are read only from the page cache (see `HeaderWalk::nowait`).
    pub fn find_batch(&self, offset: i64, nowait: bool) -> io::Result<Option<(u64, BatchHeader)>> {
        let file = self.file()?;
        for item in HeaderWalk::new(&file, self.index_floor(offset), self.size).nowait(nowait) {
            let (pos, h) = item?;
            if h.last_offset() >= offset {
                return Ok(Some((pos, h)));
            }
        }
        Ok(None)
    }

    /// Largest maxTimestamp among the segment's batches (None when empty).
    pub fn largest_timestamp(&self) -> io::Result<Option<i64>> {
        if let Some(known) = self.max_ts {
            return Ok(known);
        }
        if let Some(v) = self.lazy_max_ts.get() {
            return Ok(*v);
        }
        // The time index holds running maxima, so only batches from the last entry
        // on can hold a larger one.
        let (start, mut best) = match self.time_index.last() {
            Some(&(ts, rel)) => (self.index_floor(self.base + rel as i64), Some(ts)),
            None => (0, None),
        };
        let file = self.file()?;
        for item in HeaderWalk::new(&file, start, self.size) {
            let (_, h) = item?;
            best = Some(best.map_or(h.max_timestamp, |b: i64| b.max(h.max_timestamp)));
        }
        Ok(*self.lazy_max_ts.get_or_init(|| best))
    }

    /// (base offset, max timestamp) of the first batch whose max timestamp >= `ts`.
    pub fn first_batch_at_or_after(&self, ts: i64) -> io::Result<Option<(i64, i64)>> {
        // Entries hold running maxima: every batch up to the last entry below `ts`
        // is below it too, so the walk starts at that entry's batch.
        let i = self.time_index.partition_point(|e| e.0 < ts);
        let start = if i == 0 {
            0
        } else {
            self.index_floor(self.base + self.time_index[i - 1].1 as i64)
        };
        let file = self.file()?;
        for item in HeaderWalk::new(&file, start, self.size) {
            let (_, h) = item?;
            if h.max_timestamp >= ts {
                return Ok(Some((h.base_offset, h.max_timestamp)));
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_file_names_are_twenty_digit_zero_padded() {
        let p = segment_path(Path::new("/d"), 1234, ".log");
        assert_eq!(p, Path::new("/d/00000000000000001234.log"));
    }
}
