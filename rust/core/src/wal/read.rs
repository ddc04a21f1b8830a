//! Reads: locating whole batches from an offset (spans of segment files, for
//! copying or sendfile) and looking an offset up by timestamp.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::error::WalError;
use super::segment;
use super::Wal;
use crate::record_batch::header::MAGIC_V2;

/// One contiguous piece of a segment file (what `read` would return), for sendfile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Span {
    pub path: PathBuf,
    pub position: u64,
    pub length: u64,
}

/// The located pieces of one read; see [`Wal::prepare_read`].
pub struct PreparedRead {
    pub(super) spans: Vec<(Span, Arc<File>)>,
}

impl PreparedRead {
    /// Total bytes.
    pub fn len(&self) -> usize {
        self.spans.iter().map(|(s, _)| s.length as usize).sum()
    }

    /// True at the high watermark.
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// Copies the bytes into `out` (exactly [`PreparedRead::len`] bytes long).
    pub fn fill(&self, out: &mut [u8]) -> Result<(), WalError> {
        let mut at = 0usize;
        for (s, f) in &self.spans {
            let n = s.length as usize;
            f.read_exact_at(&mut out[at..at + n], s.position)
                .map_err(|e| {
                    WalError::Storage(format!(
                        "{}: reading {n} bytes at byte {}: {e}",
                        s.path.display(),
                        s.position
                    ))
                })?;
            at += n;
        }
        Ok(())
    }
}

/// Open file ranges of what [`Wal::read`] returns, for sendfile: see [`Wal::file_ranges`].
#[derive(Debug)]
pub struct FileRanges {
    /// (a descriptor of its own on the segment file, byte position, length in bytes).
    pub ranges: Vec<(File, u64, u64)>,
    /// Records in the batches covered.
    pub records: i64,
    /// The offset after the last batch covered.
    pub end_offset: i64,
}

/// What [`Wal::file_ranges`] found.
#[derive(Debug)]
pub enum FileRangesOutcome {
    Ranges(FileRanges),
    /// Nothing to send from files: at the high watermark, nothing below
    /// `stop_before`, a header that is not a v2 batch's, or a file shorter than the
    /// log's record of it (the copying read, which checks everything, answers instead).
    Unsuitable,
    /// A `nowait` walk met a header the page cache does not hold, or a kernel or
    /// file system without `RWF_NOWAIT` (the error says which): walk again without it.
    NoWait(std::io::Error),
}

/// Options of one walk over the batches a read covers.
#[derive(Clone, Copy, Default)]
struct WalkOptions {
    /// End before the first batch whose base offset is at or above this.
    stop_before: Option<i64>,
    /// Read headers only from the page cache.
    nowait: bool,
    /// End at a header whose magic is not 2 (`foreign`). Only for sendfile: the
    /// copying read goes on and its checks report such a batch.
    check_magic: bool,
}

/// What one walk found.
struct Walked {
    spans: Vec<(Span, Arc<File>)>,
    records: i64,
    end_offset: i64,
    /// A header with another magic than 2 ended the walk.
    foreign: bool,
}

enum WalkError {
    Wal(WalError),
    NoWait(std::io::Error),
}

impl From<WalError> for WalkError {
    fn from(e: WalError) -> Self {
        WalkError::Wal(e)
    }
}

impl Wal {
    /// Spans (file, position, length) of what [`Wal::read`] returns.
    pub fn read_spans(&self, offset: i64, max_bytes: i64) -> Result<Vec<Span>, WalError> {
        Ok(self
            .spans_with_files(offset, max_bytes)?
            .into_iter()
            .map(|(s, _)| s)
            .collect())
    }

    /// The batches [`Wal::read`]`(offset, max_bytes)` returns as ranges of segment
    /// files, each with a descriptor of its own, for `sendfile`.
    ///
    /// One walk under the read lock finds the batches, counts their records and
    /// duplicates the descriptors the log holds, so a compaction swap or retention
    /// cannot slip between locating the bytes and opening their files (a duplicated
    /// descriptor keeps its file readable after the segment is deleted or replaced).
    /// `stop_before` (read_committed's last stable offset) ends the ranges before the
    /// first batch at or above it. With `nowait`, headers are read only from the page
    /// cache (see [`FileRangesOutcome::NoWait`]).
    pub fn file_ranges(
        &self,
        offset: i64,
        max_bytes: i64,
        stop_before: Option<i64>,
        nowait: bool,
    ) -> Result<FileRangesOutcome, WalError> {
        let walked = match self.walk(
            offset,
            max_bytes,
            WalkOptions {
                stop_before,
                nowait,
                check_magic: true,
            },
        ) {
            Ok(w) => w,
            Err(WalkError::Wal(e)) => return Err(e),
            Err(WalkError::NoWait(e)) => return Ok(FileRangesOutcome::NoWait(e)),
        };
        if walked.foreign || walked.spans.is_empty() {
            return Ok(FileRangesOutcome::Unsuitable);
        }
        let mut ranges = Vec::with_capacity(walked.spans.len());
        for (span, file) in walked.spans {
            let own = file.try_clone().map_err(|e| {
                self.shared
                    .storage_err("duplicating a segment descriptor", e)
            })?;
            let len = own
                .metadata()
                .map_err(|e| self.shared.storage_err("reading a segment's size", e))?
                .len();
            if len < span.position + span.length {
                // Cut short under the log (by hand, or a failing disk): the copying
                // read reports it where it is.
                return Ok(FileRangesOutcome::Unsuitable);
            }
            ranges.push((own, span.position, span.length));
        }
        Ok(FileRangesOutcome::Ranges(FileRanges {
            ranges,
            records: walked.records,
            end_offset: walked.end_offset,
        }))
    }

    fn spans_with_files(
        &self,
        offset: i64,
        max_bytes: i64,
    ) -> Result<Vec<(Span, Arc<File>)>, WalError> {
        match self.walk(offset, max_bytes, WalkOptions::default()) {
            Ok(w) => Ok(w.spans),
            Err(WalkError::Wal(e)) => Err(e),
            // Only a nowait walk refuses to wait.
            Err(WalkError::NoWait(e)) => Err(self.shared.storage_err("reading a segment", e)),
        }
    }

    /// Walks the batches from the one holding `offset`: at least one, then more while
    /// the total stays <= `max_bytes`, up to the high watermark.
    fn walk(&self, offset: i64, max_bytes: i64, opts: WalkOptions) -> Result<Walked, WalkError> {
        self.check_open()?;
        let state = self.shared.read_state();
        // Read both bounds under the state lock so that retention (which moves the
        // log start under the write lock) cannot slip between check and lookup.
        let hw = self.shared.high_watermark.load(Ordering::Acquire);
        let start = self.shared.log_start.load(Ordering::Acquire);
        if offset < start || offset > hw {
            return Err(WalError::OffsetOutOfRange(format!(
                "offset {offset} is outside the log's range [{start}, {hw}] ({})",
                self.shared.dir.display()
            ))
            .into());
        }
        let mut walked = Walked {
            spans: Vec::new(),
            records: 0,
            end_offset: offset,
            foreign: false,
        };
        if offset == hw {
            return Ok(walked);
        }
        let io_err = |e: std::io::Error| {
            if opts.nowait && segment::is_nowait_refusal(&e) {
                WalkError::NoWait(e)
            } else {
                WalkError::Wal(self.shared.storage_err("reading a segment", e))
            }
        };
        let segs = &state.segments;
        let mut first = segs.partition_point(|s| s.base <= offset).saturating_sub(1);
        // Past the end of its segment (a segment may end before the next one's
        // base after recovery): the data starts at the next segment.
        let mut pos = match segs[first]
            .find_batch(offset, opts.nowait)
            .map_err(io_err)?
        {
            Some((p, _)) => p,
            None => {
                first += 1;
                0
            }
        };
        let mut total: u64 = 0;
        'segments: for seg in &segs[first..] {
            let span_start = pos;
            let mut end = pos;
            let file = seg.file().map_err(io_err)?;
            let mut stop = false;
            for item in segment::HeaderWalk::new(&file, pos, seg.size).nowait(opts.nowait) {
                let (p, h) = item.map_err(io_err)?;
                if h.base_offset >= hw {
                    break;
                }
                if opts.stop_before.is_some_and(|lso| h.base_offset >= lso) {
                    stop = true;
                    break;
                }
                let size = h.checked_total_len().unwrap_or(0);
                if total > 0 && (total + size) as i64 > max_bytes {
                    stop = true;
                    break;
                }
                if opts.check_magic && h.magic != MAGIC_V2 {
                    walked.foreign = true;
                    stop = true;
                    break;
                }
                total += size;
                end = p + size;
                walked.records += i64::from(h.record_count);
                walked.end_offset = h.next_offset();
            }
            if end > span_start {
                walked.spans.push((
                    Span {
                        path: seg.path.clone(),
                        position: span_start,
                        length: end - span_start,
                    },
                    file.clone(),
                ));
            }
            if stop || seg.next_offset >= hw {
                break 'segments;
            }
            pos = 0;
        }
        Ok(walked)
    }

    /// Locates what [`Wal::read`]`(offset, max_bytes)` returns without copying it yet
    /// (so a binding can allocate the result object first).
    pub fn prepare_read(&self, offset: i64, max_bytes: i64) -> Result<PreparedRead, WalError> {
        Ok(PreparedRead {
            spans: self.spans_with_files(offset, max_bytes)?,
        })
    }

    /// Whole batches from the one holding `offset`: at least one, then more while the
    /// total stays <= `max_bytes` (bytes). Empty at the high watermark.
    pub fn read(&self, offset: i64, max_bytes: i64) -> Result<Vec<u8>, WalError> {
        let r = self.prepare_read(offset, max_bytes)?;
        let mut out = vec![0u8; r.len()];
        r.fill(&mut out)?;
        Ok(out)
    }

    /// (base offset, max timestamp) of the first batch whose max timestamp >= `ts_ms`.
    pub fn offset_for_timestamp(&self, ts_ms: i64) -> Result<Option<(i64, i64)>, WalError> {
        self.check_open()?;
        let state = self.shared.read_state();
        let hw = self.shared.high_watermark.load(Ordering::Acquire);
        let start = self.shared.log_start.load(Ordering::Acquire);
        let io_err = |e| self.shared.storage_err("reading a segment", e);
        for seg in &state.segments {
            if seg.next_offset <= start {
                continue;
            }
            match seg.largest_timestamp().map_err(io_err)? {
                Some(m) if m >= ts_ms => {}
                _ => continue,
            }
            if let Some((off, ts)) = seg.first_batch_at_or_after(ts_ms).map_err(io_err)? {
                if off < hw && off >= start {
                    return Ok(Some((off, ts)));
                }
            }
        }
        Ok(None)
    }
}
