//! streamcore-core: the pure-Rust hot paths of streamcore. No PyO3 here; the
//! `streamcore-python` crate converts types at the boundary.
//!
//! Module owners (one writer per file): crc32c/varint/compression/record_batch/error
//! belong to the codec work; buffer_pool/wal to the storage work; metrics/classifier
//! to the client-resilience work. Retry policies and duration parsing have one home,
//! the Python `streamcore.retry`, which the client uses; there is no Rust copy.

pub mod buffer_pool;
pub mod classifier;
pub mod cleaner;
pub mod compression;
pub mod crc32c;
pub mod error;
pub mod metrics;
pub mod partitioner;
pub mod record_batch;
pub mod search;
pub mod varint;
pub mod wal;
