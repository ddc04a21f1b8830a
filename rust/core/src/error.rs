//! The one error type of the record batch codec.
//!
//! Every decode error carries the byte position where the problem was found, so the
//! Python exception can say "what is wrong and where". Positions count from the start
//! of the input given to the decoder; inside a compressed batch they count from the
//! start of the decompressed records and say so.

use std::fmt;

/// Where in the input an error was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pos {
    /// Byte offset, in the input or (when `decompressed_batch_at` is set) in the
    /// decompressed records of the batch starting at that input offset.
    pub offset: usize,
    pub decompressed_batch_at: Option<usize>,
}

impl Pos {
    /// A position in the caller's input.
    pub fn input(offset: usize) -> Pos {
        Pos {
            offset,
            decompressed_batch_at: None,
        }
    }
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.decompressed_batch_at {
            None => write!(f, "byte {}", self.offset),
            Some(b) => write!(
                f,
                "byte {} of the decompressed records of the batch at byte {b}",
                self.offset
            ),
        }
    }
}

/// A malformed batch (decode) or unusable arguments (encode).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodecError {
    /// Fewer bytes than a fixed-size part needs.
    Truncated {
        what: &'static str,
        needed: usize,
        available: usize,
        at: Pos,
    },
    /// batchLength below the size of the fixed v2 header.
    BatchLengthTooSmall { length: i32, at: Pos },
    /// batchLength runs past the end of the input.
    BatchPastEnd {
        length: i32,
        available: usize,
        at: Pos,
    },
    /// Bytes left after the one batch that was asked for.
    TrailingBytes { extra: usize, at: Pos },
    /// Magic byte other than 2.
    BadMagic { magic: i8, at: Pos },
    /// CRC32C over attributes..end does not match the stored one.
    BadCrc {
        stored: u32,
        computed: u32,
        batch_at: usize,
    },
    /// recordsCount below zero.
    NegativeRecordCount { count: i32, at: Pos },
    /// Compression codec id 5-7.
    UnknownCodec { codec: u8, at: Pos },
    /// A varint whose last byte is missing.
    VarintPastEnd { at: Pos },
    /// A varint with too many bytes for its width.
    VarintTooLong { at: Pos },
    /// A record length that is negative or runs past the records.
    RecordLengthPastEnd { length: i32, at: Pos },
    /// A key/value/header length below -1 (or below 0 where null is not allowed).
    BadLength {
        what: &'static str,
        length: i32,
        at: Pos,
    },
    /// A field that runs past the end of its record.
    FieldPastEnd {
        what: &'static str,
        length: i32,
        at: Pos,
    },
    /// A record whose fields do not use exactly its declared length.
    RecordLengthMismatch { declared: i32, used: usize, at: Pos },
    /// A header key that is not UTF-8.
    HeaderKeyNotUtf8 { at: Pos },
    /// recordsCount larger than the records present.
    TooFewRecords {
        declared: i32,
        found: usize,
        at: Pos,
    },
    /// Bytes after the last of recordsCount records.
    DataAfterLastRecord {
        declared: i32,
        extra: usize,
        at: Pos,
    },
    /// An offset delta not above the previous one or past lastOffsetDelta.
    OffsetDeltaOutOfOrder {
        previous: i64,
        last_offset_delta: i32,
        found: i32,
        at: Pos,
    },
    /// A produced batch with recordsCount 0 (validation only).
    NoRecords { at: Pos },
    /// lastOffsetDelta different from recordsCount - 1 (validation only).
    LastOffsetDeltaMismatch {
        declared: i32,
        expected: i64,
        at: Pos,
    },
    /// The compressed records could not be decompressed.
    Decompress {
        codec: &'static str,
        reason: String,
        at: Pos,
    },
    /// The compressed records decompress to more than the cap.
    DecompressedTooLarge {
        codec: &'static str,
        cap: usize,
        at: Pos,
    },
    /// Encode was given no records.
    EmptyBatch,
    /// Encode arguments that cannot be encoded (length mismatch, bad level ...).
    InvalidArgument(String),
}

impl CodecError {
    /// True for errors about the caller's arguments (encode side), false for
    /// malformed input data.
    pub fn is_argument_error(&self) -> bool {
        matches!(
            self,
            CodecError::EmptyBatch | CodecError::InvalidArgument(_)
        )
    }
}

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use CodecError::*;
        match self {
            Truncated {
                what,
                needed,
                available,
                at,
            } => write!(
                f,
                "{what} needs {needed} bytes but only {available} remain at {at}"
            ),
            BatchLengthTooSmall { length, at } => write!(
                f,
                "batch length {length} at {at} is smaller than the 49-byte v2 header"
            ),
            BatchPastEnd {
                length,
                available,
                at,
            } => write!(
                f,
                "batch length {length} at {at} runs past end of input ({available} bytes follow)"
            ),
            TrailingBytes { extra, at } => {
                write!(f, "{extra} trailing bytes after the batch, at {at}")
            }
            BadMagic { magic, at } => {
                write!(f, "magic {magic} at {at}: only magic 2 is supported")
            }
            BadCrc {
                stored,
                computed,
                batch_at,
            } => write!(
                f,
                "bad CRC32C: stored 0x{stored:08x} computed 0x{computed:08x} (batch at byte {batch_at})"
            ),
            NegativeRecordCount { count, at } => {
                write!(f, "negative record count {count} at {at}")
            }
            UnknownCodec { codec, at } => {
                write!(f, "unknown compression codec {codec} in attributes at {at}")
            }
            VarintPastEnd { at } => write!(f, "varint runs past end at {at}"),
            VarintTooLong { at } => write!(f, "varint too long at {at}"),
            RecordLengthPastEnd { length, at } => write!(
                f,
                "record length {length} past end of batch at {at}"
            ),
            BadLength { what, length, at } => write!(f, "invalid {what} length {length} at {at}"),
            FieldPastEnd { what, length, at } => write!(
                f,
                "{what} of {length} bytes runs past end of record at {at}"
            ),
            RecordLengthMismatch { declared, used, at } => write!(
                f,
                "record at {at} declares length {declared} but its fields use {used} bytes"
            ),
            HeaderKeyNotUtf8 { at } => write!(f, "header key is not valid UTF-8 at {at}"),
            TooFewRecords {
                declared,
                found,
                at,
            } => write!(
                f,
                "record count {declared} but only {found} records present (records end at {at})"
            ),
            DataAfterLastRecord {
                declared,
                extra,
                at,
            } => write!(
                f,
                "{extra} bytes after the last of {declared} records at {at}"
            ),
            OffsetDeltaOutOfOrder {
                previous,
                last_offset_delta,
                found,
                at,
            } => write!(
                f,
                "offset delta {found} at {at} out of order (previous {previous}, lastOffsetDelta {last_offset_delta})"
            ),
            NoRecords { at } => write!(
                f,
                "record count 0 at {at}: a produced batch needs at least one record"
            ),
            LastOffsetDeltaMismatch {
                declared,
                expected,
                at,
            } => write!(
                f,
                "last offset delta {declared} at {at} does not match record count (expected {expected})"
            ),
            Decompress { codec, reason, at } => {
                write!(f, "{codec} records at {at} do not decompress: {reason}")
            }
            DecompressedTooLarge { codec, cap, at } => write!(
                f,
                "{codec} records at {at} decompress to more than the cap of {cap} bytes"
            ),
            EmptyBatch => write!(f, "a record batch needs at least one record"),
            InvalidArgument(msg) => f.write_str(msg),
        }
    }
}

impl std::error::Error for CodecError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_problem_and_position() {
        let e = CodecError::BadCrc {
            stored: 0xdead_beef,
            computed: 0x0123_4567,
            batch_at: 0,
        };
        assert_eq!(
            e.to_string(),
            "bad CRC32C: stored 0xdeadbeef computed 0x01234567 (batch at byte 0)"
        );
        let inner = Pos {
            offset: 5,
            decompressed_batch_at: Some(100),
        };
        assert_eq!(
            CodecError::VarintPastEnd { at: inner }.to_string(),
            "varint runs past end at byte 5 of the decompressed records of the batch at byte 100"
        );
        assert!(CodecError::EmptyBatch.is_argument_error());
        assert!(!CodecError::VarintTooLong { at: Pos::input(1) }.is_argument_error());
    }
}
