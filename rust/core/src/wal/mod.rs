//! Write-ahead log of one partition: segment files of Kafka v2 record batches with
//! sparse offset/time indexes, a group-commit writer thread, an fsync policy,
//! backpressure, crash recovery and retention.
//!
//! Directory format (shared byte for byte with the pure-Python twin):
//! `<base:020>.log` (batches back to back), `<base:020>.index` (8-byte entries),
//! `<base:020>.timeindex` (12-byte entries), `checkpoint` (log start offset and
//! recovery point), `.clean_shutdown` (present between a clean close and the next open),
//! `compacted-offset` (below it compaction may have removed offsets; absent until the
//! first swap of a cleaned segment).
//!
//! Threads: callers queue copies of their batches ([`Wal::submit`], [`Wal::append`]);
//! the log's writer, run by the threads of a shared [`WriterPool`] (a few per data
//! directory, not per log), takes everything queued (up to `max_group_batches`),
//! assigns offsets by patching each baseOffset, writes the group with vectored writes,
//! fsyncs per policy, publishes the new high watermark and completes the callers. A
//! blocking [`Wal::append`] that finds the writer idle runs it on its own thread
//! instead (leader/follower, [`pool::lead`]); `submit` always hands off, so that an
//! event loop never writes or fsyncs.
//! Readers look segments up under a read lock and `pread` from the files, which the
//! pool's [`FileCache`] opens on demand and keeps to a bounded number.
//!
//! Files: `config` (settings), `error`, `completion` (append results, waiters,
//! callbacks, hooks), `read` (spans and timestamp lookup), `segment` (walks and
//! per-segment state), `index`, `checkpoint`, `recovery`, `retention`, `swap`
//! (swapping cleaned segments in, completing a swap at open) and `writer` (the
//! group-commit thread); the pure-Python twin mirrors them file for file.

mod batch_buf;
mod checkpoint;
mod completion;
mod config;
mod error;
mod files;
mod index;
mod pool;
mod read;
mod recovery;
mod retention;
mod segment;
mod swap;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, RwLock, RwLockReadGuard, Weak};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::buffer_pool::{PoolStats, SizedPools};

pub use batch_buf::{BatchBuf, LentOwner};
pub use checkpoint::{Checkpoint, CHECKPOINT_NAME, CLEAN_SHUTDOWN_NAME};
pub use completion::{
    AppendOutcome, AppendResult, Callback, CallbackRunner, Completion, OfflineHook, Slot, Waiter,
    WalHooks,
};
pub use config::{FsyncPolicy, WalConfig, DEFAULT_MEMORY_BUDGET_BYTES};
pub use error::WalError;
pub use files::{Access, FileCache, FileCacheStats};
pub use index::{encode_index_entry, encode_time_entry, INDEX_ENTRY_SIZE, TIME_INDEX_ENTRY_SIZE};
pub use pool::{WriterPool, WriterPoolStats};
pub use read::{FileRanges, FileRangesOutcome, PreparedRead, Span};
pub use swap::COMPACTED_OFFSET_NAME;

use crate::record_batch::header::{
    BatchHeader, BATCH_LENGTH_OFFSET, HEADER_LEN, LAST_OFFSET_DELTA_OFFSET, LOG_OVERHEAD,
    MAGIC_OFFSET, MAGIC_V2,
};
use pool::{LogTask, PoolInner};
use segment::Segment;
use writer::{Queue, Writer};

/// Counters of [`Wal::stats`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WalStats {
    /// Appends queued and not yet written.
    pub queue_depth: u64,
    /// Appends written successfully.
    pub appends: u64,
    /// Groups written.
    pub groups: u64,
    /// Groups written by a blocking appender on its own thread (leader/follower
    /// group commit), without a hand-off to a pool thread; included in `groups`.
    pub groups_led: u64,
    /// fsync rounds (each covers every file with unsynced data).
    pub fsyncs: u64,
    /// Time spent in fsync rounds (µs).
    pub fsync_total_us: u64,
    /// Early writeback starts under fsync=interval (one per `WRITEBACK_CHUNK_BYTES`
    /// written; see `writer::start_writeback`).
    pub writeback_starts: u64,
    /// Bytes of batches written to segment files.
    pub bytes_written: u64,
    /// Appends refused with backpressure.
    pub backpressure_rejections: u64,
    /// The queue's buffer pool (copies of queued batches).
    pub buffer_pool: PoolStats,
}

#[derive(Default)]
struct Counters {
    appends: AtomicU64,
    groups: AtomicU64,
    groups_led: AtomicU64,
    fsyncs: AtomicU64,
    fsync_total_us: AtomicU64,
    writeback_starts: AtomicU64,
    bytes_written: AtomicU64,
    backpressure_rejections: AtomicU64,
    /// Smoothed writer time per queued batch (ns), for the throttle suggestion.
    ns_per_batch: AtomicU64,
}

pub(crate) struct LogState {
    pub segments: Vec<Segment>,
}

pub(crate) struct Shared {
    pub dir: PathBuf,
    pub cfg: WalConfig,
    pub queue: Mutex<Queue>,
    /// The pool's file cache: every segment file of the log is opened through it.
    pub files: Arc<FileCache>,
    /// The log's place in its pool, for waking its writer.
    pub task: OnceLock<Weak<LogTask>>,
    pub pool: OnceLock<Weak<PoolInner>>,
    pub state: RwLock<LogState>,
    pub high_watermark: AtomicI64,
    pub log_start: AtomicI64,
    pub recovery_point: AtomicI64,
    pub offline: OnceLock<String>,
    /// Set once close() has finished: reads and appends are refused after it.
    pub closed: std::sync::atomic::AtomicBool,
    counters: Counters,
    pub pools: SizedPools,
    pub hooks: WalHooks,
    /// Serialises checkpoint writers (writer thread, retention, close).
    pub checkpoint_lock: Mutex<()>,
    /// Serialises retention, DeleteRecords and swaps of cleaned segments: each
    /// decides on the segment list and then changes files outside the state lock.
    pub retention_lock: Mutex<()>,
    /// Below this offset compaction may have removed offsets (`compacted-offset`).
    pub compacted: AtomicI64,
    pub close_result: Mutex<Option<Result<(), WalError>>>,
    #[cfg(test)]
    pub fail_next_io: std::sync::atomic::AtomicBool,
    /// Held by a test to stall the writer before its next group.
    #[cfg(test)]
    pub writer_gate: Mutex<()>,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Shared {
    pub fn read_state(&self) -> RwLockReadGuard<'_, LogState> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    pub fn write_state(&self) -> std::sync::RwLockWriteGuard<'_, LogState> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Puts the log's writer on its pool's ready queue (its queue was just marked busy).
    pub fn schedule(&self) {
        let task = self.task.get().and_then(Weak::upgrade);
        let pool = self.pool.get().and_then(Weak::upgrade);
        if let (Some(task), Some(pool)) = (task, pool) {
            pool.schedule(task);
        }
    }

    /// Counts a step a leading appender ran (see [`WalStats::groups_led`]).
    pub fn count_led_group(&self) {
        self.counters.groups_led.fetch_add(1, Ordering::Relaxed);
    }

    pub fn storage_err(&self, what: &str, e: std::io::Error) -> WalError {
        WalError::Storage(format!("{}: {what}: {e}", self.dir.display()))
    }

    /// Writes the checkpoint from the current log start and recovery point.
    pub fn write_checkpoint(&self) -> std::io::Result<()> {
        let _g = lock(&self.checkpoint_lock);
        checkpoint::write(
            &self.dir,
            &Checkpoint {
                log_start_offset: self.log_start.load(Ordering::Acquire),
                recovery_point: self.recovery_point.load(Ordering::Acquire),
            },
        )
    }
}

/// Queued copies use power-of-two pools from 4 KiB to 16 MiB, each keeping up to
/// 64 MiB (and at least 8 buffers) for reuse.
fn queue_pools() -> SizedPools {
    SizedPools::new(4096, 16 << 20, 64 << 20, 8)
}

/// The write-ahead log of one partition directory.
pub struct Wal {
    shared: Arc<Shared>,
    task: Arc<LogTask>,
    pool: WriterPool,
    /// The pool was made for this log alone (by [`Wal::open`]) and goes with it.
    private_pool: bool,
    /// [`Wal::close_in_background`] was called: dropping must not wait.
    detached: AtomicBool,
    closed_once: Mutex<bool>,
}

/// Files a private pool (one log's) keeps open: its active segment's three and a
/// few closed segments being read.
const PRIVATE_POOL_FILES: usize = 16;

impl Wal {
    /// Opens (creating if missing) and recovers `dir` with a writer pool of its own
    /// (one writer thread, one notifier thread). A process with many logs uses
    /// [`Wal::open_in`] with one shared [`WriterPool`] instead.
    pub fn open(dir: impl AsRef<Path>, cfg: WalConfig, hooks: WalHooks) -> Result<Wal, WalError> {
        let pool = WriterPool::new(1, PRIVATE_POOL_FILES)?;
        match Wal::open_inner(dir.as_ref(), cfg, hooks, &pool, true) {
            Ok(w) => Ok(w),
            Err(e) => {
                let _ = pool.shutdown();
                Err(e)
            }
        }
    }

    /// Opens (creating if missing) and recovers `dir`; its writer runs on `pool`'s
    /// threads and its files come from `pool`'s cache.
    pub fn open_in(
        dir: impl AsRef<Path>,
        cfg: WalConfig,
        hooks: WalHooks,
        pool: &WriterPool,
    ) -> Result<Wal, WalError> {
        Wal::open_inner(dir.as_ref(), cfg, hooks, pool, false)
    }

    fn open_inner(
        dir: &Path,
        cfg: WalConfig,
        hooks: WalHooks,
        pool: &WriterPool,
        private_pool: bool,
    ) -> Result<Wal, WalError> {
        cfg.validate()?;
        let notices = pool.notices()?;
        let dir = dir.to_path_buf();
        let files = pool.files().clone();
        // Handles left from an earlier open of this directory may name replaced files.
        files.forget_dir(&dir);
        let opened = recovery::open_dir(&dir, &cfg, &files)?;
        let shared = Arc::new(Shared {
            dir,
            queue: Mutex::new(Queue::new()),
            files,
            task: OnceLock::new(),
            pool: OnceLock::new(),
            high_watermark: AtomicI64::new(opened.active.next_offset),
            log_start: AtomicI64::new(opened.log_start),
            recovery_point: AtomicI64::new(opened.recovery_point),
            state: RwLock::new(LogState {
                segments: opened.segments,
            }),
            offline: OnceLock::new(),
            closed: std::sync::atomic::AtomicBool::new(false),
            counters: Counters::default(),
            pools: queue_pools(),
            hooks,
            checkpoint_lock: Mutex::new(()),
            retention_lock: Mutex::new(()),
            compacted: AtomicI64::new(opened.compacted_offset),
            close_result: Mutex::new(None),
            cfg,
            #[cfg(test)]
            fail_next_io: std::sync::atomic::AtomicBool::new(false),
            #[cfg(test)]
            writer_gate: Mutex::new(()),
        });
        let w = Writer::new(shared.clone(), opened.active, opened.unsynced, notices);
        let task = pool.register(shared.clone(), w)?;
        Ok(Wal {
            shared,
            task,
            pool: pool.clone(),
            private_pool,
            detached: AtomicBool::new(false),
            closed_once: Mutex::new(false),
        })
    }

    fn check_batch(batch: &[u8]) -> Result<(), WalError> {
        if batch.len() < HEADER_LEN {
            return Err(WalError::CorruptBatch(format!(
                "record batch of {} bytes is shorter than the {HEADER_LEN}-byte header",
                batch.len()
            )));
        }
        let h = BatchHeader::parse(batch);
        if h.batch_length as i64 != (batch.len() - LOG_OVERHEAD) as i64 {
            return Err(WalError::CorruptBatch(format!(
                "batchLength field at byte {BATCH_LENGTH_OFFSET} is {} but the buffer holds {} bytes after it",
                h.batch_length,
                batch.len() - LOG_OVERHEAD
            )));
        }
        if h.magic != MAGIC_V2 {
            return Err(WalError::CorruptBatch(format!(
                "magic byte at byte {MAGIC_OFFSET} is {}, only record batch v2 (magic 2) is stored",
                h.magic
            )));
        }
        if h.last_offset_delta < 0 {
            return Err(WalError::CorruptBatch(format!(
                "lastOffsetDelta at byte {LAST_OFFSET_DELTA_OFFSET} is negative ({})",
                h.last_offset_delta
            )));
        }
        Ok(())
    }

    fn closed_error(&self) -> WalError {
        WalError::Storage(format!("{}: log is closed", self.shared.dir.display()))
    }

    fn check_open(&self) -> Result<(), WalError> {
        if self.shared.closed.load(Ordering::Acquire) {
            return Err(self.closed_error());
        }
        Ok(())
    }

    /// Queues a copy of `batch`; `done` receives the outcome from the writer thread.
    ///
    /// Fails at once (without calling `done`) on a malformed header, a full queue,
    /// an offline or a closed log.
    pub fn submit(&self, batch: &[u8], done: Completion) -> Result<(), WalError> {
        self.admit(batch, done, false).map(|_| ())
    }

    /// Checks, copies and queues `batch`; Ok(true) when the caller claimed the idle
    /// writer and must run it (`may_lead`).
    fn admit(&self, batch: &[u8], done: Completion, may_lead: bool) -> Result<bool, WalError> {
        Self::check_batch(batch)?;
        if let Some(cause) = self.shared.offline.get() {
            return Err(WalError::Offline(cause.clone()));
        }
        let buf = BatchBuf::Copied(self.shared.pools.copy_of(batch));
        self.queue(buf, done, may_lead)
    }

    fn queue(&self, buf: BatchBuf, done: Completion, may_lead: bool) -> Result<bool, WalError> {
        writer::enqueue(&self.shared, buf, done, may_lead).map_err(|refused| match refused {
            writer::Refusal::Closed => self.closed_error(),
            writer::Refusal::Full(e) => e,
        })
    }

    /// [`Wal::submit`] without the copy: the batch's memory is lent to the writer
    /// (see [`BatchBuf::lent`]), `owner` dropped on a writer thread once it is written
    /// or failed, before `done` runs. Refused (with the owner dropped) as `submit`.
    ///
    /// # Safety
    /// The `len` bytes at `ptr` must stay valid, and unwritten, while `owner` lives.
    pub unsafe fn submit_lent(
        &self,
        ptr: *const u8,
        len: usize,
        owner: LentOwner,
        done: Completion,
    ) -> Result<(), WalError> {
        // SAFETY: the caller's contract.
        Self::check_batch(unsafe { std::slice::from_raw_parts(ptr, len) })?;
        if let Some(cause) = self.shared.offline.get() {
            return Err(WalError::Offline(cause.clone()));
        }
        // SAFETY: the caller's contract; check_batch saw at least a header.
        let buf = unsafe { BatchBuf::lent(ptr, len, owner) };
        self.queue(buf, done, false).map(|_| ())
    }

    /// Queues a copy of `batch` and returns a [`Waiter`] for its outcome.
    pub fn enqueue(&self, batch: &[u8]) -> Result<Waiter, WalError> {
        let slot = Arc::new(Slot::new());
        self.submit(batch, Completion::Waiter(slot.clone()))?;
        Ok(Waiter { slot })
    }

    /// Appends `batch` and blocks until it is written (fsynced under fsync=always).
    ///
    /// When the log's writer is idle the calling thread writes the group itself
    /// (leader/follower group commit, see [`pool::lead`]): no hand-off to a pool
    /// thread and back. Otherwise the append queues behind the group being written
    /// and the thread sleeps until it completes. Either way the append is in the
    /// next group written, with the same ordering, fsync and backpressure rules.
    pub fn append(&self, batch: &[u8]) -> AppendOutcome {
        let slot = Arc::new(Slot::new());
        if self.admit(batch, Completion::Waiter(slot.clone()), true)? {
            pool::lead(&self.pool, &self.task, &slot);
        }
        slot.take()
    }

    /// Blocks until everything appended so far is written and fsynced. On an offline
    /// log: `Offline`, once the outcome of every earlier append was delivered.
    pub fn flush(&self) -> Result<(), WalError> {
        let slot = Arc::new(Slot::new());
        {
            let mut q = lock(&self.shared.queue);
            if q.closing {
                if let Some(cause) = self.shared.offline.get() {
                    return Err(WalError::Offline(cause.clone()));
                }
                return Err(self.closed_error());
            }
            // An offline log's flush queues too: its writer fails the appends queued
            // before it (delivering each outcome) and only then this flush, so when
            // flush raises, the outcome of every earlier append is out.
            q.push_flush(slot.clone());
            writer::kick(&self.shared, q);
        }
        slot.take()
    }

    /// Deletes old whole segments by time and size; returns how many were deleted.
    pub fn apply_retention(
        &self,
        retention_ms: Option<i64>,
        retention_bytes: Option<i64>,
        now_ms: Option<i64>,
    ) -> Result<usize, WalError> {
        self.check_open()?;
        let _serial = lock(&self.shared.retention_lock);
        retention::apply(
            &self.shared,
            retention_ms,
            retention_bytes,
            now_ms.unwrap_or_else(self::now_ms),
        )
    }

    /// Counters (see [`WalStats`]).
    pub fn stats(&self) -> WalStats {
        let c = &self.shared.counters;
        WalStats {
            queue_depth: lock(&self.shared.queue).pending as u64,
            appends: c.appends.load(Ordering::Relaxed),
            groups: c.groups.load(Ordering::Relaxed),
            groups_led: c.groups_led.load(Ordering::Relaxed),
            fsyncs: c.fsyncs.load(Ordering::Relaxed),
            fsync_total_us: c.fsync_total_us.load(Ordering::Relaxed),
            writeback_starts: c.writeback_starts.load(Ordering::Relaxed),
            bytes_written: c.bytes_written.load(Ordering::Relaxed),
            backpressure_rejections: c.backpressure_rejections.load(Ordering::Relaxed),
            buffer_pool: self.shared.pools.stats(),
        }
    }

    /// Next offset to assign; everything below is written (fsynced under fsync=always).
    pub fn high_watermark(&self) -> i64 {
        self.shared.high_watermark.load(Ordering::Acquire)
    }

    /// First offset still in the log.
    pub fn log_start_offset(&self) -> i64 {
        self.shared.log_start.load(Ordering::Acquire)
    }

    /// Offset below which everything is known durable.
    pub fn recovery_point(&self) -> i64 {
        self.shared.recovery_point.load(Ordering::Acquire)
    }

    /// Bytes of all segment files.
    pub fn size_bytes(&self) -> u64 {
        self.shared
            .read_state()
            .segments
            .iter()
            .map(|s| s.size)
            .sum()
    }

    /// Number of segments.
    pub fn segment_count(&self) -> usize {
        self.shared.read_state().segments.len()
    }

    /// True after a failed write or fsync.
    pub fn is_offline(&self) -> bool {
        self.shared.offline.get().is_some()
    }

    /// Why the log is offline, if it is.
    pub fn offline_cause(&self) -> Option<String> {
        self.shared.offline.get().cloned()
    }

    /// The partition directory.
    pub fn directory(&self) -> &Path {
        &self.shared.dir
    }

    /// Stops accepting appends, drains the queue, fsyncs, writes the checkpoint and
    /// the clean-shutdown marker, then waits until every `submit` callback has run.
    /// Idempotent; returns the first close's outcome.
    pub fn close(&self) -> Result<(), WalError> {
        let mut once = lock(&self.closed_once);
        if !*once {
            writer::begin_close(&self.shared);
            self.task.wait_finished();
            self.pool.notifier_barrier();
            self.shared.closed.store(true, Ordering::Release);
            if self.private_pool {
                self.pool.shutdown()?;
            }
            *once = true;
        }
        drop(once);
        lock(&self.shared.close_result).clone().unwrap_or(Ok(()))
    }

    /// Like [`Wal::close`] but returns at once; the writer finishes in the background.
    pub fn close_in_background(&self) {
        writer::begin_close(&self.shared);
        self.detached.store(true, Ordering::Release);
        if self.private_pool {
            self.pool.stop_when_idle();
        }
    }

    /// The pool this log runs in.
    pub fn pool(&self) -> &WriterPool {
        &self.pool
    }

    /// Makes the next write or fsync fail (tests of the offline path).
    #[cfg(test)]
    pub(crate) fn fail_next_io(&self) {
        self.shared.fail_next_io.store(true, Ordering::SeqCst);
    }
}

impl Drop for Wal {
    fn drop(&mut self) {
        if !self.detached.load(Ordering::Acquire) {
            let _ = self.close();
        }
    }
}

#[cfg(test)]
mod swap_tests;
#[cfg(test)]
mod tests;
