//! Decoding and validation: frame a batch, check its header, decompress the records
//! region if needed, and parse the records into an index of byte ranges (or only
//! check them, for validation).

use std::borrow::Cow;

use super::header::{
    self, BatchHeader, ATTRIBUTES_OFFSET, ATTR_CODEC_MASK, BATCH_LENGTH_OFFSET, CRC_START,
    HEADER_LEN, LAST_OFFSET_DELTA_OFFSET, LOG_OVERHEAD, MAGIC_OFFSET, MAGIC_V2, MIN_BATCH_LENGTH,
    RECORDS_COUNT_OFFSET,
};
use super::DEFAULT_MAX_DECOMPRESSED_BYTES;
use crate::compression::{self, Codec, DecompressError};
use crate::crc32c;
use crate::error::{CodecError, Pos};
use crate::varint::{self, VarintError};

/// The smallest possible record: length, attributes, timestamp delta, offset delta,
/// key length, value length and header count, one byte each.
const MIN_RECORD_LEN: usize = 7;

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
    let length = header::batch_length(data);
    if length < MIN_BATCH_LENGTH {
        return Err(CodecError::BatchLengthTooSmall {
            length,
            at: Pos::input(at + BATCH_LENGTH_OFFSET),
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
            at: Pos::input(at + BATCH_LENGTH_OFFSET),
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
    let header = BatchHeader::parse(b);
    if header.magic != MAGIC_V2 {
        return Err(CodecError::BadMagic {
            magic: header.magic,
            at: Pos::input(at + MAGIC_OFFSET),
        });
    }
    if verify_crc {
        let computed = crc32c::crc32c(&b[CRC_START..]);
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
