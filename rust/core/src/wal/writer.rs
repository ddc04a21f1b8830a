//! The writer thread: group commit, segment roll, fsync policy, checkpoints, close.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{self, IoSlice, Seek, SeekFrom, Write};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::checkpoint::{self, CLEAN_SHUTDOWN_NAME};
use super::index::{self, IndexPlanner};
use super::segment::{segment_path, Segment};
use super::{
    lock, now_ms, AppendOutcome, AppendResult, Callback, Completion, FsyncPolicy, Shared, Slot,
    WalError,
};
use crate::buffer_pool::PooledBuf;
use crate::record_batch::header;

/// One queued request.
pub(crate) enum Item {
    Append { buf: PooledBuf, done: Completion },
    Flush(Arc<Slot<Result<(), WalError>>>),
}

/// The queue between callers and the writer (guarded by `Shared::queue`).
pub(crate) struct Queue {
    pub items: VecDeque<Item>,
    pub closing: bool,
    /// Appends queued or being written, not yet written: what backpressure counts.
    pub pending: usize,
    /// The writer is asleep on the condvar and needs a notify.
    pub writer_idle: bool,
}

/// The segment being appended to, as the writer sees it.
pub(crate) struct Active {
    pub base: i64,
    pub file: Arc<File>,
    pub index_file: File,
    pub time_file: File,
    pub size: u64,
    pub next_offset: i64,
    pub planner: IndexPlanner,
    /// When this process first appended to the segment (for segment_ms).
    pub first_append: Option<Instant>,
}

/// Files written since the last fsync round, other than the active log.
pub(crate) struct Unsynced {
    pub files: Vec<File>,
    pub logs: Vec<Arc<File>>,
}

/// Checkpoints are written at most this often while appends advance the recovery point.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

/// A group's callbacks with their outcomes, in offset order.
type CallbackBatch = Vec<(Callback, AppendOutcome)>;

/// Starts the writer thread and the notifier thread that runs `submit` callbacks.
pub(crate) fn spawn(
    shared: Arc<Shared>,
    active: Active,
    unsynced: Unsynced,
) -> io::Result<(JoinHandle<()>, JoinHandle<()>)> {
    let checkpointed = shared.recovery_point.load(Ordering::Acquire);
    let (tx, rx) = mpsc::channel::<CallbackBatch>();
    let notifier_shared = shared.clone();
    let notifier = std::thread::Builder::new()
        .name("streamcore-wal-notify".into())
        .spawn(move || {
            for mut batch in rx {
                let mut run = || {
                    for (cb, outcome) in batch.drain(..) {
                        // A panicking callback must not stop the others.
                        let _ = catch_unwind(AssertUnwindSafe(move || cb(outcome)));
                    }
                };
                match &notifier_shared.hooks.run_callbacks {
                    Some(hook) => hook(&mut run),
                    None => run(),
                }
            }
        })?;
    let mut w = Writer {
        callbacks: tx,
        shared,
        active,
        unsynced,
        dirty: false,
        last_fsync: Instant::now(),
        checkpointed_rp: checkpointed,
        last_checkpoint: Instant::now(),
        bufs: Vec::new(),
        dones: Vec::new(),
        flushes: Vec::new(),
        results: Vec::new(),
        new_index: Vec::new(),
        new_time: Vec::new(),
        scratch: Vec::new(),
    };
    let writer = std::thread::Builder::new()
        .name("streamcore-wal".into())
        .spawn(move || w.run())?;
    Ok((writer, notifier))
}

struct Writer {
    callbacks: mpsc::Sender<CallbackBatch>,
    shared: Arc<Shared>,
    active: Active,
    unsynced: Unsynced,
    /// Data written since the last fsync round.
    dirty: bool,
    last_fsync: Instant,
    checkpointed_rp: i64,
    last_checkpoint: Instant,
    // Per-group scratch, kept to avoid allocating every group.
    bufs: Vec<PooledBuf>,
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

    fn run(&mut self) {
        let mut group: Vec<Item> = Vec::new();
        loop {
            let closing = self.next_group(&mut group);
            if group.is_empty() {
                if closing {
                    self.finish();
                    return;
                }
                if let Err(e) = self.periodic() {
                    self.go_offline(format!("periodic fsync or checkpoint failed: {e}"));
                }
                continue;
            }
            let outcome = catch_unwind(AssertUnwindSafe(|| self.process(&mut group)));
            if outcome.is_err() {
                self.go_offline("internal error in the WAL writer (panic)".into());
                self.fail_all(&mut group);
            }
            if let Err(e) = self.periodic() {
                self.go_offline(format!("periodic fsync or checkpoint failed: {e}"));
            }
        }
    }

    /// Waits for work; moves up to `max_group_batches` appends into `group`. Returns
    /// true when the log is closing and the queue is drained.
    fn next_group(&mut self, group: &mut Vec<Item>) -> bool {
        let max = self.shared.cfg.max_group_batches;
        let mut q = lock(&self.shared.queue);
        loop {
            if !q.items.is_empty() {
                break;
            }
            if q.closing {
                return true;
            }
            let timeout = self.next_deadline();
            match timeout {
                Some(d) if d.is_zero() => return false,
                Some(d) => {
                    q.writer_idle = true;
                    let (g, res) = self
                        .shared
                        .queue_cv
                        .wait_timeout(q, d)
                        .unwrap_or_else(|e| e.into_inner());
                    q = g;
                    q.writer_idle = false;
                    if res.timed_out() && q.items.is_empty() {
                        return false;
                    }
                }
                None => {
                    q.writer_idle = true;
                    q = self
                        .shared
                        .queue_cv
                        .wait(q)
                        .unwrap_or_else(|e| e.into_inner());
                    q.writer_idle = false;
                }
            }
        }
        let mut appends = 0;
        while let Some(item) = q.items.front() {
            if matches!(item, Item::Append { .. }) {
                if appends == max {
                    break;
                }
                appends += 1;
            }
            if let Some(item) = q.items.pop_front() {
                group.push(item);
            }
        }
        q.closing && q.items.is_empty()
    }

    /// How long the idle writer may sleep before an interval fsync or a checkpoint
    /// is due (None: until woken).
    fn next_deadline(&self) -> Option<Duration> {
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
        for f in &self.unsynced.logs {
            f.sync_data()?;
        }
        for f in &self.unsynced.files {
            f.sync_data()?;
        }
        self.unsynced.logs.clear();
        self.unsynced.files.clear();
        self.active.file.sync_data()?;
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

    /// Fails every item of `group` with the offline error.
    fn fail_all(&mut self, group: &mut Vec<Item>) {
        let err = self.offline_error();
        let mut appends = 0;
        self.dones.clear();
        for item in group.drain(..) {
            match item {
                Item::Append { done, .. } => {
                    appends += 1;
                    self.dones.push(done);
                }
                Item::Flush(slot) => slot.put(Err(err.clone())),
            }
        }
        self.bufs.clear();
        lock(&self.shared.queue).pending -= appends;
        let mut dones = std::mem::take(&mut self.dones);
        self.complete(&mut dones, |_| Err(err.clone()));
        self.dones = dones;
    }

    /// Delivers outcomes: wakes waiters, hands callbacks to the notifier thread.
    fn complete(&self, dones: &mut Vec<Completion>, outcome: impl Fn(usize) -> AppendOutcome) {
        let mut callbacks: CallbackBatch = Vec::new();
        for (i, d) in dones.drain(..).enumerate() {
            match d {
                Completion::Waiter(slot) => slot.put(outcome(i)),
                Completion::Callback(cb) => callbacks.push((cb, outcome(i))),
            }
        }
        if !callbacks.is_empty() {
            // The notifier lives until this writer drops the sender.
            let _ = self.callbacks.send(callbacks);
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
        let append_ms = now_ms();
        let written = self.write_group();
        let synced = written.and_then(|bytes| {
            let must_sync = self.policy() == FsyncPolicy::Always
                || !self.flushes.is_empty()
                || self.interval_fsync_due();
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
                lock(&self.shared.queue).pending -= n;
                for f in self.flushes.drain(..) {
                    f.put(Err(err.clone()));
                }
                self.bufs.clear();
                let mut dones = std::mem::take(&mut self.dones);
                self.complete(&mut dones, |_| Err(err.clone()));
                self.dones = dones;
                return;
            }
        };
        self.shared
            .high_watermark
            .store(self.active.next_offset, Ordering::Release);
        // Queue copies go back to their pool before the callers run.
        self.bufs.clear();
        lock(&self.shared.queue).pending -= n;
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
        for f in self.flushes.drain(..) {
            f.put(Ok(()));
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
            header::set_base_offset(buf, base);
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
        let mut slices: Vec<IoSlice<'_>> = self.bufs[from..to]
            .iter()
            .map(|b| IoSlice::new(b))
            .collect();
        write_all_vectored(&self.active.file, &mut slices)?;
        drop(slices);
        self.dirty = true;
        if !self.new_index.is_empty() {
            self.scratch.clear();
            index::encode_index(&self.new_index, &mut self.scratch);
            self.active.index_file.write_all(&self.scratch)?;
        }
        if !self.new_time.is_empty() {
            self.scratch.clear();
            index::encode_time_index(&self.new_time, &mut self.scratch);
            self.active.time_file.write_all(&self.scratch)?;
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
        let file = Arc::new(
            OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(&path)?,
        );
        (&*file).seek(SeekFrom::Start(0))?;
        let index_path = segment_path(dir, base, ".index");
        let time_path = segment_path(dir, base, ".timeindex");
        index::write_index_files(&index_path, &time_path, &[], &[])?;
        let index_file = index::open_for_append(&index_path)?;
        let time_file = index::open_for_append(&time_path)?;
        if self.policy() != FsyncPolicy::Never {
            checkpoint::fsync_dir(dir)?;
        }
        let interval = self.shared.cfg.index_interval_bytes;
        let old = std::mem::replace(
            &mut self.active,
            Active {
                base,
                file: file.clone(),
                index_file,
                time_file,
                size: 0,
                next_offset: base,
                planner: IndexPlanner::new(base, interval),
                first_append: None,
            },
        );
        // The old segment's data and indexes are made durable by the next fsync
        // round, which then moves the recovery point past them.
        self.unsynced.logs.push(old.file);
        self.unsynced.files.push(old.index_file);
        self.unsynced.files.push(old.time_file);
        let mut state = self.shared.write_state();
        if let Some(last) = state.segments.last_mut() {
            last.max_ts = Some(old.planner.max_ts());
        }
        state.segments.push(Segment {
            base,
            path,
            file,
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
        if self.shared.offline.get().is_some() {
            *lock(&self.shared.close_result) = Some(Ok(()));
            return;
        }
        let result = (|| -> io::Result<()> {
            self.unsynced
                .files
                .push(self.active.index_file.try_clone()?);
            self.unsynced.files.push(self.active.time_file.try_clone()?);
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
