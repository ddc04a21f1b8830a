"""The shared writer pool: a few writer threads and one notifier thread serve many logs (twin of ``pool.rs``).

Each log keeps its own queue and group commit (``writer.py``); the pool adds
scheduling. A log whose writer has nothing to do is *idle* (``Writer.idle``): it
costs no thread. The append its writer waits for, a flush, a close or a due timer
(linger deadline, interval fsync, checkpoint) puts the log on the ready queue; a
writer thread runs one step of it (one group, or one periodic round) and puts it
back while work remains. A log is run by one thread at a time (its task lock), so
its groups stay in offset order. A blocking append that finds its log's writer idle
runs it on its own thread instead (``WalPool.lead``, leader/follower group commit);
``submit`` always hands off.

``submit`` callbacks run on the pool's notifier thread, in the order the writers
finished them, so a slow callback never delays a write.

Every pool not yet shut down is shut down by an ``atexit`` hook: the logs still
open are closed cleanly and the pool's threads (daemon threads, which the
interpreter would not wait for) are joined before the interpreter finalizes.
"""

from __future__ import annotations

import atexit
import heapq
import itertools
import logging
import operator
import queue
import threading
import time
import weakref
from collections import deque
from typing import TYPE_CHECKING, Any

from streamcore._reference.wal.files import FileCache
from streamcore.errors import StorageError

if TYPE_CHECKING:
    from streamcore._reference.wal.completion import Item
    from streamcore._reference.wal.writer import Writer

__all__ = ["AGAIN", "FINISHED", "WAIT", "WalPool", "default_pool", "shutdown_all_pools"]

logger = logging.getLogger("streamcore.storage")

#: What one ``Writer.step`` left to do: run again, idle (until woken or a deadline), done.
AGAIN, WAIT, FINISHED = "again", "wait", "finished"

#: The default pool's size, the native twin's.
DEFAULT_WRITER_THREADS = 2
DEFAULT_MAX_OPEN_FILES = 256

#: (callback, result, exception) of one completed ``submit``.
Notice = tuple[Any, Any, Any]


class LogTask:
    """One log as the pool sees it: its writer (None once finished) and who may run it."""

    __slots__ = ("writer", "lock", "finished", "__weakref__")

    def __init__(self, writer: Writer) -> None:
        self.writer: Writer | None = writer
        #: Held while a thread runs a step, so one log runs on one thread at a time.
        self.lock = threading.Lock()
        #: Set once the writer finished its close.
        self.finished = threading.Event()


def _count(name: str, value: int) -> int:
    value = operator.index(value)
    if value < 1:
        raise ValueError(f"{name} must be >= 1, not {value}")
    return value


class WalPool:
    """Writer threads, a notifier thread and a bounded cache of open segment files shared by logs.

    Args:
        writer_threads: threads writing and fsyncing groups (>= 1); each log is
            written by one thread at a time, its group commit unchanged.
        max_open_files: most segment files held open across the pool's logs (>= 1);
            others are opened on demand and the least recently used closed.
    """

    def __init__(self, *, writer_threads: int = 2, max_open_files: int = 256) -> None:
        self._writer_threads = _count("writer_threads", writer_threads)
        self.files = FileCache(_count("max_open_files", max_open_files))
        self._cond = threading.Condition(threading.Lock())
        self._ready: deque[LogTask] = deque()
        # (monotonic deadline, sequence, task): the earliest first; weak so that a
        # finished log's timers do not keep it.
        self._timers: list[tuple[float, int, weakref.ref[LogTask]]] = []
        self._seq = itertools.count()
        #: Logs registered and not finished yet; strong, so that the pool closes at
        #: shutdown even a log its owner dropped without closing.
        self._logs: set[LogTask] = set()
        self._stopping = False
        self._shut = False
        self._notices: queue.SimpleQueue[list[Notice] | threading.Event | None] = queue.SimpleQueue()
        self._notice_lock = threading.Lock()
        self._notifier_open = True
        self._shutdown_lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        notifier = threading.Thread(target=self._notifier_loop, name="streamcore-wal-notify", daemon=True)
        writers = [
            threading.Thread(target=self._worker_loop, name=f"streamcore-wal-{i}", daemon=True)
            for i in range(self._writer_threads)
        ]
        self._notifier = notifier
        self._writers = writers
        with _registry_lock:
            _pools.append(self)
        for t in [notifier, *writers]:
            t.start()
            self._threads.append(t)

    # -- logs ----------------------------------------------------------------

    def check_open(self) -> None:
        """Raise StorageError once the pool is shut down (no log may join it)."""
        if self._shut:
            raise StorageError("the WAL pool is shut down")

    def register(self, writer: Writer) -> LogTask:
        """Add a log whose writer is ready to run; it is scheduled once at once."""
        task = LogTask(writer)
        with self._cond:
            if self._shut:
                raise StorageError("the WAL pool is shut down")
            self._logs.add(task)
        self.schedule(task)
        return task

    def schedule(self, task: LogTask) -> None:
        """Put ``task`` on the ready queue (its writer was just marked busy)."""
        with self._cond:
            self._ready.append(task)
            self._cond.notify()

    def _add_timer(self, at: float, task: LogTask) -> None:
        with self._cond:
            earliest = not self._timers or at < self._timers[0][0]
            heapq.heappush(self._timers, (at, next(self._seq), weakref.ref(task)))
            if earliest:
                # A sleeping thread may be waiting for a later timer.
                self._cond.notify()

    def _finished(self, task: LogTask) -> None:
        # The pool's count first: a close that returns sees the log gone from it.
        with self._cond:
            self._logs.discard(task)
            self._cond.notify_all()
        task.finished.set()

    def notify(self, notices: list[Notice]) -> None:
        """Hand a group's callbacks to the notifier thread (they run in this order)."""
        self._notices.put(notices)

    def notifier_barrier(self) -> None:
        """Block until every callback handed to the notifier so far has run.

        A no-op on one of the pool's own threads (the notifier would wait for itself)
        and once the notifier has stopped (everything handed to it has run).
        """
        if threading.current_thread() in self._threads:
            return
        done = threading.Event()
        with self._notice_lock:
            if not self._notifier_open:
                return
            self._notices.put(done)
        done.wait()

    # -- threads ---------------------------------------------------------------

    def _next(self) -> LogTask | None:
        """The next log to run, or None when the pool stops."""
        with self._cond:
            while True:
                if self._ready:
                    return self._ready.popleft()
                now = time.monotonic()
                fired = []
                while self._timers and self._timers[0][0] <= now:
                    fired.append(heapq.heappop(self._timers)[2])
                if fired:
                    # Woken outside the pool lock: waking takes the log's queue lock,
                    # and appenders take that one before this one.
                    self._cond.release()
                    try:
                        for ref in fired:
                            task = ref()
                            writer = task.writer if task is not None else None
                            if task is not None and writer is not None and writer.wake_if_idle():
                                self.schedule(task)
                    finally:
                        self._cond.acquire()
                    continue
                if self._stopping and not self._logs:
                    return None
                self._cond.wait(self._timers[0][0] - now if self._timers else None)

    def _run_step(self, task: LogTask, writer: Writer) -> str:
        """Run one step of ``writer`` (``task.lock`` held) on the calling thread; return
        AGAIN, WAIT (its timer set when it has a deadline) or FINISHED (the task done)."""
        try:
            what, deadline = writer.step()
        except BaseException as exc:
            # A bug in the writer: fail what it holds and stop serving the log
            # rather than leave its callers waiting forever.
            logger.exception("internal error in the WAL writer of %s", writer.log.directory)
            writer.abandon(exc)
            what, deadline = FINISHED, None
        if what == WAIT:
            if deadline is not None:
                self._add_timer(deadline, task)
        elif what == FINISHED:
            task.writer = None
            self._finished(task)
        return what

    def _worker_loop(self) -> None:
        while (task := self._next()) is not None:
            with task.lock:
                writer = task.writer
                if writer is not None and self._run_step(task, writer) == AGAIN:
                    self.schedule(task)

    def lead(self, task: LogTask, own: Item) -> None:
        """Leader/follower group commit: run the writer of ``task`` on the calling thread.

        Called by a blocking append that found the writer idle and claimed it
        (``Writer.enqueue`` with ``may_lead``): it writes (and fsyncs, per policy)
        the group holding its own append ``own`` and whatever else is queued, as a
        pool thread would, instead of handing off and sleeping until woken; appends
        arriving meanwhile queue behind it. Once ``own`` is done it leaves the log
        idle when nothing is due, or hands what is left to the pool, so a leader never
        goes on writing for others.
        """
        with task.lock:
            while (writer := task.writer) is not None:
                what = self._run_step(task, writer)
                if what != AGAIN:
                    # WAIT: lingering for company (``own`` still queued: the append
                    # that completes the group leads it) or idle; or FINISHED.
                    return
                writer.groups_led += 1
                if own.lock.locked():
                    continue  # a full group ahead of ours
                parked, deadline = writer.park()
                if not parked:
                    self.schedule(task)
                elif deadline is not None:
                    self._add_timer(deadline, task)
                return

    def _notifier_loop(self) -> None:
        while True:
            notice = self._notices.get()
            if notice is None:
                return
            if isinstance(notice, threading.Event):
                notice.set()
                continue
            for callback, result, exc in notice:
                # A raising callback must not stop the others.
                try:
                    callback(result, exc)
                except Exception:
                    logger.exception("append callback raised")

    # -- public ----------------------------------------------------------------

    def shutdown(self) -> None:
        """Close every log still open in the pool (drain, fsync, checkpoint, clean-shutdown
        marker), wait for their callbacks and join the pool's threads.

        Idempotent; afterwards opening a log in the pool raises StorageError. Called from
        one of the pool's own threads it only starts the closes.
        """
        with self._cond:
            self._shut = True
            self._stopping = True
            tasks = list(self._logs)
            self._cond.notify_all()
        for task in tasks:
            writer = task.writer
            if writer is not None:
                writer.begin_close()
        if threading.current_thread() in self._threads:
            return
        with self._shutdown_lock:
            for task in tasks:
                task.finished.wait()
            for t in self._writers:
                t.join()
            with self._notice_lock:
                if self._notifier_open:
                    self._notifier_open = False
                    self._notices.put(None)
            self._notifier.join()
            self.files.close_all()
        _forget_pool(self)

    def stats(self) -> dict[str, int]:
        """Counters: writer_threads, logs (open in the pool), open_files, max_open_files,
        files_opened and files_evicted (since the start)."""
        files = self.files.stats()
        with self._cond:
            logs = len(self._logs)
        return {
            "writer_threads": self._writer_threads,
            "logs": logs,
            "open_files": files["open"],
            "max_open_files": files["capacity"],
            "files_opened": files["opened"],
            "files_evicted": files["evicted"],
        }

    def __repr__(self) -> str:
        s = self.stats()
        return f"<WalPool writer_threads={s['writer_threads']} logs={s['logs']} open_files={s['open_files']}>"


# -- the process's pools ---------------------------------------------------------

_registry_lock = threading.Lock()
#: Every pool not yet shut down, for the atexit hook.
_pools: list[WalPool] = []
_default: WalPool | None = None


def _forget_pool(pool: WalPool) -> None:
    global _default
    with _registry_lock:
        if pool in _pools:
            _pools.remove(pool)
        if _default is pool:
            _default = None


def default_pool() -> WalPool:
    """The process-wide pool of a log opened without one (2 writer threads, 256 open files)."""
    global _default
    with _registry_lock:
        pool = _default
    if pool is not None:
        return pool
    fresh = WalPool(writer_threads=DEFAULT_WRITER_THREADS, max_open_files=DEFAULT_MAX_OPEN_FILES)
    with _registry_lock:
        if _default is None:
            _default = fresh
            return fresh
        pool = _default
    # Another thread made one first: this one goes.
    fresh.shutdown()
    return pool


def shutdown_all_pools() -> None:
    """Shut every pool down (the atexit hook): logs still open are closed cleanly and no
    pool thread is left running when the interpreter finalizes."""
    global _default
    with _registry_lock:
        pools = list(_pools)
        _default = None
    for pool in pools:
        try:
            pool.shutdown()
        except Exception:
            logger.exception("shutting down a WAL pool at exit failed")


atexit.register(shutdown_all_pools)
