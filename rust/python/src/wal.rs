//! `_native.wal`: the `WalLog` class over `streamcore_core::wal::Wal`.
//!
//! Type conversion only. Batches are copied into the WAL's queue (its Rust buffer
//! pool) while the GIL is held, then the GIL is released for the wait, the reads
//! and everything that touches files. Logs run on a `WalPool` (writer threads, one
//! notifier thread, a bounded file cache); `submit` callbacks run on the pool's
//! notifier thread, which takes the GIL once per group, so writers go on writing
//! while it waits for the GIL. `submit_to` outcomes need no GIL: the writer puts
//! them in a `CompletionQueue` and an event loop collects them.
//!
//! No pool thread may touch Python once the interpreter finalizes: every pool is
//! shut down (its logs closed, its threads joined) by an `atexit` hook, which runs
//! before finalization, and the hooks that take the GIL give up instead of
//! attaching to a finalizing interpreter.
use std::io::{ErrorKind, Read, Write};
use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex};

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyTuple};

use streamcore_core::wal::{
    AppendOutcome, AppendResult, Completion, FileRangesOutcome, FsyncPolicy, Wal, WalConfig,
    WalHooks, WriterPool, DEFAULT_MEMORY_BUDGET_BYTES,
};

use crate::buffer::{ByteView, HeldView};
use crate::errors::{to_pyerr, PyValueError};
use crate::gil::{self, Work};

fn result_tuple<'py>(py: Python<'py>, r: &AppendResult) -> PyResult<Bound<'py, PyTuple>> {
    PyTuple::new(py, [r.base_offset, r.last_offset, r.log_append_time_ms])
}

/// Logs one line on `streamcore.storage` (the writer thread's offline notice).
fn log_error(message: &str) {
    // A finalizing interpreter gets no log line rather than a crash.
    Python::try_attach(|py| {
        let logged = py
            .import("logging")
            .and_then(|l| l.call_method1("getLogger", ("streamcore.storage",)))
            .and_then(|lg| lg.call_method1("error", (message,)));
        if let Err(e) = logged {
            e.write_unraisable(py, None);
        }
    });
}

/// The completions waiting in a [`CompletionQueue`] and the pipe that wakes its reader.
struct QueueInner {
    items: Mutex<Vec<(Py<PyAny>, AppendOutcome)>>,
    /// Buffers lent by `submit_to(lend=True)` whose batches were written: released by
    /// the next `drain`, which holds the GIL (a writer thread never takes it).
    releases: Mutex<Vec<HeldView>>,
    reader: std::io::PipeReader,
    writer: std::io::PipeWriter,
}

/// The owner of a lent batch's memory while the WAL holds it: handed back to its
/// queue, for `drain` to release, when the writer drops it.
struct LentToQueue {
    view: Option<HeldView>,
    queue: Arc<QueueInner>,
}

impl Drop for LentToQueue {
    fn drop(&mut self) {
        if let Some(v) = self.view.take() {
            let mut r = self
                .queue
                .releases
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            r.push(v);
        }
    }
}

impl QueueInner {
    /// Runs on a writer thread, without the GIL: the token only moves.
    fn push(&self, token: Py<PyAny>, outcome: AppendOutcome) {
        let was_empty = {
            let mut items = self.items.lock().unwrap_or_else(|e| e.into_inner());
            items.push((token, outcome));
            items.len() == 1
        };
        // One byte per empty-to-non-empty change: `drain` reads the pipe before it
        // takes the items, so a push it does not take always leaves a byte behind.
        if was_empty {
            let _ = (&self.writer).write(&[1]);
        }
    }
}

/// Where `WalLog.submit_to` delivers outcomes, for an event loop to read: the writer
/// thread puts each (token, outcome) here and writes one byte to a pipe when the
/// queue was empty; the loop watches ``fileno()`` and calls ``drain()``.
///
/// Compared with `submit` callbacks this takes no thread hop and no GIL on the WAL
/// side: a callback needs the notifier thread to take the GIL, which on a busy
/// broker means waiting for the event loop to let it go.
#[pyclass(frozen, module = "streamcore._native.wal")]
pub struct CompletionQueue {
    inner: Arc<QueueInner>,
}

#[pymethods]
impl CompletionQueue {
    #[new]
    fn new(py: Python<'_>) -> PyResult<Self> {
        let (reader, writer) = std::io::pipe()?;
        let q = QueueInner {
            items: Mutex::new(Vec::new()),
            releases: Mutex::new(Vec::new()),
            reader,
            writer,
        };
        // Neither end may block: `drain` reads whatever is there, and a writer thread
        // must never wait on the pipe (it holds at most a few bytes anyway).
        let os = py.import("os")?;
        os.call_method1("set_blocking", (q.reader.as_raw_fd(), false))?;
        os.call_method1("set_blocking", (q.writer.as_raw_fd(), false))?;
        Ok(CompletionQueue { inner: Arc::new(q) })
    }

    /// The pipe's read end: readable while completions may be waiting.
    fn fileno(&self) -> i32 {
        self.inner.reader.as_raw_fd()
    }

    /// Every completion delivered so far, in the order the writers finished them:
    /// a list of (token, result, exc), result the (base_offset, last_offset,
    /// log_append_time_ms) tuple or None, exc the exception or None.
    fn drain<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let mut sink = [0u8; 64];
        loop {
            match (&self.inner.reader).read(&mut sink) {
                Ok(n) if n == sink.len() => continue,
                Ok(_) => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => break, // WouldBlock: nothing (more) to read
            }
        }
        // Lent buffers of written batches first: a writer hands them back before it
        // delivers the outcomes.
        let released = std::mem::take(
            &mut *self
                .inner
                .releases
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
        );
        drop(released);
        let items =
            std::mem::take(&mut *self.inner.items.lock().unwrap_or_else(|e| e.into_inner()));
        let out = PyList::empty(py);
        for (token, outcome) in items {
            let row = match outcome {
                Ok(r) => PyTuple::new(
                    py,
                    [
                        token.into_bound(py),
                        result_tuple(py, &r)?.into_any(),
                        py.None().into_bound(py),
                    ],
                )?,
                Err(e) => PyTuple::new(
                    py,
                    [
                        token.into_bound(py),
                        py.None().into_bound(py),
                        to_pyerr(e).into_value(py).into_bound(py).into_any(),
                    ],
                )?,
            };
            out.append(row)?;
        }
        Ok(out)
    }
}

/// Every pool not yet shut down, for the atexit hook; and the default pool.
static POOLS: Mutex<Vec<WriterPool>> = Mutex::new(Vec::new());
static DEFAULT_POOL: Mutex<Option<WriterPool>> = Mutex::new(None);

/// Writer threads and open files of the pool a `WalLog` uses when given none.
const DEFAULT_WRITER_THREADS: usize = 2;
const DEFAULT_MAX_OPEN_FILES: usize = 256;

fn pools() -> std::sync::MutexGuard<'static, Vec<WriterPool>> {
    POOLS.lock().unwrap_or_else(|e| e.into_inner())
}

fn default_pool() -> PyResult<WriterPool> {
    let mut g = DEFAULT_POOL.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(p) = g.as_ref() {
        return Ok(p.clone());
    }
    let p = WriterPool::new(DEFAULT_WRITER_THREADS, DEFAULT_MAX_OPEN_FILES).map_err(to_pyerr)?;
    pools().push(p.clone());
    *g = Some(p.clone());
    Ok(p)
}

/// Shuts every pool down (the atexit hook): logs still open are closed cleanly and
/// no pool thread is left to touch Python during finalization.
#[pyfunction]
fn _shutdown_all_pools(py: Python<'_>) -> PyResult<()> {
    let all: Vec<WriterPool> = pools().drain(..).collect();
    *DEFAULT_POOL.lock().unwrap_or_else(|e| e.into_inner()) = None;
    py.detach(|| {
        for p in all {
            let _ = p.shutdown();
        }
    });
    Ok(())
}

/// Writer threads, a notifier thread and a bounded cache of open segment files,
/// shared by the `WalLog`s opened with it (a few threads per data directory instead
/// of two per partition; an idle log holds no thread and no descriptor).
///
/// Args:
///     writer_threads: threads writing and fsyncing groups (each log is written by
///         one thread at a time, its group commit unchanged).
///     max_open_files: most segment files held open across the pool's logs; others
///         are opened on demand and the least recently used closed.
#[pyclass(module = "streamcore._native.wal", frozen)]
pub struct WalPool {
    pool: WriterPool,
}

#[pymethods]
impl WalPool {
    #[new]
    #[pyo3(signature = (*, writer_threads = 2, max_open_files = 256))]
    fn new(writer_threads: i64, max_open_files: i64) -> PyResult<Self> {
        check_at_least("writer_threads", writer_threads, 1)?;
        check_at_least("max_open_files", max_open_files, 1)?;
        let pool =
            WriterPool::new(writer_threads as usize, max_open_files as usize).map_err(to_pyerr)?;
        pools().push(pool.clone());
        Ok(WalPool { pool })
    }

    /// Closes every log still open in the pool (drain, fsync, checkpoint, clean
    /// marker), waits for their callbacks and joins the pool's threads. Idempotent;
    /// afterwards opening a log in it raises StorageError.
    fn shutdown(&self, py: Python<'_>) -> PyResult<()> {
        let pool = self.pool.clone();
        let r = py.detach(move || pool.shutdown());
        pools().retain(|p| !p.same_pool(&self.pool));
        r.map_err(to_pyerr)
    }

    /// Counters: writer_threads, logs (open in the pool), open_files, max_open_files,
    /// files_opened and files_evicted (since the start).
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let s = self.pool.stats();
        let d = PyDict::new(py);
        d.set_item("writer_threads", s.writer_threads)?;
        d.set_item("logs", s.logs)?;
        d.set_item("open_files", s.files.open)?;
        d.set_item("max_open_files", s.files.capacity)?;
        d.set_item("files_opened", s.files.opened)?;
        d.set_item("files_evicted", s.files.evicted)?;
        Ok(d)
    }
}

fn check_at_least(name: &str, value: i64, min: i64) -> PyResult<()> {
    if value < min {
        return Err(PyValueError::new_err(format!(
            "{name} must be >= {min}, not {value}"
        )));
    }
    Ok(())
}

/// A segmented, group-committed write-ahead log of one partition directory.
///
/// Args:
///     directory: partition directory (created if missing, then recovered).
///     fsync: "always" (append completes after the fsync covering it, one fsync per
///         group), "interval" (fsync at most every fsync_interval_ms) or "never"
///         (only at close and flush).
///     fsync_interval_ms: interval of fsync="interval" (ms).
///     queue_depth: appends queued and not yet written before append raises
///         BackpressureError.
///     memory_budget_bytes: bytes of batches queued or being written beyond which
///         append raises BackpressureError (an empty queue still takes one larger batch).
///     max_group_batches: most batches written (and fsynced) as one group.
///     max_wait_ms: longest the writer lingers for a bigger group, from the oldest
///         queued append (ms); it lingers only under fsync "always" or "interval"
///         while more appenders are expected (docs/storage.md has the rule).
///     segment_bytes: roll before an append that would make the active segment
///         larger (bytes, at most 2**31 - 1).
///     segment_ms: roll when the active segment's first append (in this process)
///         is this old (ms); None: never by age.
///     index_interval_bytes: bytes of log between sparse index entries.
///     pool: the WalPool whose threads and file cache the log uses (None: a
///         process-wide default pool of 2 writer threads and 256 open files).
#[pyclass(module = "streamcore._native.wal", frozen)]
pub struct WalLog {
    wal: Option<Wal>,
    directory: String,
    fsync: String,
    /// What recovery did when this log was opened (see `recovery_report`).
    report: Py<PyDict>,
}

impl WalLog {
    fn wal(&self) -> &Wal {
        // Only Drop takes it out.
        self.wal.as_ref().expect("WalLog used after drop")
    }
}

impl Drop for WalLog {
    fn drop(&mut self) {
        // Dropped with the GIL held: a blocking close could wait on a writer that
        // needs the GIL for callbacks. Let the writer finish the close on its own.
        if let Some(w) = self.wal.take() {
            w.close_in_background();
        }
    }
}

#[pymethods]
impl WalLog {
    #[new]
    #[pyo3(signature = (
        directory,
        *,
        fsync = "interval",
        fsync_interval_ms = 1000,
        queue_depth = 10000,
        memory_budget_bytes = DEFAULT_MEMORY_BUDGET_BYTES as i64,
        max_group_batches = 15000,
        max_wait_ms = 10,
        segment_bytes = 1 << 30,
        segment_ms = None,
        index_interval_bytes = 4096,
        pool = None
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        directory: &Bound<'_, PyAny>,
        fsync: &str,
        fsync_interval_ms: i64,
        queue_depth: i64,
        memory_budget_bytes: i64,
        max_group_batches: i64,
        max_wait_ms: i64,
        segment_bytes: i64,
        segment_ms: Option<i64>,
        index_interval_bytes: i64,
        pool: Option<&Bound<'_, WalPool>>,
    ) -> PyResult<Self> {
        let directory: String = py
            .import("os")?
            .call_method1("fspath", (directory,))?
            .extract()?;
        let policy = FsyncPolicy::parse(fsync).map_err(to_pyerr)?;
        check_at_least("fsync_interval_ms", fsync_interval_ms, 1)?;
        check_at_least("queue_depth", queue_depth, 1)?;
        check_at_least("memory_budget_bytes", memory_budget_bytes, 1)?;
        check_at_least("max_group_batches", max_group_batches, 1)?;
        check_at_least("segment_bytes", segment_bytes, 1)?;
        check_at_least("index_interval_bytes", index_interval_bytes, 1)?;
        check_at_least("max_wait_ms", max_wait_ms, 0)?;
        if let Some(ms) = segment_ms {
            check_at_least("segment_ms", ms, 1)?;
        }
        let cfg = WalConfig {
            fsync: policy,
            fsync_interval_ms: fsync_interval_ms as u64,
            queue_depth: queue_depth as usize,
            memory_budget_bytes: memory_budget_bytes as u64,
            max_group_batches: max_group_batches as usize,
            max_wait_ms: max_wait_ms as u64,
            segment_bytes: segment_bytes as u64,
            segment_ms: segment_ms.map(|m| m as u64),
            index_interval_bytes: index_interval_bytes as u64,
        };
        let hooks = WalHooks {
            run_callbacks: Some(Box::new(|run: &mut dyn FnMut()| {
                // Callbacks settle Python futures: during finalization there is no one
                // left to settle them, and attaching would crash the process.
                Python::try_attach(|_py| run());
            })),
            on_offline: Some(Box::new(log_error)),
        };
        let pool = match pool {
            Some(p) => p.get().pool.clone(),
            None => default_pool()?,
        };
        let dir = directory.clone();
        let (wal, r) = gil::run(py, Work::Blocking, move || {
            Wal::open_with_report_in(&dir, cfg, hooks, &pool)
        })
        .map_err(to_pyerr)?;
        let report = PyDict::new(py);
        report.set_item("directory", &directory)?;
        report.set_item("clean", r.clean)?;
        report.set_item("scanned_segments", r.scanned_segments)?;
        report.set_item("truncated_bytes", r.truncated_bytes)?;
        report.set_item("segments_deleted", r.segments_deleted)?;
        report.set_item("first_dropped_offset", r.first_dropped_offset)?;
        report.set_item("old_end_offset", r.old_end_offset)?;
        report.set_item("end_offset", r.end_offset)?;
        report.set_item(
            "cut_file",
            r.cut_file.map(|p| p.to_string_lossy().into_owned()),
        )?;
        report.set_item("cut_position", r.cut_position)?;
        report.set_item("reason", r.reason)?;
        report.set_item("swaps_completed", r.swaps_completed)?;
        Ok(WalLog {
            wal: Some(wal),
            directory,
            fsync: fsync.to_owned(),
            report: report.unbind(),
        })
    }

    /// Appends one v2 record batch; returns (base_offset, last_offset, log_append_time_ms).
    ///
    /// Blocks (GIL released) until written; under fsync="always" until fsynced. When
    /// the log's writer is idle this thread writes the group itself (leader/follower
    /// group commit) instead of waking a pool thread.
    /// Raises CorruptRecordError for a bad header, BackpressureError when the queue
    /// is full, LogOfflineError after a storage failure, StorageError when closed.
    fn append<'py>(
        &self,
        py: Python<'py>,
        batch: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyTuple>> {
        let view = ByteView::new(batch)?;
        let data = view.as_slice();
        let wal = self.wal();
        // The copy into the queue, and the write and fsync when this thread leads the
        // group (the writer was idle), run without the GIL: the buffer export held by
        // `view` keeps the memory in place meanwhile.
        let outcome = gil::run(py, Work::Blocking, || wal.append(data));
        drop(view);
        match outcome {
            Ok(r) => result_tuple(py, &r),
            Err(e) => Err(to_pyerr(e)),
        }
    }

    /// Queues one batch without waiting; `callback(result, exc)` runs exactly once on
    /// the log's background notifier thread, right after the writer finished the
    /// batch's group (result the 3-tuple or None, exc an exception or None). Never
    /// writes on the calling thread (an event loop must not wait for the disk): a
    /// pool thread does.
    ///
    /// Raises at once (and never calls back) when the queue is full, the header is
    /// bad or the log is offline or closed.
    fn submit(
        &self,
        py: Python<'_>,
        batch: &Bound<'_, PyAny>,
        callback: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let cb: Py<PyAny> = callback.clone().unbind();
        let done = Completion::Callback(Box::new(move |outcome: AppendOutcome| {
            Python::attach(|py| {
                let args = match outcome {
                    Ok(r) => result_tuple(py, &r).map(|t| (t.into_any(), py.None().into_bound(py))),
                    Err(e) => Ok((
                        py.None().into_bound(py),
                        to_pyerr(e).into_value(py).into_bound(py).into_any(),
                    )),
                };
                let called = args.and_then(|a| cb.call1(py, a));
                if let Err(e) = called {
                    e.write_unraisable(py, Some(cb.bind(py)));
                }
                drop(cb);
            });
        }));
        let view = ByteView::new(batch)?;
        let data = view.as_slice();
        let wal = self.wal();
        // Only copies into the queue: the copy's size decides.
        gil::run(py, Work::Bytes(data.len()), || wal.submit(data, done)).map_err(to_pyerr)
    }

    /// Queues one batch without waiting, as `submit`; its outcome goes to `queue` as
    /// (`token`, result, exc) once the writer finished the batch's group (see
    /// `CompletionQueue`). Raises at once (and delivers nothing) when the queue is
    /// full, the header is bad or the log is offline or closed.
    ///
    /// `lend=True`: the WAL writes the batch from the caller's memory instead of a
    /// copy, keeping the buffer export until the write (released by `queue.drain()`);
    /// the caller promises not to change that memory meanwhile. A `bytes` batch is
    /// always written from its own memory, since nothing can change it.
    #[pyo3(signature = (batch, queue, token, *, lend = false))]
    fn submit_to(
        &self,
        py: Python<'_>,
        batch: &Bound<'_, PyAny>,
        queue: &Bound<'_, CompletionQueue>,
        token: Py<PyAny>,
        lend: bool,
    ) -> PyResult<()> {
        let q = queue.get().inner.clone();
        let keeper_queue = q.clone();
        let done = Completion::Inline(Box::new(move |outcome: AppendOutcome| {
            q.push(token, outcome)
        }));
        if lend || batch.is_exact_instance_of::<PyBytes>() {
            let held = HeldView::from(ByteView::new(batch)?);
            let (ptr, len) = held.raw();
            let owner = Box::new(LentToQueue {
                view: Some(held),
                queue: keeper_queue,
            });
            let wal = self.wal();
            // SAFETY: the export held by `owner` keeps the memory in place until the
            // writer drops it; the caller promised not to write it (bytes cannot be).
            return unsafe { wal.submit_lent(ptr, len, owner, done) }.map_err(to_pyerr);
        }
        drop(keeper_queue);
        let view = ByteView::new(batch)?;
        let data = view.as_slice();
        let wal = self.wal();
        gil::run(py, Work::Bytes(data.len()), || wal.submit(data, done)).map_err(to_pyerr)
    }

    /// Blocks until everything appended so far is written and fsynced. Raises
    /// LogOfflineError on an offline log, once every earlier append's outcome was
    /// delivered (waiters woken, queues filled).
    fn flush(&self, py: Python<'_>) -> PyResult<()> {
        let wal = self.wal();
        gil::run(py, Work::Blocking, || wal.flush()).map_err(to_pyerr)
    }

    /// Whole batches from the one containing `offset`: at least one, then more while
    /// the total stays <= `max_bytes` (bytes). b"" at the high watermark; raises
    /// OffsetOutOfRangeError below the log start or above the high watermark.
    fn read<'py>(
        &self,
        py: Python<'py>,
        offset: i64,
        max_bytes: i64,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let wal = self.wal();
        let prepared = gil::run(py, Work::Blocking, || wal.prepare_read(offset, max_bytes))
            .map_err(to_pyerr)?;
        PyBytes::new_with(py, prepared.len(), |out| {
            gil::run(py, Work::Blocking, || prepared.fill(out)).map_err(to_pyerr)
        })
    }

    /// (segment file path, position, length) runs covering exactly what `read` returns.
    fn read_spans(
        &self,
        py: Python<'_>,
        offset: i64,
        max_bytes: i64,
    ) -> PyResult<Vec<(String, u64, u64)>> {
        let wal = self.wal();
        let spans =
            gil::run(py, Work::Blocking, || wal.read_spans(offset, max_bytes)).map_err(to_pyerr)?;
        Ok(spans
            .into_iter()
            .map(|s| (s.path.to_string_lossy().into_owned(), s.position, s.length))
            .collect())
    }

    /// file_ranges(offset, max_bytes, stop_before=None, nowait=False)
    ///     -> tuple[list[tuple[int, int, int]], int, int] | None
    ///
    /// What ``read(offset, max_bytes)`` returns as ranges of segment files, for
    /// ``os.sendfile``: ``([(fd, position, length), ...], records, end_offset)``.
    /// Each ``fd`` is a new descriptor the caller owns and must close; it keeps its
    /// file readable even after the segment is deleted or replaced. ``stop_before``
    /// ends the ranges before the first batch whose base offset is at or above it.
    /// None when there is nothing to send from files (at the high watermark, nothing
    /// below ``stop_before``, a header that is not a v2 batch's, a file cut short). With ``nowait``,
    /// headers are read only from the page cache: BlockingIOError when one is not
    /// there, OSError (EOPNOTSUPP, EINVAL or ENOSYS) when the kernel or file system
    /// cannot say. StorageError, LogOfflineError and OffsetOutOfRangeError as ``read``.
    #[pyo3(signature = (offset, max_bytes, stop_before = None, nowait = false))]
    fn file_ranges(
        &self,
        py: Python<'_>,
        offset: i64,
        max_bytes: i64,
        stop_before: Option<i64>,
        nowait: bool,
    ) -> PyResult<Option<Py<PyTuple>>> {
        let wal = self.wal();
        // Even a nowait walk may wait for the log's state lock.
        let outcome = gil::run(py, Work::Blocking, || {
            wal.file_ranges(offset, max_bytes, stop_before, nowait)
        })
        .map_err(to_pyerr)?;
        match outcome {
            FileRangesOutcome::Ranges(found) => {
                // The answer is built while the files still own their descriptors, so
                // that a failure here closes them; only then are they handed over.
                let ranges = PyList::empty(py);
                for (file, position, length) in &found.ranges {
                    ranges.append((file.as_raw_fd(), *position, *length))?;
                }
                let answer = (ranges, found.records, found.end_offset)
                    .into_pyobject(py)?
                    .unbind();
                for (file, _, _) in found.ranges {
                    let _ = std::os::fd::IntoRawFd::into_raw_fd(file);
                }
                Ok(Some(answer))
            }
            FileRangesOutcome::Unsuitable => Ok(None),
            // OSError(errno, text): Python maps EAGAIN to BlockingIOError itself, and
            // the caller tells a refused flag by its errno.
            FileRangesOutcome::NoWait(e) => Err(pyo3::exceptions::PyOSError::new_err((
                e.raw_os_error().unwrap_or(0),
                e.to_string(),
            ))),
        }
    }

    /// (base offset, max timestamp) of the first batch whose max timestamp >= `ts_ms`;
    /// None when there is none.
    fn offset_for_timestamp(&self, py: Python<'_>, ts_ms: i64) -> PyResult<Option<(i64, i64)>> {
        let wal = self.wal();
        gil::run(py, Work::Blocking, || wal.offset_for_timestamp(ts_ms)).map_err(to_pyerr)
    }

    /// Deletes whole closed segments past retention; returns how many were deleted.
    ///
    /// `retention_ms`: a segment whose largest timestamp is older than
    /// now - retention_ms goes; `retention_bytes`: then oldest segments go while the
    /// log stays >= retention_bytes without them. `now_ms` defaults to the wall clock.
    #[pyo3(signature = (retention_ms, retention_bytes, now_ms = None))]
    fn apply_retention(
        &self,
        py: Python<'_>,
        retention_ms: Option<i64>,
        retention_bytes: Option<i64>,
        now_ms: Option<i64>,
    ) -> PyResult<usize> {
        let wal = self.wal();
        gil::run(py, Work::Blocking, || {
            wal.apply_retention(retention_ms, retention_bytes, now_ms)
        })
        .map_err(to_pyerr)
    }

    /// Moves the log start up to `offset` (DeleteRecords) and deletes closed segments
    /// wholly below it; returns the new log start. The checkpoint is written before it
    /// returns. An offset below the log start changes nothing; a negative one or one
    /// above the high watermark raises OffsetOutOfRangeError.
    fn delete_records(&self, py: Python<'_>, offset: i64) -> PyResult<i64> {
        let wal = self.wal();
        gil::run(py, Work::Blocking, || wal.delete_records(offset)).map_err(to_pyerr)
    }

    /// Swaps the cleaned file `cleaned_path` (`<directory>/<base:020>.log.cleaned`) in
    /// for the closed segments with a base offset in [`base`, `end`), crash-safely;
    /// appends and reads go on meanwhile.
    ///
    /// `base` must be a segment's base and `end` a later segment's base, at most the
    /// active segment's. Returns False (the file deleted) when those segments are no
    /// longer the log's or the log is closed. Raises ValueError for bad arguments (the
    /// file is left alone), CorruptRecordError when the cleaned file is malformed (it
    /// is deleted), StorageError on an I/O failure (the log goes offline) and
    /// LogOfflineError when the log already is. Contract: docs/storage.md, "Swapping
    /// cleaned segments into a live log".
    fn replace_segments(
        &self,
        py: Python<'_>,
        cleaned_path: &Bound<'_, PyAny>,
        base: &Bound<'_, PyAny>,
        end: &Bound<'_, PyAny>,
    ) -> PyResult<bool> {
        let path: String = py
            .import("os")?
            .call_method1("fspath", (cleaned_path,))?
            .extract()?;
        // Offsets that are not ints, or do not fit an offset, are refused as the
        // reference twin refuses them, naming both values.
        let offsets = (|| -> Option<(i64, i64)> {
            let int = py.get_type::<pyo3::types::PyInt>();
            if !base.is_instance(&int).ok()? || !end.is_instance(&int).ok()? {
                return None;
            }
            Some((base.extract().ok()?, end.extract().ok()?))
        })();
        let Some((base_off, end_off)) = offsets else {
            return Err(PyValueError::new_err(format!(
                "replace_segments needs 0 <= base < end, not base={} end={}",
                base.repr()?,
                end.repr()?
            )));
        };
        let wal = self.wal();
        gil::run(py, Work::Blocking, || {
            wal.replace_segments(&path, base_off, end_off)
        })
        .map_err(to_pyerr)
    }

    /// Offset below which compaction may have removed offsets (0: never compacted).
    #[getter]
    fn compacted_offset(&self) -> i64 {
        self.wal().compacted_offset()
    }

    /// What opening did to the directory, as a new dict: directory, clean (the
    /// clean-shutdown marker was present), scanned_segments, truncated_bytes (bytes
    /// dropped), segments_deleted, first_dropped_offset (None when nothing was
    /// dropped), old_end_offset and end_offset (the log's end before and after),
    /// cut_file and cut_position (where the log was cut), reason (why) and
    /// swaps_completed (committed swaps of cleaned segments that opening finished).
    #[getter]
    fn recovery_report<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        self.report.bind(py).copy()
    }

    /// Next offset to assign; everything below is written (fsync="always": fsynced).
    #[getter]
    fn high_watermark(&self) -> i64 {
        self.wal().high_watermark()
    }

    /// First offset still in the log.
    #[getter]
    fn log_start_offset(&self) -> i64 {
        self.wal().log_start_offset()
    }

    /// Offset below which everything is known fsynced.
    #[getter]
    fn recovery_point(&self) -> i64 {
        self.wal().recovery_point()
    }

    /// Bytes of committed batches across all segments.
    #[getter]
    fn size_bytes(&self) -> u64 {
        self.wal().size_bytes()
    }

    /// Number of segments, the active one included.
    #[getter]
    fn segment_count(&self) -> usize {
        self.wal().segment_count()
    }

    /// True after a failed write or fsync (until reopened).
    #[getter]
    fn is_offline(&self) -> bool {
        self.wal().is_offline()
    }

    /// The partition directory, as given.
    #[getter]
    fn directory(&self) -> &str {
        &self.directory
    }

    /// Counters: queue_depth (appends queued, not yet written), appends, groups,
    /// fsyncs, fsync_total_us, writeback_starts (fsync="interval": one per 4 MiB
    /// written, when the writer asks the kernel to start writing it out), bytes_written,
    /// backpressure_rejections.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let s = self.wal().stats();
        let d = PyDict::new(py);
        d.set_item("queue_depth", s.queue_depth)?;
        d.set_item("appends", s.appends)?;
        d.set_item("groups", s.groups)?;
        d.set_item("fsyncs", s.fsyncs)?;
        d.set_item("fsync_total_us", s.fsync_total_us)?;
        d.set_item("writeback_starts", s.writeback_starts)?;
        d.set_item("bytes_written", s.bytes_written)?;
        d.set_item("backpressure_rejections", s.backpressure_rejections)?;
        Ok(d)
    }

    /// Counters of the buffer pool holding queued batch copies: hits, misses,
    /// allocations, in_use, pooled (native only: shows that steady-state appends
    /// allocate nothing).
    fn buffer_pool_stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let p = self.wal().stats().buffer_pool;
        let d = PyDict::new(py);
        d.set_item("hits", p.hits)?;
        d.set_item("misses", p.misses)?;
        d.set_item("allocations", p.allocations)?;
        d.set_item("in_use", p.in_use)?;
        d.set_item("pooled", p.pooled)?;
        Ok(d)
    }

    /// Drains the queue, fsyncs, writes the checkpoint and the clean-shutdown marker.
    /// Idempotent.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let wal = self.wal();
        gil::run(py, Work::Blocking, || wal.close()).map_err(to_pyerr)
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __exit__(
        &self,
        py: Python<'_>,
        _exc_type: &Bound<'_, PyAny>,
        _exc: &Bound<'_, PyAny>,
        _tb: &Bound<'_, PyAny>,
    ) -> PyResult<bool> {
        self.close(py)?;
        Ok(false)
    }

    fn __repr__(&self) -> String {
        let w = self.wal();
        format!(
            "<WalLog {:?} [{}, {}) fsync={}>",
            self.directory,
            w.log_start_offset(),
            w.high_watermark(),
            self.fsync
        )
    }
}

/// Fills `_native.wal`.
pub fn build(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<WalLog>()?;
    m.add_class::<WalPool>()?;
    m.add_class::<CompletionQueue>()?;
    m.add_function(wrap_pyfunction!(_shutdown_all_pools, m)?)?;
    let hook = m.getattr("_shutdown_all_pools")?;
    m.py().import("atexit")?.call_method1("register", (hook,))?;
    m.add("__all__", vec!["CompletionQueue", "WalLog", "WalPool"])?;
    Ok(())
}
