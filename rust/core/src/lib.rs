//! streamcore-core: the pure-Rust hot paths of streamcore. No PyO3 here; the
//! `streamcore-python` crate converts types at the boundary.
//!
//! Module owners (one writer per file): crc32c/varint/compression/record_batch/error
//! belong to the codec work; buffer_pool/wal to the storage work; metrics/classifier/retry
//! to the client-resilience work.

pub mod buffer_pool;
pub mod classifier;
pub mod compression;
pub mod crc32c;
pub mod error;
pub mod metrics;
pub mod record_batch;
pub mod retry;
pub mod varint;
pub mod wal;
