//! Kafka record batch v2 (magic 2): encode, decode and validate.
//!
//! Layout of a batch (big-endian, offsets from the batch start):
//!
//! ```text
//!  0 baseOffset i64        27 baseTimestamp i64
//!  8 batchLength i32       35 maxTimestamp i64
//! 12 partitionLeaderEpoch  43 producerId i64
//! 16 magic i8 (= 2)        51 producerEpoch i16
//! 17 crc u32               53 baseSequence i32
//! 21 attributes i16        57 recordsCount i32
//! 23 lastOffsetDelta i32   61 records (one compressed blob when a codec is set)
//! ```
//!
//! The CRC-32C covers attributes..end, so the broker can patch baseOffset and
//! partitionLeaderEpoch without recomputing it. A record is: length varint,
//! attributes i8, timestampDelta varlong, offsetDelta varint, key (varint length, -1
//! for null), value (same), header count varint, then per header a key (varint length
//! + UTF-8) and a value (varint length, -1 for null). All varints are zigzag.
//!
//! Encoding sizes the output exactly before writing, so the caller can write straight
//! into its final buffer. Decoding produces an index of byte ranges into the records
//! region instead of owned records, so the binding decides when to build objects.

use std::borrow::Cow;

use crate::compression::{self, Codec, DecompressError};
use crate::crc32c;
use crate::error::{CodecError, Pos};
use crate::varint::{self, VarintError};

/// Size of the fixed batch header, up to and including recordsCount.
pub const HEADER_LEN: usize = 61;
/// baseOffset + batchLength: the bytes not counted by batchLength.
pub const LOG_OVERHEAD: usize = 12;
/// Smallest valid batchLength (a header with no records).
pub const MIN_BATCH_LENGTH: i32 = (HEADER_LEN - LOG_OVERHEAD) as i32;
/// Default cap on the decompressed size of one batch's records (bytes).
pub const DEFAULT_MAX_DECOMPRESSED_BYTES: usize = 64 * 1024 * 1024;

const PARTITION_LEADER_EPOCH_OFFSET: usize = 12;
const MAGIC_OFFSET: usize = 16;
const CRC_OFFSET: usize = 17;
const ATTRIBUTES_OFFSET: usize = 21;
const LAST_OFFSET_DELTA_OFFSET: usize = 23;
const RECORDS_COUNT_OFFSET: usize = 57;

/// Attribute bits.
pub const ATTR_CODEC_MASK: i16 = 0x07;
pub const ATTR_LOG_APPEND_TIME: i16 = 0x08;
pub const ATTR_TRANSACTIONAL: i16 = 0x10;
pub const ATTR_CONTROL: i16 = 0x20;

/// The smallest possible record: length, attributes, timestamp delta, offset delta,
/// key length, value length and header count, one byte each.
const MIN_RECORD_LEN: usize = 7;

/// The fixed header fields of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    pub batch_length: i32,
    pub partition_leader_epoch: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub first_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub record_count: i32,
}

impl BatchHeader {
    /// Codec from attribute bits 0-2 (`None` for the unassigned ids 5-7).
    pub fn codec(&self) -> Option<Codec> {
        Codec::from_id((self.attributes & ATTR_CODEC_MASK) as u8)
    }
    /// 1 when record timestamps are the broker's append time, 0 for create time.
    pub fn timestamp_type(&self) -> u8 {
        u8::from(self.attributes & ATTR_LOG_APPEND_TIME != 0)
    }
    pub fn is_transactional(&self) -> bool {
        self.attributes & ATTR_TRANSACTIONAL != 0
    }
    pub fn is_control(&self) -> bool {
        self.attributes & ATTR_CONTROL != 0
    }
    /// baseOffset + lastOffsetDelta.
    pub fn last_offset(&self) -> i64 {
        self.base_offset.wrapping_add(self.last_offset_delta as i64)
    }
    /// Whole batch size in bytes, including baseOffset and batchLength.
    pub fn total_len(&self) -> usize {
        LOG_OVERHEAD + self.batch_length as usize
    }
}

// ---------------------------------------------------------------------------------
// Encode
// ---------------------------------------------------------------------------------

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
    #[inline(always)]
    fn timestamp(&self, i: usize) -> i64 {
        match self.timestamps {
            Timestamps::Same(t) => t,
            Timestamps::Each(ts) => ts[i],
        }
    }
    #[inline(always)]
    fn key(&self, i: usize) -> Option<&[u8]> {
        self.keys.and_then(|k| k[i])
    }
    #[inline(always)]
    fn headers(&self, i: usize) -> &[Header<'_>] {
        match self.headers {
            Some(h) => &h[i],
            None => &[],
        }
    }
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
fn record_body_size(records: &RecordsIn<'_>, i: usize, first_ts: i64) -> usize {
    let headers = records.headers(i);
    let mut size = 1
        + varint::varint_size(records.timestamp(i).wrapping_sub(first_ts))
        + varint::varint_size(i as i64)
        + field_size(records.key(i))
        + field_size(records.values[i])
        + varint::varint_size(headers.len() as i64);
    for h in headers {
        size += field_size(Some(h.key)) + field_size(h.value);
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
    let mut records_len = 0usize;
    for i in 0..n {
        let body = record_body_size(records, i, first_ts);
        if body > i32::MAX as usize {
            check_len("key", i, records.key(i))?;
            check_len("value", i, records.values[i])?;
            return Err(CodecError::InvalidArgument(format!(
                "record {i} is {body} bytes, more than a record can hold"
            )));
        }
        records_len += varint::varint_size(body as i64) + body;
    }
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
    let first_ts = plan.first_timestamp;
    let mut p = 0usize;
    for i in 0..plan.record_count {
        let body = record_body_size(records, i, first_ts);
        p += varint::write_varint(&mut out[p..], body as i64);
        out[p] = 0; // record attributes: unused
        p += 1;
        p += varint::write_varint(&mut out[p..], records.timestamp(i).wrapping_sub(first_ts));
        p += varint::write_varint(&mut out[p..], i as i64);
        p = put_field(out, p, records.key(i));
        p = put_field(out, p, records.values[i]);
        let headers = records.headers(i);
        p += varint::write_varint(&mut out[p..], headers.len() as i64);
        for h in headers {
            p = put_field(out, p, Some(h.key));
            p = put_field(out, p, h.value);
        }
    }
    debug_assert_eq!(p, out.len());
}

/// Writes the 61-byte header into `out[..61]` and the CRC over `out[21..]`.
fn write_header(out: &mut [u8], opts: &EncodeOptions, plan: &EncodePlan, codec: Codec) {
    let batch_length = (out.len() - LOG_OVERHEAD) as i32;
    let h = &mut out[..HEADER_LEN];
    h[0..8].copy_from_slice(&opts.base_offset.to_be_bytes());
    h[8..12].copy_from_slice(&batch_length.to_be_bytes());
    h[12..16].copy_from_slice(&opts.partition_leader_epoch.to_be_bytes());
    h[MAGIC_OFFSET] = 2;
    h[21..23].copy_from_slice(&opts.attributes(codec).to_be_bytes());
    h[23..27].copy_from_slice(&((plan.record_count - 1) as i32).to_be_bytes());
    h[27..35].copy_from_slice(&plan.first_timestamp.to_be_bytes());
    h[35..43].copy_from_slice(&plan.max_timestamp.to_be_bytes());
    h[43..51].copy_from_slice(&opts.producer_id.to_be_bytes());
    h[51..53].copy_from_slice(&opts.producer_epoch.to_be_bytes());
    h[53..57].copy_from_slice(&opts.base_sequence.to_be_bytes());
    h[57..61].copy_from_slice(&(plan.record_count as i32).to_be_bytes());
    let crc = crc32c::crc32c(&out[ATTRIBUTES_OFFSET..]);
    out[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
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

// ---------------------------------------------------------------------------------
// Decode and validate
// ---------------------------------------------------------------------------------

/// Options for decoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeOptions {
    pub verify_crc: bool,
    /// Cap on the decompressed size of one batch's records (bytes).
    pub max_decompressed_bytes: usize,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        DecodeOptions {
            verify_crc: true,
            max_decompressed_bytes: DEFAULT_MAX_DECOMPRESSED_BYTES,
        }
    }
}

/// Where one record's fields are in the records region. A length of -1 means null
/// (the start is then 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordEntry {
    pub offset_delta: i32,
    pub timestamp_delta: i64,
    pub key_start: usize,
    pub key_len: i32,
    pub value_start: usize,
    pub value_len: i32,
    /// Index of this record's first header in [`DecodedBatch::headers`].
    pub headers_start: usize,
    pub headers_count: usize,
}

/// Where one header's key (UTF-8, checked) and value are in the records region.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderEntry {
    pub key_start: usize,
    pub key_len: usize,
    pub value_start: usize,
    /// -1 for a null value.
    pub value_len: i32,
}

/// One decoded batch: header, uncompressed records region and an index into it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedBatch<'a> {
    /// Offset of the batch in the input (bytes).
    pub at: usize,
    pub header: BatchHeader,
    /// The uncompressed records region (borrowed when the batch was not compressed).
    pub records: Cow<'a, [u8]>,
    pub entries: Vec<RecordEntry>,
    pub headers: Vec<HeaderEntry>,
}

impl DecodedBatch<'_> {
    /// Absolute offset of a record.
    #[inline]
    pub fn offset_of(&self, e: &RecordEntry) -> i64 {
        self.header.base_offset.wrapping_add(e.offset_delta as i64)
    }
    /// Timestamp of a record (ms): the batch's max timestamp under log-append time.
    #[inline]
    pub fn timestamp_of(&self, e: &RecordEntry) -> i64 {
        if self.header.timestamp_type() == 1 {
            self.header.max_timestamp
        } else {
            self.header.first_timestamp.wrapping_add(e.timestamp_delta)
        }
    }
    /// Byte slice of a field given its start and length (-1 = null).
    #[inline]
    pub fn field(&self, start: usize, len: i32) -> Option<&[u8]> {
        if len < 0 {
            None
        } else {
            Some(&self.records[start..start + len as usize])
        }
    }
}

#[inline(always)]
fn be_i16(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}
#[inline(always)]
fn be_i32(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
#[inline(always)]
fn be_i64(b: &[u8], at: usize) -> i64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(x)
}

/// Reads the header fields of a complete batch slice (at least 61 bytes).
fn read_header(b: &[u8]) -> BatchHeader {
    BatchHeader {
        base_offset: be_i64(b, 0),
        batch_length: be_i32(b, 8),
        partition_leader_epoch: be_i32(b, PARTITION_LEADER_EPOCH_OFFSET),
        magic: b[MAGIC_OFFSET] as i8,
        crc: be_i32(b, CRC_OFFSET) as u32,
        attributes: be_i16(b, ATTRIBUTES_OFFSET),
        last_offset_delta: be_i32(b, LAST_OFFSET_DELTA_OFFSET),
        first_timestamp: be_i64(b, 27),
        max_timestamp: be_i64(b, 35),
        producer_id: be_i64(b, 43),
        producer_epoch: be_i16(b, 51),
        base_sequence: be_i32(b, 53),
        record_count: be_i32(b, RECORDS_COUNT_OFFSET),
    }
}

/// Finds the extent of the batch starting at `data[0]` (input offset `at`).
///
/// Returns `Ok(None)` for a trailing partial batch (fewer than 12 bytes, or a
/// batchLength running past the end) when `partial_ok`; otherwise those are errors.
/// A batchLength below the header size is an error either way, checked before the
/// end (the order of Java's `ByteBufferLogInputStream`).
fn frame(data: &[u8], at: usize, partial_ok: bool) -> Result<Option<usize>, CodecError> {
    if data.len() < LOG_OVERHEAD {
        if partial_ok {
            return Ok(None);
        }
        return Err(CodecError::Truncated {
            what: "record batch header",
            needed: HEADER_LEN,
            available: data.len(),
            at: Pos::input(at),
        });
    }
    let length = be_i32(data, 8);
    if length < MIN_BATCH_LENGTH {
        return Err(CodecError::BatchLengthTooSmall {
            length,
            at: Pos::input(at + 8),
        });
    }
    let total = LOG_OVERHEAD + length as usize;
    if total > data.len() {
        if partial_ok {
            return Ok(None);
        }
        return Err(CodecError::BatchPastEnd {
            length,
            available: data.len() - LOG_OVERHEAD,
            at: Pos::input(at + 8),
        });
    }
    Ok(Some(total))
}

/// Collects the index while parsing records, or nothing when only validating.
trait Sink {
    fn record(&mut self, e: RecordEntry);
    fn header(&mut self, h: HeaderEntry);
    fn headers_len(&self) -> usize;
}

struct IndexSink {
    entries: Vec<RecordEntry>,
    headers: Vec<HeaderEntry>,
}

impl Sink for IndexSink {
    #[inline(always)]
    fn record(&mut self, e: RecordEntry) {
        self.entries.push(e);
    }
    #[inline(always)]
    fn header(&mut self, h: HeaderEntry) {
        self.headers.push(h);
    }
    #[inline(always)]
    fn headers_len(&self) -> usize {
        self.headers.len()
    }
}

struct NoSink;

impl Sink for NoSink {
    #[inline(always)]
    fn record(&mut self, _: RecordEntry) {}
    #[inline(always)]
    fn header(&mut self, _: HeaderEntry) {}
    #[inline(always)]
    fn headers_len(&self) -> usize {
        0
    }
}

/// Turns region-relative offsets into error positions.
#[derive(Clone, Copy)]
struct Place {
    base: usize,
    decompressed_batch_at: Option<usize>,
}

impl Place {
    #[inline(always)]
    fn at(self, p: usize) -> Pos {
        Pos {
            offset: self.base + p,
            decompressed_batch_at: self.decompressed_batch_at,
        }
    }
}

/// A cursor over one record's bytes that reports errors with positions.
struct Cursor<'r> {
    buf: &'r [u8],
    /// Position of `buf[0]` in the records region.
    start: usize,
    p: usize,
    place: Place,
}

impl Cursor<'_> {
    #[inline(always)]
    fn varint_err(&self, e: VarintError) -> CodecError {
        let at = self.place.at(self.start + self.p);
        match e {
            VarintError::PastEnd => CodecError::VarintPastEnd { at },
            VarintError::TooLong => CodecError::VarintTooLong { at },
        }
    }
    #[inline(always)]
    fn varint(&mut self) -> Result<i32, CodecError> {
        match varint::read_varint(&self.buf[self.p..]) {
            Ok((v, n)) => {
                self.p += n;
                Ok(v)
            }
            Err(e) => Err(self.varint_err(e)),
        }
    }
    #[inline(always)]
    fn varlong(&mut self) -> Result<i64, CodecError> {
        match varint::read_varlong(&self.buf[self.p..]) {
            Ok((v, n)) => {
                self.p += n;
                Ok(v)
            }
            Err(e) => Err(self.varint_err(e)),
        }
    }
    /// Reads a length-prefixed field; returns (region start, length or -1).
    #[inline(always)]
    fn field(&mut self, what: &'static str, nullable: bool) -> Result<(usize, i32), CodecError> {
        let len_at = self.p;
        let len = self.varint()?;
        if len < 0 {
            if len == -1 && nullable {
                return Ok((0, -1));
            }
            return Err(CodecError::BadLength {
                what,
                length: len,
                at: self.place.at(self.start + len_at),
            });
        }
        if len as usize > self.buf.len() - self.p {
            return Err(CodecError::FieldPastEnd {
                what,
                length: len,
                at: self.place.at(self.start + self.p),
            });
        }
        let s = self.start + self.p;
        self.p += len as usize;
        Ok((s, len))
    }
}

/// Parses recordsCount records filling exactly `region`. Offset deltas must increase
/// strictly within 0..=lastOffsetDelta (compacted batches have gaps, so gaps are fine).
fn parse_records<S: Sink>(
    region: &[u8],
    header: &BatchHeader,
    place: Place,
    sink: &mut S,
) -> Result<(), CodecError> {
    let count = header.record_count;
    let last_delta = header.last_offset_delta;
    let mut prev: i64 = -1;
    let mut p = 0usize;
    for k in 0..count as usize {
        if p >= region.len() {
            return Err(CodecError::TooFewRecords {
                declared: count,
                found: k,
                at: place.at(p),
            });
        }
        let (len, n) = varint::read_varint(&region[p..]).map_err(|e| match e {
            VarintError::PastEnd => CodecError::VarintPastEnd { at: place.at(p) },
            VarintError::TooLong => CodecError::VarintTooLong { at: place.at(p) },
        })?;
        if len < 0 || len as usize > region.len() - p - n {
            return Err(CodecError::RecordLengthPastEnd {
                length: len,
                at: place.at(p),
            });
        }
        let body_start = p + n;
        let mut c = Cursor {
            buf: &region[body_start..body_start + len as usize],
            start: body_start,
            p: 0,
            place,
        };
        if c.buf.is_empty() {
            return Err(CodecError::FieldPastEnd {
                what: "record attributes",
                length: 1,
                at: place.at(body_start),
            });
        }
        c.p = 1; // record attributes: unused by magic 2
        let timestamp_delta = c.varlong()?;
        let od_at = c.start + c.p;
        let offset_delta = c.varint()?;
        if offset_delta as i64 <= prev || offset_delta > last_delta {
            return Err(CodecError::OffsetDeltaOutOfOrder {
                previous: prev,
                last_offset_delta: last_delta,
                found: offset_delta,
                at: place.at(od_at),
            });
        }
        prev = offset_delta as i64;
        let (key_start, key_len) = c.field("key", true)?;
        let (value_start, value_len) = c.field("value", true)?;
        let hc_at = c.start + c.p;
        let headers_count = c.varint()?;
        if headers_count < 0 {
            return Err(CodecError::BadLength {
                what: "header count",
                length: headers_count,
                at: place.at(hc_at),
            });
        }
        let headers_start = sink.headers_len();
        for _ in 0..headers_count {
            let (hk_start, hk_len) = c.field("header key", false)?;
            let key = &region[hk_start..hk_start + hk_len as usize];
            if std::str::from_utf8(key).is_err() {
                return Err(CodecError::HeaderKeyNotUtf8 {
                    at: place.at(hk_start),
                });
            }
            let (hv_start, hv_len) = c.field("header value", true)?;
            sink.header(HeaderEntry {
                key_start: hk_start,
                key_len: hk_len as usize,
                value_start: hv_start,
                value_len: hv_len,
            });
        }
        if c.p != c.buf.len() {
            return Err(CodecError::RecordLengthMismatch {
                declared: len,
                used: c.p,
                at: place.at(p),
            });
        }
        sink.record(RecordEntry {
            offset_delta,
            timestamp_delta,
            key_start,
            key_len,
            value_start,
            value_len,
            headers_start,
            headers_count: headers_count as usize,
        });
        p = body_start + len as usize;
    }
    if p != region.len() {
        return Err(CodecError::DataAfterLastRecord {
            declared: count,
            extra: region.len() - p,
            at: place.at(p),
        });
    }
    Ok(())
}

/// Checks magic, CRC, codec and count (in that order) of one complete batch slice.
fn check_header(b: &[u8], at: usize, verify_crc: bool) -> Result<(BatchHeader, Codec), CodecError> {
    let header = read_header(b);
    if header.magic != 2 {
        return Err(CodecError::BadMagic {
            magic: header.magic,
            at: Pos::input(at + MAGIC_OFFSET),
        });
    }
    if verify_crc {
        let computed = crc32c::crc32c(&b[ATTRIBUTES_OFFSET..]);
        if computed != header.crc {
            return Err(CodecError::BadCrc {
                stored: header.crc,
                computed,
                batch_at: at,
            });
        }
    }
    let codec = header.codec().ok_or(CodecError::UnknownCodec {
        codec: (header.attributes & ATTR_CODEC_MASK) as u8,
        at: Pos::input(at + ATTRIBUTES_OFFSET),
    })?;
    if header.record_count < 0 {
        return Err(CodecError::NegativeRecordCount {
            count: header.record_count,
            at: Pos::input(at + RECORDS_COUNT_OFFSET),
        });
    }
    Ok((header, codec))
}

/// The records region of a checked batch (decompressed if needed) and where its
/// offsets point.
fn records_region<'a>(
    b: &'a [u8],
    at: usize,
    codec: Codec,
    max_decompressed_bytes: usize,
) -> Result<(Cow<'a, [u8]>, Place), CodecError> {
    let raw = &b[HEADER_LEN..];
    if codec == Codec::None {
        return Ok((
            Cow::Borrowed(raw),
            Place {
                base: at + HEADER_LEN,
                decompressed_batch_at: None,
            },
        ));
    }
    let records_at = Pos::input(at + HEADER_LEN);
    let region =
        compression::decompress(codec, raw, max_decompressed_bytes).map_err(|e| match e {
            DecompressError::TooLarge { cap } => CodecError::DecompressedTooLarge {
                codec: codec.name(),
                cap,
                at: records_at,
            },
            DecompressError::Invalid(reason) => CodecError::Decompress {
                codec: codec.name(),
                reason,
                at: records_at,
            },
        })?;
    Ok((
        Cow::Owned(region),
        Place {
            base: 0,
            decompressed_batch_at: Some(at),
        },
    ))
}

fn decode_one<'a>(
    b: &'a [u8],
    at: usize,
    opts: &DecodeOptions,
) -> Result<DecodedBatch<'a>, CodecError> {
    let (header, codec) = check_header(b, at, opts.verify_crc)?;
    let (region, place) = records_region(b, at, codec, opts.max_decompressed_bytes)?;
    let count = header.record_count as usize;
    let cap = count.min(region.len() / MIN_RECORD_LEN + 1);
    let mut sink = IndexSink {
        entries: Vec::with_capacity(cap),
        headers: Vec::new(),
    };
    parse_records(&region, &header, place, &mut sink)?;
    Ok(DecodedBatch {
        at,
        header,
        records: region,
        entries: sink.entries,
        headers: sink.headers,
    })
}

/// Decodes exactly one batch; bytes after batchLength are an error.
pub fn decode_batch<'a>(
    data: &'a [u8],
    opts: &DecodeOptions,
) -> Result<DecodedBatch<'a>, CodecError> {
    let total = single_extent(data)?;
    decode_one(&data[..total], 0, opts)
}

/// Decodes back-to-back batches, stopping quietly at a trailing partial batch.
pub fn decode_batches<'a>(
    data: &'a [u8],
    opts: &DecodeOptions,
) -> Result<Vec<DecodedBatch<'a>>, CodecError> {
    let mut out = Vec::new();
    let mut at = 0usize;
    while let Some(total) = frame(&data[at..], at, true)? {
        out.push(decode_one(&data[at..at + total], at, opts)?);
        at += total;
    }
    Ok(out)
}

/// Extents `(start, len)` of the complete batches at the front of `data`, stopping at
/// a trailing partial batch; does not look inside the batches beyond the framing.
pub fn batch_extents(data: &[u8]) -> Result<Vec<(usize, usize)>, CodecError> {
    let mut out = Vec::new();
    let mut at = 0usize;
    while let Some(total) = frame(&data[at..], at, true)? {
        out.push((at, total));
        at += total;
    }
    Ok(out)
}

fn single_extent(data: &[u8]) -> Result<usize, CodecError> {
    let total = frame(data, 0, false)?.unwrap_or(data.len());
    if data.len() > total {
        return Err(CodecError::TrailingBytes {
            extra: data.len() - total,
            at: Pos::input(total),
        });
    }
    Ok(total)
}

/// Checks one complete batch the way a broker does on produce, without building an
/// index: lengths, magic 2, CRC, varints, record count, offset deltas 0..n-1 in order,
/// lastOffsetDelta = n-1, and decompression within `max_decompressed_bytes`.
pub fn validate_batch(
    data: &[u8],
    max_decompressed_bytes: usize,
) -> Result<BatchHeader, CodecError> {
    let total = single_extent(data)?;
    let (header, codec) = check_header(&data[..total], 0, true)?;
    if header.record_count == 0 {
        return Err(CodecError::NoRecords {
            at: Pos::input(RECORDS_COUNT_OFFSET),
        });
    }
    let expected = header.record_count as i64 - 1;
    if header.last_offset_delta as i64 != expected {
        return Err(CodecError::LastOffsetDeltaMismatch {
            declared: header.last_offset_delta,
            expected,
            at: Pos::input(LAST_OFFSET_DELTA_OFFSET),
        });
    }
    let (region, place) = records_region(&data[..total], 0, codec, max_decompressed_bytes)?;
    // With lastOffsetDelta = n - 1, strictly increasing deltas in 0..=n-1 are
    // exactly 0, 1, ... n-1.
    parse_records(&region, &header, place, &mut NoSink)?;
    Ok(header)
}

#[cfg(test)]
mod tests;
