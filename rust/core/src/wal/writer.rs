//! The writer of one log: group commit, segment roll, fsync policy, checkpoints, close.
//!
//! It runs on the threads of a [`super::WriterPool`], one step at a time
//! ([`Writer::step`]): a step writes one group or does one periodic round, or finds
//! nothing to do and leaves the log idle, with a deadline when a linger, an interval
//! fsync or a checkpoint falls due. Files come from the pool's [`super::FileCache`]
//! by path, so an idle log holds no descriptor.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{self, IoSlice, Seek, SeekFrom, Write};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use super::checkpoint::{self, CLEAN_SHUTDOWN_NAME};
use super::files::Access;
use super::index::{self, IndexPlanner};
use super::pool::{CallbackBatch, Notice};
use super::segment::{segment_path, Segment};
use super::BatchBuf;
use super::{
    lock, now_ms, AppendOutcome, AppendResult, Completion, FsyncPolicy, Shared, Slot, WalError,
};
use crate::record_batch::header;

/// One queued request.
pub(crate) enum Item {
    Append { buf: BatchBuf, done: Completion },
    Flush(Arc<Slot<Result<(), WalError>>>),
}

/// The queue between callers and the writer (guarded by `Shared::queue`).
pub(crate) struct Queue {
    pub items: VecDeque<Item>,
    pub closing: bool,
    /// Appends queued or being written, not yet written: what backpressure counts.
    pub pending: usize,
    /// Bytes of the batches counted by `pending`: what the memory budget bounds.
    pub pending_bytes: u64,
    /// The writer is asleep on the condvar and needs a notify.
    pub writer_idle: bool,
    /// Flush requests among `items` (a queued flush is never kept waiting).
    flushes: usize,
    /// Arrival of the oldest append queued since the writer last took everything.
    oldest: Option<Instant>,
    /// Queued appends at which a sleeping writer wants waking (more than 1 while it
    /// lingers for a group, so that each append does not cost it a wake-up).
    wake_at: usize,
}

/// Why [`enqueue`] refused an append.
pub(crate) enum Refusal {
    /// The log is closing.
    Closed,
    /// Queue depth or memory budget exceeded (a Backpressure error).
    Full(WalError),
}

impl Queue {
    pub fn new() -> Queue {
        Queue {
            items: VecDeque::new(),
            closing: false,
            pending: 0,
            pending_bytes: 0,
            writer_idle: false,
            flushes: 0,
            oldest: None,
            wake_at: 1,
        }
    }

    fn queued_appends(&self) -> usize {
        self.items.len() - self.flushes
    }

    /// Queues a flush request (the caller then wakes the writer with [`kick`]).
    pub fn push_flush(&mut self, slot: Arc<Slot<Result<(), WalError>>>) {
        self.flushes += 1;
        self.items.push_back(Item::Flush(slot));
    }
}

/// Puts an idle log's writer on its pool's ready queue (`q` is its queue, locked).
pub(crate) fn kick(shared: &Shared, mut q: MutexGuard<'_, Queue>) {
    if !q.writer_idle {
        return;
    }
    q.writer_idle = false;
    drop(q);
    shared.schedule();
}

/// Wakes the writer of `shared` when it is idle, through `schedule` (a due timer).
pub(crate) fn wake_if_idle(shared: &Shared, schedule: impl FnOnce()) {
    let mut q = lock(&shared.queue);
    if q.writer_idle {
        q.writer_idle = false;
        drop(q);
        schedule();
    }
}

/// Stops the log taking appends and wakes its writer to drain and finish.
pub(crate) fn begin_close(shared: &Shared) {
    let mut q = lock(&shared.queue);
    q.closing = true;
    kick(shared, q);
}

/// Admits one append under the queue-depth and memory-budget bounds and queues it.
///
/// When the writer is idle and waits for this many appends, it must run: with
/// `may_lead` the caller claims it and gets `Ok(true)` (it then runs the writer
/// itself, see [`super::pool::lead`]); otherwise the log goes on its pool's ready
/// queue. `Ok(false)`: someone else writes the append.
pub(crate) fn enqueue(
    shared: &Shared,
    buf: BatchBuf,
    done: Completion,
    may_lead: bool,
) -> Result<bool, Refusal> {
    let cfg = &shared.cfg;
    let len = buf.len() as u64;
    let mut q = lock(&shared.queue);
    if q.closing {
        return Err(Refusal::Closed);
    }
    // An empty queue takes even a batch larger than the whole budget: refusing it
    // would be a "retry later" that can never succeed.
    let over_budget = q.pending > 0 && q.pending_bytes + len > cfg.memory_budget_bytes;
    if q.pending >= cfg.queue_depth || over_budget {
        let (pending, bytes) = (q.pending as u64, q.pending_bytes);
        drop(q);
        let c = &shared.counters;
        c.backpressure_rejections.fetch_add(1, Ordering::Relaxed);
        // The time the writer needs to drain what is queued, at its recent pace.
        let ns = c.ns_per_batch.load(Ordering::Relaxed).max(1);
        let throttle = (pending * ns / 1_000_000).max(1);
        let what = if over_budget {
            format!(
                "holds {bytes} bytes and a {len}-byte batch would pass its memory budget of {} bytes",
                cfg.memory_budget_bytes
            )
        } else {
            format!("is full ({pending} appends waiting)")
        };
        return Err(Refusal::Full(WalError::Backpressure {
            message: format!(
                "write queue of log {} {what}; retry in {throttle} ms",
                shared.dir.display()
            ),
            throttle_time_ms: throttle,
        }));
    }
    q.pending += 1;
    q.pending_bytes += len;
    if q.oldest.is_none() {
        q.oldest = Some(Instant::now());
    }
    q.items.push_back(Item::Append { buf, done });
    // Only an idle writer needs waking, and a lingering one only for a whole group:
    // skip the wake-up otherwise.
    if q.writer_idle && q.queued_appends() >= q.wake_at {
        if may_lead {
            // Claimed: nobody schedules the log while the caller runs it.
            q.writer_idle = false;
            return Ok(true);
        }
        kick(shared, q);
    }
    Ok(false)
}

/// The segment being appended to, as the writer sees it (paths: its files come from
/// the pool's cache).
pub(crate) struct Active {
    pub base: i64,
    pub path: PathBuf,
    pub index_path: PathBuf,
    pub time_path: PathBuf,
    pub size: u64,
    pub next_offset: i64,
    pub planner: IndexPlanner,
    /// When this process first appended to the segment (for segment_ms).
    pub first_append: Option<Instant>,
    /// Bytes of the segment whose writeback was started (see [`start_writeback`]).
    pub writeback_from: u64,
}

/// Under fsync=interval, writeback is started once this many bytes were written since
/// the last start: large enough for few calls and large I/Os, small enough that the
/// interval fsync finds little left to write.
pub(crate) const WRITEBACK_CHUNK_BYTES: u64 = 4 << 20;

/// Files written since the last fsync round, other than the active segment's.
pub(crate) struct Unsynced {
    pub paths: Vec<PathBuf>,
}

/// Checkpoints are written at most this often while appends advance the recovery point.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

/// What one [`Writer::step`] left to do.
pub(crate) enum Step {
    /// More work is queued: run the log again.
    Again,
    /// The log is idle until woken, or until the deadline (linger, interval fsync,
    /// checkpoint).
    Wait(Option<Instant>),
    /// Closed: the writer is done.
    Finished,
}

/// What [`Writer::next_group`] found.
enum Next {
    Group,
    Periodic,
    Wait(Option<Instant>),
    Finish,
}

impl Writer {
    /// The writer of a freshly opened log; `notices` reaches the pool's notifier.
    pub(crate) fn new(
        shared: Arc<Shared>,
        active: Active,
        unsynced: Unsynced,
        notices: mpsc::Sender<Notice>,
    ) -> Writer {
        let checkpointed = shared.recovery_point.load(Ordering::Acquire);
        Writer {
            notices,
            shared,
            active,
            unsynced,
            dirty: false,
            last_fsync: Instant::now(),
            checkpointed_rp: checkpointed,
            last_checkpoint: Instant::now(),
            company: 1,
            backlog: false,
            group: Vec::new(),
            bufs: Vec::new(),
            dones: Vec::new(),
            flushes: Vec::new(),
            results: Vec::new(),
            new_index: Vec::new(),
            new_time: Vec::new(),
            scratch: Vec::new(),
        }
    }
}

pub(crate) struct Writer {
    notices: mpsc::Sender<Notice>,
    shared: Arc<Shared>,
    active: Active,
    unsynced: Unsynced,
    /// Data written since the last fsync round.
    dirty: bool,
    last_fsync: Instant,
    checkpointed_rp: i64,
    last_checkpoint: Instant,
    /// Appends outstanding when the last group completed: its own plus those that
    /// arrived meanwhile. The next group lingers for that many (see `linger_deadline`).
    company: usize,
    /// The last group was full and left appends queued: write the rest at once.
    backlog: bool,
    // Per-group scratch, kept to avoid allocating every group.
    group: Vec<Item>,
    bufs: Vec<BatchBuf>,
    dones: Vec<Completion>,
    flushes: Vec<Arc<Slot<Result<(), WalError>>>>,
    results: Vec<(i64, i64)>,
    new_index: Vec<(u32, u32)>,
    new_time: Vec<(i64, u32)>,
    scratch: Vec<u8>,
}

fn write_all_vectored(mut f: &File, bufs: &mut [IoSlice<'_>]) -> io::Result<()> {
    let mut bufs = bufs;
    IoSlice::advance_slices(&mut bufs, 0);
    while !bufs.is_empty() {
        match f.write_vectored(bufs) {
            Ok(0) => return Err(io::Error::new(io::ErrorKind::WriteZero, "write returned 0")),
            Ok(n) => IoSlice::advance_slices(&mut bufs, n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

impl Writer {
    fn policy(&self) -> FsyncPolicy {
        self.shared.cfg.fsync
    }

    #[cfg(test)]
    fn injected_failure(&self) -> io::Result<()> {
        if self.shared.fail_next_io.swap(false, Ordering::SeqCst) {
            return Err(io::Error::other("injected I/O failure"));
        }
        Ok(())
    }

    #[cfg(not(test))]
    fn injected_failure(&self) -> io::Result<()> {
        Ok(())
    }

    /// Runs one step: one group, or one periodic round, or nothing (idle).
    pub(crate) fn step(&mut self) -> Step {
        let mut group = std::mem::take(&mut self.group);
        let step = match self.next_group(&mut group) {
            Next::Wait(deadline) => Step::Wait(deadline),
            Next::Finish => {
                self.finish();
                Step::Finished
            }
            Next::Periodic => {
                if let Err(e) = self.periodic() {
                    self.go_offline(format!("periodic fsync or checkpoint failed: {e}"));
                }
                Step::Again
            }
            Next::Group => {
                let outcome = catch_unwind(AssertUnwindSafe(|| self.process(&mut group)));
                if outcome.is_err() {
                    self.go_offline("internal error in the WAL writer (panic)".into());
                    self.fail_all(&mut group);
                }
                if let Err(e) = self.periodic() {
                    self.go_offline(format!("periodic fsync or checkpoint failed: {e}"));
                }
                Step::Again
            }
        };
        group.clear();
        self.group = group;
        step
    }

    /// After a panic outside a group: the log goes offline, everything queued fails
    /// and a waiting close returns.
    pub(crate) fn abandon(&mut self, cause: &str) {
        self.go_offline(cause.into());
        let mut rest: Vec<Item> = {
            let mut q = lock(&self.shared.queue);
            q.closing = true;
            q.flushes = 0;
            q.items.drain(..).collect()
        };
        self.fail_all(&mut rest);
        *lock(&self.shared.close_result) = Some(Err(self.offline_error()));
    }

    /// When the writer should stop lingering for more appends, or None to write the
    /// queued ones now.
    ///
    /// It lingers only when waiting can save an fsync: under fsync=always (under
    /// interval or never a group would save only a write call, and lingering held
    /// every acknowledgement of a burst of produce requests up to `max_wait_ms`
    /// whenever fewer appends came than last time), with no flush or close waiting, no
    /// backlog from a full group, and fewer appends queued than were outstanding when
    /// the last group completed (`company`). A single synchronous appender has no
    /// company (its next append comes only after the last one completed), so it never
    /// waits; N threads appending in a loop get groups of N, each written as soon as
    /// the N-th arrives. The wait ends `max_wait_ms` after the oldest queued append.
    fn linger_deadline(&self, q: &Queue) -> Option<(Instant, usize)> {
        let cfg = &self.shared.cfg;
        if q.closing || q.flushes > 0 || self.backlog || cfg.max_wait_ms == 0 {
            return None;
        }
        if self.policy() != FsyncPolicy::Always {
            return None;
        }
        let target = self.company.min(cfg.max_group_batches);
        if q.queued_appends() >= target {
            return None;
        }
        let oldest = q.oldest?;
        Some((oldest + Duration::from_millis(cfg.max_wait_ms), target))
    }

    /// Moves up to `max_group_batches` appends into `group`, or says why not: the
    /// writer lingers for company, has a periodic round due, waits for work, or the
    /// log is closing with nothing left. Never blocks: a waiting log is marked idle
    /// (`writer_idle`) so that the next append, flush or close wakes it.
    fn next_group(&mut self, group: &mut Vec<Item>) -> Next {
        let max = self.shared.cfg.max_group_batches;
        let mut q = lock(&self.shared.queue);
        match self.decide(&mut q) {
            Next::Group => {}
            other => return other,
        }
        let mut appends = 0;
        while let Some(item) = q.items.front() {
            match item {
                Item::Append { .. } if appends == max => break,
                Item::Append { .. } => appends += 1,
                Item::Flush(_) => q.flushes -= 1,
            }
            if let Some(item) = q.items.pop_front() {
                group.push(item);
            }
        }
        // What stays behind arrived while the writer was busy: no reason to wait for it.
        self.backlog = !q.items.is_empty();
        q.oldest = None;
        Next::Group
    }

    /// What the writer has to do now (`q` locked): a group, a periodic round, the
    /// close, or nothing until woken or a deadline, in which case the log is marked
    /// idle (`writer_idle`, with `wake_at` when it lingers for a group).
    fn decide(&self, q: &mut Queue) -> Next {
        q.wake_at = 1;
        if q.items.is_empty() {
            if q.closing {
                return Next::Finish;
            }
            return match self.next_deadline() {
                Some(d) if d.is_zero() => Next::Periodic,
                d => {
                    q.writer_idle = true;
                    Next::Wait(d.map(|d| Instant::now() + d))
                }
            };
        }
        if let Some((deadline, target)) = self.linger_deadline(q) {
            if Instant::now() < deadline {
                q.wake_at = target;
                q.writer_idle = true;
                return Next::Wait(Some(deadline));
            }
        }
        Next::Group
    }

    /// For a leader whose own append is done: leaves the log idle when it has
    /// nothing to do now and returns the deadline of its timer (if any); None when
    /// work is due (a group, a periodic round, the close), which the caller hands
    /// to the pool.
    pub(crate) fn park(&mut self) -> Option<Option<Instant>> {
        let mut q = lock(&self.shared.queue);
        match self.decide(&mut q) {
            Next::Wait(deadline) => Some(deadline),
            Next::Group | Next::Periodic | Next::Finish => None,
        }
    }

    /// Takes `n` written (or failed) appends of `bytes` bytes off the queue's account;
    /// returns how many appends were outstanding just before.
    fn release(&self, n: usize, bytes: u64) -> usize {
        let mut q = lock(&self.shared.queue);
        let outstanding = q.pending;
        q.pending -= n;
        q.pending_bytes -= bytes;
        outstanding
    }

    /// How long the idle writer may sleep before an interval fsync or a checkpoint
    /// is due (None: until woken).
    fn next_deadline(&self) -> Option<Duration> {
        if self.shared.offline.get().is_some() {
            return None;
        }
        let mut next: Option<Duration> = None;
        let mut consider = |d: Duration| next = Some(next.map_or(d, |n: Duration| n.min(d)));
        if self.dirty && self.policy() == FsyncPolicy::Interval {
            let due = Duration::from_millis(self.shared.cfg.fsync_interval_ms);
            consider(due.saturating_sub(self.last_fsync.elapsed()));
        }
        if self.shared.recovery_point.load(Ordering::Acquire) != self.checkpointed_rp {
            consider(CHECKPOINT_EVERY.saturating_sub(self.last_checkpoint.elapsed()));
        }
        next
    }

    fn interval_fsync_due(&self) -> bool {
        self.dirty
            && self.policy() == FsyncPolicy::Interval
            && self.last_fsync.elapsed() >= Duration::from_millis(self.shared.cfg.fsync_interval_ms)
    }

    /// Interval fsync and checkpoint, when due.
    fn periodic(&mut self) -> io::Result<()> {
        if self.shared.offline.get().is_some() {
            return Ok(());
        }
        if self.interval_fsync_due() {
            self.sync()?;
        }
        let rp = self.shared.recovery_point.load(Ordering::Acquire);
        if rp != self.checkpointed_rp && self.last_checkpoint.elapsed() >= CHECKPOINT_EVERY {
            self.injected_failure()?;
            self.shared.write_checkpoint()?;
            self.checkpointed_rp = rp;
            self.last_checkpoint = Instant::now();
        }
        Ok(())
    }

    /// One fsync round: every file written since the last one, then the active log.
    fn sync(&mut self) -> io::Result<()> {
        let t = Instant::now();
        self.injected_failure()?;
        let files = &self.shared.files;
        for p in &self.unsynced.paths {
            match files.get(p, Access::Sync) {
                Ok(f) => f.sync_data()?,
                // Retention or DeleteRecords removed the closed segment meanwhile:
                // nothing of it is left to make durable.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        self.unsynced.paths.clear();
        files.get(&self.active.path, Access::Sync)?.sync_data()?;
        let c = &self.shared.counters;
        c.fsyncs.fetch_add(1, Ordering::Relaxed);
        c.fsync_total_us
            .fetch_add(t.elapsed().as_micros() as u64, Ordering::Relaxed);
        self.dirty = false;
        self.last_fsync = Instant::now();
        self.shared
            .recovery_point
            .store(self.active.next_offset, Ordering::Release);
        Ok(())
    }

    fn go_offline(&self, cause: String) {
        let msg = format!(
            "log {} is offline after a storage failure: {cause}",
            self.shared.dir.display()
        );
        if self.shared.offline.set(msg.clone()).is_ok() {
            if let Some(hook) = &self.shared.hooks.on_offline {
                hook(&msg);
            }
        }
    }

    fn offline_error(&self) -> WalError {
        WalError::Offline(
            self.shared
                .offline
                .get()
                .cloned()
                .unwrap_or_else(|| "log is offline".into()),
        )
    }

    /// Fails every item of `group` with the offline error: the appends' outcomes
    /// first, then the flushes, so that a flush returning Offline finds the outcome of
    /// every append queued before it delivered (as on the success path, and as the
    /// reference twin, which fails its items in queue order). Appends and flushes a
    /// panicking `process` had already taken from its group are failed with them, in
    /// front, instead of being dropped with their waiters asleep.
    fn fail_all(&mut self, group: &mut Vec<Item>) {
        let err = self.offline_error();
        let (mut appends, mut bytes) = (0, 0u64);
        for item in group.drain(..) {
            match item {
                Item::Append { done, buf } => {
                    appends += 1;
                    bytes += buf.len() as u64;
                    self.dones.push(done);
                }
                Item::Flush(slot) => self.flushes.push(slot),
            }
        }
        self.bufs.clear();
        self.release(appends, bytes);
        let mut dones = std::mem::take(&mut self.dones);
        self.complete(&mut dones, |_| Err(err.clone()));
        self.dones = dones;
        for f in self.flushes.drain(..) {
            f.put(Err(err.clone()));
        }
    }

    /// Delivers outcomes: wakes waiters, runs inline callbacks, hands the other
    /// callbacks to the notifier thread.
    fn complete(&self, dones: &mut Vec<Completion>, outcome: impl Fn(usize) -> AppendOutcome) {
        let mut callbacks: CallbackBatch = Vec::new();
        for (i, d) in dones.drain(..).enumerate() {
            match d {
                Completion::Waiter(slot) => slot.put(outcome(i)),
                Completion::Callback(cb) => callbacks.push((cb, outcome(i))),
                Completion::Inline(cb) => {
                    let o = outcome(i);
                    // A panicking callback must not take the writer thread down.
                    let _ = catch_unwind(AssertUnwindSafe(move || cb(o)));
                }
            }
        }
        if !callbacks.is_empty() {
            // The notifier lives until every writer of the pool dropped its sender.
            let _ = self
                .notices
                .send(Notice::Run(self.shared.clone(), callbacks));
        }
    }

    fn process(&mut self, group: &mut Vec<Item>) {
        #[cfg(test)]
        let gate_owner = self.shared.clone();
        #[cfg(test)]
        let _gate = lock(&gate_owner.writer_gate);
        if self.shared.offline.get().is_some() {
            self.fail_all(group);
            return;
        }
        let started = Instant::now();
        self.bufs.clear();
        self.dones.clear();
        self.flushes.clear();
        for item in group.drain(..) {
            match item {
                Item::Append { buf, done } => {
                    self.bufs.push(buf);
                    self.dones.push(done);
                }
                Item::Flush(slot) => self.flushes.push(slot),
            }
        }
        let n = self.bufs.len();
        let queued_bytes: u64 = self.bufs.iter().map(|b| b.len() as u64).sum();
        let append_ms = now_ms();
        let written = self.write_group();
        let synced = written.and_then(|bytes| {
            // An interval fsync that falls due now waits until this group's outcomes are
            // delivered (`periodic`, right after): its appends were never promised it, and
            // a second's worth of dirty pages can take tens of milliseconds to sync.
            let must_sync = self.policy() == FsyncPolicy::Always || !self.flushes.is_empty();
            if must_sync {
                self.sync()?;
            }
            Ok(bytes)
        });
        let bytes = match synced {
            Ok(b) => b,
            Err(e) => {
                self.go_offline(format!("write or fsync failed: {e}"));
                let err = self.offline_error();
                self.release(n, queued_bytes);
                self.bufs.clear();
                let mut dones = std::mem::take(&mut self.dones);
                self.complete(&mut dones, |_| Err(err.clone()));
                self.dones = dones;
                // After the appends' outcomes, as below.
                for f in self.flushes.drain(..) {
                    f.put(Err(err.clone()));
                }
                return;
            }
        };
        self.shared
            .high_watermark
            .store(self.active.next_offset, Ordering::Release);
        // Queue copies go back to their pool, and lent memory to its owner, before the
        // callers run.
        self.bufs.clear();
        if n > 0 {
            self.company = self.release(n, queued_bytes);
        }
        let c = &self.shared.counters;
        c.appends.fetch_add(n as u64, Ordering::Relaxed);
        c.groups.fetch_add(1, Ordering::Relaxed);
        c.bytes_written.fetch_add(bytes, Ordering::Relaxed);
        if n > 0 {
            let per = started.elapsed().as_nanos() as u64 / n as u64;
            let old = c.ns_per_batch.load(Ordering::Relaxed);
            let smoothed = if old == 0 { per } else { (old * 7 + per) / 8 };
            c.ns_per_batch.store(smoothed, Ordering::Relaxed);
        }
        let results = std::mem::take(&mut self.results);
        let mut dones = std::mem::take(&mut self.dones);
        self.complete(&mut dones, |i| {
            let (base, last) = results[i];
            Ok(AppendResult {
                base_offset: base,
                last_offset: last,
                log_append_time_ms: append_ms,
            })
        });
        self.dones = dones;
        self.results = results;
        // Flushes last: when flush() returns, the outcome of every earlier append was
        // delivered (waiters woken, inline callbacks run), as in the reference twin.
        for f in self.flushes.drain(..) {
            f.put(Ok(()));
        }
    }

    fn needs_roll(&self, len: u64, last_delta: i64) -> bool {
        let a = &self.active;
        if a.size == 0 {
            return false;
        }
        if a.size + len > self.shared.cfg.segment_bytes {
            return true;
        }
        // Relative offsets in the indexes are 32-bit.
        if a.next_offset + last_delta - a.base > u32::MAX as i64 {
            return true;
        }
        match (self.shared.cfg.segment_ms, a.first_append) {
            (Some(ms), Some(t)) => t.elapsed() >= Duration::from_millis(ms),
            _ => false,
        }
    }

    /// Assigns offsets, writes every batch of the group (rolling where needed) and
    /// the index entries; returns the bytes written.
    fn write_group(&mut self) -> io::Result<u64> {
        self.results.clear();
        let n = self.bufs.len();
        let mut chunk_start = 0;
        let mut bytes = 0u64;
        for i in 0..n {
            let len = self.bufs[i].len() as u64;
            let delta = header::last_offset_delta(&self.bufs[i]) as i64;
            if self.needs_roll(len, delta) {
                self.write_chunk(chunk_start, i)?;
                self.roll()?;
                chunk_start = i;
            }
            let base = self.active.next_offset;
            let buf = &mut self.bufs[i];
            buf.set_base_offset(base);
            let max_ts = header::max_timestamp(buf);
            let a = &mut self.active;
            a.planner.plan(
                base,
                a.size,
                max_ts,
                &mut self.new_index,
                &mut self.new_time,
            );
            if a.first_append.is_none() {
                a.first_append = Some(Instant::now());
            }
            a.size += len;
            a.next_offset = base + delta + 1;
            self.results.push((base, base + delta));
            bytes += len;
        }
        self.write_chunk(chunk_start, n)?;
        Ok(bytes)
    }

    /// Writes batches `from..to` and the pending index entries to the active segment,
    /// then publishes its new size to readers.
    fn write_chunk(&mut self, from: usize, to: usize) -> io::Result<()> {
        if from == to {
            return Ok(());
        }
        self.injected_failure()?;
        let files = self.shared.files.clone();
        let written: u64 = self.bufs[from..to].iter().map(|b| b.len() as u64).sum();
        let file = files.get(&self.active.path, Access::Write)?;
        // The handle may be fresh from the cache or shared with an earlier chunk:
        // position it where this chunk starts. Readers use pread and never move it.
        (&*file).seek(SeekFrom::Start(self.active.size - written))?;
        let mut slices: Vec<IoSlice<'_>> = Vec::with_capacity(to - from);
        for b in &self.bufs[from..to] {
            b.io_slices(&mut slices);
        }
        write_all_vectored(&file, &mut slices)?;
        drop(slices);
        self.dirty = true;
        let unstarted = self.active.size - self.active.writeback_from;
        if self.policy() == FsyncPolicy::Interval && unstarted >= WRITEBACK_CHUNK_BYTES {
            start_writeback(&file, self.active.writeback_from, unstarted);
            self.active.writeback_from = self.active.size;
            let c = &self.shared.counters;
            c.writeback_starts.fetch_add(1, Ordering::Relaxed);
        }
        if !self.new_index.is_empty() {
            self.scratch.clear();
            index::encode_index(&self.new_index, &mut self.scratch);
            (&*files.get(&self.active.index_path, Access::Append)?).write_all(&self.scratch)?;
        }
        if !self.new_time.is_empty() {
            self.scratch.clear();
            index::encode_time_index(&self.new_time, &mut self.scratch);
            (&*files.get(&self.active.time_path, Access::Append)?).write_all(&self.scratch)?;
        }
        let mut state = self.shared.write_state();
        if let Some(seg) = state.segments.last_mut() {
            seg.size = self.active.size;
            seg.next_offset = self.active.next_offset;
            seg.index.append(&mut self.new_index);
            seg.time_index.append(&mut self.new_time);
            seg.max_ts = Some(self.active.planner.max_ts());
        }
        Ok(())
    }

    /// Starts a new segment at the next offset.
    fn roll(&mut self) -> io::Result<()> {
        let dir = &self.shared.dir;
        let base = self.active.next_offset;
        let path = segment_path(dir, base, ".log");
        // A stale handle of an earlier file by this name must not serve the new one.
        self.shared.files.forget(&path);
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)?;
        let index_path = segment_path(dir, base, ".index");
        let time_path = segment_path(dir, base, ".timeindex");
        self.shared.files.forget(&index_path);
        self.shared.files.forget(&time_path);
        index::write_index_files(&index_path, &time_path, &[], &[])?;
        if self.policy() != FsyncPolicy::Never {
            checkpoint::fsync_dir(dir)?;
        }
        let interval = self.shared.cfg.index_interval_bytes;
        let old = std::mem::replace(
            &mut self.active,
            Active {
                base,
                path: path.clone(),
                index_path,
                time_path,
                size: 0,
                next_offset: base,
                planner: IndexPlanner::new(base, interval),
                first_append: None,
                writeback_from: 0,
            },
        );
        // The old segment's data and indexes are made durable by the next fsync
        // round, which then moves the recovery point past them.
        self.unsynced.paths.push(old.path);
        self.unsynced.paths.push(old.index_path);
        self.unsynced.paths.push(old.time_path);
        let mut state = self.shared.write_state();
        if let Some(last) = state.segments.last_mut() {
            last.max_ts = Some(old.planner.max_ts());
        }
        state.segments.push(Segment {
            base,
            path,
            files: self.shared.files.clone(),
            size: 0,
            next_offset: base,
            index: Vec::new(),
            time_index: Vec::new(),
            max_ts: Some(None),
            lazy_max_ts: OnceLock::new(),
        });
        Ok(())
    }

    /// Final fsync, checkpoint and clean-shutdown marker.
    fn finish(&mut self) {
        self.finish_files();
        // A closed log holds no descriptor.
        self.shared.files.forget_dir(&self.shared.dir);
    }

    fn finish_files(&mut self) {
        if self.shared.offline.get().is_some() {
            *lock(&self.shared.close_result) = Some(Ok(()));
            return;
        }
        let result = (|| -> io::Result<()> {
            let (ip, tp) = (
                self.active.index_path.clone(),
                self.active.time_path.clone(),
            );
            self.unsynced.paths.push(ip);
            self.unsynced.paths.push(tp);
            self.sync()?;
            self.injected_failure()?;
            self.shared.write_checkpoint()?;
            File::create(self.shared.dir.join(CLEAN_SHUTDOWN_NAME))?;
            checkpoint::fsync_dir(&self.shared.dir)
        })();
        let outcome = result.map_err(|e| {
            let msg = format!("closing failed: {e}");
            self.go_offline(msg);
            self.offline_error()
        });
        *lock(&self.shared.close_result) = Some(outcome);
    }
}

/// Asks the kernel to start writing `len` bytes of `file` from `offset` to disk now,
/// without waiting (Linux `sync_file_range(SYNC_FILE_RANGE_WRITE)`).
///
/// Under fsync=interval the writer fsyncs once a second; without this, that fsync finds
/// a second's worth of dirty pages (80 MB at 80 MB/s) and the writer, and every append
/// queued behind it, waits tens of milliseconds for them (produce p99 37 ms at 79,000
/// records/s of 1 KiB, against 7 ms with it). Started early, every
/// [`WRITEBACK_CHUNK_BYTES`], the writeback runs beside the appends and the fsync finds
/// little left. A hint only: durability
/// still comes from the fsync, so a failure here is ignored (the fsync reports it).
#[cfg(target_os = "linux")]
fn start_writeback(file: &File, offset: u64, len: u64) {
    use std::os::fd::AsRawFd;
    // SAFETY: a plain system call on a descriptor that `file` keeps open for the call.
    unsafe {
        libc::sync_file_range(
            file.as_raw_fd(),
            offset as libc::off64_t,
            len as libc::off64_t,
            libc::SYNC_FILE_RANGE_WRITE,
        );
    }
}

#[cfg(not(target_os = "linux"))]
fn start_writeback(_file: &File, _offset: u64, _len: u64) {}

#[cfg(test)]
mod linger_tests {
    //! The linger rule, the memory budget and leader/follower group commit, driven
    //! through the public API with the writer stalled at its gate where a test needs
    //! a known queue.

    use super::super::{Wal, WalConfig, WalHooks};
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::sync::mpsc::{channel, Receiver};
    use std::sync::Mutex;

    /// Long enough that a test fails (by its receive timeout) long before a wrongly
    /// lingering writer would give up.
    const HOUR_MS: u64 = 3_600_000;
    const PATIENCE: Duration = Duration::from_secs(60);

    static N: AtomicUsize = AtomicUsize::new(0);

    struct Dir(std::path::PathBuf);
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn open(cfg: WalConfig) -> (Wal, Dir) {
        let n = N.fetch_add(1, Ordering::SeqCst);
        let p = std::env::temp_dir().join(format!("streamcore-linger-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        let wal = Wal::open(&p, cfg, WalHooks::default()).expect("open");
        (wal, Dir(p))
    }

    /// A one-record v2 batch of `payload` filler bytes (the WAL checks framing only).
    fn batch(payload: usize) -> Vec<u8> {
        let total = header::HEADER_LEN + payload;
        let mut b = vec![0u8; total];
        b[8..12].copy_from_slice(&((total - header::LOG_OVERHEAD) as i32).to_be_bytes());
        b[16] = header::MAGIC_V2 as u8;
        b[57..61].copy_from_slice(&1i32.to_be_bytes());
        b
    }

    fn always(max_wait_ms: u64) -> WalConfig {
        WalConfig {
            fsync: FsyncPolicy::Always,
            max_wait_ms,
            ..WalConfig::default()
        }
    }

    fn submit(wal: &Wal) -> Receiver<AppendOutcome> {
        let (tx, rx) = channel();
        wal.submit(
            &batch(10),
            Completion::Callback(Box::new(move |r| {
                let _ = tx.send(r);
            })),
        )
        .unwrap();
        rx
    }

    /// Stalls the writer on its first append (A) while B and C queue, then lets it
    /// go: A's group completes with three appends outstanding.
    fn three_outstanding(wal: &Wal) -> [Receiver<AppendOutcome>; 3] {
        let gate = lock(&wal.shared.writer_gate);
        let a = submit(wal);
        // The writer has taken A once the queue is empty but A is still pending.
        while !lock(&wal.shared.queue).items.is_empty() {
            std::thread::yield_now();
        }
        let b = submit(wal);
        let c = submit(wal);
        drop(gate);
        [a, b, c]
    }

    #[test]
    fn a_lone_synchronous_appender_never_waits() {
        let (wal, _d) = open(always(HOUR_MS));
        let (tx, rx) = channel();
        std::thread::scope(|s| {
            s.spawn(|| {
                for _ in 0..5 {
                    wal.append(&batch(10)).unwrap();
                }
                tx.send(()).unwrap();
            });
            rx.recv_timeout(PATIENCE)
                .expect("a lone appender was held for company that never comes");
        });
        assert_eq!((wal.stats().appends, wal.stats().groups), (5, 5));
    }

    #[test]
    fn a_group_waits_for_the_appenders_of_the_last_round_and_goes_when_they_arrive() {
        let (wal, _d) = open(always(HOUR_MS));
        let [a, b, c] = three_outstanding(&wal);
        a.recv_timeout(PATIENCE).unwrap().unwrap();
        // Three were outstanding when A completed: B and C wait for a third. Waiting
        // here cannot make this check pass wrongly, only give a broken rule time to show.
        std::thread::sleep(Duration::from_millis(50));
        assert!(b.try_recv().is_err() && c.try_recv().is_err());
        assert_eq!(wal.stats().groups, 1);
        let d = submit(&wal);
        for r in [b, c, d] {
            r.recv_timeout(PATIENCE).unwrap().unwrap();
        }
        assert_eq!((wal.stats().appends, wal.stats().groups), (4, 2));
    }

    #[test]
    fn lingering_ends_max_wait_after_the_oldest_queued_append() {
        let max_wait = Duration::from_millis(200);
        let (wal, _d) = open(always(max_wait.as_millis() as u64));
        let [a, b, c] = three_outstanding(&wal);
        let queued_at = Instant::now();
        a.recv_timeout(PATIENCE).unwrap().unwrap();
        b.recv_timeout(PATIENCE)
            .expect("max_wait_ms did not end the wait")
            .unwrap();
        c.recv_timeout(PATIENCE).unwrap().unwrap();
        // B and C went together, and not before the deadline (a lower bound, which
        // scheduling delays cannot break).
        assert!(queued_at.elapsed() >= max_wait);
        assert_eq!((wal.stats().appends, wal.stats().groups), (3, 2));
    }

    #[test]
    fn fsync_never_and_a_queued_flush_never_keep_a_group_waiting() {
        // fsync=never: nothing to save by waiting, so B and C go at once.
        let (wal, _d) = open(WalConfig {
            fsync: FsyncPolicy::Never,
            max_wait_ms: HOUR_MS,
            ..WalConfig::default()
        });
        for r in three_outstanding(&wal) {
            r.recv_timeout(PATIENCE).unwrap().unwrap();
        }
        // fsync=always: a flush request ends the wait.
        let (wal, _d) = open(always(HOUR_MS));
        let [a, b, c] = three_outstanding(&wal);
        a.recv_timeout(PATIENCE).unwrap().unwrap();
        wal.flush().unwrap();
        for r in [b, c] {
            r.recv_timeout(PATIENCE).unwrap().unwrap();
        }
    }

    #[test]
    fn the_memory_budget_bounds_queued_bytes_with_backpressure() {
        let (wal, _d) = open(WalConfig {
            fsync: FsyncPolicy::Never,
            memory_budget_bytes: 1000,
            ..WalConfig::default()
        });
        let gate = lock(&wal.shared.writer_gate);
        // An empty queue takes a batch larger than the whole budget.
        let big = wal.enqueue(&batch(1500)).unwrap();
        match wal.enqueue(&batch(10)) {
            Err(WalError::Backpressure {
                throttle_time_ms,
                message,
            }) => {
                assert!(throttle_time_ms >= 1);
                assert!(message.contains("memory budget of 1000 bytes"), "{message}");
            }
            other => panic!("expected backpressure, got {:?}", other.map(|_| ())),
        }
        drop(gate);
        big.wait().unwrap();
        // Within the budget: 10 batches of 71 bytes queue while the writer is stalled.
        let gate = lock(&wal.shared.writer_gate);
        let first = wal.enqueue(&batch(10)).unwrap();
        while !lock(&wal.shared.queue).items.is_empty() {
            std::thread::yield_now();
        }
        let mut waiters = vec![first];
        let len = batch(10).len() as u64;
        while lock(&wal.shared.queue).pending_bytes + len <= 1000 {
            waiters.push(wal.enqueue(&batch(10)).unwrap());
        }
        assert!(matches!(
            wal.enqueue(&batch(10)),
            Err(WalError::Backpressure { .. })
        ));
        assert_eq!(wal.stats().backpressure_rejections, 2);
        drop(gate);
        for w in waiters {
            w.wait().unwrap();
        }
        assert_eq!(lock(&wal.shared.queue).pending_bytes, 0);
    }

    fn never() -> WalConfig {
        WalConfig {
            fsync: FsyncPolicy::Never,
            ..WalConfig::default()
        }
    }

    /// Blocks until the writer took everything queued and `pending` appends are
    /// still unwritten (a writer stalled at its gate holds them).
    fn until_taken(wal: &Wal, pending: usize) {
        loop {
            let q = lock(&wal.shared.queue);
            if q.items.is_empty() && q.pending == pending {
                return;
            }
            drop(q);
            std::thread::yield_now();
        }
    }

    /// Blocks until the writer is idle (a freshly opened log's first step runs on
    /// the pool: an append before it finds the writer busy and queues).
    fn until_idle(wal: &Wal) {
        while !lock(&wal.shared.queue).writer_idle {
            std::thread::yield_now();
        }
    }

    fn until_queued(wal: &Wal, n: usize) {
        while lock(&wal.shared.queue).items.len() < n {
            std::thread::yield_now();
        }
    }

    #[test]
    fn a_lone_blocking_appender_writes_its_own_groups() {
        for cfg in [always(HOUR_MS), never()] {
            let (wal, _d) = open(cfg);
            until_idle(&wal);
            for i in 0..5 {
                assert_eq!(wal.append(&batch(10)).unwrap().base_offset, i);
            }
            let s = wal.stats();
            assert_eq!((s.appends, s.groups, s.groups_led), (5, 5, 5));
            // Nothing left for the pool: the log went idle.
            assert!(lock(&wal.shared.queue).writer_idle);
        }
    }

    #[test]
    fn appends_arriving_while_a_leader_writes_follow_it_in_order() {
        let (wal, _d) = open(never());
        until_idle(&wal);
        let gate = lock(&wal.shared.writer_gate);
        std::thread::scope(|s| {
            let leader = s.spawn(|| wal.append(&batch(10)));
            // The leader took its group and is stalled at the gate inside it.
            until_taken(&wal, 1);
            let f1 = s.spawn(|| wal.append(&batch(10)));
            until_queued(&wal, 1);
            let f2 = s.spawn(|| wal.append(&batch(10)));
            until_queued(&wal, 2);
            drop(gate);
            assert_eq!(leader.join().unwrap().unwrap().base_offset, 0);
            let rest = [
                f1.join().unwrap().unwrap().base_offset,
                f2.join().unwrap().unwrap().base_offset,
            ];
            // Queued in this order, so written in it.
            assert_eq!(rest, [1, 2]);
        });
        // The followers went as one more group: handed to the pool by the leader
        // once its own append was done.
        let s = wal.stats();
        assert_eq!((s.appends, s.groups, s.groups_led), (3, 2, 1));
        let all = wal.read(0, 1 << 20).unwrap();
        assert_eq!(all.len(), 3 * batch(10).len());
    }

    #[test]
    fn submit_never_writes_on_the_calling_thread() {
        let (wal, _d) = open(never());
        let rx: Vec<_> = (0..5).map(|_| submit(&wal)).collect();
        for (i, r) in rx.into_iter().enumerate() {
            let got = r.recv_timeout(PATIENCE).unwrap().unwrap();
            assert_eq!(got.base_offset, i as i64);
        }
        assert_eq!(wal.stats().groups_led, 0);
    }

    #[test]
    fn a_close_while_a_leader_writes_waits_for_it_and_finishes_cleanly() {
        let (wal, d) = open(always(HOUR_MS));
        let gate = lock(&wal.shared.writer_gate);
        std::thread::scope(|s| {
            let leader = s.spawn(|| wal.append(&batch(10)));
            until_taken(&wal, 1);
            let closer = s.spawn(|| wal.close());
            while !lock(&wal.shared.queue).closing {
                std::thread::yield_now();
            }
            assert!(wal.append(&batch(10)).is_err());
            drop(gate);
            assert_eq!(leader.join().unwrap().unwrap().base_offset, 0);
            closer.join().unwrap().unwrap();
        });
        assert!(d.0.join(CLEAN_SHUTDOWN_NAME).exists());
        assert_eq!(wal.recovery_point(), 1);
    }

    #[test]
    fn a_failed_write_by_a_leader_fails_its_followers_and_takes_the_log_offline() {
        let (wal, _d) = open(never());
        wal.append(&batch(10)).unwrap();
        let gate = lock(&wal.shared.writer_gate);
        wal.fail_next_io();
        std::thread::scope(|s| {
            let leader = s.spawn(|| wal.append(&batch(10)));
            until_taken(&wal, 1);
            let follower = s.spawn(|| wal.append(&batch(10)));
            until_queued(&wal, 1);
            drop(gate);
            for r in [leader.join().unwrap(), follower.join().unwrap()] {
                assert!(matches!(r, Err(WalError::Offline(_))), "{r:?}");
            }
        });
        assert!(wal.is_offline());
        assert!(matches!(wal.append(&batch(10)), Err(WalError::Offline(_))));
        assert_eq!(wal.high_watermark(), 1);
    }

    /// An append queued behind a group whose write fails, then a flush: the next step
    /// finds the log offline and fails both. The flush must return only once the
    /// append's outcome was delivered (its slow inline callback has run).
    #[test]
    fn a_flush_failed_on_an_offline_log_returns_after_the_appends_queued_before_it() {
        let (wal, _d) = open(never());
        let delivered = Arc::new(Mutex::new(Vec::<&str>::new()));
        let gate = lock(&wal.shared.writer_gate);
        wal.fail_next_io();
        let first = submit(&wal);
        until_taken(&wal, 1);
        let seen = delivered.clone();
        wal.submit(
            &batch(10),
            Completion::Inline(Box::new(move |outcome| {
                assert!(matches!(outcome, Err(WalError::Offline(_))), "{outcome:?}");
                std::thread::sleep(Duration::from_millis(50));
                lock(&seen).push("append");
            })),
        )
        .unwrap();
        std::thread::scope(|s| {
            let flusher = s.spawn(|| {
                let flushed = wal.flush();
                (flushed, lock(&delivered).clone())
            });
            while lock(&wal.shared.queue).flushes == 0 {
                std::thread::yield_now();
            }
            drop(gate);
            let (flushed, seen_at_return) = flusher.join().unwrap();
            assert!(matches!(flushed, Err(WalError::Offline(_))), "{flushed:?}");
            assert_eq!(seen_at_return, vec!["append"]);
        });
        assert!(matches!(first.recv().unwrap(), Err(WalError::Offline(_))));
    }
}
