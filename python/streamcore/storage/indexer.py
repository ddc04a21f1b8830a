"""``Indexer``: keeps each opted-in partition's search index up to date with its log.

One indexer per data directory runs one daemon thread. Each round it walks the
partitions it is given, reads each log from the index's own checkpoint up to the
high watermark, and adds the records to the partition's search index
(``_impl.search.SearchIndex``, native tantivy or the pure-Python twin). It never
touches the produce path: it only reads the log, the way a consumer does.

Files, in the partition directory ``<data_dir>/<topic>-<partition>/``::

    search/              the index (the engine's own files)
    search/checkpoint    "version 1" / "engine E" / "next_offset N", replaced atomically

``next_offset`` is the offset below which every record is in the committed index.
It is written only after the index commit that covers it, so after a crash the
indexer reads again from the checkpoint; records indexed but not checkpointed are
added again, and adding at an offset already in the index replaces that document,
so no hit is duplicated. An index written by the other engine (``engine`` differs)
is removed and rebuilt from the start of the log.

Batching: the index is committed once ``batch_records`` records are pending or the
oldest pending one has waited ``batch_ms``, whichever comes first.

Backpressure: before each round the indexer looks at every log's WAL queue. When one
is at least ``pressure_ratio`` full (``queue_depth`` queued appends against the
profile's bound) or has refused appends (``backpressure_rejections`` grew), the round
is skipped and the indexer sleeps ``backoff_ms``, doubling up to ``backoff_max_ms``
while the pressure lasts; the first round without pressure resets the delay. The
WAL's writes and fsyncs keep the disk; the index catches up afterwards.

Retention and truncation: records below the log start are deleted from the index
when the log start moves; if the log ends below the checkpoint (a truncating
recovery), the index drops everything from the new end and reads on from there.
Compaction is not followed yet; readers drop hits whose record is gone
(:mod:`streamcore.search` reads every hit back from the log).
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple

from streamcore import _impl
from streamcore._atomic_file import write_atomic
from streamcore.codec import decode_batches
from streamcore.errors import OffsetOutOfRangeError, StorageError

__all__ = [
    "CHECKPOINT_FILE",
    "INDEX_DIR",
    "IndexLag",
    "Indexer",
    "IndexerStats",
    "PartitionIndex",
    "index_directory",
]

_log = logging.getLogger("streamcore.storage")

#: The index's directory inside a partition directory.
INDEX_DIR = "search"
#: The indexer's checkpoint inside the index directory.
CHECKPOINT_FILE = "checkpoint"
#: An offset above every real one (the end of "delete everything from here").
_END = (1 << 63) - 1
_CONTROL_FLAG = 0x20

PartitionKey = tuple[str, int]


def index_directory(partition_dir: str | os.PathLike[str]) -> str:
    """Where the search index of the partition in ``partition_dir`` lives."""
    return os.path.join(os.fspath(partition_dir), INDEX_DIR)


class IndexLag(NamedTuple):
    """How far a partition's committed index is behind its log."""

    #: high watermark - the checkpoint's next offset
    records: int
    #: now - the first timestamp of the oldest record not yet indexed (s); 0 when caught up
    seconds: float


def _read_checkpoint(path: str) -> tuple[str, int] | None:
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        return None
    fields = dict(line.split(" ", 1) for line in lines if " " in line)
    try:
        if fields.get("version") != "1":
            return None
        return fields["engine"], int(fields["next_offset"])
    except (KeyError, ValueError):
        return None


class PartitionIndex:
    """One partition's index and its checkpoint; used by the indexer's one thread at a time.

    ``log`` is the partition's ``storage.Log`` (anything with ``read``,
    ``high_watermark``, ``log_start_offset``, ``batch_headers`` and ``directory``).
    """

    def __init__(self, key: PartitionKey, log: Any, *, read_bytes: int = 1 << 20) -> None:
        self.key = key
        self.log = log
        self.read_bytes = read_bytes
        self.directory = index_directory(log.directory)
        self._checkpoint_path = os.path.join(self.directory, CHECKPOINT_FILE)
        engine = _impl.search.ENGINE
        saved = _read_checkpoint(self._checkpoint_path)
        if saved is not None and saved[0] != engine and os.path.isdir(self.directory):
            _log.info("search index %s was written by the %s engine; rebuilding it", self.directory, saved[0])
            shutil.rmtree(self.directory)
            saved = None
        self.index = _impl.search.SearchIndex(self.directory)
        #: Every record below this offset is in the committed index.
        self.committed_offset = 0 if saved is None else saved[1]
        #: Where the next read starts (records below it are added, maybe not committed).
        self.next_offset = self.committed_offset
        self.pending = 0
        self._pending_since = 0.0
        self._deleted_below = 0
        self._fix_end()

    def _fix_end(self) -> None:
        """Drop what the index holds at or past the log's end (a truncated log reuses those offsets)."""
        end = self.log.high_watermark
        top = self.index.max_offset
        if self.committed_offset > end or (top is not None and top >= end):
            self.index.delete_range(end, _END)
            self.next_offset = min(self.next_offset, end)
            self.commit(force=True, offset=min(self.committed_offset, end))

    def _write_checkpoint(self, offset: int) -> None:
        write_atomic(
            self._checkpoint_path,
            f"version 1\nengine {_impl.search.ENGINE}\nnext_offset {offset}\n",
        )

    def commit(self, *, force: bool = False, offset: int | None = None) -> None:
        """Commit the index and then move the checkpoint to what the commit covers."""
        if not force and self.pending == 0:
            return
        target = self.next_offset if offset is None else offset
        self.index.commit()
        self._write_checkpoint(target)
        self.committed_offset = target
        self.pending = 0

    def due(self, batch_records: int, batch_ms: int, now: float) -> bool:
        """True when the pending records should be committed now."""
        return self.pending > 0 and (
            self.pending >= batch_records or (now - self._pending_since) * 1000.0 >= batch_ms
        )

    def step(self, max_records: int) -> int:
        """Read and add up to about ``max_records`` records; return how many were added."""
        start = self.log.log_start_offset
        if start > self._deleted_below:
            # Retention moved the log start: what it deleted leaves the index too.
            self.index.delete_range(0, start)
            self._deleted_below = start
            self.pending += 1
            if self.pending == 1:
                self._pending_since = time.monotonic()
        if self.next_offset < start:
            self.next_offset = start
        end = self.log.high_watermark
        if self.next_offset > end:
            self.index.delete_range(end, _END)
            self.next_offset = end
            self.commit(force=True, offset=min(self.committed_offset, end))
            return 0
        added = 0
        while added < max_records and self.next_offset < end:
            try:
                data = self.log.read(self.next_offset, self.read_bytes)
            except OffsetOutOfRangeError:
                # Retention ran between the reads of the log start and of the data.
                self.next_offset = self.log.log_start_offset
                continue
            if not data:
                break
            docs = []
            batches = decode_batches(data)
            if not batches:
                break
            for batch in batches:
                if not batch.attributes & _CONTROL_FLAG:
                    for record in batch:
                        if record.offset >= self.next_offset:
                            docs.append(
                                (self.key[1], record.offset, record.timestamp_ms, record.key, record.value)
                            )
                self.next_offset = max(self.next_offset, batch.last_offset + 1)
            if docs:
                self.index.add(docs)
                if self.pending == 0:
                    self._pending_since = time.monotonic()
                self.pending += len(docs)
                added += len(docs)
            elif self.pending == 0 and self.next_offset > self.committed_offset:
                # Only control batches: nothing to add, but the checkpoint may move on.
                self.pending = 1
                self._pending_since = time.monotonic()
        return added

    def lag(self, now_ms: int | None = None) -> IndexLag:
        """Records and seconds the committed index is behind the log's high watermark."""
        end = self.log.high_watermark
        behind = max(0, end - max(self.committed_offset, self.log.log_start_offset))
        if behind == 0:
            return IndexLag(0, 0.0)
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        try:
            first = next(
                iter(self.log.batch_headers(max(self.committed_offset, self.log.log_start_offset))), None
            )
        except OffsetOutOfRangeError:
            first = None
        seconds = 0.0 if first is None else max(0.0, (now_ms - first.first_timestamp) / 1000.0)
        return IndexLag(behind, seconds)

    def catch_up(self, *, batch_records: int = 10_000) -> int:
        """Index everything up to the high watermark now and commit; return the records added."""
        total = 0
        while True:
            added = self.step(batch_records)
            total += added
            if self.pending >= batch_records or added == 0:
                self.commit()
            if added == 0:
                return total

    def close(self) -> None:
        """Commit what is pending and release the index."""
        try:
            self.commit()
        finally:
            self.index.close()


@dataclass
class IndexerStats:
    """Counters of an :class:`Indexer` (since it was created)."""

    rounds: int = 0
    records_indexed: int = 0
    commits: int = 0
    #: rounds skipped because a WAL was under pressure
    backoffs: int = 0
    #: the delay the indexer is backing off with now (ms; 0 when not backing off)
    backoff_ms: float = 0.0
    failures: int = 0
    last_error: str | None = None
    partitions: int = 0


class Indexer:
    """Tails the logs that ``logs()`` returns and keeps their search indexes current.

    Args:
        logs: returns the (topic, partition) keys and open logs to index, called each
            round, so partitions opened or reopened later are picked up (the broker
            passes those of topics with ``search.index=true``).
        batch_records: commit once this many records are pending.
        batch_ms: commit once the oldest pending record has waited this long (ms).
        poll_ms: sleep between rounds when every index is caught up (ms).
        pressure_ratio: a WAL queue at least this full (queued appends / queue depth)
            counts as pressure.
        backoff_ms, backoff_max_ms: first and largest delay while under pressure (ms).
        read_bytes: bytes of log read at a time per partition.
    """

    def __init__(
        self,
        logs: Callable[[], Iterable[tuple[PartitionKey, Any]]],
        *,
        batch_records: int = 1000,
        batch_ms: int = 500,
        poll_ms: int = 100,
        pressure_ratio: float = 0.5,
        backoff_ms: int = 50,
        backoff_max_ms: int = 5000,
        read_bytes: int = 1 << 20,
    ) -> None:
        if batch_records <= 0 or batch_ms < 0 or poll_ms <= 0 or not 0 < backoff_ms <= backoff_max_ms:
            raise ValueError(
                "need batch_records > 0, batch_ms >= 0, poll_ms > 0 and 0 < backoff_ms <= backoff_max_ms"
            )
        if not 0.0 < pressure_ratio <= 1.0:
            raise ValueError(f"pressure_ratio must be in (0, 1], not {pressure_ratio}")
        self._logs = logs
        self.batch_records = batch_records
        self.batch_ms = batch_ms
        self.poll_ms = poll_ms
        self.pressure_ratio = pressure_ratio
        self.backoff_ms = backoff_ms
        self.backoff_max_ms = backoff_max_ms
        self.read_bytes = read_bytes
        self.stats = IndexerStats()
        self._parts: dict[PartitionKey, PartitionIndex] = {}
        self._rejections: dict[PartitionKey, int] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._delay_ms = 0.0

    # -- the thread -----------------------------------------------------------------

    def start(self) -> None:
        """Start the daemon thread (once)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="streamcore-indexer", daemon=True)
            self._thread.start()

    def stop(self, timeout: float | None = 10.0) -> None:
        """Stop the thread, commit what is pending and release every index."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        with self._lock:
            for part in self._parts.values():
                try:
                    part.close()
                except (StorageError, OSError) as exc:
                    _log.warning("search index %s: %s", part.directory, exc)
            self._parts.clear()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                worked = self.run_once()
            except Exception as exc:  # one bad round must not end indexing for good
                self.stats.failures += 1
                self.stats.last_error = str(exc)
                _log.warning("search indexer round failed: %s", exc)
                worked = False
            if self._delay_ms > 0:
                self._stop.wait(self._delay_ms / 1000.0)
            elif not worked:
                self._stop.wait(self.poll_ms / 1000.0)

    # -- one round ------------------------------------------------------------------

    def under_pressure(self, logs: Iterable[tuple[PartitionKey, Any]]) -> bool:
        """True when some log's WAL queue is at least ``pressure_ratio`` full or refused appends."""
        pressed = False
        for key, log in logs:
            try:
                stats = log.stats()
            except Exception:
                continue
            depth = getattr(getattr(log, "profile", None), "queue_depth", 0) or 0
            if depth and stats.get("queue_depth", 0) >= self.pressure_ratio * depth:
                pressed = True
            rejections = stats.get("backpressure_rejections", 0)
            if rejections > self._rejections.get(key, rejections):
                pressed = True
            self._rejections[key] = rejections
        return pressed

    def run_once(self) -> bool:
        """One round over every partition; True when records were indexed or committed."""
        logs = list(self._logs())
        with self._lock:
            self.stats.rounds += 1
            if self.under_pressure(logs):
                self._delay_ms = (
                    self.backoff_ms if self._delay_ms == 0 else min(self._delay_ms * 2, self.backoff_max_ms)
                )
                self.stats.backoffs += 1
                self.stats.backoff_ms = self._delay_ms
                return False
            self._delay_ms = 0.0
            self.stats.backoff_ms = 0.0
            worked = False
            now = time.monotonic()
            for key, log in logs:
                part = self._parts.get(key)
                if part is None or part.log is not log:
                    if part is not None:
                        part.close()
                    part = PartitionIndex(key, log, read_bytes=self.read_bytes)
                    self._parts[key] = part
                added = part.step(self.batch_records)
                self.stats.records_indexed += added
                now = time.monotonic()
                if part.due(self.batch_records, self.batch_ms, now):
                    part.commit()
                    self.stats.commits += 1
                    worked = True
                worked = worked or added > 0
            self.stats.partitions = len(self._parts)
            return worked

    def lag(self) -> dict[PartitionKey, IndexLag]:
        """Per partition, how far the committed index is behind the log."""
        with self._lock:
            return {key: part.lag() for key, part in self._parts.items()}
