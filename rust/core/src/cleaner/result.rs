//! What a cleaning pass wrote and counted.

use std::path::PathBuf;

use super::txn::AbortedTxn;

/// One `.cleaned` file: the cleaned records of a group of consecutive input segments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CleanedSegment {
    /// `<out_dir>/<base_offset:020>.log.cleaned`.
    pub path: PathBuf,
    /// Base offset of the group's first input segment (the name the result takes).
    pub base_offset: i64,
    /// The input segments it replaces, in order.
    pub inputs: Vec<PathBuf>,
    /// Bytes written (0 when nothing of the group survived).
    pub size_bytes: u64,
    pub batches: u64,
    pub records: u64,
    /// Largest batch maxTimestamp written (ms), -1 when none.
    pub max_timestamp: i64,
    /// The modification time given to the file: the last input's (ms since the epoch),
    /// so that time-based retention sees the data as old as it was.
    pub last_modified_ms: i64,
    /// Aborted transactions whose ABORT marker this output keeps (batches of theirs
    /// were still there when the pass began): the output's entries of the
    /// aborted-transaction index, in marker order.
    pub aborted_transactions: Vec<AbortedTxn>,
}

/// Counters of one cleaning pass.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CleanStats {
    pub bytes_read: u64,
    pub bytes_written: u64,
    pub batches_read: u64,
    pub batches_written: u64,
    pub records_read: u64,
    pub records_kept: u64,
    /// Older records of a key that has a later one.
    pub superseded_removed: u64,
    /// Tombstones past their delete horizon.
    pub tombstones_removed: u64,
    /// Records without a key (a compacted topic cannot hold them).
    pub keyless_removed: u64,
    /// Batches left with no record but kept as a header for their producer's state.
    pub empty_batches_retained: u64,
    /// Records of aborted transactions removed.
    pub aborted_removed: u64,
    /// Transaction markers (control batches) removed.
    pub markers_removed: u64,
    /// Time the I/O throttle slept (ms).
    pub throttled_ms: u64,
}

/// What [`super::clean_segments`] wrote.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CleanResult {
    pub segments: Vec<CleanedSegment>,
    pub stats: CleanStats,
}
