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

impl Wal {
    /// Spans (file, position, length) of what [`Wal::read`] returns.
    pub fn read_spans(&self, offset: i64, max_bytes: i64) -> Result<Vec<Span>, WalError> {
        Ok(self
            .spans_with_files(offset, max_bytes)?
            .into_iter()
            .map(|(s, _)| s)
            .collect())
    }

    fn spans_with_files(
        &self,
        offset: i64,
        max_bytes: i64,
    ) -> Result<Vec<(Span, Arc<File>)>, WalError> {
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
            )));
        }
        let mut spans: Vec<(Span, Arc<File>)> = Vec::new();
        if offset == hw {
            return Ok(spans);
        }
        let segs = &state.segments;
        let mut first = segs.partition_point(|s| s.base <= offset).saturating_sub(1);
        let io_err = |e| self.shared.storage_err("reading a segment", e);
        // Past the end of its segment (a segment may end before the next one's
        // base after recovery): the data starts at the next segment.
        let mut pos = match segs[first].find_batch(offset).map_err(io_err)? {
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
            for item in segment::HeaderWalk::new(&file, pos, seg.size) {
                let (p, h) = item.map_err(io_err)?;
                if h.base_offset >= hw {
                    break;
                }
                let size = h.checked_total_len().unwrap_or(0);
                if total > 0 && (total + size) as i64 > max_bytes {
                    if end > span_start {
                        spans.push((
                            Span {
                                path: seg.path.clone(),
                                position: span_start,
                                length: end - span_start,
                            },
                            file.clone(),
                        ));
                    }
                    break 'segments;
                }
                total += size;
                end = p + size;
            }
            if end > span_start {
                spans.push((
                    Span {
                        path: seg.path.clone(),
                        position: span_start,
                        length: end - span_start,
                    },
                    file.clone(),
                ));
            }
            if seg.next_offset >= hw {
                break;
            }
            pos = 0;
        }
        Ok(spans)
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
