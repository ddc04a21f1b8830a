//! The WAL's one error type; the binding maps each variant to one
//! `streamcore.errors` class.

use std::fmt;

/// Errors of the WAL; the binding maps each to one `streamcore.errors` class.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WalError {
    /// A setting out of range (ValueError).
    InvalidArgument(String),
    /// The batch handed to append is not a framed v2 batch (CorruptRecordError).
    CorruptBatch(String),
    /// The queue is full; retry after the suggested delay (BackpressureError).
    Backpressure {
        message: String,
        throttle_time_ms: u64,
    },
    /// Opening, reading or retention failed (StorageError).
    Storage(String),
    /// The log is offline after a failed write or fsync, or closed (LogOfflineError).
    Offline(String),
    /// A read below the log start or above the high watermark (OffsetOutOfRangeError).
    OffsetOutOfRange(String),
}

impl fmt::Display for WalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WalError::InvalidArgument(m)
            | WalError::CorruptBatch(m)
            | WalError::Storage(m)
            | WalError::Offline(m)
            | WalError::OffsetOutOfRange(m) => f.write_str(m),
            WalError::Backpressure { message, .. } => f.write_str(message),
        }
    }
}

impl std::error::Error for WalError {}
