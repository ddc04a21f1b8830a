//! The fixed 61-byte header of a Kafka record batch v2 (magic 2): the one place that
//! knows where each field sits. The codec, the WAL's writer, recovery and segment
//! walks all read and patch headers through this module.
//!
//! Layout (big-endian, offsets from the batch start):
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
//! partitionLeaderEpoch without recomputing it.

use crate::compression::Codec;
use crate::crc32c;

/// Size of the fixed batch header, up to and including recordsCount (bytes).
pub const HEADER_LEN: usize = 61;
/// baseOffset + batchLength: the bytes not counted by batchLength.
pub const LOG_OVERHEAD: usize = 12;
/// Smallest valid batchLength (a header with no records).
pub const MIN_BATCH_LENGTH: i32 = (HEADER_LEN - LOG_OVERHEAD) as i32;
/// The only magic byte this codec and the log accept.
pub const MAGIC_V2: i8 = 2;

pub const BASE_OFFSET_OFFSET: usize = 0;
pub const BATCH_LENGTH_OFFSET: usize = 8;
pub const PARTITION_LEADER_EPOCH_OFFSET: usize = 12;
pub const MAGIC_OFFSET: usize = 16;
pub const CRC_OFFSET: usize = 17;
pub const ATTRIBUTES_OFFSET: usize = 21;
/// First byte covered by the CRC (the attributes).
pub const CRC_START: usize = ATTRIBUTES_OFFSET;
pub const LAST_OFFSET_DELTA_OFFSET: usize = 23;
pub const FIRST_TIMESTAMP_OFFSET: usize = 27;
pub const MAX_TIMESTAMP_OFFSET: usize = 35;
pub const PRODUCER_ID_OFFSET: usize = 43;
pub const PRODUCER_EPOCH_OFFSET: usize = 51;
pub const BASE_SEQUENCE_OFFSET: usize = 53;
pub const RECORDS_COUNT_OFFSET: usize = 57;

/// Attribute bits.
pub const ATTR_CODEC_MASK: i16 = 0x07;
pub const ATTR_LOG_APPEND_TIME: i16 = 0x08;
pub const ATTR_TRANSACTIONAL: i16 = 0x10;
pub const ATTR_CONTROL: i16 = 0x20;

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

/// The batchLength field; `b` needs at least [`LOG_OVERHEAD`] bytes.
#[inline]
pub fn batch_length(b: &[u8]) -> i32 {
    be_i32(b, BATCH_LENGTH_OFFSET)
}

/// The lastOffsetDelta field; `b` needs at least 27 bytes.
#[inline]
pub fn last_offset_delta(b: &[u8]) -> i32 {
    be_i32(b, LAST_OFFSET_DELTA_OFFSET)
}

/// The maxTimestamp field (ms); `b` needs at least 43 bytes.
#[inline]
pub fn max_timestamp(b: &[u8]) -> i64 {
    be_i64(b, MAX_TIMESTAMP_OFFSET)
}

/// Overwrites baseOffset; the CRC does not cover it, so the batch stays valid.
#[inline]
pub fn set_base_offset(b: &mut [u8], base_offset: i64) {
    b[BASE_OFFSET_OFFSET..BASE_OFFSET_OFFSET + 8].copy_from_slice(&base_offset.to_be_bytes());
}

/// Computes the CRC-32C over `batch[CRC_START..]` and stores it in the crc field.
pub fn seal_crc(batch: &mut [u8]) {
    let crc = crc32c::crc32c(&batch[CRC_START..]);
    batch[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
}

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
    /// Reads the header fields from the first [`HEADER_LEN`] bytes of `b` (the caller
    /// guarantees the length). Checks nothing.
    #[inline]
    pub fn parse(b: &[u8]) -> BatchHeader {
        BatchHeader {
            base_offset: be_i64(b, BASE_OFFSET_OFFSET),
            batch_length: be_i32(b, BATCH_LENGTH_OFFSET),
            partition_leader_epoch: be_i32(b, PARTITION_LEADER_EPOCH_OFFSET),
            magic: b[MAGIC_OFFSET] as i8,
            crc: be_i32(b, CRC_OFFSET) as u32,
            attributes: be_i16(b, ATTRIBUTES_OFFSET),
            last_offset_delta: be_i32(b, LAST_OFFSET_DELTA_OFFSET),
            first_timestamp: be_i64(b, FIRST_TIMESTAMP_OFFSET),
            max_timestamp: be_i64(b, MAX_TIMESTAMP_OFFSET),
            producer_id: be_i64(b, PRODUCER_ID_OFFSET),
            producer_epoch: be_i16(b, PRODUCER_EPOCH_OFFSET),
            base_sequence: be_i32(b, BASE_SEQUENCE_OFFSET),
            record_count: be_i32(b, RECORDS_COUNT_OFFSET),
        }
    }

    /// Writes every field, the crc as stored in `self`, into `out[..HEADER_LEN]`.
    /// Call [`seal_crc`] on the whole batch afterwards to make the crc match.
    #[inline]
    pub fn write(&self, out: &mut [u8]) {
        let h = &mut out[..HEADER_LEN];
        h[0..8].copy_from_slice(&self.base_offset.to_be_bytes());
        h[8..12].copy_from_slice(&self.batch_length.to_be_bytes());
        h[12..16].copy_from_slice(&self.partition_leader_epoch.to_be_bytes());
        h[MAGIC_OFFSET] = self.magic as u8;
        h[17..21].copy_from_slice(&self.crc.to_be_bytes());
        h[21..23].copy_from_slice(&self.attributes.to_be_bytes());
        h[23..27].copy_from_slice(&self.last_offset_delta.to_be_bytes());
        h[27..35].copy_from_slice(&self.first_timestamp.to_be_bytes());
        h[35..43].copy_from_slice(&self.max_timestamp.to_be_bytes());
        h[43..51].copy_from_slice(&self.producer_id.to_be_bytes());
        h[51..53].copy_from_slice(&self.producer_epoch.to_be_bytes());
        h[53..57].copy_from_slice(&self.base_sequence.to_be_bytes());
        h[57..61].copy_from_slice(&self.record_count.to_be_bytes());
    }

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
    /// baseOffset + lastOffsetDelta (wrapping like Java's long arithmetic).
    pub fn last_offset(&self) -> i64 {
        self.base_offset.wrapping_add(self.last_offset_delta as i64)
    }
    /// The offset after the batch's last record.
    pub fn next_offset(&self) -> i64 {
        self.last_offset().wrapping_add(1)
    }
    /// Whole batch size in bytes, including baseOffset and batchLength, for a header
    /// whose batchLength is already known to be valid.
    pub fn total_len(&self) -> usize {
        LOG_OVERHEAD + self.batch_length as usize
    }
    /// Whole batch size in bytes, or `None` when batchLength is too small to frame a
    /// batch (below [`MIN_BATCH_LENGTH`]).
    pub fn checked_total_len(&self) -> Option<u64> {
        if self.batch_length < MIN_BATCH_LENGTH {
            None
        } else {
            Some(self.batch_length as u64 + LOG_OVERHEAD as u64)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> BatchHeader {
        BatchHeader {
            base_offset: 42,
            batch_length: 49,
            partition_leader_epoch: 7,
            magic: MAGIC_V2,
            crc: 0xDEAD_BEEF,
            attributes: ATTR_TRANSACTIONAL | 3,
            last_offset_delta: 4,
            first_timestamp: 1_699_999_999_000,
            max_timestamp: 1_700_000_000_000,
            producer_id: 9,
            producer_epoch: 2,
            base_sequence: 11,
            record_count: 5,
        }
    }

    #[test]
    fn fields_sit_at_their_kafka_positions() {
        let mut b = [0u8; HEADER_LEN];
        sample().write(&mut b);
        assert_eq!(&b[0..8], &42i64.to_be_bytes());
        assert_eq!(&b[8..12], &49i32.to_be_bytes());
        assert_eq!(b[16], 2);
        assert_eq!(&b[17..21], &0xDEAD_BEEFu32.to_be_bytes());
        assert_eq!(&b[23..27], &4i32.to_be_bytes());
        assert_eq!(&b[35..43], &1_700_000_000_000i64.to_be_bytes());
        assert_eq!(&b[57..61], &5i32.to_be_bytes());
        assert_eq!(batch_length(&b), 49);
        assert_eq!(last_offset_delta(&b), 4);
        assert_eq!(max_timestamp(&b), 1_700_000_000_000);
    }

    #[test]
    fn parse_reads_back_what_write_wrote() {
        let mut b = [0u8; HEADER_LEN];
        sample().write(&mut b);
        let h = BatchHeader::parse(&b);
        assert_eq!(h, sample());
        assert_eq!(h.codec(), Some(Codec::Lz4));
        assert!(h.is_transactional() && !h.is_control());
        assert_eq!((h.last_offset(), h.next_offset()), (46, 47));
        assert_eq!((h.total_len(), h.checked_total_len()), (61, Some(61)));
    }

    #[test]
    fn a_batch_length_below_the_header_cannot_frame_a_batch() {
        let h = BatchHeader {
            batch_length: MIN_BATCH_LENGTH - 1,
            ..sample()
        };
        assert_eq!(h.checked_total_len(), None);
    }

    #[test]
    fn patching_the_base_offset_keeps_the_crc_valid() {
        let mut b = vec![0u8; HEADER_LEN + 3];
        sample().write(&mut b);
        seal_crc(&mut b);
        let crc = BatchHeader::parse(&b).crc;
        set_base_offset(&mut b, 1_000);
        assert_eq!(BatchHeader::parse(&b).base_offset, 1_000);
        assert_eq!(crc32c::crc32c(&b[CRC_START..]), crc);
    }
}

/// Checks back-to-back batches read from a log for ``offset``: framing, magic v2, a
/// CRC-32C that matches, and offsets that never go backwards (they may skip, as in a
/// compacted log); the first batch must reach ``offset``. Returns None when every
/// batch is sound, else (byte index of the first bad batch, the lowest offset that
/// batch had to end at). A trailing piece shorter than a header counts as bad. This
/// only decides sound or not, once per batch of every fetch; saying what is wrong is
/// left to the caller, which runs only when something is.
pub fn check_batches(data: &[u8], offset: i64) -> Option<(usize, i64)> {
    let mut pos = 0usize;
    let mut expected = offset;
    while pos < data.len() {
        let rest = &data[pos..];
        if rest.len() < HEADER_LEN {
            return Some((pos, expected));
        }
        let length = batch_length(rest);
        let delta = last_offset_delta(rest);
        let base = be_i64(rest, BASE_OFFSET_OFFSET);
        if rest[MAGIC_OFFSET] as i8 != MAGIC_V2 || length < MIN_BATCH_LENGTH || delta < 0 {
            return Some((pos, expected));
        }
        let end = LOG_OVERHEAD + length as usize;
        let last = base.wrapping_add(delta as i64);
        if end > rest.len() || last < expected {
            return Some((pos, expected));
        }
        let stored = u32::from_be_bytes([
            rest[CRC_OFFSET],
            rest[CRC_OFFSET + 1],
            rest[CRC_OFFSET + 2],
            rest[CRC_OFFSET + 3],
        ]);
        if crc32c::crc32c(&rest[CRC_START..end]) != stored {
            return Some((pos, expected));
        }
        expected = last + 1;
        pos += end;
    }
    None
}

#[cfg(test)]
mod check_batches_tests {
    use super::*;

    /// A header-only batch (no records) with a sealed CRC: enough for the checks.
    fn batch(base: i64, delta: i32) -> Vec<u8> {
        let mut b = vec![0u8; HEADER_LEN];
        b[..8].copy_from_slice(&base.to_be_bytes());
        b[BATCH_LENGTH_OFFSET..BATCH_LENGTH_OFFSET + 4]
            .copy_from_slice(&((HEADER_LEN - LOG_OVERHEAD) as i32).to_be_bytes());
        b[MAGIC_OFFSET] = 2;
        b[LAST_OFFSET_DELTA_OFFSET..LAST_OFFSET_DELTA_OFFSET + 4]
            .copy_from_slice(&delta.to_be_bytes());
        seal_crc(&mut b);
        b
    }

    #[test]
    fn sound_runs_pass_and_may_skip_offsets() {
        let mut d = batch(5, 2);
        d.extend(batch(10, 0));
        assert_eq!(check_batches(&d, 6), None);
        assert_eq!(check_batches(&[], 0), None);
    }

    #[test]
    fn each_kind_of_damage_is_found_at_its_batch() {
        let good = batch(0, 1);
        let mut flipped = batch(2, 0);
        flipped[HEADER_LEN - 1] ^= 1;
        let mut d = good.clone();
        d.extend(&flipped);
        assert_eq!(check_batches(&d, 0), Some((HEADER_LEN, 2)));
        let mut back = good.clone();
        back.extend(batch(1, 0));
        assert_eq!(check_batches(&back, 0), Some((HEADER_LEN, 2)));
        assert_eq!(check_batches(&good[..HEADER_LEN - 1], 0), Some((0, 0)));
        assert_eq!(check_batches(&good, 5), Some((0, 5)));
        let mut magic = good.clone();
        magic[MAGIC_OFFSET] = 1;
        assert_eq!(check_batches(&magic, 0), Some((0, 0)));
    }
}
