"""``LogCleaner``: compaction of live partition logs, on its own thread.

The cleaner's core (``streamcore._impl.cleaner``: the offset map and the cleaning
pass, native in Rust with the GIL released, or the pure-Python twin) works on
segment files; the WAL swaps the cleaned files in (``WalLog.replace_segments``).
This module decides *when* and *what*, as Kafka's ``LogCleanerManager`` does:

- a log is cleanable when its policy includes compact, it is not offline, and it has
  dirty bytes: bytes of closed segments at or above its *first dirty offset* (kept in
  ``<partition>/cleaner-checkpoint``; the log start when there is none) and below
  the *first uncleanable offset* (the active segment's base, or the first segment
  holding a record newer than ``min.compaction.lag.ms``);
- it is cleaned when dirty / (clean + dirty) reaches ``min.cleanable.dirty.ratio``,
  or when its oldest dirty batch is older than ``max.compaction.lag.ms``; the
  filthiest log goes first;
- a pass maps the dirty range's keys to their latest offsets (at most
  ``dedupe_buffer_bytes`` of map), cleans every closed segment from the log start up
  to the end of what the map covers, swaps each output in, and only then moves the
  first dirty offset to that end (so a crash re-does the pass, never skips it).

Transactions (Kafka's rules): a log is cleaned only below its last stable offset
(LSO; more exactly, below the segment holding it), so an open transaction's batches
are never touched. The pass gets the partition's aborted transactions: their records
are not mapped and are removed, and markers go once their transaction has no batch
left and ``delete.retention.ms`` more has passed. Both come from a *transaction
source* per log: the broker's :class:`~streamcore.storage.txn_index.PartitionTxnState`
when ``transactions(key)`` gives one for the same log object, else a
:class:`~streamcore.storage.txn_index.TransactionScan` the cleaner keeps, which reads
the log's headers. Before swapping in segments, the pass drops from the source the
index entries of aborted transactions whose batches were already gone (their
markers may be removed now or later; an entry without its marker would make
read_committed consumers skip later committed data).

Everything here is advisory: a pass that loses a race with retention or DeleteRecords
(``replace_segments`` returns False) is abandoned and tried again on the next round.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from streamcore import _impl
from streamcore._atomic_file import write_atomic
from streamcore.errors import OffsetOutOfRangeError, StorageError
from streamcore.storage.txn_index import TransactionScan

__all__ = [
    "CHECKPOINT_NAME",
    "CleanerStats",
    "CompactionSettings",
    "LogCleaner",
    "PassReport",
    "read_first_dirty_offset",
]

logger = logging.getLogger("streamcore.storage")

#: File in a partition directory holding its first dirty offset (one decimal line).
CHECKPOINT_NAME = "cleaner-checkpoint"
_SEGMENT = re.compile(r"^(\d{20})\.log$")
_LONG_MAX = (1 << 63) - 1


@dataclass(frozen=True)
class CompactionSettings:
    """A compacted log's cleaning settings, with Kafka's topic config names and defaults.

    ``delete_retention_ms`` (delete.retention.ms): how long a tombstone stays once its
    batch was first cleaned (ms). ``min_cleanable_dirty_ratio``
    (min.cleanable.dirty.ratio): dirty share of the cleanable bytes that triggers a
    pass. ``min_compaction_lag_ms`` / ``max_compaction_lag_ms``: a record stays
    uncompacted at least / at most this long (ms). ``segment_bytes``: largest merged
    output segment (bytes).
    """

    delete_retention_ms: int = 86_400_000
    min_cleanable_dirty_ratio: float = 0.5
    min_compaction_lag_ms: int = 0
    max_compaction_lag_ms: int = _LONG_MAX
    segment_bytes: int = 1 << 30


@dataclass(frozen=True)
class PassReport:
    """What one cleaning pass of one log did."""

    directory: str
    #: The first dirty offset before and after the pass.
    first_dirty_offset: int
    end_offset: int
    #: dirty / (clean + dirty) bytes when the pass was chosen.
    dirty_ratio: float
    segments_replaced: int
    bytes_read: int
    bytes_written: int
    records_read: int
    records_kept: int
    tombstones_removed: int
    duration_ms: float
    #: False when the pass was abandoned (retention or DeleteRecords got there first).
    completed: bool = True
    #: Records of aborted transactions removed.
    aborted_removed: int = 0
    #: Transaction markers removed.
    markers_removed: int = 0
    #: Aborted-transaction index entries dropped (their transactions' data was gone).
    aborted_entries_dropped: int = 0


@dataclass
class CleanerStats:
    """Counters since the cleaner was created."""

    passes: int = 0
    passes_abandoned: int = 0
    failures: int = 0
    bytes_read: int = 0
    bytes_written: int = 0
    segments_replaced: int = 0
    #: The largest dirty ratio seen on the last round (0 when nothing was cleanable).
    max_dirty_ratio: float = 0.0
    last_pass: PassReport | None = field(default=None)


def read_first_dirty_offset(directory: str | os.PathLike[str]) -> int | None:
    """The first dirty offset from ``directory/cleaner-checkpoint``; None when absent or unreadable."""
    try:
        with open(os.path.join(directory, CHECKPOINT_NAME), encoding="utf-8") as f:
            value = int(f.read().strip())
    except (OSError, ValueError):
        return None
    return value if value >= 0 else None


def _segments(directory: str) -> list[tuple[int, str, int]]:
    """(base, path, size in bytes) of every segment file, by base; files that vanish are left out."""
    found = []
    for name in os.listdir(directory):
        match = _SEGMENT.match(name)
        if match is None:
            continue
        path = os.path.join(directory, name)
        try:
            size = os.stat(path).st_size
        except FileNotFoundError:
            continue  # retention removed it meanwhile
        found.append((int(match.group(1)), path, size))
    found.sort()
    return found


@dataclass(frozen=True)
class _Plan:
    """A log's cleanable state at one moment."""

    log: Any
    settings: CompactionSettings
    segments: list[tuple[int, str, int]]
    first_dirty: int
    first_uncleanable: int
    ratio: float
    dirty_bytes: int
    overdue: bool
    #: Where the aborted transactions came from (cleaner_view / drop_aborted).
    txn_source: Any = None
    #: The partition's aborted transactions when planned (AbortedTxn entries).
    aborted: tuple[Any, ...] = ()


class LogCleaner:
    """Cleans the compacted logs among ``logs()`` on one daemon thread.

    ``logs`` returns the current (key, log) pairs, any hashable key (the broker's is
    (topic, partition)) and logs with ``directory``, ``log_start_offset``,
    ``is_offline``, ``batch_headers``, ``offset_for_timestamp`` and
    ``replace_segments``, as :class:`~streamcore.storage.log.Log` has;
    ``settings(key)`` returns the log's :class:`CompactionSettings`, or None when its
    policy has no compact.
    ``io_max_bytes_per_second`` caps the cleaner's reads and writes together (None:
    unlimited); ``dedupe_buffer_bytes`` is the offset map's memory (bytes);
    ``backoff_ms`` the wait between rounds when nothing needs cleaning (ms).
    ``clock`` returns ms since the epoch (tests move it).
    ``transactions(key)`` returns the owner's transaction state of a log (the
    broker's :class:`~streamcore.storage.txn_index.PartitionTxnState`), or None; it is
    called on the cleaner's thread. Without it (or for a None, or a state of another
    log object) the cleaner follows the log's headers itself. It can also be set
    later with :meth:`set_transaction_source`.

    Use :meth:`run_once` directly, or :meth:`start` / :meth:`stop` for the thread.
    """

    def __init__(
        self,
        logs: Callable[[], Iterable[tuple[Any, Any]]],
        settings: Callable[[Any], CompactionSettings | None],
        *,
        io_max_bytes_per_second: float | None = None,
        dedupe_buffer_bytes: int = 128 * 1024 * 1024,
        backoff_ms: int = 15_000,
        clock: Callable[[], int] | None = None,
        transactions: Callable[[Any], Any] | None = None,
    ) -> None:
        if io_max_bytes_per_second is not None and not io_max_bytes_per_second > 0:
            raise ValueError(f"io_max_bytes_per_second must be > 0 or None, not {io_max_bytes_per_second}")
        if dedupe_buffer_bytes < 24 * 16:
            raise ValueError(f"dedupe_buffer_bytes must be at least 384, not {dedupe_buffer_bytes}")
        if backoff_ms < 1:
            raise ValueError(f"backoff_ms must be >= 1, not {backoff_ms}")
        self._logs = logs
        self._settings = settings
        self.io_max_bytes_per_second = io_max_bytes_per_second
        self.dedupe_buffer_bytes = dedupe_buffer_bytes
        self.backoff_ms = backoff_ms
        self._clock = clock or (lambda: int(time.time() * 1000))
        self.stats = CleanerStats()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        # Held for a whole pass: stop() waits for the pass in progress.
        self._pass_lock = threading.Lock()
        self._transactions = transactions
        #: key -> TransactionScan of logs without an owner's state
        self._scans: dict[Any, TransactionScan] = {}

    def set_transaction_source(self, transactions: Callable[[Any], Any] | None) -> None:
        """Set ``transactions(key)`` (see the class doc); takes effect from the next pass."""
        self._transactions = transactions

    def _txn_source(self, key: Any, log: Any) -> Any:
        if self._transactions is not None and key is not None:
            state = self._transactions(key)
            if state is not None and getattr(state, "log", None) is log:
                return state
        scan = self._scans.get(key)
        if scan is None or scan.log is not log:
            scan = self._scans[key] = TransactionScan(log)
        return scan

    # ------------------------------------------------------------------ choosing

    def _plan(self, key: Any, log: Any, settings: CompactionSettings, now_ms: int) -> _Plan | None:
        directory = os.fspath(log.directory)
        segments = _segments(directory)
        if len(segments) < 2:
            return None  # only the active segment: nothing closed to clean
        log_start = log.log_start_offset
        checkpoint = read_first_dirty_offset(directory)
        first_dirty = log_start if checkpoint is None or checkpoint < log_start else checkpoint
        # The last listed segment is the active one (or was, a moment ago: a roll only
        # makes the bound conservative).
        first_uncleanable = segments[-1][0]
        if settings.min_compaction_lag_ms > 0:
            cutoff = now_ms - settings.min_compaction_lag_ms
            newer = log.offset_for_timestamp(cutoff + 1)
            if newer is not None:
                # The segment holding the first record newer than the lag is left alone.
                holder = max((b for b, _, _ in segments if b <= newer[0]), default=segments[0][0])
                first_uncleanable = min(first_uncleanable, holder)
        # Kafka's first unstable offset: nothing from the segment holding the LSO on is
        # cleaned, so an open transaction's batches (and the offsets above, whose
        # transactions may still end either way) stay as written. The aborted list is
        # taken together with the LSO: every transaction with batches below it has
        # ended, and the list knows how.
        source = self._txn_source(key, log)
        lso, aborted = source.cleaner_view()
        if lso < first_uncleanable:
            holder = max((b for b, _, _ in segments if b <= lso), default=segments[0][0])
            first_uncleanable = min(first_uncleanable, holder)
        if first_dirty >= first_uncleanable:
            return None
        clean_bytes = dirty_bytes = 0
        for i, (base, _path, size) in enumerate(segments[:-1]):
            following = segments[i + 1][0]
            if base >= first_uncleanable:
                break
            if following <= first_dirty:
                clean_bytes += size
            else:
                dirty_bytes += size
        if dirty_bytes == 0:
            return None
        ratio = dirty_bytes / (clean_bytes + dirty_bytes)
        overdue = False
        if settings.max_compaction_lag_ms < _LONG_MAX:
            first = self._first_batch_timestamp(log, first_dirty)
            overdue = first is not None and first >= 0 and now_ms - first > settings.max_compaction_lag_ms
        return _Plan(
            log,
            settings,
            segments,
            first_dirty,
            first_uncleanable,
            ratio,
            dirty_bytes,
            overdue,
            source,
            tuple(aborted),
        )

    @staticmethod
    def _first_batch_timestamp(log: Any, offset: int) -> int | None:
        try:
            for header in log.batch_headers(offset):
                return int(header.first_timestamp)
        except (OffsetOutOfRangeError, StorageError, OSError):
            return None
        return None

    def _candidates(self, now_ms: int) -> list[_Plan]:
        plans = []
        listed = list(self._logs())
        keys = {key for key, _ in listed}
        for gone in [k for k in self._scans if k not in keys]:
            del self._scans[gone]
        for key, log in listed:
            if getattr(log, "is_offline", False):
                continue
            settings = self._settings(key)
            if settings is None:
                continue
            try:
                plan = self._plan(key, log, settings, now_ms)
            except (OSError, StorageError) as exc:
                logger.warning("cleaner: cannot inspect %s: %s", getattr(log, "directory", log), exc)
                continue
            if plan is not None:
                plans.append(plan)
        return plans

    # ------------------------------------------------------------------ cleaning

    def run_once(self, now_ms: int | None = None) -> list[PassReport]:
        """Clean every log that needs it now, filthiest first; return what each pass did.

        One failing log is logged and counted and the others are still cleaned.
        """
        now = self._clock() if now_ms is None else now_ms
        reports: list[PassReport] = []
        with self._pass_lock:
            plans = self._candidates(now)
            self.stats.max_dirty_ratio = max((p.ratio for p in plans), default=0.0)
            due = [p for p in plans if p.overdue or p.ratio >= p.settings.min_cleanable_dirty_ratio]
            due.sort(key=lambda p: (not p.overdue, -p.ratio))
            for plan in due:
                if self._stop.is_set():
                    break
                try:
                    report = self._clean(plan, now)
                except Exception as exc:
                    self.stats.failures += 1
                    logger.error("cleaner: cleaning %s failed: %s", plan.log.directory, exc)
                    _remove_cleaned(os.fspath(plan.log.directory))
                    continue
                reports.append(report)
        return reports

    def clean_log(
        self, log: Any, settings: CompactionSettings, now_ms: int | None = None
    ) -> PassReport | None:
        """Clean ``log`` now whatever its dirty ratio (None when it has nothing closed and dirty)."""
        now = self._clock() if now_ms is None else now_ms
        key = next((k for k, listed in self._logs() if listed is log), None)
        with self._pass_lock:
            plan = self._plan(key, log, settings, now)
            if plan is None:
                return None
            try:
                return self._clean(plan, now)
            except BaseException:
                _remove_cleaned(os.fspath(log.directory))
                raise

    def _clean(self, plan: _Plan, now_ms: int) -> PassReport:
        started = time.perf_counter()
        log, settings, segments = plan.log, plan.settings, plan.segments
        directory = os.fspath(log.directory)
        cleaner = _impl.cleaner
        # Map the dirty part: the closed segments from the one holding the first dirty offset.
        dirty = [
            path
            for i, (base, path, _size) in enumerate(segments[:-1])
            if base < plan.first_uncleanable and segments[i + 1][0] > plan.first_dirty
        ]
        aborted = [(t[0], t[1], t[2]) for t in plan.aborted]
        offset_map = cleaner.build_offset_map(
            dirty,
            plan.first_dirty,
            plan.first_uncleanable,
            memory_bytes=self.dedupe_buffer_bytes,
            io_max_bytes_per_second=self.io_max_bytes_per_second,
            aborted_transactions=aborted,
        )
        end = offset_map.latest_offset + 1 if offset_map.latest_offset >= 0 else plan.first_uncleanable
        end = max(end, plan.first_dirty)
        # Clean everything closed from the log start up to the end of what the map covers.
        inputs = [(base, path) for base, path, _size in segments[:-1] if base < end]
        next_base = {base: segments[i + 1][0] for i, (base, _p, _s) in enumerate(segments[:-1])}
        result = cleaner.clean_segments(
            [path for _, path in inputs],
            offset_map,
            out_dir=directory,
            now_ms=now_ms,
            delete_retention_ms=settings.delete_retention_ms,
            segment_bytes=settings.segment_bytes,
            io_max_bytes_per_second=self.io_max_bytes_per_second,
            aborted_transactions=aborted,
        )
        outputs = list(result.segments)
        # Index entries of aborted transactions whose markers lie in what was cleaned
        # but which no output keeps: no batch of theirs was left. Dropped before the
        # swaps, which may remove their markers (safe either way: with no data left an
        # entry protects nothing). A failure here fails the pass.
        dropped = []
        for out in outputs:
            low = out.base_offset
            high = next_base[int(os.path.basename(out.inputs[-1])[:20])]
            kept = set(out.aborted_transactions)
            dropped += [t for t in plan.aborted if low <= t[2] < high and (t[0], t[1], t[2]) not in kept]
        stats = result.stats
        if dropped or stats.markers_removed:
            plan.txn_source.drop_aborted(dropped, markers_removed=stats.markers_removed > 0)
        replaced = 0
        completed = True
        for n, out in enumerate(outputs):
            last_input = out.inputs[-1]
            last_base = int(os.path.basename(last_input)[:20])
            try:
                swapped = log.replace_segments(out.path, out.base_offset, next_base[last_base])
            except ValueError as exc:
                # The directory listing saw a segment file the writer created for a roll
                # before the log counted it: the last closed segment was still the active
                # one. Harmless; the next round sees the roll finished.
                logger.debug("cleaner: %s: swap refused, pass retried later: %s", directory, exc)
                _unlink_quietly(out.path)
                swapped = False
            if not swapped:
                completed = False
                for rest in outputs[n + 1 :]:
                    _unlink_quietly(rest.path)
                break
            replaced += len(out.inputs)
        self.stats.bytes_read += stats.bytes_read + offset_map.bytes_read
        self.stats.bytes_written += stats.bytes_written
        self.stats.segments_replaced += replaced
        if completed:
            # Only once every output is in: a crash before this re-does the pass.
            write_atomic(os.path.join(directory, CHECKPOINT_NAME), f"{end}\n")
            self.stats.passes += 1
        else:
            self.stats.passes_abandoned += 1
        report = PassReport(
            directory=directory,
            first_dirty_offset=plan.first_dirty,
            end_offset=end if completed else plan.first_dirty,
            dirty_ratio=plan.ratio,
            segments_replaced=replaced,
            bytes_read=stats.bytes_read + offset_map.bytes_read,
            bytes_written=stats.bytes_written,
            records_read=stats.records_read,
            records_kept=stats.records_kept,
            tombstones_removed=stats.tombstones_removed,
            duration_ms=(time.perf_counter() - started) * 1000.0,
            completed=completed,
            aborted_removed=stats.aborted_removed,
            markers_removed=stats.markers_removed,
            aborted_entries_dropped=len(dropped),
        )
        self.stats.last_pass = report
        logger.info(
            "cleaner: %s offsets [%d, %d) ratio %.2f: %d segment(s) replaced, %d -> %d bytes, "
            "%d of %d records kept in %.0f ms%s",
            directory,
            plan.first_dirty,
            end,
            plan.ratio,
            replaced,
            stats.bytes_read,
            stats.bytes_written,
            stats.records_kept,
            stats.records_read,
            report.duration_ms,
            "" if completed else " (abandoned: segments changed meanwhile)",
        )
        return report

    # ------------------------------------------------------------------ thread

    def wake(self) -> None:
        """Start the next round now instead of after the backoff (e.g. after a topic config change)."""
        self._wake.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once()
            except Exception:  # the cleaner must never take the broker down
                logger.exception("cleaner round failed")
            self._wake.wait(self.backoff_ms / 1000.0)
            self._wake.clear()

    def start(self) -> None:
        """Start the cleaner thread (once)."""
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, name="streamcore-cleaner", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop the thread; a pass in progress finishes first (its swaps are crash-safe anyway)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def __enter__(self) -> LogCleaner:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _remove_cleaned(directory: str) -> None:
    """Delete the ``.cleaned`` files a failed pass left (the WAL would at its next open)."""
    try:
        names = os.listdir(directory)
    except OSError:
        return
    for name in names:
        if name.endswith(".log.cleaned"):
            _unlink_quietly(os.path.join(directory, name))
