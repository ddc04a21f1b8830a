//! Settings of one log: the fsync policy and the sizes and intervals of the writer.

use super::error::WalError;

/// When the writer fsyncs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// After every group, before completing its appends (group commit).
    Always,
    /// At most every `fsync_interval_ms`; appends complete after the write.
    Interval,
    /// Only at close (and on `flush`).
    Never,
}

impl FsyncPolicy {
    /// Parses "always", "interval" or "never".
    pub fn parse(s: &str) -> Result<Self, WalError> {
        match s {
            "always" => Ok(FsyncPolicy::Always),
            "interval" => Ok(FsyncPolicy::Interval),
            "never" => Ok(FsyncPolicy::Never),
            other => Err(WalError::InvalidArgument(format!(
                "fsync must be 'always', 'interval' or 'never', got {other:?}"
            ))),
        }
    }
}

/// The "medium" profile's queue memory budget (100 MiB), the default of a log.
pub const DEFAULT_MEMORY_BUDGET_BYTES: u64 = 100 << 20;

/// Settings of one log (see the Python `WalLog` docstring for their meaning).
#[derive(Clone, Debug)]
pub struct WalConfig {
    pub fsync: FsyncPolicy,
    pub fsync_interval_ms: u64,
    /// Most appends queued and not yet written before `append` answers backpressure.
    pub queue_depth: usize,
    /// Most bytes of batches queued and not yet written before `append` answers
    /// backpressure (a lone batch larger than this is still taken by an empty queue).
    pub memory_budget_bytes: u64,
    /// Most appends written (and fsynced) as one group.
    pub max_group_batches: usize,
    /// Longest the writer lingers for more appends before writing a group (ms),
    /// counted from the oldest queued append; only under fsync=always or interval,
    /// and only while the previous round showed company (see `writer::linger_target`).
    pub max_wait_ms: u64,
    /// Roll before an append that would make the active segment exceed this (bytes).
    pub segment_bytes: u64,
    /// Roll when the active segment's first append is older than this (ms).
    pub segment_ms: Option<u64>,
    /// Bytes of log between sparse index entries.
    pub index_interval_bytes: u64,
}

impl Default for WalConfig {
    fn default() -> Self {
        WalConfig {
            fsync: FsyncPolicy::Interval,
            fsync_interval_ms: 1000,
            queue_depth: 10_000,
            memory_budget_bytes: DEFAULT_MEMORY_BUDGET_BYTES,
            max_group_batches: 15_000,
            max_wait_ms: 10,
            segment_bytes: 1 << 30,
            segment_ms: None,
            index_interval_bytes: 4096,
        }
    }
}

impl WalConfig {
    pub(super) fn validate(&self) -> Result<(), WalError> {
        let bad = |m: String| Err(WalError::InvalidArgument(m));
        if self.queue_depth == 0 {
            return bad("queue_depth must be >= 1".into());
        }
        if self.memory_budget_bytes == 0 {
            return bad("memory_budget_bytes must be >= 1".into());
        }
        if self.max_group_batches == 0 {
            return bad("max_group_batches must be >= 1".into());
        }
        if self.segment_bytes == 0 || self.segment_bytes > i32::MAX as u64 {
            return bad(format!(
                "segment_bytes must be in 1..={} (index positions are 32-bit), got {}",
                i32::MAX,
                self.segment_bytes
            ));
        }
        if self.index_interval_bytes == 0 {
            return bad("index_interval_bytes must be >= 1".into());
        }
        Ok(())
    }
}
