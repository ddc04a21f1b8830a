"""A partition's transaction state: where open transactions start, and which were aborted.

Transactional producers write record batches with the transactional flag; the
transaction coordinator later ends each transaction in each of its partitions with
a control batch (a COMMIT or ABORT marker). From those two kinds of batches follow:

* the *open transactions* of the partition: producer id -> offset of the first
  batch of its current transaction. The smallest of those offsets is the partition's
  first unstable offset; the last stable offset (LSO) is that, or the high watermark
  when nothing is open. A read_committed consumer reads only below the LSO.
* the *aborted transactions*: (producer id, first offset, last offset, LSO just after
  the abort). Fetch hands a read_committed consumer the ones overlapping what it
  reads, so that the consumer drops their batches.

:class:`PartitionTxnState` keeps both in memory for one partition log and persists
the aborted list in ``<partition dir>/transactions.txnindex``: Kafka's
``AbortedTxn`` records, 34 bytes each (int16 version 0, int64 producer id, int64
first offset, int64 last offset, int64 last stable offset). Kafka keeps one such
file per segment; here there is one per partition, and entries below the log start
are dropped when the file is next rewritten.

Crash safety. The log is the truth: everything here can be rebuilt from the batch
headers (``Log.batch_headers``; the flags and producer id are in the header, the
marker's COMMIT/ABORT type in its one record's key, read with ``Log.read``). A
snapshot, ``<partition dir>/transactions.snapshot`` (written with
``write_atomic``), records how far the log had been scanned (``indexed_to``), how
many index entries were complete and fsynced then, and the open transactions at that
offset. Opening loads the snapshot when it is consistent with the log (its
``indexed_to`` not above the recovered high watermark: recovery only ever cuts a
log's tail, so everything below survives unchanged), keeps that many index entries,
scans the headers from ``indexed_to`` on, rewrites the index and writes a new
snapshot. Without a usable snapshot it scans the whole log. Entries appended after
the snapshot (one per abort, not fsynced) are thus redundant with the log and are
rebuilt by the next opening's scan if a crash tore them.

A partition that never saw a transactional batch gets no files at all.

Compaction. The log cleaner (``storage/cleaner.py``) removes aborted data and, once
a transaction has no batch left, its marker (Kafka's rules). It reads the state
through :meth:`PartitionTxnState.cleaner_view` and, before swapping in segments
without them, drops the index entries of aborted transactions whose data is gone
(:meth:`PartitionTxnState.drop_aborted`): an entry whose marker is gone would make a
read_committed consumer skip the producer's later committed batches. Both may be
called from the cleaner's thread; a lock orders them with the owner's updates.
Dropping rewrites the index file and deletes the snapshot (the next opening then
scans the whole log): a snapshot could name a transaction open at its
``indexed_to`` whose marker the cleaner later removed. A marker the cleaner emptied
(kept as a header without records) ends its producer's open transaction when
scanned, without an index entry. :class:`TransactionScan` follows a log's headers
for a cleaner that has no owner's state to ask (a log used without the broker).

Nothing here checks who may write what: that is the broker's job (the transaction
coordinator and the produce path). This module only follows the log.
"""

from __future__ import annotations

import json
import logging
import os
import struct
import threading
from collections.abc import Iterable
from typing import Any, NamedTuple

from streamcore._atomic_file import fsync_dir, write_atomic
from streamcore.codec import decode_batches
from streamcore.codec.batch_header import CONTROL_FLAG, TRANSACTIONAL_FLAG
from streamcore.errors import CorruptRecordError, OffsetOutOfRangeError, StorageError

__all__ = [
    "ABORTED_TXN",
    "CONTROL_ABORT",
    "CONTROL_COMMIT",
    "CONTROL_KEY",
    "CONTROL_VALUE",
    "INDEX_FILE",
    "SNAPSHOT_FILE",
    "AbortedTxn",
    "PartitionTxnState",
    "TransactionScan",
    "control_type",
    "entries_from_bytes",
]

logger = logging.getLogger("streamcore.storage")

#: One aborted-transaction entry: version, producer id, first, last and last stable offset.
ABORTED_TXN = struct.Struct(">hqqqq")
_ENTRY_VERSION = 0

#: A control record's key: int16 version (0), int16 type (0 ABORT, 1 COMMIT).
CONTROL_KEY = struct.Struct(">hh")
#: An end-transaction marker's value: int16 version (0), int32 coordinator epoch.
CONTROL_VALUE = struct.Struct(">hi")
CONTROL_ABORT = 0
CONTROL_COMMIT = 1

INDEX_FILE = "transactions.txnindex"
SNAPSHOT_FILE = "transactions.snapshot"
_SNAPSHOT_VERSION = 1
#: A scan this long (batches) leaves a snapshot even for a partition without transactions.
_SNAPSHOT_AFTER_BATCHES = 10_000


class AbortedTxn(NamedTuple):
    """An aborted transaction of one producer in one partition (offsets inclusive)."""

    producer_id: int
    #: Offset of the transaction's first batch in the partition.
    first_offset: int
    #: Offset of its ABORT marker.
    last_offset: int
    #: The partition's last stable offset once this abort was written.
    last_stable_offset: int


def control_type(key: bytes | None) -> int | None:
    """The type a control record's key names (CONTROL_ABORT, CONTROL_COMMIT or another
    Kafka control type), or None for a key too short to be one."""
    if key is None or len(key) < CONTROL_KEY.size:
        return None
    return CONTROL_KEY.unpack_from(key, 0)[1]


#: What :func:`_read_marker_type` answers for a control batch without records.
_EMPTIED = -1


def _read_marker_type(log: Any, offset: int) -> int | None:
    """The control type of the control batch at ``offset``: ``_EMPTIED`` for one without
    records (the cleaner empties a marker once its transaction's data is gone), None
    when unreadable."""
    try:
        batches = decode_batches(log.read(offset, 1))
    except (CorruptRecordError, OffsetOutOfRangeError):
        return None
    for batch in batches:
        if batch.base_offset <= offset <= batch.last_offset:
            return control_type(batch.records[0].key) if batch.records else _EMPTIED
    return None


def _follow(
    log: Any, from_offset: int, end: int, ongoing: dict[int, int], aborted: list[AbortedTxn]
) -> tuple[int, int]:
    """Follow every transactional and control batch of ``log`` in [from_offset, end),
    updating ``ongoing`` and ``aborted``; returns (batches read, offset reached)."""
    if from_offset >= end:
        return 0, from_offset
    count = 0
    reached = from_offset
    for h in log.batch_headers(from_offset):
        if h.base_offset >= end:
            break
        count += 1
        reached = h.base_offset + h.last_offset_delta + 1
        if h.producer_id < 0:
            continue
        if h.attributes & CONTROL_FLAG:
            kind = _read_marker_type(log, h.base_offset)
            if kind in (CONTROL_ABORT, CONTROL_COMMIT):
                first = ongoing.pop(h.producer_id, None)
                if first is not None and kind == CONTROL_ABORT:
                    stable = h.base_offset + 1 if not ongoing else min(ongoing.values())
                    aborted.append(AbortedTxn(h.producer_id, first, h.base_offset, stable))
            elif kind == _EMPTIED:
                # Its transaction's batches were all gone when the cleaner emptied it;
                # a transaction still open here (from a snapshot) ended at it.
                ongoing.pop(h.producer_id, None)
        elif h.attributes & TRANSACTIONAL_FLAG:
            ongoing.setdefault(h.producer_id, h.base_offset)
    return count, reached


def _without(aborted: list[AbortedTxn], entries: Iterable[Any]) -> list[AbortedTxn]:
    """``aborted`` less the entries naming the same (producer id, first, last offset)."""
    gone = {(int(e[0]), int(e[1]), int(e[2])) for e in entries}
    if not gone:
        return aborted
    return [t for t in aborted if (t.producer_id, t.first_offset, t.last_offset) not in gone]


class PartitionTxnState:
    """Open and aborted transactions of one partition log (see the module doc).

    ``log``: the partition's :class:`streamcore.storage.Log` (anything with
    ``directory``, ``high_watermark``, ``log_start_offset``, ``batch_headers`` and
    ``read``). :meth:`load` must run before use, while nothing appends to the log.
    """

    __slots__ = ("_aborted", "_dir", "_file", "_lock", "_log", "_ongoing", "_persisted")

    def __init__(self, log: Any) -> None:
        self._log = log
        # The owner updates the state on its thread; the cleaner reads and drops entries
        # on its own (cleaner_view, drop_aborted).
        self._lock = threading.RLock()
        self._dir = os.fspath(log.directory)
        #: producer id -> offset of the first batch of its open transaction
        self._ongoing: dict[int, int] = {}
        #: sorted by last offset (markers are appended in offset order)
        self._aborted: list[AbortedTxn] = []
        self._file: Any = None
        #: True once this partition has transaction files on disk
        self._persisted = False

    # ------------------------------------------------------------------ queries

    @property
    def log(self) -> Any:
        return self._log

    def ongoing(self) -> dict[int, int]:
        """producer id -> first offset of each open transaction (a copy)."""
        return dict(self._ongoing)

    def open_transaction(self, producer_id: int) -> int | None:
        """First offset of ``producer_id``'s open transaction here, None when it has none."""
        return self._ongoing.get(producer_id)

    def first_unstable_offset(self) -> int | None:
        """Offset of the earliest open transaction's first batch, None when none is open."""
        return min(self._ongoing.values()) if self._ongoing else None

    def last_stable_offset(self, high_watermark: int | None = None) -> int:
        """The LSO: the first unstable offset, capped by the high watermark (the log's
        current one unless given)."""
        hw = self._log.high_watermark if high_watermark is None else high_watermark
        first = self.first_unstable_offset()
        return hw if first is None else min(first, hw)

    def aborted(self) -> list[AbortedTxn]:
        """Every aborted transaction known (a copy), in marker order."""
        return list(self._aborted)

    def collect_aborted(self, fetch_offset: int, upper_offset: int) -> list[AbortedTxn]:
        """Aborted transactions that may have batches in [``fetch_offset``, ``upper_offset``):
        those ending at or after ``fetch_offset`` and starting below ``upper_offset``."""
        out = []
        for txn in self._aborted:
            if txn.last_offset >= fetch_offset and txn.first_offset < upper_offset:
                out.append(txn)
            # Kafka's early stop: nothing aborted later can start below an offset that
            # was already stable when this abort was written.
            if txn.last_stable_offset >= upper_offset:
                break
        return out

    # ------------------------------------------------------------------ following appends

    def begin(self, producer_id: int, first_offset: int) -> bool:
        """Record that ``producer_id`` opened a transaction at ``first_offset``; False (and
        nothing changes) when it already has one open here."""
        with self._lock:
            if producer_id in self._ongoing:
                return False
            self._ongoing[producer_id] = first_offset
            return True

    def move_start(self, producer_id: int, first_offset: int) -> None:
        """Replace an open transaction's first offset (a provisional one becomes exact)."""
        with self._lock:
            if producer_id in self._ongoing:
                self._ongoing[producer_id] = first_offset

    def drop(self, producer_id: int) -> None:
        """Forget an open transaction that never reached the log (its only append failed)."""
        with self._lock:
            self._ongoing.pop(producer_id, None)

    def end(self, producer_id: int, marker_offset: int, commit: bool) -> AbortedTxn | None:
        """A COMMIT/ABORT marker of ``producer_id`` was written at ``marker_offset``.

        Closes its open transaction (a marker for a producer with nothing open here
        changes nothing, as in Kafka). For an abort, returns the new index entry after
        appending it to the index file (not fsynced; the snapshot protocol makes that
        safe). Raises StorageError if the index file cannot be written: the entry stays
        in memory and the next opening rebuilds the file from the log.
        """
        with self._lock:
            first = self._ongoing.pop(producer_id, None)
            if first is None or commit:
                return None
            entry = AbortedTxn(producer_id, first, marker_offset, self._stable_after(marker_offset))
            self._aborted.append(entry)
            self._append_entry(entry)
            return entry

    def _stable_after(self, marker_offset: int) -> int:
        first = self.first_unstable_offset()
        return marker_offset + 1 if first is None else first

    def retain_from(self, log_start_offset: int) -> int:
        """Forget aborted transactions wholly below ``log_start_offset`` (retention,
        DeleteRecords); returns how many. The file keeps them until it is rewritten."""
        with self._lock:
            keep = [t for t in self._aborted if t.last_offset >= log_start_offset]
            removed = len(self._aborted) - len(keep)
            self._aborted = keep
            return removed

    # ------------------------------------------------------------------ the cleaner

    def cleaner_view(self) -> tuple[int, list[AbortedTxn]]:
        """(last stable offset, aborted transactions), taken together: the log cleaner
        cleans only below the LSO, with these entries. Safe from any thread."""
        with self._lock:
            return self.last_stable_offset(), list(self._aborted)

    def drop_aborted(self, entries: Iterable[Any], markers_removed: bool = False) -> int:
        """Forget the aborted transactions ``entries`` (anything indexable as producer id,
        first offset, last offset) whose batches the cleaner found gone, before it swaps
        in segments without their markers; returns how many were dropped. When entries
        were dropped or ``markers_removed`` (a pass removed markers), the files are
        brought in line: the index is rewritten and the snapshot deleted, so that the
        next opening rescans the log. Safe from any thread. Raises StorageError when
        the files cannot be changed (memory is already updated; the caller must not
        remove markers then)."""
        with self._lock:
            keep = _without(self._aborted, entries)
            dropped = len(self._aborted) - len(keep)
            self._aborted = keep
            if not (dropped or markers_removed) or not self._persisted:
                return dropped
            self._close_file()
            try:
                try:
                    os.unlink(os.path.join(self._dir, SNAPSHOT_FILE))
                except FileNotFoundError:
                    pass
                write_atomic(
                    os.path.join(self._dir, INDEX_FILE),
                    b"".join(ABORTED_TXN.pack(_ENTRY_VERSION, *t) for t in self._aborted),
                )
            except OSError as exc:
                raise StorageError(f"cannot rewrite the transaction index of {self._dir}: {exc}") from exc
            return dropped

    # ------------------------------------------------------------------ persistence

    def _append_entry(self, entry: AbortedTxn) -> None:
        try:
            if self._file is None:
                self._file = open(os.path.join(self._dir, INDEX_FILE), "ab")
                self._persisted = True
            self._file.write(ABORTED_TXN.pack(_ENTRY_VERSION, *entry))
            self._file.flush()
        except OSError as exc:
            self._close_file()
            raise StorageError(f"cannot append to {self._dir}/{INDEX_FILE}: {exc}") from exc

    def _close_file(self) -> None:
        if self._file is not None:
            try:
                self._file.close()
            except OSError:
                pass
            self._file = None

    def close(self) -> None:
        """Close the index file (entries written since the last snapshot are rebuilt if torn)."""
        with self._lock:
            self._close_file()

    def _read_snapshot(self) -> tuple[int, int, dict[int, int]] | None:
        path = os.path.join(self._dir, SNAPSHOT_FILE)
        try:
            with open(path, encoding="utf-8") as fh:
                data = json.load(fh)
            if data.get("version") != _SNAPSHOT_VERSION:
                return None
            indexed_to = int(data["indexed_to"])
            entries = int(data["entries"])
            ongoing = {int(pid): int(first) for pid, first in data["ongoing"]}
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            logger.warning("ignoring unreadable %s (rebuilding from the log): %s", path, exc)
            return None
        return indexed_to, entries, ongoing

    def _read_entries(self, count: int) -> list[AbortedTxn] | None:
        path = os.path.join(self._dir, INDEX_FILE)
        size = ABORTED_TXN.size
        try:
            with open(path, "rb") as fh:
                raw = fh.read(count * size)
        except FileNotFoundError:
            raw = b""
        except OSError as exc:
            logger.warning("cannot read %s (rebuilding from the log): %s", path, exc)
            return None
        if len(raw) < count * size:
            return None
        out = []
        for i in range(count):
            version, *fields = ABORTED_TXN.unpack_from(raw, i * size)
            if version != _ENTRY_VERSION:
                return None
            out.append(AbortedTxn(*fields))
        return out

    def start_if_new(self) -> bool:
        """Take the empty state without reading the log, when that is certainly its state:
        the log was empty when it was opened (``recovery_report["end_offset"]`` 0) and no
        transaction files are in its directory. True when taken; False when
        :meth:`load` is needed.

        The caller (``TransactionalPartitions.state``) asks only for a log whose state no
        one has loaded since it was opened, and every transactional write loads the
        state first, so such a log holds no transactional batch; its scan would find
        nothing, however long the log has grown meanwhile (a topic created while the
        broker runs, then produced to, then fetched: the first fetch would otherwise
        read every batch header on the event loop).
        """
        report = getattr(self._log, "recovery_report", None) or {}
        if report.get("end_offset") != 0:
            return False
        if any(os.path.exists(os.path.join(self._dir, f)) for f in (INDEX_FILE, SNAPSHOT_FILE)):
            return False  # files of an earlier life: load() judges (and replaces) them
        with self._lock:
            self._close_file()
            self._ongoing, self._aborted = {}, []
        return True

    def load(self) -> dict[str, int]:
        """Build the state from the snapshot (when usable) and the log's headers after it,
        then persist it; returns what was done: ``from_offset`` (where the scan began),
        ``scanned_batches``, ``aborted`` and ``ongoing`` (counts).

        Raises StorageError when the files cannot be written; the in-memory state is
        complete anyway.
        """
        with self._lock:
            return self._load()

    def _load(self) -> dict[str, int]:
        self._close_file()
        log = self._log
        start, hw = log.log_start_offset, log.high_watermark
        snapshot = self._read_snapshot()
        ongoing: dict[int, int] = {}
        aborted: list[AbortedTxn] = []
        scan_from = start
        used = False
        if snapshot is not None:
            self._persisted = True
            indexed_to, count, snap_ongoing = snapshot
            entries = self._read_entries(count) if indexed_to <= hw else None
            if entries is not None:
                used = True
                aborted = entries
                ongoing = snap_ongoing
                scan_from = max(indexed_to, start)
        elif os.path.exists(os.path.join(self._dir, INDEX_FILE)):
            self._persisted = True
        self._ongoing, self._aborted = ongoing, aborted
        scanned = self._scan(scan_from, hw)
        self.retain_from(start)
        if used:
            # Only the index prefix the snapshot counts is trusted; a new snapshot is
            # due once the scan went further.
            write = scan_from < hw
        elif snapshot is not None:
            write = True  # a snapshot that does not fit the log must go
        else:
            # Files are worth writing for a partition with transactions, or when they spare
            # the next opening a long scan; a short log without any is cheaper to rescan.
            write = (
                self._persisted or bool(self._ongoing or self._aborted) or scanned >= _SNAPSHOT_AFTER_BATCHES
            )
        if write:
            self._write_files(hw)
        return {
            "from_offset": scan_from,
            "scanned_batches": scanned,
            "aborted": len(self._aborted),
            "ongoing": len(self._ongoing),
        }

    def _scan(self, from_offset: int, end: int) -> int:
        """Follow every transactional and control batch in [from_offset, end)."""
        return _follow(self._log, from_offset, end, self._ongoing, self._aborted)[0]

    def _write_files(self, indexed_to: int) -> None:
        """Rewrite the index with the current entries, then the snapshot naming them."""
        index_path = os.path.join(self._dir, INDEX_FILE)
        snapshot_path = os.path.join(self._dir, SNAPSHOT_FILE)
        try:
            # The old snapshot goes first: until the new one exists, a crash leaves no
            # snapshot (a full rebuild) rather than one counting entries of another file.
            try:
                os.unlink(snapshot_path)
            except FileNotFoundError:
                pass
            write_atomic(index_path, b"".join(ABORTED_TXN.pack(_ENTRY_VERSION, *t) for t in self._aborted))
            snapshot = {
                "version": _SNAPSHOT_VERSION,
                "indexed_to": indexed_to,
                "entries": len(self._aborted),
                "ongoing": sorted(self._ongoing.items()),
            }
            write_atomic(snapshot_path, json.dumps(snapshot))
            self._persisted = True
        except OSError as exc:
            raise StorageError(f"cannot write the transaction index of {self._dir}: {exc}") from exc

    @staticmethod
    def remove_files(directory: str | os.PathLike[str]) -> None:
        """Delete a partition directory's transaction files (tests, tools)."""
        removed = False
        for name in (INDEX_FILE, SNAPSHOT_FILE):
            try:
                os.unlink(os.path.join(directory, name))
                removed = True
            except FileNotFoundError:
                pass
        if removed:
            fsync_dir(directory)


class TransactionScan:
    """A log's open and aborted transactions followed from its batch headers, in memory.

    For the log cleaner when nobody keeps a :class:`PartitionTxnState` it could ask (a
    log used without the broker): :meth:`cleaner_view` reads the headers appended
    since the last call (the first call reads the whole log) up to the high
    watermark. :meth:`drop_aborted` forgets entries in memory and, when the partition
    directory has transaction files (a broker wrote them), deletes them: the broker's
    next opening rebuilds them from the log.
    """

    def __init__(self, log: Any) -> None:
        self.log = log
        self._ongoing: dict[int, int] = {}
        self._aborted: list[AbortedTxn] = []
        self._to = -1

    def cleaner_view(self) -> tuple[int, list[AbortedTxn]]:
        """(last stable offset, aborted transactions) as the log's headers have them."""
        log = self.log
        start, hw = log.log_start_offset, log.high_watermark
        if self._to < start:
            # First call, or retention passed what was read: everything below the log
            # start is gone, so start over there.
            self._ongoing, self._aborted = {}, []
            self._to = start
        _count, self._to = _follow(log, self._to, hw, self._ongoing, self._aborted)
        self._aborted = [t for t in self._aborted if t.last_offset >= start]
        first = min(self._ongoing.values()) if self._ongoing else None
        return (hw if first is None else min(first, hw)), list(self._aborted)

    def drop_aborted(self, entries: Iterable[Any], markers_removed: bool = False) -> int:
        """Forget ``entries``; see :meth:`PartitionTxnState.drop_aborted`."""
        keep = _without(self._aborted, entries)
        dropped = len(self._aborted) - len(keep)
        self._aborted = keep
        if dropped or markers_removed:
            directory = os.fspath(self.log.directory)
            if any(os.path.exists(os.path.join(directory, n)) for n in (INDEX_FILE, SNAPSHOT_FILE)):
                try:
                    PartitionTxnState.remove_files(directory)
                except OSError as exc:
                    raise StorageError(f"cannot remove the transaction files of {directory}: {exc}") from exc
        return dropped


def entries_from_bytes(raw: bytes) -> Iterable[AbortedTxn]:
    """Decode back-to-back index entries (a trailing partial one is ignored)."""
    size = ABORTED_TXN.size
    for at in range(0, len(raw) - size + 1, size):
        _version, *fields = ABORTED_TXN.unpack_from(raw, at)
        yield AbortedTxn(*fields)
