"""``LogManager``: the partition logs of one data directory, opened, retained and closed together.

The broker decides what a partition's settings are (topic configs over broker
defaults); this module does everything with the logs themselves: opening (and so
recovering) ``<data_dir>/<topic>-<partition>/``, the periodic retention pass, the
crash-safe removal of deleted partitions and closing every log at shutdown.

Retention runs on its own daemon thread (:class:`~streamcore.storage.retention.RetentionScheduler`)
once :meth:`LogManager.start_retention` is called: it only deletes closed segment
files, which the WAL does safely alongside appends and reads.

Faults and damage (docs/storage.md, "Faults"): a log whose write or fsync failed is
offline; the health thread (:meth:`LogManager.start_healing`) notices it, waits a
backoff, checks that the partition directory takes writes again and reopens the log
through crash recovery. A partition whose files are damaged (recovery refuses it, or a
segment is missing) is offline until an operator repairs it, unless ``on_damage`` is
``"refuse"``, in which case opening raises. Damage met by a read is reported once per
place with :meth:`LogManager.check_read`.

Thread safety: every method may be called from any thread.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from streamcore import _impl
from streamcore._atomic_file import fsync_dir
from streamcore.codec.batch_header import (
    CRC_START,
    HEADER_SIZE,
    LOG_OVERHEAD,
    MAGIC,
    MIN_BATCH_LENGTH,
    PREFIX,
    PREFIX_SIZE,
)
from streamcore.errors import DataDirLockedError, LogOfflineError, StorageError
from streamcore.storage.cleaner import CompactionSettings, LogCleaner
from streamcore.storage.log import Log
from streamcore.storage.retention import RetentionScheduler

__all__ = ["Damage", "LogManager", "PartitionKey", "find_damage", "find_missing_offsets"]

logger = logging.getLogger("streamcore.storage")

#: (topic, partition)
PartitionKey = tuple[str, int]

_DELETED_SUFFIX = "-delete"
_ONE_OFF_INTERVAL_MS = 60_000  # unused by a single pass; any valid interval

#: What opening does with a damaged partition: keep the broker up with it offline, or refuse.
ON_DAMAGE_CHOICES = ("offline", "refuse")
# Every refusal to open damaged data names this way out (docs/storage.md); a failure
# without it (ENOSPC, EMFILE, EIO) is transient and worth retrying.
_DAMAGE_HINT = "streamcore log recover"
# The probe file ends in .tmp so that a crash leaves nothing the WAL's open keeps.
_PROBE_NAME = "write-probe.tmp"
# Bytes the probe writes and fsyncs: a disk with room for a checkpoint but not for one
# more batch would let the log come back only to fail again at once.
_PROBE_BYTES = 64 * 1024
# Leftovers of an interrupted retention pass or cleaner swap, which the WAL's open
# resolves; while they are there a segment may rightly be missing.
_IN_FLIGHT_SUFFIXES = (".deleted", ".cleaned", ".swap")


class Damage(NamedTuple):
    """Where a read met damaged or missing data."""

    #: Segment file and byte position of the first bad byte (the file is None when the
    #: read could not be mapped to one).
    file: str | None
    position: int
    #: Offsets the bad range was expected to hold (first, last; last -1 when unknown).
    first_offset: int
    last_offset: int
    #: What is wrong, in words.
    reason: str
    #: True when bytes are missing (file shorter than the log says, zeroed range, offsets
    #: going backwards across a hole); False for corrupt bytes (CRC, framing).
    missing: bool


def find_damage(data: bytes | bytearray | memoryview, offset: int) -> tuple[int, int, int, str, bool] | None:
    """Check batches read for ``offset``: framing, magic, CRC32C and offsets that run forward.

    Returns None when ``data`` is sound, else (byte index into ``data``, first offset,
    last offset or -1, reason, missing) of the first bad batch. Offsets may skip (a
    compacted log has gaps); they must not go backwards, and the first batch must reach
    ``offset``.
    """
    # The sound-or-not loop runs once per batch of every fetch, so it is native
    # (``record_batch.check_batches``); _describe_damage says what is wrong, and only
    # runs when something is.
    found = _impl.record_batch.check_batches(data, offset)
    if found is None:
        return None
    pos, expected = found
    view = memoryview(data).cast("B")
    return _describe_damage(view, pos, expected)


def _describe_damage(view: memoryview, pos: int, expected: int) -> tuple[int, int, int, str, bool]:
    size = len(view)
    if size - pos < HEADER_SIZE:
        return pos, expected, -1, f"{size - pos} bytes where a batch header needs {HEADER_SIZE}", True
    base, length, _epoch, magic, crc, _attrs, last_delta, _bts, _mts = PREFIX.unpack_from(view, pos)
    if length == 0 and magic == 0 and not any(view[pos : pos + PREFIX_SIZE]):
        return pos, expected, -1, "zeroed bytes where a batch should start", True
    if length < MIN_BATCH_LENGTH or magic != MAGIC or last_delta < 0:
        return pos, base, -1, f"not a v2 batch header (batchLength {length}, magic {magic})", False
    end = pos + length + LOG_OVERHEAD
    last = base + last_delta
    if end > size:
        return pos, base, last, f"batch of {length + LOG_OVERHEAD} bytes runs past the data read", True
    if last < expected:
        return pos, base, last, f"batch ends at offset {last}, below the expected {expected}", False
    actual = _impl.crc32c.crc32c(view[pos + CRC_START : end])
    return pos, base, last, f"CRC32C mismatch (stored {crc:#010x}, computed {actual:#010x})", False


def _read_checkpoint(directory: Path) -> tuple[int, int] | None:
    """(log start offset, recovery point) from ``directory/checkpoint``; None if absent or unreadable
    (opening the log reports an unreadable one)."""
    try:
        text = (directory / "checkpoint").read_text("utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    fields = dict(line.split(" ", 1) for line in text.splitlines() if " " in line)
    try:
        return int(fields["log_start_offset"]), int(fields["recovery_point"])
    except (KeyError, ValueError):
        return None


def _read_compacted_offset(directory: Path) -> int:
    """The WAL's ``compacted-offset`` (0 when absent or unreadable: opening reports the latter)."""
    try:
        return max(0, int((directory / "compacted-offset").read_text("utf-8").strip()))
    except (OSError, UnicodeDecodeError, ValueError):
        return 0


def _segment_end(log_path: Path, base: int) -> int | None:
    """The offset after the last whole batch of a segment, walking from its last offset-index
    entry; None when its framing is broken (recovery and reads report that)."""
    position = 0
    index = log_path.with_suffix(".index")
    try:
        size = log_path.stat().st_size
        index_size = index.stat().st_size if index.exists() else 0
        with open(log_path, "rb") as fh:
            if index_size >= 8:
                with open(index, "rb") as ih:
                    ih.seek((index_size // 8 - 1) * 8)
                    entry = ih.read(8)
                rel, at = int.from_bytes(entry[:4], "big"), int.from_bytes(entry[4:], "big")
                fh.seek(at)
                head = fh.read(8)
                # An index that does not point at its batch is ignored: walk from the start.
                if at < size and len(head) == 8 and int.from_bytes(head, "big", signed=True) == base + rel:
                    position = at
            end = base
            while position < size:
                fh.seek(position)
                head = fh.read(PREFIX_SIZE)
                if len(head) < PREFIX_SIZE:
                    return None
                batch_base, length, _e, magic, _c, _a, last_delta, _b, _m = PREFIX.unpack_from(head)
                if length < MIN_BATCH_LENGTH or magic != MAGIC or position + length + LOG_OVERHEAD > size:
                    return None
                end = batch_base + last_delta + 1
                position += length + LOG_OVERHEAD
            return end
    except OSError:
        return None


def find_missing_offsets(directory: str | os.PathLike[str]) -> str | None:
    """What a partition directory is missing, in words, or None.

    Finds a segment missing between two others (a segment ends before the next one
    starts, unless compaction removed those offsets: below the log's compacted offset),
    offsets missing below the first segment (the checkpoint's log start offset
    is below it) and a log that ends below the checkpoint's recovery point (a lost
    tail). Cheap: one header walk from the last index entry of each segment. Skipped
    while leftovers of an interrupted retention pass or cleaner swap are present.
    """
    d = Path(directory)
    try:
        names = os.listdir(d)
    except FileNotFoundError:
        return None
    if any(n.endswith(_IN_FLIGHT_SUFFIXES) for n in names):
        return None
    segments = sorted(
        (int(n[:20]), d / n) for n in names if len(n) == 24 and n.endswith(".log") and n[:20].isdigit()
    )
    if not segments:
        return None
    checkpoint = _read_checkpoint(d)
    compacted = _read_compacted_offset(d)
    if checkpoint is not None and checkpoint[0] < segments[0][0]:
        return (
            f"offsets {checkpoint[0]} to {segments[0][0] - 1} are missing: the checkpoint says the log "
            f"starts at {checkpoint[0]} but the first segment is {segments[0][1]}"
        )
    end = None
    for (base, path), nxt in zip(segments, segments[1:] + [None], strict=True):
        end = _segment_end(path, base)
        if end is None or nxt is None:
            continue
        # Below the compacted offset a segment may end early: compaction removed offsets.
        if end < nxt[0] and nxt[0] > compacted:
            return (
                f"offsets {end} to {nxt[0] - 1} are missing: {path} ends at offset {end} "
                f"but the next segment is {nxt[1]}"
            )
    if checkpoint is not None and end is not None and end < checkpoint[1]:
        return (
            f"offsets {end} to {checkpoint[1] - 1} are missing: the log ends at offset {end} "
            f"({segments[-1][1]}) but the checkpoint's recovery point says {checkpoint[1]} were fsynced"
        )
    return None


@dataclass
class _Offline:
    """A partition that is offline: why, since when, and when to try it again."""

    reason: str
    #: Damaged data waits for an operator; anything else is retried.
    damaged: bool
    since: float
    backoff_s: float
    next_try: float
    #: Settings to open it with, when it has no log yet (opening failed).
    settings: dict[str, Any] | None = None
    retention: bool = True
    attempts: int = field(default=0)


class LogManager:
    """Partition logs under ``data_dir``, keyed by (topic, partition).

    ``log_factory(directory, **kwargs)`` builds a log (default :class:`Log`; kwargs
    are those of ``Log``). Directories left by an interrupted deletion are removed
    when the manager is created.

    ``on_damage``: ``"offline"`` (a partition whose files are damaged is kept offline,
    :meth:`open` raises LogOfflineError for it, the other partitions work) or
    ``"refuse"`` (:meth:`open` raises the StorageError naming the damage).
    ``retry_backoff_ms`` and ``retry_backoff_max_ms``: the wait before the first
    attempt to bring an offline partition back, doubled after each failed attempt up to
    the maximum (ms). ``health_interval_ms``: how often the health thread looks for
    offline logs (ms).

    Every log of the directory runs on one ``WalPool`` (``self.pool``): a few writer
    threads (``wal_writer_threads``) and a cache of at most ``wal_max_open_files``
    open segment files, whatever the number of partitions; each log gets it as
    ``pool=`` and :meth:`close` shuts it down after the logs.
    """

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        *,
        log_factory: Callable[..., Any] | None = None,
        on_damage: str = "offline",
        retry_backoff_ms: int = 500,
        retry_backoff_max_ms: int = 4000,
        health_interval_ms: int = 250,
        wal_writer_threads: int = 2,
        wal_max_open_files: int = 256,
    ) -> None:
        if on_damage not in ON_DAMAGE_CHOICES:
            raise ValueError(f"on_damage must be one of {', '.join(ON_DAMAGE_CHOICES)}, not {on_damage!r}")
        if not 0 < retry_backoff_ms <= retry_backoff_max_ms or health_interval_ms <= 0:
            raise ValueError(
                "need 0 < retry_backoff_ms <= retry_backoff_max_ms and health_interval_ms > 0 (ms), not "
                f"{retry_backoff_ms}, {retry_backoff_max_ms}, {health_interval_ms}"
            )
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._log_factory: Callable[..., Any] = Log if log_factory is None else log_factory
        self.on_damage = on_damage
        self._backoff_s = retry_backoff_ms / 1000.0
        self._backoff_max_s = retry_backoff_max_ms / 1000.0
        self._health_interval_s = health_interval_ms / 1000.0
        self._lock = threading.RLock()
        self._logs: dict[PartitionKey, Any] = {}
        self._no_retention: set[PartitionKey] = set()
        self._retention: RetentionScheduler | None = None
        #: The compaction thread, once :meth:`start_cleaner` ran.
        self.cleaner: LogCleaner | None = None
        self._offline: dict[PartitionKey, _Offline] = {}
        self._reopen_listeners: list[Callable[[PartitionKey, Any], None]] = []
        self._reported_damage: set[tuple[str | None, int]] = set()
        self._damaged_reads = 0
        self._health_thread: threading.Thread | None = None
        self._health_stop = threading.Event()
        self._closed = False
        self._remove_deleted_leftovers()
        # Last: nothing above may fail and leave the pool's threads behind.
        self.pool: Any = _impl.wal.WalPool(
            writer_threads=wal_writer_threads, max_open_files=wal_max_open_files
        )

    def directory(self, key: PartitionKey) -> Path:
        """Where the partition's log lives."""
        return self.data_dir / f"{key[0]}-{key[1]}"

    # ------------------------------------------------------------------ opening

    def get(self, key: PartitionKey) -> Any | None:
        """The open log of ``key``, or None."""
        return self._logs.get(key)

    def open(self, key: PartitionKey, *, retention: bool = True, **log_settings: Any) -> Any:
        """The log of ``key``, opened (and recovered) with ``log_settings`` if it is not open yet.

        ``retention=False`` leaves it out of the retention pass (a log whose owner
        reclaims space itself). Raises RuntimeError once the manager is closed.
        """
        log = self._logs.get(key)
        if log is not None:
            return log
        with self._lock:
            if self._closed:
                raise RuntimeError("the log manager is closed")
            log = self._logs.get(key)
            if log is not None:
                return log
            entry = self._offline.get(key)
            if entry is not None:
                raise LogOfflineError(f"partition {key[0]}-{key[1]} is offline: {entry.reason}")
            try:
                log = self._open_checked(key, log_settings)
            except DataDirLockedError:
                raise
            except (StorageError, OSError) as exc:
                damaged = _is_damage(exc)
                if damaged and self.on_damage == "refuse":
                    raise
                self._go_offline(key, str(exc), damaged, settings=dict(log_settings), retention=retention)
                raise LogOfflineError(f"partition {key[0]}-{key[1]} is offline: {exc}") from exc
            self._logs[key] = log
            if not retention:
                self._no_retention.add(key)
            return log

    def _open_checked(self, key: PartitionKey, log_settings: dict[str, Any]) -> Any:
        directory = self.directory(key)
        missing = find_missing_offsets(directory)
        if missing is not None:
            raise StorageError(
                f"{directory}: {missing}; to drop the damaged data and everything after it, run: "
                f"streamcore log recover --truncate {directory}"
            )
        return self._log_factory(directory, **{"pool": self.pool, **log_settings})

    def items(self) -> list[tuple[PartitionKey, Any]]:
        """Open logs as (key, log) pairs."""
        with self._lock:
            return list(self._logs.items())

    def set_retention(
        self, keys: Iterable[PartitionKey], retention_ms: int | None, retention_bytes: int | None
    ) -> None:
        """Change the retention limits of the open logs among ``keys`` (ms, bytes; None = keep)."""
        with self._lock:
            for key in keys:
                log = self._logs.get(key)
                if log is not None:
                    log.retention_ms = retention_ms
                    log.retention_bytes = retention_bytes

    # ------------------------------------------------------------------ retention

    def _retained(self) -> list[Any]:
        with self._lock:
            return [
                log
                for key, log in self._logs.items()
                if key not in self._no_retention and not getattr(log, "is_offline", False)
            ]

    def apply_retention(self, now_ms: int | None = None) -> int:
        """Apply each retained log's retention now; returns segments deleted.

        ``now_ms`` (ms since the epoch) defaults to the wall clock. A failing log is
        logged and skipped.
        """
        scheduler = self._retention or RetentionScheduler(self._retained, _ONE_OFF_INTERVAL_MS)
        return scheduler.run_once(now_ms)

    def start_retention(self, interval_ms: int) -> None:
        """Run the retention pass every ``interval_ms`` on a daemon thread until :meth:`close`."""
        with self._lock:
            if self._closed:
                raise RuntimeError("the log manager is closed")
            if self._retention is not None:
                raise RuntimeError("retention is already running")
            self._retention = RetentionScheduler(self._retained, interval_ms)
            self._retention.start()

    def start_cleaner(
        self,
        settings: Callable[[PartitionKey], CompactionSettings | None],
        *,
        io_max_bytes_per_second: float | None = None,
        dedupe_buffer_bytes: int = 128 * 1024 * 1024,
        backoff_ms: int = 15_000,
    ) -> LogCleaner:
        """Compact the logs whose ``settings(key)`` is not None on a daemon thread until :meth:`close`.

        See :class:`~streamcore.storage.cleaner.LogCleaner` for the arguments (bytes/s,
        bytes, ms). Returns the cleaner (its ``stats``, ``wake()``).
        """
        with self._lock:
            if self._closed:
                raise RuntimeError("the log manager is closed")
            if self.cleaner is not None:
                raise RuntimeError("the cleaner is already running")
            self.cleaner = LogCleaner(
                self._cleanable,
                settings,
                io_max_bytes_per_second=io_max_bytes_per_second,
                dedupe_buffer_bytes=dedupe_buffer_bytes,
                backoff_ms=backoff_ms,
            )
            self.cleaner.start()
            return self.cleaner

    def _cleanable(self) -> list[tuple[PartitionKey, Any]]:
        with self._lock:
            return list(self._logs.items())

    # ------------------------------------------------------------------ faults and damage

    def add_reopen_listener(self, listener: Callable[[PartitionKey, Any], None]) -> None:
        """Call ``listener(key, log)`` (on the health thread) each time an offline partition
        comes back, after its log was reopened through recovery."""
        self._reopen_listeners.append(listener)

    def offline_partitions(self) -> dict[PartitionKey, str]:
        """Every partition that is offline now, with the reason."""
        with self._lock:
            out = {key: entry.reason for key, entry in self._offline.items()}
            for key, log in self._logs.items():
                if key not in out and getattr(log, "is_offline", False):
                    out[key] = "a write or fsync failed"
            return out

    def health_figures(self) -> dict[str, int]:
        """``offline_partitions`` (now) and ``damaged_reads`` (reads that met damage, since start)."""
        return {"offline_partitions": len(self.offline_partitions()), "damaged_reads": self._damaged_reads}

    def start_healing(self) -> None:
        """Run :meth:`check_health` every ``health_interval_ms`` on a daemon thread until :meth:`close`."""
        with self._lock:
            if self._closed:
                raise RuntimeError("the log manager is closed")
            if self._health_thread is not None:
                raise RuntimeError("healing is already running")
            self._health_thread = threading.Thread(
                target=self._health_loop, name="streamcore-log-health", daemon=True
            )
            self._health_thread.start()

    def _health_loop(self) -> None:
        while not self._health_stop.wait(self._health_interval_s):
            try:
                self.check_health()
            except Exception:  # the loop must outlive one bad pass
                logger.exception("log health check failed")

    def check_health(self, now: float | None = None) -> int:
        """One pass: note logs that went offline, try those whose backoff is over; returns
        how many partitions came back.

        ``now`` is ``time.monotonic()`` seconds (default: now). A partition is tried by
        writing and fsyncing a probe file in its directory; when that works its log is
        reopened through crash recovery (or opened, if it never was). Each change of state
        is logged once: offline (WARNING; the WAL logged the failure at ERROR), back (INFO),
        found damaged (ERROR).
        """
        now = time.monotonic() if now is None else now
        with self._lock:
            if self._closed:
                return 0
            for key, log in self._logs.items():
                if key not in self._offline and getattr(log, "is_offline", False):
                    self._go_offline(key, "a write or fsync failed", False, now=now)
            due = [key for key, e in self._offline.items() if not e.damaged and e.next_try <= now]
        healed = 0
        for key in due:
            healed += self._try_heal(key, now)
        return healed

    def _go_offline(
        self,
        key: PartitionKey,
        reason: str,
        damaged: bool,
        *,
        now: float | None = None,
        settings: dict[str, Any] | None = None,
        retention: bool = True,
    ) -> None:
        # Caller holds the lock.
        now = time.monotonic() if now is None else now
        self._offline[key] = _Offline(
            reason, damaged, now, self._backoff_s, now + self._backoff_s, settings, retention
        )
        directory = self.directory(key)
        if damaged:
            logger.error(
                "partition %s-%d is offline: its data is damaged (%s); the broker keeps serving the "
                "other partitions; stop it and run: streamcore log recover --truncate %s",
                *key,
                reason,
                directory,
            )
        else:
            # WARNING: the failure itself was logged at ERROR by the WAL, with its cause.
            logger.warning(
                "partition %s-%d is offline (%s); it is reopened through recovery once %s takes writes again",
                *key,
                reason,
                directory,
            )

    def _try_heal(self, key: PartitionKey, now: float) -> int:
        directory = self.directory(key)
        with self._lock:
            entry = self._offline.get(key)
            if entry is None or entry.damaged or self._closed:
                return 0
            entry.attempts += 1
            try:
                _probe_writes(directory)
                log = self._logs.get(key)
                if log is None:
                    assert entry.settings is not None
                    log = self._open_checked(key, entry.settings)
                    self._logs[key] = log
                    if not entry.retention:
                        self._no_retention.add(key)
                else:
                    log.reopen()
            except (StorageError, OSError) as exc:
                if _is_damage(exc):
                    if self.on_damage == "refuse":
                        logger.error("partition %s-%d cannot be reopened: %s", *key, exc)
                    entry.damaged = True
                    entry.reason = str(exc)
                    logger.error(
                        "partition %s-%d stays offline: recovery found damaged data (%s); stop the "
                        "broker and run: streamcore log recover --truncate %s",
                        *key,
                        exc,
                        directory,
                    )
                    return 0
                entry.backoff_s = min(entry.backoff_s * 2, self._backoff_max_s)
                entry.next_try = now + entry.backoff_s
                logger.debug(
                    "partition %s-%d still offline: %s (next try in %.1f s)", *key, exc, entry.backoff_s
                )
                return 0
            del self._offline[key]
        logger.info(
            "partition %s-%d is back online after %.1f s offline (%d attempt(s)); it ends at offset %d",
            *key,
            now - entry.since,
            entry.attempts,
            log.high_watermark,
        )
        for listener in self._reopen_listeners:
            try:
                listener(key, log)
            except Exception:
                logger.exception("reopen listener failed for %s-%d", *key)
        return 1

    def check_read(
        self, key: PartitionKey, log: Any, offset: int, max_bytes: int, data: bytes | bytearray | memoryview
    ) -> Damage | None:
        """Check what ``log.read(offset, max_bytes)`` returned (see :func:`find_damage`).

        Sound data gives None. Damage is counted (``damaged_reads``), logged at ERROR once
        per file and position (naming them and the offsets; later reads of the same place
        log at DEBUG) and returned.
        """
        found = find_damage(data, offset)
        if found is None and not data and offset < log.high_watermark:
            # Nothing where the log holds offsets: the segment is shorter than the log says.
            damage = _cut_short(log.directory, offset)
            self._report_damage(key, damage)
            return damage
        if found is None:
            return None
        index, first, last, reason, missing = found
        file, position = None, index
        try:
            for path, start, length in log.read_spans(offset, max_bytes):
                if index < length:
                    file, position = path, start + index
                    break
                index -= length
        except (StorageError, OSError):
            pass  # the damage is reported without a file name
        damage = Damage(file, position, first, last, reason, missing)
        self._report_damage(key, damage)
        return damage

    def report_read_failure(self, key: PartitionKey, offset: int, exc: BaseException) -> Damage:
        """Count and log (once per partition and offset) a read that failed with ``exc``."""
        damage = Damage(None, -1, offset, -1, str(exc), True)
        self._report_damage(key, damage)
        return damage

    def _report_damage(self, key: PartitionKey, damage: Damage) -> None:
        with self._lock:
            self._damaged_reads += 1
            place = (damage.file or f"{key[0]}-{key[1]}@{damage.first_offset}", damage.position)
            first_time = place not in self._reported_damage
            self._reported_damage.add(place)
        offsets = (
            f"offsets {damage.first_offset} to {damage.last_offset}"
            if damage.last_offset >= 0
            else f"from offset {damage.first_offset}"
        )
        where = f"{damage.file} at byte {damage.position}" if damage.file else "a segment"
        logger.log(
            logging.ERROR if first_time else logging.DEBUG,
            "partition %s-%d: a read met %s data in %s (%s): %s; check it with: streamcore log verify %s",
            key[0],
            key[1],
            "missing" if damage.missing else "corrupt",
            where,
            offsets,
            damage.reason,
            self.directory(key),
        )

    # ------------------------------------------------------------------ removal and closing

    def delete(self, keys: Iterable[PartitionKey], tag: str) -> None:
        """Close the logs of ``keys`` and remove their directories.

        Each directory is first renamed ``<name>.<tag>-delete`` and the rename made
        durable, so a crash mid-way cannot bring the partition back; the renamed
        directories are then removed (and any left over are removed at the next start).
        """
        keys = list(keys)
        with self._lock:
            for key in keys:
                self._no_retention.discard(key)
                self._offline.pop(key, None)
                log = self._logs.pop(key, None)
                if log is not None:
                    try:
                        log.close()
                    except Exception:
                        logger.exception("closing %s-%d before deletion failed", *key)
            doomed = []
            for key in keys:
                directory = self.directory(key)
                if directory.exists():
                    target = directory.with_name(f"{directory.name}.{tag}{_DELETED_SUFFIX}")
                    os.replace(directory, target)
                    doomed.append(target)
            if doomed:
                fsync_dir(self.data_dir)
        for target in doomed:
            shutil.rmtree(target, ignore_errors=True)

    def _remove_deleted_leftovers(self) -> None:
        for entry in self.data_dir.iterdir():
            if entry.is_dir() and entry.name.endswith(_DELETED_SUFFIX):
                shutil.rmtree(entry, ignore_errors=True)

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Stop the cleaner, health and retention threads, then close every log (each drains, fsyncs and
        checkpoints); idempotent."""
        with self._lock:
            self._closed = True
            scheduler, self._retention = self._retention, None
            health, self._health_thread = self._health_thread, None
            cleaner, self.cleaner = self.cleaner, None
        if cleaner is not None:
            # First: a pass in progress finishes its swap before the logs close.
            cleaner.stop()
        self._health_stop.set()
        if health is not None:
            health.join()
        if scheduler is not None:
            # Outside the lock: a pass in progress takes it to list the logs.
            scheduler.stop()
        with self._lock:
            logs, self._logs = list(self._logs.items()), {}
            self._no_retention.clear()
        for key, log in logs:
            try:
                log.close()
            except Exception:
                logger.exception("closing %s-%d failed", *key)
        # After the logs: the pool would close them too, but without naming a failure.
        self.pool.shutdown()


def _is_damage(exc: BaseException) -> bool:
    return isinstance(exc, StorageError) and _DAMAGE_HINT in str(exc)


def _probe_writes(directory: Path) -> None:
    """Write, fsync and remove a probe file in ``directory``; raises OSError while it fails."""
    probe = directory / _PROBE_NAME
    directory.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            view = memoryview(bytes(_PROBE_BYTES))
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
    finally:
        try:
            os.unlink(probe)
        except FileNotFoundError:
            pass


def _cut_short(directory: str, offset: int) -> Damage:
    """The damage of a read that found no bytes at ``offset``, below the high watermark:
    the segment that should hold it ends early (its size is the position named)."""
    bases = sorted(
        (int(n[:20]), n)
        for n in os.listdir(directory)
        if len(n) == 24 and n.endswith(".log") and n[:20].isdigit()
    )
    holding = [name for base, name in bases if base <= offset]
    if not holding:
        return Damage(None, -1, offset, -1, "no segment holds this offset", True)
    path = os.path.join(directory, holding[-1])
    try:
        size = os.stat(path).st_size
    except OSError as exc:
        return Damage(path, -1, offset, -1, f"the segment cannot be read: {exc}", True)
    return Damage(path, size, offset, -1, f"the segment ends at byte {size}, before offset {offset}", True)
