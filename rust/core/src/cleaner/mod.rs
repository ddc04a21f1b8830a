//! The log cleaner (compaction) as a component over segment files: build an offset
//! map of key digests over the dirty range, then rewrite segments keeping each
//! key's latest record, with Kafka's rules for tombstones, batch fields and
//! producer state. Swapping the cleaned files into a live log is the WAL's work.
//!
//! Files: `key_hash` (the key digest), `offset_map` (the fixed-memory map and the
//! pass that fills it), `rewrite` (the cleaning pass, batch decisions, grouping),
//! `input` (reading segment files), `throttle` (the I/O rate limit), `txn` (aborted
//! and committed transactions while walking the log) and `result` (what a pass
//! reports). The pure-Python twin (`streamcore._reference.cleaner`)
//! mirrors them file for file and writes the same bytes.

pub mod input;
pub mod key_hash;
pub mod offset_map;
pub mod result;
pub mod rewrite;
pub mod throttle;
pub mod txn;

pub use key_hash::{key_hash, HASH_BYTES};
pub use offset_map::{build_offset_map, OffsetMap, DEFAULT_LOAD_FACTOR, ENTRY_BYTES};
pub use result::{CleanResult, CleanStats, CleanedSegment};
pub use rewrite::{
    clean_segments, group_segments, CleanOptions, LastRecord, ATTR_DELETE_HORIZON, CLEANED_SUFFIX,
};
pub use throttle::{Clock, SystemClock, Throttle, CHECK_INTERVAL_MS};
pub use txn::AbortedTxn;

#[cfg(test)]
mod tests;
