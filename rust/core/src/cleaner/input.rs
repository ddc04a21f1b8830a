//! Reading the segment files the cleaner is given: base offsets from file names,
//! batches one at a time through a buffered reader, and a header-only pre-pass.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use crate::record_batch::header::{BatchHeader, HEADER_LEN, LOG_OVERHEAD, MIN_BATCH_LENGTH};
use crate::wal::WalError;

/// Bytes the reader buffers per `read` (large sequential reads; batches are copied out).
const READ_BUFFER: usize = 1 << 20;

fn storage(path: &Path, what: &str, e: io::Error) -> WalError {
    WalError::Storage(format!("cleaner: {what} {}: {e}", path.display()))
}

/// One input segment: its path and the base offset its name carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentFile {
    pub path: PathBuf,
    pub base_offset: i64,
}

/// Checks that `paths` name `<base:020>.log` segments in strictly increasing base
/// order and returns them with their base offsets.
pub fn segment_files(paths: &[PathBuf]) -> Result<Vec<SegmentFile>, WalError> {
    let mut out: Vec<SegmentFile> = Vec::with_capacity(paths.len());
    for p in paths {
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let base = name
            .strip_suffix(".log")
            .filter(|s| s.len() == 20 && s.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|s| s.parse::<i64>().ok())
            .ok_or_else(|| {
                WalError::InvalidArgument(format!(
                    "cleaner: {} is not a segment file (expected <20-digit base offset>.log)",
                    p.display()
                ))
            })?;
        if let Some(prev) = out.last() {
            if base <= prev.base_offset {
                return Err(WalError::InvalidArgument(format!(
                    "cleaner: segments must be given in increasing base offset order: {} follows {}",
                    p.display(),
                    prev.path.display()
                )));
            }
        }
        out.push(SegmentFile {
            path: p.clone(),
            base_offset: base,
        });
    }
    Ok(out)
}

/// Last-modified time of a file (ms since the epoch).
pub fn modified_ms(path: &Path) -> Result<i64, WalError> {
    let m = std::fs::metadata(path).map_err(|e| storage(path, "cannot stat", e))?;
    let t = m.modified().map_err(|e| storage(path, "cannot stat", e))?;
    Ok(match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_millis() as i64,
        Err(e) => -(e.duration().as_millis() as i64),
    })
}

/// Reads whole batches of one segment file in order.
pub struct BatchReader {
    path: PathBuf,
    reader: BufReader<File>,
    pos: u64,
    size: u64,
}

impl BatchReader {
    pub fn open(path: &Path) -> Result<Self, WalError> {
        let f = File::open(path).map_err(|e| storage(path, "cannot open", e))?;
        let size = f
            .metadata()
            .map_err(|e| storage(path, "cannot stat", e))?
            .len();
        Ok(BatchReader {
            path: path.to_path_buf(),
            reader: BufReader::with_capacity(READ_BUFFER, f),
            pos: 0,
            size,
        })
    }

    /// File size when opened (bytes).
    pub fn size(&self) -> u64 {
        self.size
    }

    fn corrupt(&self, at: u64, what: String) -> WalError {
        WalError::CorruptBatch(format!(
            "cleaner: {} at byte {at}: {what}",
            self.path.display()
        ))
    }

    /// Fills `buf` with the next whole batch and returns its file position, or None at
    /// the end. A torn or unframeable tail is corruption: the cleaner only reads closed
    /// segments, which recovery has already cut at their last whole batch.
    pub fn next_into(&mut self, buf: &mut Vec<u8>) -> Result<Option<u64>, WalError> {
        if self.pos >= self.size {
            return Ok(None);
        }
        let at = self.pos;
        let left = self.size - at;
        if left < HEADER_LEN as u64 {
            return Err(self.corrupt(at, format!("{left} bytes left, less than a batch header")));
        }
        buf.clear();
        buf.resize(LOG_OVERHEAD, 0);
        self.reader
            .read_exact(buf)
            .map_err(|e| storage(&self.path, "cannot read", e))?;
        let length = crate::record_batch::header::batch_length(buf);
        if length < MIN_BATCH_LENGTH || LOG_OVERHEAD as u64 + length as u64 > left {
            return Err(self.corrupt(
                at,
                format!("batchLength {length} cannot frame a batch in the {left} bytes left"),
            ));
        }
        buf.resize(LOG_OVERHEAD + length as usize, 0);
        self.reader
            .read_exact(&mut buf[LOG_OVERHEAD..])
            .map_err(|e| storage(&self.path, "cannot read", e))?;
        self.pos += buf.len() as u64;
        Ok(Some(at))
    }
}

/// Header fields the pre-pass collects per batch.
#[derive(Clone, Copy, Debug)]
pub struct HeaderInfo {
    pub last_offset: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub control: bool,
}

/// Headers of every batch of `path`, reading only the 61 header bytes of each.
pub fn walk_headers(path: &Path) -> Result<Vec<HeaderInfo>, WalError> {
    let f = File::open(path).map_err(|e| storage(path, "cannot open", e))?;
    let size = f
        .metadata()
        .map_err(|e| storage(path, "cannot stat", e))?
        .len();
    let mut r = BufReader::with_capacity(64 * 1024, f);
    let mut pos = 0u64;
    let mut out = Vec::new();
    let mut h = [0u8; HEADER_LEN];
    while pos < size {
        if size - pos < HEADER_LEN as u64 {
            return Err(WalError::CorruptBatch(format!(
                "cleaner: {} at byte {pos}: {} bytes left, less than a batch header",
                path.display(),
                size - pos
            )));
        }
        r.read_exact(&mut h)
            .map_err(|e| storage(path, "cannot read", e))?;
        let hd = BatchHeader::parse(&h);
        let total = match hd.checked_total_len() {
            Some(t) if t <= size - pos => t,
            _ => {
                return Err(WalError::CorruptBatch(format!(
                    "cleaner: {} at byte {pos}: batchLength {} cannot frame a batch",
                    path.display(),
                    hd.batch_length
                )))
            }
        };
        r.seek_relative((total - HEADER_LEN as u64) as i64)
            .map_err(|e| storage(path, "cannot read", e))?;
        pos += total;
        out.push(HeaderInfo {
            last_offset: hd.last_offset(),
            producer_id: hd.producer_id,
            producer_epoch: hd.producer_epoch,
            control: hd.is_control(),
        });
    }
    Ok(out)
}
