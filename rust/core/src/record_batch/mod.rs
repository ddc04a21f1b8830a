//! Kafka record batch v2 (magic 2): encode, decode and validate.
//!
//! [`header`] is the one home of the fixed 61-byte header layout (see its docs for
//! the byte map). A record is: length varint, attributes i8, timestampDelta varlong,
//! offsetDelta varint, key (varint length, -1 for null), value (same), header count
//! varint, then per header a key (varint length + UTF-8) and a value (varint length,
//! -1 for null). All varints are zigzag.
//!
//! Encoding ([`encode`]) sizes the output exactly before writing, so the caller can
//! write straight into its final buffer. Decoding ([`decode`]) produces an index of
//! byte ranges into the records region instead of owned records, so the binding
//! decides when to build objects.

pub mod decode;
pub mod encode;
pub mod header;

pub use decode::{
    decode_batch, decode_batches, validate_batch, DecodeOptions, DecodedBatch, HeaderEntry,
    RecordEntry,
};
pub use encode::{
    encode_batch, encode_uncompressed_into, plan, EncodeOptions, EncodePlan, Header, RecordsIn,
    Timestamps,
};
pub use header::{
    check_batches, BatchHeader, ATTR_CODEC_MASK, ATTR_CONTROL, ATTR_LOG_APPEND_TIME,
    ATTR_TRANSACTIONAL, HEADER_LEN, LOG_OVERHEAD, MIN_BATCH_LENGTH,
};

/// Default cap on the decompressed size of one batch's records (bytes).
pub const DEFAULT_MAX_DECOMPRESSED_BYTES: usize = 64 * 1024 * 1024;

#[cfg(test)]
mod tests;
