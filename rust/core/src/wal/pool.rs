//! The shared writer pool: a few writer threads and one notifier thread serve every
//! log of a data directory, instead of two threads per log.
//!
//! Each log keeps its own queue and group commit (see `writer.rs`); what the pool
//! adds is scheduling. A log whose writer has nothing to do is *idle* (`writer_idle`
//! in its queue): it costs no thread. The first append that its writer wants
//! (`wake_at`), a flush, a close or a due timer (linger deadline, interval fsync,
//! checkpoint) puts the log on the pool's ready queue; a writer thread then runs one
//! step of it (one group, or one periodic round) and puts it back while work remains.
//! A log is run by one thread at a time, so its groups stay in offset order.
//!
//! Completions of `submit` callbacks go to the pool's notifier thread, in the order
//! the writers finished them, so a callback that waits (e.g. for Python's GIL) never
//! delays a write.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{mpsc, Arc, Condvar, Mutex, MutexGuard, Weak};
use std::thread::{JoinHandle, ThreadId};
use std::time::Instant;

use super::completion::{AppendOutcome, Callback};
use super::files::{FileCache, FileCacheStats};
use super::writer::{self, Step, Writer};
use super::{lock, Shared, Slot, WalError};

/// A group's callbacks with their outcomes, in offset order.
pub(crate) type CallbackBatch = Vec<(Callback, AppendOutcome)>;

/// Work for the notifier thread.
pub(crate) enum Notice {
    /// Run a log's callbacks (inside its `run_callbacks` hook).
    Run(Arc<Shared>, CallbackBatch),
    /// Tell a closing log that every callback sent before this one has run.
    Barrier(Arc<Slot<()>>),
}

/// One log as the pool sees it.
pub(crate) struct LogTask {
    pub shared: Arc<Shared>,
    /// None once the writer finished (closed).
    writer: Mutex<Option<Writer>>,
    finished: Mutex<bool>,
    finished_cv: Condvar,
}

impl LogTask {
    /// Blocks until the log's writer has finished its close.
    pub fn wait_finished(&self) {
        let mut g = lock(&self.finished);
        while !*g {
            g = self.finished_cv.wait(g).unwrap_or_else(|e| e.into_inner());
        }
    }
}

struct Timer {
    at: Instant,
    seq: u64,
    task: Weak<LogTask>,
}

impl PartialEq for Timer {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for Timer {}
impl PartialOrd for Timer {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Timer {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(o.at, o.seq))
    }
}

#[derive(Default)]
struct PoolState {
    ready: VecDeque<Arc<LogTask>>,
    timers: BinaryHeap<Reverse<Timer>>,
    seq: u64,
    /// Logs opened in the pool and not finished yet.
    live: usize,
    /// Every log ever registered (pruned as they go), for shutdown.
    logs: Vec<Weak<LogTask>>,
    /// Threads leave once no live log remains.
    stopping: bool,
    /// No new log may join.
    shut: bool,
}

pub(crate) struct PoolInner {
    state: Mutex<PoolState>,
    cv: Condvar,
    files: Arc<FileCache>,
    notices: Mutex<Option<mpsc::Sender<Notice>>>,
    writers: Mutex<Vec<JoinHandle<()>>>,
    notifier: Mutex<Option<JoinHandle<()>>>,
    thread_ids: Mutex<Vec<ThreadId>>,
    writer_threads: usize,
}

/// Counters of a [`WriterPool`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriterPoolStats {
    /// Writer threads (the notifier thread comes on top).
    pub writer_threads: u64,
    /// Logs open in the pool.
    pub logs: u64,
    /// The shared file cache.
    pub files: FileCacheStats,
}

/// Writer threads, a notifier thread and a file cache shared by many logs (see the
/// module docs). Cloning gives another handle to the same pool.
#[derive(Clone)]
pub struct WriterPool {
    inner: Arc<PoolInner>,
}

impl WriterPool {
    /// Starts `writer_threads` (>= 1) writer threads and one notifier thread; at most
    /// `max_open_files` (>= 1) segment files stay open across the pool's logs.
    pub fn new(writer_threads: usize, max_open_files: usize) -> Result<WriterPool, WalError> {
        if writer_threads == 0 || max_open_files == 0 {
            return Err(WalError::InvalidArgument(format!(
                "writer_threads and max_open_files must be >= 1, not {writer_threads} and {max_open_files}"
            )));
        }
        let (tx, rx) = mpsc::channel::<Notice>();
        let inner = Arc::new(PoolInner {
            state: Mutex::new(PoolState::default()),
            cv: Condvar::new(),
            files: Arc::new(FileCache::new(max_open_files)),
            notices: Mutex::new(Some(tx)),
            writers: Mutex::new(Vec::new()),
            notifier: Mutex::new(None),
            thread_ids: Mutex::new(Vec::new()),
            writer_threads,
        });
        let started = (|| -> io::Result<()> {
            let n = std::thread::Builder::new()
                .name("streamcore-wal-notify".into())
                .spawn(move || notifier_loop(rx))?;
            lock(&inner.thread_ids).push(n.thread().id());
            *lock(&inner.notifier) = Some(n);
            for i in 0..writer_threads {
                let pool = inner.clone();
                let h = std::thread::Builder::new()
                    .name(format!("streamcore-wal-{i}"))
                    .spawn(move || worker_loop(&pool))?;
                lock(&inner.thread_ids).push(h.thread().id());
                lock(&inner.writers).push(h);
            }
            Ok(())
        })();
        let pool = WriterPool { inner };
        if let Err(e) = started {
            let _ = pool.shutdown();
            return Err(WalError::Storage(format!(
                "cannot start the WAL pool threads: {e}"
            )));
        }
        Ok(pool)
    }

    /// True when both handles are the same pool.
    pub fn same_pool(&self, other: &WriterPool) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    pub(crate) fn files(&self) -> &Arc<FileCache> {
        &self.inner.files
    }

    pub(crate) fn notices(&self) -> Result<mpsc::Sender<Notice>, WalError> {
        lock(&self.inner.notices)
            .clone()
            .ok_or_else(|| WalError::Storage("the WAL pool is shut down".into()))
    }

    /// Adds a log whose writer is ready to run; it is scheduled once at once.
    pub(crate) fn register(
        &self,
        shared: Arc<Shared>,
        w: Writer,
    ) -> Result<Arc<LogTask>, WalError> {
        let task = Arc::new(LogTask {
            shared,
            writer: Mutex::new(Some(w)),
            finished: Mutex::new(false),
            finished_cv: Condvar::new(),
        });
        {
            let mut st = lock(&self.inner.state);
            if st.shut {
                return Err(WalError::Storage("the WAL pool is shut down".into()));
            }
            st.live += 1;
            st.logs.retain(|w| w.strong_count() > 0);
            st.logs.push(Arc::downgrade(&task));
        }
        let _ = task.shared.task.set(Arc::downgrade(&task));
        let _ = task.shared.pool.set(Arc::downgrade(&self.inner));
        self.inner.schedule(task.clone());
        Ok(task)
    }

    /// Blocks until every callback handed to the notifier so far has run (no-op when
    /// called from the notifier itself, which would wait for itself).
    pub(crate) fn notifier_barrier(&self) {
        if self.is_pool_thread() {
            return;
        }
        let Ok(tx) = self.notices() else { return };
        let slot = Arc::new(Slot::new());
        if tx.send(Notice::Barrier(slot.clone())).is_ok() {
            slot.take();
        }
    }

    fn is_pool_thread(&self) -> bool {
        lock(&self.inner.thread_ids).contains(&std::thread::current().id())
    }

    /// Lets the threads leave once the logs open now have finished, without waiting
    /// (a private pool whose one log closes in the background).
    pub(crate) fn stop_when_idle(&self) {
        let mut st = lock(&self.inner.state);
        st.stopping = true;
        st.shut = true;
        drop(st);
        self.inner.cv.notify_all();
    }

    /// Counters (see [`WriterPoolStats`]).
    pub fn stats(&self) -> WriterPoolStats {
        WriterPoolStats {
            writer_threads: self.inner.writer_threads as u64,
            logs: lock(&self.inner.state).live as u64,
            files: self.inner.files.stats(),
        }
    }

    /// Closes every log still open in the pool (each drains, fsyncs, writes its
    /// checkpoint and clean-shutdown marker), waits for their callbacks, then joins
    /// every thread of the pool. Idempotent; afterwards no log can be opened in it.
    /// Called from one of the pool's own threads it only starts the closes.
    pub fn shutdown(&self) -> Result<(), WalError> {
        let logs: Vec<Arc<LogTask>> = {
            let mut st = lock(&self.inner.state);
            st.shut = true;
            st.stopping = true;
            st.logs.iter().filter_map(Weak::upgrade).collect()
        };
        for t in &logs {
            writer::begin_close(&t.shared);
        }
        self.inner.cv.notify_all();
        if self.is_pool_thread() {
            return Ok(());
        }
        for t in &logs {
            t.wait_finished();
        }
        drop(logs);
        let handles: Vec<JoinHandle<()>> = lock(&self.inner.writers).drain(..).collect();
        let mut panicked = false;
        for h in handles {
            panicked |= h.join().is_err();
        }
        // Finished writers dropped their senders; this was the last one.
        drop(lock(&self.inner.notices).take());
        if let Some(n) = lock(&self.inner.notifier).take() {
            panicked |= n.join().is_err();
        }
        if panicked {
            return Err(WalError::Storage("a WAL pool thread panicked".into()));
        }
        Ok(())
    }
}

impl PoolInner {
    /// Puts `task` on the ready queue (its queue's `writer_idle` was just cleared).
    pub(crate) fn schedule(&self, task: Arc<LogTask>) {
        lock(&self.state).ready.push_back(task);
        self.cv.notify_one();
    }

    fn add_timer(&self, at: Instant, task: &Arc<LogTask>) {
        let mut st = lock(&self.state);
        st.seq += 1;
        let seq = st.seq;
        let earliest = st.timers.peek().is_none_or(|Reverse(t)| at < t.at);
        st.timers.push(Reverse(Timer {
            at,
            seq,
            task: Arc::downgrade(task),
        }));
        drop(st);
        if earliest {
            // A sleeping thread may be waiting for a later timer.
            self.cv.notify_one();
        }
    }

    fn finished(&self, task: &LogTask) {
        // The pool's count first: a close that returns sees the log gone from it.
        lock(&self.state).live -= 1;
        self.cv.notify_all();
        *lock(&task.finished) = true;
        task.finished_cv.notify_all();
    }

    /// The next log to run, or None when the pool stops.
    fn next(&self) -> Option<Arc<LogTask>> {
        let mut st = lock(&self.state);
        loop {
            if let Some(t) = st.ready.pop_front() {
                return Some(t);
            }
            let now = Instant::now();
            let mut fired = Vec::new();
            while st.timers.peek().is_some_and(|Reverse(t)| t.at <= now) {
                if let Some(Reverse(t)) = st.timers.pop() {
                    fired.push(t.task);
                }
            }
            if !fired.is_empty() {
                drop(st);
                for t in fired.iter().filter_map(Weak::upgrade) {
                    writer::wake_if_idle(&t.shared, || self.schedule(t.clone()));
                }
                st = lock(&self.state);
                continue;
            }
            if st.stopping && st.live == 0 {
                return None;
            }
            st = match st.timers.peek() {
                Some(Reverse(t)) => {
                    let d = t.at - now;
                    self.cv
                        .wait_timeout(st, d)
                        .unwrap_or_else(|e| e.into_inner())
                        .0
                }
                None => self.cv.wait(st).unwrap_or_else(|e| e.into_inner()),
            };
        }
    }
}

/// What one step left the thread that ran it to do.
enum Ran {
    /// More may be queued: run the log again.
    Again,
    /// The log is idle (its timer set, when it has a deadline).
    Idle,
    /// The writer finished (closed or abandoned): drop the guard, then call
    /// [`PoolInner::finished`].
    Finished,
    /// The writer had already finished.
    Gone,
}

impl PoolInner {
    /// Runs one step of `task`'s writer, held in `guard`, on the calling thread (a
    /// pool thread, or an appender leading, see [`lead`]).
    fn run_step(&self, task: &Arc<LogTask>, guard: &mut MutexGuard<'_, Option<Writer>>) -> Ran {
        let Some(w) = guard.as_mut() else {
            return Ran::Gone;
        };
        match catch_unwind(AssertUnwindSafe(|| w.step())) {
            Ok(Step::Again) => Ran::Again,
            Ok(Step::Wait(deadline)) => {
                // Still holding the writer: a thread that picks the log up meanwhile
                // waits for the guard, and at worst finds nothing to do.
                if let Some(at) = deadline {
                    self.add_timer(at, task);
                }
                Ran::Idle
            }
            Ok(Step::Finished) => {
                **guard = None;
                Ran::Finished
            }
            Err(_) => {
                // A bug in the writer: fail what it holds and stop serving the log
                // rather than leave its callers waiting forever.
                if let Some(mut w) = guard.take() {
                    w.abandon("internal error in the WAL writer (panic)");
                }
                Ran::Finished
            }
        }
    }
}

fn worker_loop(pool: &Arc<PoolInner>) {
    while let Some(task) = pool.next() {
        let mut guard = lock(&task.writer);
        match pool.run_step(&task, &mut guard) {
            Ran::Again => {
                drop(guard);
                pool.schedule(task);
            }
            Ran::Idle | Ran::Gone => {}
            Ran::Finished => {
                drop(guard);
                pool.finished(&task);
            }
        }
    }
}

/// Leader/follower group commit: a blocking appender that found the log's writer
/// idle (and claimed it, see `writer::enqueue`) runs the writer on its own thread
/// instead of handing its append to a pool thread and sleeping until woken. It
/// writes (and fsyncs, per policy) its group, which takes whatever else is queued,
/// exactly as a pool thread would; appenders arriving meanwhile queue behind it
/// and wait on their completions. Once its own append is done (`own`), it leaves
/// the log idle when nothing is due, or hands what is left (a backlog, a periodic
/// round, a close) to the pool, so that a leader never goes on writing for others.
pub(crate) fn lead(pool: &WriterPool, task: &Arc<LogTask>, own: &Slot<AppendOutcome>) {
    let pool = &pool.inner;
    let mut guard = lock(&task.writer);
    loop {
        let ran = pool.run_step(task, &mut guard);
        if matches!(ran, Ran::Again) {
            task.shared.count_led_group();
        }
        match ran {
            // A full group ahead of ours.
            Ran::Again if !own.is_ready() => {}
            Ran::Again => {
                match guard.as_mut().and_then(|w| w.park()) {
                    Some(deadline) => {
                        if let Some(at) = deadline {
                            pool.add_timer(at, task);
                        }
                    }
                    None => {
                        drop(guard);
                        pool.schedule(task.clone());
                    }
                }
                return;
            }
            // Lingering for company (the append still queued: the appender that
            // completes the group leads it), or a timer is set.
            Ran::Idle | Ran::Gone => return,
            Ran::Finished => {
                drop(guard);
                pool.finished(task);
                return;
            }
        }
    }
}

fn notifier_loop(rx: mpsc::Receiver<Notice>) {
    for notice in rx {
        match notice {
            Notice::Run(shared, mut batch) => {
                let mut run = || {
                    for (cb, outcome) in batch.drain(..) {
                        // A panicking callback must not stop the others.
                        let _ = catch_unwind(AssertUnwindSafe(move || cb(outcome)));
                    }
                };
                match &shared.hooks.run_callbacks {
                    Some(hook) => hook(&mut run),
                    None => run(),
                }
            }
            Notice::Barrier(slot) => slot.put(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Wal, WalConfig, WalHooks, CLEAN_SHUTDOWN_NAME};
    use super::*;
    use crate::record_batch::header;
    use std::path::PathBuf;

    fn root(tag: &str) -> PathBuf {
        let p = std::env::temp_dir().join(format!("streamcore-pool-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        p
    }

    fn batch() -> Vec<u8> {
        let total = header::HEADER_LEN + 10;
        let mut b = vec![0u8; total];
        b[8..12].copy_from_slice(&((total - header::LOG_OVERHEAD) as i32).to_be_bytes());
        b[16] = header::MAGIC_V2 as u8;
        b
    }

    #[test]
    fn many_logs_share_two_threads_and_a_bounded_file_cache() {
        let dir = root("many");
        let pool = WriterPool::new(2, 8).unwrap();
        let cfg = WalConfig {
            segment_bytes: 200,
            ..WalConfig::default()
        };
        let logs: Vec<Wal> = (0..40)
            .map(|i| {
                Wal::open_in(
                    dir.join(format!("t-{i}")),
                    cfg.clone(),
                    WalHooks::default(),
                    &pool,
                )
                .unwrap()
            })
            .collect();
        assert_eq!(pool.stats().logs, 40);
        for round in 0..5 {
            for w in &logs {
                assert_eq!(w.append(&batch()).unwrap().base_offset, round);
            }
        }
        for w in &logs {
            // Segments of 200 bytes hold two 71-byte batches: the log rolled twice.
            assert_eq!(w.segment_count(), 3);
            let all = w.read(0, 1 << 20).unwrap();
            assert_eq!(all.len(), 5 * batch().len());
        }
        let s = pool.stats().files;
        assert!(s.open <= 8, "{s:?}");
        assert!(s.evicted > 0, "{s:?}");
        drop(logs);
        assert_eq!(pool.stats().logs, 0);
        pool.shutdown().unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn shutdown_closes_the_logs_still_open_cleanly_and_refuses_new_ones() {
        let dir = root("shutdown");
        let pool = WriterPool::new(1, 4).unwrap();
        let w = Wal::open_in(
            dir.join("a-0"),
            WalConfig::default(),
            WalHooks::default(),
            &pool,
        )
        .unwrap();
        w.append(&batch()).unwrap();
        pool.shutdown().unwrap();
        assert!(dir.join("a-0").join(CLEAN_SHUTDOWN_NAME).exists());
        assert!(w.append(&batch()).is_err());
        assert!(Wal::open_in(
            dir.join("b-0"),
            WalConfig::default(),
            WalHooks::default(),
            &pool
        )
        .is_err());
        w.close().unwrap();
        drop(w);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
