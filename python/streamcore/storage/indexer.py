"""``Indexer``: keeps each opted-in partition's search index up to date with its log.

One indexer per data directory runs one daemon thread. Each round it walks the
partitions it is given, reads each log from the index's own checkpoint up to the
high watermark, and adds the records to the partition's search index
(``_impl.search.SearchIndex``, native tantivy or the pure-Python twin). It never
touches the produce path: it only reads the log, the way a consumer does.

Files, in the partition directory ``<data_dir>/<topic>-<partition>/``::

    search/              the index (the engine's own files)
    search/checkpoint    "version 1" / "engine E" / "next_offset N" / "cleaned STAMP",
                         replaced atomically

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

Transactions: the indexer reads a partition only up to its last stable offset, and
leaves out control batches and the batches of aborted transactions, as a
read_committed consumer does: a search never finds a record such a consumer would
not see. An open transaction holds the index back at its first offset (the lag says
so) until its marker is written. The state comes from the broker's transaction
state when it keeps the partition's, else from the log's headers
(:class:`~streamcore.storage.txn_index.TransactionScan`).

Retention and truncation: records below the log start are deleted from the index
when the log start moves; if the log ends below the checkpoint (a truncating
recovery), the index drops everything from the new end and reads on from there.

Compaction: once the cleaner finished a pass (the log's ``compacted_offset`` or its
cleaner checkpoint file changed), the indexed part below the compacted offset is
re-indexed from the cleaned log, chunk by chunk: each chunk's documents are deleted
and its surviving records added again, so hits of removed records go and every
commit is consistent. The stamp of the pass followed is in the checkpoint
(``cleaned``), so a crash mid-way re-does it. Until then readers drop hits whose
record is gone (:mod:`streamcore.search` reads every hit back from the log).
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
from streamcore.errors import OffsetOutOfRangeError, StorageError
from streamcore.storage.cleaner import CHECKPOINT_NAME as CLEANER_CHECKPOINT
from streamcore.storage.txn_index import TransactionScan

__all__ = [
    "CHECKPOINT_FILE",
    "INDEX_DIR",
    "IndexLag",
    "Indexer",
    "IndexerStats",
    "PartitionIndex",
    "index_directory",
    "log_lag",
]

_log = logging.getLogger("streamcore.storage")

#: The index's directory inside a partition directory.
INDEX_DIR = "search"
#: The indexer's checkpoint inside the index directory.
CHECKPOINT_FILE = "checkpoint"
#: An offset above every real one (the end of "delete everything from here").
_END = (1 << 63) - 1

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


def _read_checkpoint(path: str) -> tuple[str, int, str | None] | None:
    """(engine, next offset, compaction stamp or None) from a checkpoint file; None when absent or unreadable."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        return None
    fields = dict(line.split(" ", 1) for line in lines if " " in line)
    try:
        if fields.get("version") != "1":
            return None
        cleaned = fields.get("cleaned")
        return fields["engine"], int(fields["next_offset"]), None if cleaned in (None, "-") else cleaned
    except (KeyError, ValueError):
        return None


class PartitionIndex:
    """One partition's index and its checkpoint; used by one thread at a time (searches
    of its ``index`` may run on other threads).

    ``log`` is the partition's ``storage.Log`` (anything with ``read``,
    ``high_watermark``, ``log_start_offset``, ``batch_headers`` and ``directory``).
    ``transactions``: the partition's transaction state when someone keeps it (anything
    with ``cleaner_view()`` -> (last stable offset, aborted transactions), such as the
    broker's :class:`~streamcore.storage.txn_index.PartitionTxnState`); None or a call
    returning None makes the index follow the log's headers itself
    (:class:`~streamcore.storage.txn_index.TransactionScan`).
    """

    def __init__(
        self,
        key: PartitionKey,
        log: Any,
        *,
        read_bytes: int = 1 << 20,
        transactions: Callable[[], Any] | None = None,
    ) -> None:
        self.key = key
        self.log = log
        self.read_bytes = read_bytes
        self.directory = index_directory(log.directory)
        self._checkpoint_path = os.path.join(self.directory, CHECKPOINT_FILE)
        self._transactions = transactions
        self._scan: TransactionScan | None = None
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
        #: The log's compaction stamp the index is known to match (see _compaction_stamp).
        self._cleaned: str | None = None if saved is None else saved[2]
        #: [at, end) still to re-index after a compaction, and the stamp it brings the index to.
        self._recheck: tuple[int, int, str] | None = None
        if saved is None:
            # No checkpoint: whatever an earlier run left uncheckpointed may name records
            # compaction removed since; the log is read from its start anyway.
            if self.index.max_offset is not None:
                self.index.delete_range(0, _END)
            self._cleaned = self._compaction_stamp()
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
            f"version 1\nengine {_impl.search.ENGINE}\nnext_offset {offset}\ncleaned {self._cleaned or '-'}\n",
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

    def _note_pending(self, count: int) -> None:
        if self.pending == 0:
            self._pending_since = time.monotonic()
        self.pending += count

    # -- transactions -----------------------------------------------------------------

    def _txn_view(self) -> tuple[int, list[Any]]:
        """(last stable offset, aborted transactions) of the partition now."""
        owner = self._transactions() if self._transactions is not None else None
        if owner is not None:
            lso, aborted = owner.cleaner_view()
            return int(lso), aborted
        if self._scan is None:
            self._scan = TransactionScan(self.log)
        lso, aborted = self._scan.cleaner_view()
        return int(lso), aborted

    @staticmethod
    def _aborted_spans(aborted: Iterable[Any], from_offset: int) -> list[tuple[int, int, int]]:
        """(producer id, first, last offset) of the aborted transactions ending at or after ``from_offset``."""
        return [(int(txn[0]), int(txn[1]), int(txn[2])) for txn in aborted if txn[2] >= from_offset]

    # -- compaction ---------------------------------------------------------------------

    def _compaction_stamp(self) -> str:
        """Changes whenever the cleaner finished a pass over the log: the log's compacted
        offset and the identity of its cleaner checkpoint file (rewritten by each pass)."""
        compacted = int(getattr(self.log, "compacted_offset", 0) or 0)
        if compacted <= 0:
            return "0"
        try:
            st = os.stat(os.path.join(os.fspath(self.log.directory), CLEANER_CHECKPOINT))
            return f"{compacted}:{st.st_ino}:{st.st_mtime_ns}"
        except OSError:
            return str(compacted)

    def _follow_compaction(self, max_records: int) -> int:
        """Re-index what compaction may have changed: [log start, compacted offset) as far
        as the index has it, chunk by chunk (each chunk's old documents deleted and its
        surviving records added again, so every commit is consistent); returns records added."""
        if self._recheck is None:
            stamp = self._compaction_stamp()
            if stamp == self._cleaned:
                return 0
            compacted = int(getattr(self.log, "compacted_offset", 0) or 0)
            self._recheck = (self.log.log_start_offset, min(compacted, self.next_offset), stamp)
        at, stop, stamp = self._recheck
        added = 0
        done = False
        aborted: list[tuple[int, int, int]] | None = None
        while added < max_records:
            if at >= stop:
                done = True
                break
            try:
                data = self.log.read(max(at, self.log.log_start_offset), self.read_bytes)
            except OffsetOutOfRangeError:
                at = self.log.log_start_offset
                continue
            if aborted is None:
                aborted = self._aborted_spans(self._txn_view()[1], at)
            # Each chunk's old documents go and its surviving records come back in one call.
            count, chunk_end = self.index.add_batches(data, self.key[1], at, stop, aborted, replace=True)
            if chunk_end is None:
                done = True
                break
            self._note_pending(max(1, count))
            added += count
            at = chunk_end
        if done:
            self._recheck = None
            self._cleaned = stamp
            self._note_pending(1)  # the checkpoint records the stamp at the next commit
        else:
            self._recheck = (at, stop, stamp)
        return added

    # -- reading ------------------------------------------------------------------------

    def step(self, max_records: int) -> int:
        """Read and add up to about ``max_records`` records; return how many were added.

        Reads stop at the last stable offset: the records of a transaction are added once
        it committed, never when it aborted, and control batches never.
        """
        start = self.log.log_start_offset
        if start > self._deleted_below:
            # Retention moved the log start: what it deleted leaves the index too.
            self.index.delete_range(0, start)
            self._deleted_below = start
            self._note_pending(1)
        if self.next_offset < start:
            self.next_offset = start
        end = self.log.high_watermark
        if self.next_offset > end:
            self.index.delete_range(end, _END)
            self.next_offset = end
            self.commit(force=True, offset=min(self.committed_offset, end))
            return 0
        added = self._follow_compaction(max_records)
        if self.next_offset >= end:
            return added
        lso, aborted_list = self._txn_view()
        stable = min(end, lso)
        aborted = self._aborted_spans(aborted_list, self.next_offset)
        while added < max_records and self.next_offset < stable:
            try:
                data = self.log.read(self.next_offset, self.read_bytes)
            except OffsetOutOfRangeError:
                # Retention ran between the reads of the log start and of the data.
                self.next_offset = self.log.log_start_offset
                continue
            if not data:
                break
            # Decoding, filtering and indexing happen in the index (natively without
            # the GIL): per-record Python work here would compete with the event loop.
            count, end = self.index.add_batches(data, self.key[1], self.next_offset, stable, aborted)
            if end is None:
                break
            self.next_offset = max(self.next_offset, end)
            if count:
                self._note_pending(count)
                added += count
            elif self.pending == 0 and self.next_offset > self.committed_offset:
                # Only control or aborted batches: nothing to add, but the checkpoint may move on.
                self._note_pending(1)
        return added

    def lag(self, now_ms: int | None = None) -> IndexLag:
        """Records and seconds the committed index is behind the log's high watermark."""
        return log_lag(self.log, self.committed_offset, now_ms)

    def catch_up(self, *, batch_records: int = 10_000) -> int:
        """Index everything up to the last stable offset now and commit; return the records added."""
        total = 0
        while True:
            added = self.step(batch_records)
            total += added
            if self.pending >= batch_records or added == 0:
                self.commit()
            if added == 0 and self._recheck is None:
                return total

    def close(self) -> None:
        """Commit what is pending and release the index."""
        try:
            self.commit()
        finally:
            self.index.close()

    def abandon(self) -> None:
        """Release the index without committing (its partition is being deleted)."""
        self.pending = 0
        self.index.close()


def log_lag(log: Any, indexed_to: int, now_ms: int | None = None) -> IndexLag:
    """How far an index holding every record below ``indexed_to`` is behind ``log``."""
    end = log.high_watermark
    start = log.log_start_offset
    behind = max(0, end - max(indexed_to, start))
    if behind == 0:
        return IndexLag(0, 0.0)
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    try:
        first = next(iter(log.batch_headers(max(indexed_to, start))), None)
    except OffsetOutOfRangeError:
        first = None
    seconds = 0.0 if first is None else max(0.0, (now_ms - first.first_timestamp) / 1000.0)
    return IndexLag(behind, seconds)


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
            passes those of topics with ``search.index=true``). A partition that leaves
            the list has its index committed and closed (its files stay).
        batch_records: commit once this many records are pending.
        batch_ms: commit once the oldest pending record has waited this long (ms).
        poll_ms: sleep between rounds when every index is caught up (ms).
        pressure_ratio: a WAL queue at least this full (queued appends / queue depth)
            counts as pressure.
        backoff_ms, backoff_max_ms: first and largest delay while under pressure (ms).
        read_bytes: bytes of log read at a time per partition.
        transactions: ``transactions(key, log)`` gives the partition's transaction state
            if someone keeps it (see :class:`PartitionIndex`), else None.
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
        transactions: Callable[[PartitionKey, Any], Any] | None = None,
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
        self._transactions = transactions
        self.stats = IndexerStats()
        self._parts: dict[PartitionKey, PartitionIndex] = {}
        self._rejections: dict[PartitionKey, int] = {}
        #: Partitions being deleted: key -> the log object that must not be indexed again.
        self._gone: dict[PartitionKey, Any] = {}
        # Held for one partition's step at a time, so that forget() waits for at most one.
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._delay_ms = 0.0

    # -- the thread -----------------------------------------------------------------

    @property
    def running(self) -> bool:
        """True while the thread runs."""
        return self._thread is not None and self._thread.is_alive()

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

    def _transactions_of(self, key: PartitionKey, log: Any) -> Callable[[], Any] | None:
        source = self._transactions
        if source is None:
            return None
        return lambda: source(key, log)

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
            current = dict(logs)
            # A deletion mark lasts while the deleted log may still be in a snapshot.
            for key in [k for k, gone in self._gone.items() if current.get(k) is not gone]:
                del self._gone[key]
            # Partitions no longer wanted (search.index turned off, log closed): commit, release.
            for key in [k for k, part in self._parts.items() if current.get(k) is not part.log]:
                part = self._parts.pop(key)
                try:
                    part.close()
                except (StorageError, OSError) as exc:
                    _log.warning("search index %s: %s", part.directory, exc)
        worked = False
        for key, log in logs:
            if self._stop.is_set():
                break
            with self._lock:
                if key in self._gone and self._gone[key] is log:
                    continue
                found = self._parts.get(key)
                if found is not None:
                    part = found
                else:
                    part = PartitionIndex(
                        key, log, read_bytes=self.read_bytes, transactions=self._transactions_of(key, log)
                    )
                    self._parts[key] = part
                try:
                    added = part.step(self.batch_records)
                    self.stats.records_indexed += added
                    if part.due(self.batch_records, self.batch_ms, time.monotonic()):
                        part.commit()
                        self.stats.commits += 1
                        worked = True
                except Exception as exc:  # one partition's failure (an offline log) must not stop the others
                    self.stats.failures += 1
                    self.stats.last_error = f"{key[0]}-{key[1]}: {exc}"
                    _log.warning("search index of %s-%d: %s", key[0], key[1], exc)
                    continue
                worked = worked or added > 0
        self.stats.partitions = len(self._parts)
        return worked

    def forget(self, partitions: Iterable[tuple[PartitionKey, Any]]) -> None:
        """Drop the indexes of partitions about to be deleted, without committing, and
        never index those log objects again: called before their directories go, so that
        nothing is written into them afterwards. Waits for the partition step running
        now, if any."""
        with self._lock:
            for key, log in partitions:
                part = self._parts.pop(key, None)
                if part is not None:
                    try:
                        part.abandon()
                    except (StorageError, OSError) as exc:
                        _log.warning("search index %s: %s", part.directory, exc)
                target = log if log is not None else (part.log if part is not None else None)
                if target is not None:
                    self._gone[key] = target

    def partition_indexes(self, topic: str) -> dict[int, PartitionIndex]:
        """The open indexes of ``topic``'s partitions, by partition (for searching them
        from another thread: their ``index.search`` may run beside the indexer)."""
        parts = dict(self._parts)
        return {key[1]: part for key, part in parts.items() if key[0] == topic}

    def lag(self) -> dict[PartitionKey, IndexLag]:
        """Per partition, how far the committed index is behind the log (no lock taken:
        each figure is read as it is at that moment)."""
        out = {}
        for key, part in list(self._parts.items()):
            try:
                out[key] = part.lag()
            except Exception:  # the log closed or went offline while we looked
                continue
        return out
