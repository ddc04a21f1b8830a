//! Encoding: size the batch exactly from borrowed columns, then write the records
//! region and the header straight into the caller's buffer.

use super::header::{
    seal_crc, BatchHeader, ATTR_CONTROL, ATTR_LOG_APPEND_TIME, ATTR_TRANSACTIONAL, HEADER_LEN,
    LOG_OVERHEAD, MAGIC_V2, MIN_BATCH_LENGTH,
};
use crate::compression::{self, Codec};
use crate::error::CodecError;
use crate::varint;

/// One record header for encoding: UTF-8 key bytes and an optional value.
#[derive(Debug, Clone, Copy)]
pub struct Header<'a> {
    pub key: &'a [u8],
    pub value: Option<&'a [u8]>,
}

/// Record timestamps for encoding, in milliseconds since the epoch.
#[derive(Debug, Clone, Copy)]
pub enum Timestamps<'a> {
    /// Every record gets this timestamp.
    Same(i64),
    /// One timestamp per record.
    Each(&'a [i64]),
}

/// The records to encode, as borrowed columns (no per-record allocation).
#[derive(Debug, Clone, Copy)]
pub struct RecordsIn<'a> {
    pub values: &'a [Option<&'a [u8]>],
    /// `None` means every key is null.
    pub keys: Option<&'a [Option<&'a [u8]>]>,
    /// `None` means no record has headers.
    pub headers: Option<&'a [Vec<Header<'a>>]>,
    pub timestamps: Timestamps<'a>,
}

impl RecordsIn<'_> {
    // The accessors below take the batch's shape as const parameters (see `Shape`): a
    // column the shape says is absent is never looked at, so the per-record loops of
    // the common shapes (values only, one timestamp) carry no branches for it.
    #[inline(always)]
    fn timestamp(&self, i: usize) -> i64 {
        match self.timestamps {
            Timestamps::Same(t) => t,
            Timestamps::Each(ts) => ts[i],
        }
    }
    #[inline(always)]
    fn key<const KEYS: bool>(&self, i: usize) -> Option<&[u8]> {
        if KEYS {
            self.keys.and_then(|k| k[i])
        } else {
            None
        }
    }
    #[inline(always)]
    fn headers<const HEADERS: bool>(&self, i: usize) -> &[Header<'_>] {
        match self.headers {
            Some(h) if HEADERS => &h[i],
            _ => &[],
        }
    }
}

/// Which optional columns a batch has; the per-record loops are compiled once per shape.
#[derive(Clone, Copy)]
struct Shape {
    keys: bool,
    headers: bool,
    each_ts: bool,
}

impl Shape {
    fn of(records: &RecordsIn<'_>) -> Shape {
        Shape {
            keys: records.keys.is_some(),
            headers: records.headers.is_some(),
            each_ts: matches!(records.timestamps, Timestamps::Each(_)),
        }
    }
}

/// Calls `$f::<KEYS, HEADERS, EACH_TS>($args)` for the shape of `$records`.
macro_rules! by_shape {
    ($f:ident, $records:expr, $($arg:expr),*) => {{
        let shape = Shape::of($records);
        match (shape.keys, shape.headers, shape.each_ts) {
            (false, false, false) => $f::<false, false, false>($($arg),*),
            (false, false, true) => $f::<false, false, true>($($arg),*),
            (false, true, false) => $f::<false, true, false>($($arg),*),
            (false, true, true) => $f::<false, true, true>($($arg),*),
            (true, false, false) => $f::<true, false, false>($($arg),*),
            (true, false, true) => $f::<true, false, true>($($arg),*),
            (true, true, false) => $f::<true, true, false>($($arg),*),
            (true, true, true) => $f::<true, true, true>($($arg),*),
        }
    }};
}

/// Batch-level fields for encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncodeOptions {
    pub compression: Codec,
    /// gzip 0-9 (default 6) or zstd level (default 3); ignored by snappy and lz4.
    pub compression_level: Option<i32>,
    pub base_offset: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub transactional: bool,
    pub control: bool,
    pub log_append_time: bool,
    pub partition_leader_epoch: i32,
}

impl Default for EncodeOptions {
    fn default() -> Self {
        EncodeOptions {
            compression: Codec::None,
            compression_level: None,
            base_offset: 0,
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
            transactional: false,
            control: false,
            log_append_time: false,
            partition_leader_epoch: -1,
        }
    }
}

impl EncodeOptions {
    fn attributes(&self, codec: Codec) -> i16 {
        let mut a = codec as i16;
        if self.log_append_time {
            a |= ATTR_LOG_APPEND_TIME;
        }
        if self.transactional {
            a |= ATTR_TRANSACTIONAL;
        }
        if self.control {
            a |= ATTR_CONTROL;
        }
        a
    }
}

/// What encoding will produce, computed before writing anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncodePlan {
    pub record_count: usize,
    pub first_timestamp: i64,
    pub max_timestamp: i64,
    /// Size of the uncompressed records region (bytes).
    pub records_len: usize,
}

impl EncodePlan {
    /// Size of the whole batch when it is not compressed (bytes).
    pub fn uncompressed_len(&self) -> usize {
        HEADER_LEN + self.records_len
    }
}

#[inline(always)]
fn field_size(f: Option<&[u8]>) -> usize {
    match f {
        None => 1,
        Some(b) => varint::varint_size(b.len() as i64) + b.len(),
    }
}

/// Size of record `i`'s body (everything after its length varint).
#[inline(always)]
fn record_body_size<const KEYS: bool, const HEADERS: bool, const EACH_TS: bool>(
    records: &RecordsIn<'_>,
    i: usize,
    first_ts: i64,
) -> usize {
    let mut size = 1
        + varint::varint_size(i as i64)
        + field_size(records.key::<KEYS>(i))
        + field_size(records.values[i]);
    size += if EACH_TS {
        varint::varint_size(records.timestamp(i).wrapping_sub(first_ts))
    } else {
        1 // every record has the batch's timestamp: a delta of 0
    };
    if HEADERS {
        let headers = records.headers::<HEADERS>(i);
        size += varint::varint_size(headers.len() as i64);
        for h in headers {
            size += field_size(Some(h.key)) + field_size(h.value);
        }
    } else {
        size += 1; // a header count of 0
    }
    size
}

fn check_len(what: &str, i: usize, b: Option<&[u8]>) -> Result<(), CodecError> {
    match b {
        Some(b) if b.len() > i32::MAX as usize => Err(CodecError::InvalidArgument(format!(
            "{what} of record {i} is {} bytes, more than a record can hold",
            b.len()
        ))),
        _ => Ok(()),
    }
}

/// Size of the records region; an error names the first record too large to encode.
fn records_len<const KEYS: bool, const HEADERS: bool, const EACH_TS: bool>(
    records: &RecordsIn<'_>,
    first_ts: i64,
) -> Result<usize, CodecError> {
    let mut records_len = 0usize;
    for i in 0..records.values.len() {
        let body = record_body_size::<KEYS, HEADERS, EACH_TS>(records, i, first_ts);
        if body > i32::MAX as usize {
            check_len("key", i, records.key::<KEYS>(i))?;
            check_len("value", i, records.values[i])?;
            return Err(CodecError::InvalidArgument(format!(
                "record {i} is {body} bytes, more than a record can hold"
            )));
        }
        records_len += varint::varint_size(body as i64) + body;
    }
    Ok(records_len)
}

/// Checks the columns and computes sizes and timestamps.
pub fn plan(records: &RecordsIn<'_>) -> Result<EncodePlan, CodecError> {
    let n = records.values.len();
    if n == 0 {
        return Err(CodecError::EmptyBatch);
    }
    if n > i32::MAX as usize {
        return Err(CodecError::InvalidArgument(format!(
            "{n} records do not fit one batch"
        )));
    }
    let mismatch = |what: &str, got: usize| {
        CodecError::InvalidArgument(format!("{n} values but {got} {what}"))
    };
    if let Some(k) = records.keys {
        if k.len() != n {
            return Err(mismatch("keys", k.len()));
        }
    }
    if let Some(h) = records.headers {
        if h.len() != n {
            return Err(mismatch("headers", h.len()));
        }
    }
    let (first_ts, max_ts) = match records.timestamps {
        Timestamps::Same(t) => (t, t),
        Timestamps::Each(ts) => {
            if ts.len() != n {
                return Err(mismatch("timestamps", ts.len()));
            }
            (ts[0], ts.iter().copied().max().unwrap_or(ts[0]))
        }
    };
    let records_len = by_shape!(records_len, records, records, first_ts)?;
    if records_len > (i32::MAX as usize) - MIN_BATCH_LENGTH as usize {
        return Err(CodecError::InvalidArgument(format!(
            "records take {records_len} bytes, more than one batch can hold"
        )));
    }
    Ok(EncodePlan {
        record_count: n,
        first_timestamp: first_ts,
        max_timestamp: max_ts,
        records_len,
    })
}

#[inline(always)]
fn put_field(out: &mut [u8], mut p: usize, f: Option<&[u8]>) -> usize {
    match f {
        None => {
            out[p] = 1; // zigzag(-1)
            p + 1
        }
        Some(b) => {
            p += varint::write_varint(&mut out[p..], b.len() as i64);
            out[p..p + b.len()].copy_from_slice(b);
            p + b.len()
        }
    }
}

/// Writes the records region into `out` (exactly `plan.records_len` bytes).
fn write_records(records: &RecordsIn<'_>, plan: &EncodePlan, out: &mut [u8]) {
    by_shape!(write_records_of, records, records, plan, out)
}

fn write_records_of<const KEYS: bool, const HEADERS: bool, const EACH_TS: bool>(
    records: &RecordsIn<'_>,
    plan: &EncodePlan,
    out: &mut [u8],
) {
    let first_ts = plan.first_timestamp;
    let mut p = 0usize;
    for i in 0..plan.record_count {
        let body = record_body_size::<KEYS, HEADERS, EACH_TS>(records, i, first_ts);
        p += varint::write_varint(&mut out[p..], body as i64);
        out[p] = 0; // record attributes: unused
        p += 1;
        if EACH_TS {
            let delta = records.timestamp(i).wrapping_sub(first_ts);
            p += varint::write_varint(&mut out[p..], delta);
        } else {
            out[p] = 0; // a timestamp delta of 0
            p += 1;
        }
        p += varint::write_varint(&mut out[p..], i as i64);
        p = put_field(out, p, records.key::<KEYS>(i));
        p = put_field(out, p, records.values[i]);
        if HEADERS {
            let headers = records.headers::<HEADERS>(i);
            p += varint::write_varint(&mut out[p..], headers.len() as i64);
            for h in headers {
                p = put_field(out, p, Some(h.key));
                p = put_field(out, p, h.value);
            }
        } else {
            out[p] = 0; // no headers
            p += 1;
        }
    }
    debug_assert_eq!(p, out.len());
}

/// Writes the header into `out[..HEADER_LEN]` (the records must already be in place)
/// and then the CRC over everything from the attributes on.
fn write_header(out: &mut [u8], opts: &EncodeOptions, plan: &EncodePlan, codec: Codec) {
    let record_count = plan.record_count as i32;
    BatchHeader {
        base_offset: opts.base_offset,
        batch_length: (out.len() - LOG_OVERHEAD) as i32,
        partition_leader_epoch: opts.partition_leader_epoch,
        magic: MAGIC_V2,
        crc: 0,
        attributes: opts.attributes(codec),
        last_offset_delta: record_count - 1,
        first_timestamp: plan.first_timestamp,
        max_timestamp: plan.max_timestamp,
        producer_id: opts.producer_id,
        producer_epoch: opts.producer_epoch,
        base_sequence: opts.base_sequence,
        record_count,
    }
    .write(out);
    seal_crc(out);
}

/// Writes an uncompressed batch into `out`, which must be exactly
/// `plan.uncompressed_len()` bytes (lets the caller allocate the final buffer).
pub fn encode_uncompressed_into(
    records: &RecordsIn<'_>,
    opts: &EncodeOptions,
    plan: &EncodePlan,
    out: &mut [u8],
) -> Result<(), CodecError> {
    if out.len() != plan.uncompressed_len() {
        return Err(CodecError::InvalidArgument(format!(
            "output buffer is {} bytes, the batch needs {}",
            out.len(),
            plan.uncompressed_len()
        )));
    }
    write_records(records, plan, &mut out[HEADER_LEN..]);
    write_header(out, opts, plan, Codec::None);
    Ok(())
}

/// Encodes one batch, compressing the records region when `opts.compression` is set.
pub fn encode_batch(records: &RecordsIn<'_>, opts: &EncodeOptions) -> Result<Vec<u8>, CodecError> {
    let plan = plan(records)?;
    if opts.compression == Codec::None {
        let mut out = vec![0u8; plan.uncompressed_len()];
        encode_uncompressed_into(records, opts, &plan, &mut out)?;
        return Ok(out);
    }
    let mut region = vec![0u8; plan.records_len];
    write_records(records, &plan, &mut region);
    let packed = compression::compress(opts.compression, &region, opts.compression_level)
        .map_err(|e| CodecError::InvalidArgument(e.0))?;
    if packed.len() > (i32::MAX as usize) - MIN_BATCH_LENGTH as usize {
        return Err(CodecError::InvalidArgument(format!(
            "compressed records take {} bytes, more than one batch can hold",
            packed.len()
        )));
    }
    let mut out = vec![0u8; HEADER_LEN + packed.len()];
    out[HEADER_LEN..].copy_from_slice(&packed);
    write_header(&mut out, opts, &plan, opts.compression);
    Ok(out)
}
