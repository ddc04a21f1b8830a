//! The cleaning pass: rewrite segments keeping, per key, only its latest record.
//!
//! Per batch, the decisions of Kafka's cleaner (`Cleaner.cleanInto` with
//! `MemoryRecords.filterTo`), for magic 2:
//! * a record after the map's latest offset is kept (not yet mapped);
//! * a record without a key is removed (a compacted topic cannot take one);
//! * a record older than its key's mapped offset is removed;
//! * a tombstone (null value) is kept until its batch's delete horizon has passed.
//!   A batch that keeps a tombstone and has no horizon yet is rewritten with one:
//!   baseTimestamp becomes `now + delete.retention.ms` and attribute bit 6 says so
//!   (KIP-534); a later pass at or after that time removes the tombstone;
//! * a batch that keeps every record and needs no horizon is copied byte for byte;
//!   otherwise it is re-encoded: same baseOffset, partitionLeaderEpoch, lastOffsetDelta
//!   (so the producer's last sequence survives), producer id/epoch/base sequence,
//!   codec (recompressed at the codec's default level), timestamp type and flags;
//!   each kept record keeps its offset delta and timestamp; baseTimestamp is the
//!   first kept record's timestamp (or the horizon), maxTimestamp the largest kept
//!   one (the batch's own under log-append time), and the CRC is recomputed;
//! * a batch left with no record is dropped, unless it is its producer's last batch:
//!   then a header with no records stays (baseTimestamp -1, the original
//!   maxTimestamp and lastOffsetDelta), so idempotent sequence checks still work.
//!   A producer's last batch is the one holding its last data offset, or, when a
//!   marker with a newer epoch followed its last data (Kafka's fencing), the
//!   control batch of that epoch;
//! * transactions (when the caller gives the aborted transactions; `None` copies
//!   control and transactional batches unchanged): records of aborted transactions
//!   are removed whatever their keys; committed transactional records are cleaned
//!   like any others; a COMMIT/ABORT marker whose transaction has no batch left
//!   (see `txn`) gets a delete horizon like a tombstone's and is removed once it
//!   has passed; until then markers are copied. An ABORT marker kept because its
//!   transaction still had batches is reported in the output's aborted
//!   transactions (its entry of the cleaned aborted-transaction index).
//!
//! Consecutive input segments are grouped into one output while their sizes add up
//! to at most `segment_bytes` and their offsets fit 32-bit relative index entries
//! (Kafka's `groupSegmentsBySize`).

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use super::input::{modified_ms, segment_files, walk_headers, BatchReader, SegmentFile};
use super::key_hash::key_hash;
use super::offset_map::OffsetMap;
use super::result::{CleanResult, CleanStats, CleanedSegment};
use super::throttle::{Clock, Throttle};
use super::txn::{AbortedTxn, TxnTracker};
use crate::compression::{self, Codec};
use crate::record_batch::header::{
    seal_crc, BatchHeader, ATTR_CODEC_MASK, ATTR_CONTROL, ATTR_LOG_APPEND_TIME, ATTR_TRANSACTIONAL,
    HEADER_LEN, LOG_OVERHEAD, MAGIC_V2,
};
use crate::record_batch::{decode_batch, DecodeOptions, DecodedBatch, RecordEntry};
use crate::varint::push_varint;
use crate::wal::WalError;

/// Attribute bit 6: baseTimestamp holds the batch's delete horizon (KIP-534).
pub const ATTR_DELETE_HORIZON: i16 = 0x40;
/// Kafka's NO_TIMESTAMP.
const NO_TIMESTAMP: i64 = -1;
/// Suffix of the files a cleaning pass writes.
pub const CLEANED_SUFFIX: &str = ".log.cleaned";

/// Settings of one cleaning pass.
#[derive(Clone, Debug)]
pub struct CleanOptions {
    /// `delete.retention.ms`: how long a tombstone outlives the pass that first sees it.
    pub delete_retention_ms: i64,
    /// The pass's clock (ms since the epoch).
    pub now_ms: i64,
    /// `segment.bytes`: most input bytes grouped into one output.
    pub segment_bytes: u64,
    pub max_decompressed_bytes: usize,
    /// Producer id -> last offset of its last data batch. `None`: taken from the
    /// inputs' headers (the last batch of each producer among them).
    pub producer_last_offsets: Option<HashMap<i64, i64>>,
    /// The partition's aborted transactions (its aborted-transaction index), for
    /// removing aborted data and markers. `None`: transactions are not resolved, and
    /// control and transactional batches are copied unchanged.
    pub aborted_transactions: Option<Vec<AbortedTxn>>,
}

/// What the cleaner keeps of a producer: the batch holding its last data offset, or
/// (no data since its epoch changed) its control batch of that epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LastRecord {
    pub last_data_offset: Option<i64>,
    pub producer_epoch: i16,
}

impl LastRecord {
    fn is_last(&self, h: &BatchHeader) -> bool {
        match self.last_data_offset {
            Some(o) => h.last_offset() == o,
            None => h.is_control() && h.producer_epoch == self.producer_epoch,
        }
    }
}

fn storage(path: &Path, what: &str, e: std::io::Error) -> WalError {
    WalError::Storage(format!("cleaner: {what} {}: {e}", path.display()))
}

/// Ranges of `segments` indexes cleaned into one output each.
pub fn group_segments(
    bases: &[i64],
    sizes: &[u64],
    last_offsets: &[i64],
    segment_bytes: u64,
) -> Vec<std::ops::Range<usize>> {
    let mut groups = Vec::new();
    let mut i = 0;
    while i < bases.len() {
        let start = i;
        let mut size = sizes[i];
        i += 1;
        while i < bases.len()
            && size + sizes[i] <= segment_bytes
            && (sizes[i] == 0 || last_offsets[i] - bases[start] <= i32::MAX as i64)
        {
            size += sizes[i];
            i += 1;
        }
        groups.push(start..i);
    }
    groups
}

/// What happens to one batch.
enum Outcome {
    Verbatim { records: u64 },
    Rebuilt(Vec<u8>, u64),
    Empty(Vec<u8>),
    Dropped,
}

struct Pass<'a> {
    map: &'a OffsetMap,
    opts: &'a CleanOptions,
    producer_last: &'a HashMap<i64, LastRecord>,
    /// None: transactions are not resolved.
    txn: Option<TxnTracker>,
    /// Aborted transactions whose marker the current output keeps.
    retained: Vec<AbortedTxn>,
    stats: CleanStats,
}

impl Pass<'_> {
    fn decide(&mut self, batch: &DecodedBatch<'_>) -> Result<Outcome, WalError> {
        let h = &batch.header;
        let n = batch.entries.len() as u64;
        self.stats.records_read += n;
        let is_last = h.producer_id >= 0
            && self
                .producer_last
                .get(&h.producer_id)
                .is_some_and(|l| l.is_last(h));
        let Some(txn) = self.txn.as_mut() else {
            if h.is_control() || h.is_transactional() {
                return Ok(Outcome::Verbatim { records: n });
            }
            return self.decide_records(batch, is_last);
        };
        let has_horizon = h.attributes & ATTR_DELETE_HORIZON != 0;
        if h.is_control() {
            // Kafka: a marker whose transaction has no batch left may go, once the
            // delete horizon it then gets has passed; other control batches stay.
            let key = batch
                .entries
                .first()
                .map(|e| batch.field(e.key_start, e.key_len));
            let (can_discard, retained) = txn.on_control_batch(h, key);
            if let Some(t) = retained {
                self.retained.push(t);
            }
            let discard = can_discard && has_horizon && self.opts.now_ms >= h.first_timestamp;
            if !discard && n > 0 {
                if can_discard && !has_horizon {
                    let kept: Vec<&RecordEntry> = batch.entries.iter().collect();
                    let horizon = self
                        .opts
                        .now_ms
                        .saturating_add(self.opts.delete_retention_ms);
                    return Ok(Outcome::Rebuilt(rebuild(batch, &kept, Some(horizon))?, n));
                }
                return Ok(Outcome::Verbatim { records: n });
            }
            if is_last {
                return Ok(Outcome::Empty(empty_batch(h)));
            }
            self.stats.markers_removed += 1;
            return Ok(Outcome::Dropped);
        }
        if txn.on_data_batch(h) {
            self.stats.aborted_removed += n;
            if is_last {
                return Ok(Outcome::Empty(empty_batch(h)));
            }
            return Ok(Outcome::Dropped);
        }
        self.decide_records(batch, is_last)
    }

    /// The record-by-record rules for a data batch that is not aborted.
    fn decide_records(
        &mut self,
        batch: &DecodedBatch<'_>,
        is_last: bool,
    ) -> Result<Outcome, WalError> {
        let h = &batch.header;
        let has_horizon = h.attributes & ATTR_DELETE_HORIZON != 0;
        let retain_deletes = !has_horizon || self.opts.now_ms < h.first_timestamp;
        let latest = self.map.latest_offset();
        let mut kept: Vec<&RecordEntry> = Vec::with_capacity(batch.entries.len());
        let mut keeps_tombstone = false;
        for e in &batch.entries {
            let offset = batch.offset_of(e);
            let keep = if offset > latest {
                true
            } else {
                match batch.field(e.key_start, e.key_len) {
                    None => {
                        self.stats.keyless_removed += 1;
                        false
                    }
                    Some(key) => {
                        if offset < self.map.get_hash(&key_hash(key)) {
                            self.stats.superseded_removed += 1;
                            false
                        } else if e.value_len < 0 && !retain_deletes {
                            self.stats.tombstones_removed += 1;
                            false
                        } else {
                            true
                        }
                    }
                }
            };
            if keep {
                keeps_tombstone |= e.value_len < 0;
                kept.push(e);
            }
        }
        let needs_horizon = keeps_tombstone && !has_horizon;
        if !kept.is_empty() {
            if kept.len() == batch.entries.len() && !needs_horizon {
                return Ok(Outcome::Verbatim {
                    records: kept.len() as u64,
                });
            }
            let horizon = if needs_horizon {
                Some(
                    self.opts
                        .now_ms
                        .saturating_add(self.opts.delete_retention_ms),
                )
            } else if has_horizon {
                Some(h.first_timestamp)
            } else {
                None
            };
            let n = kept.len() as u64;
            return Ok(Outcome::Rebuilt(rebuild(batch, &kept, horizon)?, n));
        }
        if is_last {
            return Ok(Outcome::Empty(empty_batch(h)));
        }
        Ok(Outcome::Dropped)
    }
}

fn field_into(out: &mut Vec<u8>, f: Option<&[u8]>) {
    match f {
        None => push_varint(out, -1),
        Some(b) => {
            push_varint(out, b.len() as i64);
            out.extend_from_slice(b);
        }
    }
}

/// Re-encodes `batch` with only the `kept` records (see the module docs for the
/// fields).
fn rebuild(
    batch: &DecodedBatch<'_>,
    kept: &[&RecordEntry],
    horizon: Option<i64>,
) -> Result<Vec<u8>, WalError> {
    let h = &batch.header;
    let log_append = h.timestamp_type() == 1;
    let base_ts = horizon.unwrap_or_else(|| batch.timestamp_of(kept[0]));
    let max_ts = if log_append {
        h.max_timestamp
    } else {
        kept.iter()
            .map(|e| batch.timestamp_of(e))
            .max()
            .unwrap_or(NO_TIMESTAMP)
    };
    let mut region = Vec::with_capacity(batch.records.len());
    let mut body = Vec::new();
    for e in kept {
        body.clear();
        body.push(0); // record attributes: unused by magic 2
        push_varint(&mut body, batch.timestamp_of(e).wrapping_sub(base_ts));
        push_varint(&mut body, e.offset_delta as i64);
        field_into(&mut body, batch.field(e.key_start, e.key_len));
        field_into(&mut body, batch.field(e.value_start, e.value_len));
        push_varint(&mut body, e.headers_count as i64);
        for hd in &batch.headers[e.headers_start..e.headers_start + e.headers_count] {
            field_into(&mut body, batch.field(hd.key_start, hd.key_len as i32));
            field_into(&mut body, batch.field(hd.value_start, hd.value_len));
        }
        push_varint(&mut region, body.len() as i64);
        region.extend_from_slice(&body);
    }
    let codec = h.codec().unwrap_or(Codec::None);
    let payload = if codec == Codec::None {
        region
    } else {
        compression::compress(codec, &region, None)
            .map_err(|e| WalError::Storage(format!("cleaner: recompressing a batch: {}", e.0)))?
    };
    let mut attributes =
        codec as i16 | (h.attributes & (ATTR_LOG_APPEND_TIME | ATTR_TRANSACTIONAL | ATTR_CONTROL));
    if horizon.is_some() {
        attributes |= ATTR_DELETE_HORIZON;
    }
    let header = BatchHeader {
        base_offset: h.base_offset,
        batch_length: (HEADER_LEN - LOG_OVERHEAD + payload.len()) as i32,
        partition_leader_epoch: h.partition_leader_epoch,
        magic: MAGIC_V2,
        crc: 0,
        attributes,
        last_offset_delta: h.last_offset_delta,
        first_timestamp: base_ts,
        max_timestamp: max_ts,
        producer_id: h.producer_id,
        producer_epoch: h.producer_epoch,
        base_sequence: h.base_sequence,
        record_count: kept.len() as i32,
    };
    let mut out = vec![0u8; HEADER_LEN + payload.len()];
    header.write(&mut out);
    out[HEADER_LEN..].copy_from_slice(&payload);
    seal_crc(&mut out);
    Ok(out)
}

/// The header-only batch that keeps a producer's last sequence after its records go.
fn empty_batch(h: &BatchHeader) -> Vec<u8> {
    let header = BatchHeader {
        base_offset: h.base_offset,
        batch_length: (HEADER_LEN - LOG_OVERHEAD) as i32,
        partition_leader_epoch: h.partition_leader_epoch,
        magic: MAGIC_V2,
        crc: 0,
        attributes: h.attributes
            & (ATTR_LOG_APPEND_TIME | ATTR_TRANSACTIONAL | ATTR_CONTROL)
            & !ATTR_CODEC_MASK,
        last_offset_delta: h.last_offset_delta,
        first_timestamp: NO_TIMESTAMP,
        max_timestamp: h.max_timestamp,
        producer_id: h.producer_id,
        producer_epoch: h.producer_epoch,
        base_sequence: h.base_sequence,
        record_count: 0,
    };
    let mut out = vec![0u8; HEADER_LEN];
    header.write(&mut out);
    seal_crc(&mut out);
    out
}

/// Cleans the given segments (paths of `<base:020>.log` files, in offset order) with
/// `map` into `<out_dir>/<base:020>.log.cleaned` files, one per group of segments,
/// each fsynced and given its last input's modification time. The inputs are not
/// touched; swapping the outputs in is the log's job.
pub fn clean_segments<C: Clock>(
    segment_paths: &[PathBuf],
    map: &OffsetMap,
    opts: &CleanOptions,
    out_dir: &Path,
    throttle: &mut Throttle<C>,
) -> Result<CleanResult, WalError> {
    if opts.delete_retention_ms < 0 {
        return Err(WalError::InvalidArgument(format!(
            "delete_retention_ms must be >= 0, not {}",
            opts.delete_retention_ms
        )));
    }
    if opts.segment_bytes < 1 {
        return Err(WalError::InvalidArgument(
            "segment_bytes must be >= 1".into(),
        ));
    }
    let segments = segment_files(segment_paths)?;
    let (last_offsets, derived) = pre_pass(&segments, opts.producer_last_offsets.is_none())?;
    let given: Option<HashMap<i64, LastRecord>> = opts.producer_last_offsets.as_ref().map(|m| {
        m.iter()
            .map(|(&pid, &o)| {
                (
                    pid,
                    LastRecord {
                        last_data_offset: Some(o),
                        producer_epoch: -1,
                    },
                )
            })
            .collect()
    });
    let producer_last = given.as_ref().unwrap_or(&derived);
    let mut sizes = Vec::with_capacity(segments.len());
    for s in &segments {
        let m = std::fs::metadata(&s.path).map_err(|e| storage(&s.path, "cannot stat", e))?;
        sizes.push(m.len());
    }
    let bases: Vec<i64> = segments.iter().map(|s| s.base_offset).collect();
    let groups = group_segments(&bases, &sizes, &last_offsets, opts.segment_bytes);
    let mut pass = Pass {
        map,
        opts,
        producer_last,
        txn: opts.aborted_transactions.as_deref().map(TxnTracker::new),
        retained: Vec::new(),
        stats: CleanStats::default(),
    };
    let mut result = CleanResult::default();
    for g in groups {
        let group = &segments[g];
        result
            .segments
            .push(clean_group(group, &mut pass, out_dir, throttle)?);
    }
    pass.stats.throttled_ms = throttle.slept_ms();
    result.stats = pass.stats;
    Ok(result)
}

/// Per segment its last offset (for grouping), and per producer what its last batch
/// is (when `want_producers`), as Kafka's producer state has it: a data batch sets
/// the last data offset and epoch; a control batch of another epoch clears the data
/// offset (the epoch changed: the marker now carries the producer's state).
fn pre_pass(
    segments: &[SegmentFile],
    want_producers: bool,
) -> Result<(Vec<i64>, HashMap<i64, LastRecord>), WalError> {
    let mut last_offsets = Vec::with_capacity(segments.len());
    let mut producers = HashMap::new();
    for (i, s) in segments.iter().enumerate() {
        let next_base = segments.get(i + 1).map(|n| n.base_offset);
        if !want_producers && next_base.is_some() {
            last_offsets.push(next_base.unwrap_or(0) - 1);
            continue;
        }
        let headers = walk_headers(&s.path)?;
        for hd in &headers {
            if hd.producer_id < 0 {
                continue;
            }
            if !hd.control {
                producers.insert(
                    hd.producer_id,
                    LastRecord {
                        last_data_offset: Some(hd.last_offset),
                        producer_epoch: hd.producer_epoch,
                    },
                );
            } else {
                let cur = producers.get(&hd.producer_id);
                if cur.is_none_or(|c| c.producer_epoch != hd.producer_epoch) {
                    producers.insert(
                        hd.producer_id,
                        LastRecord {
                            last_data_offset: None,
                            producer_epoch: hd.producer_epoch,
                        },
                    );
                }
            }
        }
        last_offsets.push(match next_base {
            Some(b) => b - 1,
            None => headers
                .last()
                .map_or(s.base_offset - 1, |hd| hd.last_offset),
        });
    }
    Ok((last_offsets, producers))
}

fn clean_group<C: Clock>(
    group: &[SegmentFile],
    pass: &mut Pass<'_>,
    out_dir: &Path,
    throttle: &mut Throttle<C>,
) -> Result<CleanedSegment, WalError> {
    let base = group[0].base_offset;
    let path = out_dir.join(format!("{base:020}{CLEANED_SUFFIX}"));
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .map_err(|e| storage(&path, "cannot create", e))?;
    let mut w = BufWriter::with_capacity(1 << 20, file);
    let mut out = CleanedSegment {
        path: path.clone(),
        base_offset: base,
        inputs: group.iter().map(|s| s.path.clone()).collect(),
        size_bytes: 0,
        batches: 0,
        records: 0,
        max_timestamp: NO_TIMESTAMP,
        last_modified_ms: modified_ms(&group[group.len() - 1].path)?,
        aborted_transactions: Vec::new(),
    };
    let opts = DecodeOptions {
        verify_crc: true,
        max_decompressed_bytes: pass.opts.max_decompressed_bytes,
    };
    let mut buf = Vec::new();
    for seg in group {
        let mut reader = BatchReader::open(&seg.path)?;
        while let Some(at) = reader.next_into(&mut buf)? {
            pass.stats.bytes_read += buf.len() as u64;
            pass.stats.batches_read += 1;
            throttle.account(buf.len() as u64);
            let batch = decode_batch(&buf, &opts).map_err(|e| {
                WalError::CorruptBatch(format!(
                    "cleaner: {} batch at byte {at}: {e}",
                    seg.path.display()
                ))
            })?;
            let (bytes, records): (&[u8], u64) = match pass.decide(&batch)? {
                Outcome::Dropped => continue,
                Outcome::Verbatim { records } => (&buf, records),
                Outcome::Rebuilt(b, n) => {
                    let written = write_batch(&mut w, &path, &b, n, &mut out, &mut pass.stats)?;
                    throttle.account(written);
                    continue;
                }
                Outcome::Empty(b) => {
                    pass.stats.empty_batches_retained += 1;
                    let written = write_batch(&mut w, &path, &b, 0, &mut out, &mut pass.stats)?;
                    throttle.account(written);
                    continue;
                }
            };
            let written = write_batch(&mut w, &path, bytes, records, &mut out, &mut pass.stats)?;
            throttle.account(written);
        }
    }
    let file = w
        .into_inner()
        .map_err(|e| storage(&path, "cannot write", e.into_error()))?;
    finish_file(&file, &path, out.last_modified_ms)?;
    out.aborted_transactions = std::mem::take(&mut pass.retained);
    Ok(out)
}

fn write_batch(
    w: &mut BufWriter<File>,
    path: &Path,
    bytes: &[u8],
    records: u64,
    out: &mut CleanedSegment,
    stats: &mut CleanStats,
) -> Result<u64, WalError> {
    w.write_all(bytes)
        .map_err(|e| storage(path, "cannot write", e))?;
    let max_ts = BatchHeader::parse(bytes).max_timestamp;
    out.size_bytes += bytes.len() as u64;
    out.batches += 1;
    out.records += records;
    out.max_timestamp = out.max_timestamp.max(max_ts);
    stats.bytes_written += bytes.len() as u64;
    stats.batches_written += 1;
    stats.records_kept += records;
    Ok(bytes.len() as u64)
}

fn finish_file(file: &File, path: &Path, modified_ms: i64) -> Result<(), WalError> {
    file.sync_all()
        .map_err(|e| storage(path, "cannot fsync", e))?;
    let when = UNIX_EPOCH + Duration::from_millis(modified_ms.max(0) as u64);
    file.set_modified(when)
        .map_err(|e| storage(path, "cannot set the modification time of", e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_stay_under_segment_bytes() {
        let bases = [0, 10, 20, 30, 40];
        let sizes = [400, 300, 300, 900, 50];
        let last = [9, 19, 29, 39, 49];
        let g = group_segments(&bases, &sizes, &last, 1000);
        assert_eq!(g, vec![0..3, 3..5]);
    }

    #[test]
    fn a_group_never_spans_more_than_i32_offsets() {
        let far = i32::MAX as i64 + 5;
        let g = group_segments(&[0, 10, far], &[1, 1, 1], &[9, far - 1, far + 3], 1000);
        assert_eq!(g, vec![0..1, 1..3]);
    }

    #[test]
    fn an_empty_segment_joins_whatever_its_offsets() {
        let far = i32::MAX as i64 * 2;
        let g = group_segments(&[0, 10], &[5, 0], &[9, far], 1000);
        assert_eq!(g, vec![0..2]);
    }
}
