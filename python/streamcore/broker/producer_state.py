"""Idempotent producers: producer id allocation and per-partition sequence checks.

:class:`ProducerIdManager` hands out producer ids (InitProducerId). Ids are
unique across restarts: the end of the current block of ids is persisted in
``<data_dir>/producer_ids.json`` before any id of the block is given out (one
fsync per ``block_size`` ids; unused ids of a block are skipped after a restart).

:class:`ProducerStateManager` checks each produced batch's (producer id, epoch,
sequence range) against what that producer last wrote to the partition and
remembers the last five batches per producer, as Kafka does, so a retried batch
is answered with its original offsets instead of being written twice.

Rules (Kafka's ``ProducerStateManager``):

* epoch lower than the producer's current one: INVALID_PRODUCER_EPOCH (47);
* a higher epoch must start at sequence 0, else OUT_OF_ORDER_SEQUENCE_NUMBER (45);
* same epoch: a batch equal (first and last sequence) to one of the last five is
  a DUPLICATE (answer success with its original offsets); otherwise the first
  sequence must follow the last written one (``Int32.MAX`` wraps to 0), else
  OUT_OF_ORDER_SEQUENCE_NUMBER;
* a producer with no state in the partition is accepted at ANY first sequence.
  This is Kafka >= 2.5 (KIP-360): after retention removed a producer's batches
  the broker cannot tell a gap from lost history, so it no longer answers
  UNKNOWN_PRODUCER_ID for that. We answer UNKNOWN_PRODUCER_ID (59) only for a
  producer id this broker never issued (for example after its data directory was
  wiped while a producer kept running): the client then asks for a new id
  rather than writing under an id another producer may be given.

A check reserves its batch at once ("in flight") so that pipelined batches of
one producer (max.in.flight up to 5) are checked against each other before
their appends finish; :meth:`ProducerStateManager.complete` fills in the offsets
after the append, :meth:`ProducerStateManager.abort` withdraws a failed one. A
retry of a batch still in flight gets REQUEST_TIMED_OUT (retriable), and the
retry after it is answered as a duplicate.

State is rebuilt after a restart from the batch headers of a partition's log
(:meth:`ProducerStateManager.rebuild_from_log`, over ``Log.batch_headers``: storage
reads the headers, not the records; this module never opens a segment file).
"""

from __future__ import annotations

import enum
import json
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from streamcore._atomic_file import write_atomic
from streamcore.codec.batch_header import CONTROL_FLAG
from streamcore.errors import ErrorCode

if TYPE_CHECKING:
    from streamcore.storage import Log

__all__ = [
    "InitProducerIdResult",
    "ProducerIdManager",
    "ProducerStateManager",
    "SequenceCheck",
    "SequenceStatus",
    "next_sequence",
]

_INT32_MAX = 2**31 - 1
_MAX_EPOCH = 2**15 - 1
_BATCHES_KEPT = 5

_STATE_FILE = "producer_ids.json"


def next_sequence(sequence: int, increment: int) -> int:
    """``sequence + increment`` wrapping past Int32.MAX to 0, as Kafka counts sequences."""
    if sequence > _INT32_MAX - increment:
        return increment - (_INT32_MAX - sequence) - 1
    return sequence + increment


@dataclass(frozen=True)
class InitProducerIdResult:
    """InitProducerId answer."""

    error_code: int
    producer_id: int = -1
    producer_epoch: int = -1


class ProducerIdManager:
    """Allocates producer ids that stay unique across restarts of the same data directory.

    ``block_size``: ids reserved per persisted write. Transactional ids keep their
    producer id and get the next epoch on each InitProducerId (fencing older
    instances); the mapping is persisted too.
    """

    def __init__(self, data_dir: str | os.PathLike[str], *, block_size: int = 1000) -> None:
        self._dir = Path(data_dir)
        self._dir.mkdir(parents=True, exist_ok=True)
        self._path = self._dir / _STATE_FILE
        self._block_size = block_size
        self._lock = threading.Lock()
        self._transactional: dict[str, tuple[int, int]] = {}
        block_end = 0
        if self._path.exists():
            data = json.loads(self._path.read_text("utf-8"))
            block_end = int(data["block_end"])
            self._transactional = {
                k: (int(v[0]), int(v[1])) for k, v in data.get("transactional", {}).items()
            }
        self._next = block_end
        self._block_end = block_end

    @property
    def next_producer_id(self) -> int:
        """The id the next InitProducerId will get."""
        return self._next

    def is_issued(self, producer_id: int) -> bool:
        """True for any id this data directory may have handed out (below the persisted block end)."""
        return 0 <= producer_id < max(self._block_end, self._next)

    def observe(self, producer_id: int) -> None:
        """Make sure future ids are above ``producer_id`` (seen in a log during recovery)."""
        with self._lock:
            if producer_id >= self._next:
                self._next = producer_id + 1
                if self._next > self._block_end:
                    self._persist(self._next)

    def _persist(self, block_end: int) -> None:
        data = {"version": 1, "block_end": block_end, "transactional": self._transactional}
        # The directory fsync matters: without it a crash may forget the rename, and
        # ids of the new block would be handed out again after the restart.
        write_atomic(self._path, json.dumps(data))
        self._block_end = block_end

    def _allocate(self) -> int:
        if self._next >= self._block_end:
            self._persist(self._next + self._block_size)
        pid = self._next
        self._next += 1
        return pid

    def init_producer_id(
        self,
        transactional_id: str | None = None,
        *,
        producer_id: int = -1,
        producer_epoch: int = -1,
    ) -> InitProducerIdResult:
        """InitProducerId. Without a transactional id: a fresh id at epoch 0 every time
        (Kafka does the same, even when v3+ passes the old id and epoch).

        With one: the same id at the next epoch (a new id once the epoch would pass
        32767). When v3+ passes ``producer_id``/``producer_epoch`` they must match the
        current ones (or the previous epoch, a retried bump), else INVALID_PRODUCER_EPOCH.
        """
        with self._lock:
            if not transactional_id:
                return InitProducerIdResult(ErrorCode.NO_ERROR.code, self._allocate(), 0)
            current = self._transactional.get(transactional_id)
            if current is not None and producer_id >= 0:
                pid, epoch = current
                if producer_id == pid and producer_epoch == epoch - 1:
                    return InitProducerIdResult(ErrorCode.NO_ERROR.code, pid, epoch)
                if (producer_id, producer_epoch) != current:
                    return InitProducerIdResult(ErrorCode.INVALID_PRODUCER_EPOCH.code)
            if current is None or current[1] >= _MAX_EPOCH - 1:
                new = (self._allocate(), 0)
            else:
                new = (current[0], current[1] + 1)
            self._transactional[transactional_id] = new
            self._persist(max(self._block_end, self._next))
            return InitProducerIdResult(ErrorCode.NO_ERROR.code, *new)


class SequenceStatus(enum.Enum):
    """Outcome of a sequence check."""

    NEW = "new"  # append it, then call complete() (or abort() if the append fails)
    DUPLICATE = "duplicate"  # already written: answer success with base_offset/last_offset
    IN_FLIGHT = "in_flight"  # same batch still being appended: answer error_code (retriable)
    ERROR = "error"  # refuse with error_code


@dataclass(frozen=True)
class SequenceCheck:
    """Result of :meth:`ProducerStateManager.check_and_record`."""

    status: SequenceStatus
    error_code: int = ErrorCode.NO_ERROR.code
    base_offset: int = -1
    last_offset: int = -1
    #: pass to complete()/abort() when status is NEW
    token: Any = None


@dataclass
class _BatchMeta:
    first_seq: int
    last_seq: int
    base_offset: int = -1
    last_offset: int = -1
    pending: bool = False


@dataclass
class _ProducerEntry:
    epoch: int
    batches: deque[_BatchMeta] = field(default_factory=lambda: deque(maxlen=_BATCHES_KEPT))
    last_write_ms: int = 0


@dataclass(frozen=True)
class _Token:
    key: Hashable
    producer_id: int
    entry: _ProducerEntry
    batch: _BatchMeta


class BatchHeaderFields(Protocol):
    """What rebuilding needs of a batch header (``streamcore.storage.BatchHeader`` has it all)."""

    @property
    def base_offset(self) -> int: ...
    @property
    def last_offset_delta(self) -> int: ...
    @property
    def max_timestamp(self) -> int: ...
    @property
    def producer_id(self) -> int: ...
    @property
    def producer_epoch(self) -> int: ...
    @property
    def base_sequence(self) -> int: ...
    @property
    def attributes(self) -> int: ...


class ProducerStateManager:
    """Sequence state of idempotent producers, per partition.

    ``partition_key`` is any hashable the caller chooses, e.g. ``(topic, partition)``.
    ``is_issued(producer_id)`` (normally ``ProducerIdManager.is_issued``) lets
    never-issued ids be refused with UNKNOWN_PRODUCER_ID; None accepts any id.
    """

    def __init__(self, *, is_issued: Callable[[int], bool] | None = None) -> None:
        self.is_issued = is_issued
        self._state: dict[Hashable, dict[int, _ProducerEntry]] = {}

    def producers(self, partition_key: Hashable) -> dict[int, int]:
        """producer id -> current epoch for one partition."""
        return {pid: e.epoch for pid, e in self._state.get(partition_key, {}).items()}

    def describe(self, partition_key: Hashable) -> list[tuple[int, int, int, int]]:
        """DescribeProducers for one partition: (producer id, epoch, last sequence, last timestamp ms).

        Sorted by producer id; the last sequence is that of the newest batch written
        (-1 if none), the timestamp the newest batch's max timestamp when rebuilt from
        the log, else the broker's clock at the producer's last write.
        """
        out = []
        for pid, entry in sorted(self._state.get(partition_key, {}).items()):
            written = [b for b in entry.batches if not b.pending]
            last_seq = written[-1].last_seq if written else -1
            out.append((pid, entry.epoch, last_seq, entry.last_write_ms if written else -1))
        return out

    def last_sequence(self, partition_key: Hashable, producer_id: int) -> int | None:
        """Last sequence recorded for a producer in a partition, None if unknown."""
        entry = self._state.get(partition_key, {}).get(producer_id)
        if entry is None or not entry.batches:
            return None
        return entry.batches[-1].last_seq

    def check_and_record(
        self,
        partition_key: Hashable,
        producer_id: int,
        producer_epoch: int,
        base_sequence: int,
        last_offset_delta: int,
        now_ms: int | None = None,
    ) -> SequenceCheck:
        """Check a batch before appending it; see the module doc for the rules.

        ``producer_id < 0`` (not idempotent) is always NEW and not tracked.
        """
        if producer_id < 0:
            return SequenceCheck(SequenceStatus.NEW)
        now = int(time.time() * 1000) if now_ms is None else now_ms
        last_seq = next_sequence(base_sequence, last_offset_delta)
        producers = self._state.setdefault(partition_key, {})
        entry = producers.get(producer_id)
        if entry is None:
            if self.is_issued is not None and not self.is_issued(producer_id):
                return SequenceCheck(SequenceStatus.ERROR, ErrorCode.UNKNOWN_PRODUCER_ID.code)
            entry = _ProducerEntry(producer_epoch)
            producers[producer_id] = entry
        elif producer_epoch < entry.epoch:
            return SequenceCheck(SequenceStatus.ERROR, ErrorCode.INVALID_PRODUCER_EPOCH.code)
        elif producer_epoch > entry.epoch:
            if base_sequence != 0:
                return SequenceCheck(SequenceStatus.ERROR, ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER.code)
            entry.epoch = producer_epoch
            entry.batches.clear()
        else:
            for b in entry.batches:
                if b.first_seq == base_sequence and b.last_seq == last_seq:
                    if b.pending:
                        return SequenceCheck(SequenceStatus.IN_FLIGHT, ErrorCode.REQUEST_TIMED_OUT.code)
                    return SequenceCheck(
                        SequenceStatus.DUPLICATE, ErrorCode.NO_ERROR.code, b.base_offset, b.last_offset
                    )
            if entry.batches:
                previous = entry.batches[-1].last_seq
                if base_sequence != next_sequence(previous, 1):
                    return SequenceCheck(SequenceStatus.ERROR, ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER.code)
        batch = _BatchMeta(base_sequence, last_seq, pending=True)
        entry.batches.append(batch)
        entry.last_write_ms = now
        return SequenceCheck(SequenceStatus.NEW, token=_Token(partition_key, producer_id, entry, batch))

    def complete(self, token: Any, base_offset: int, last_offset: int) -> None:
        """Record where a NEW batch landed (after its append succeeded)."""
        if token is None:
            return
        token.batch.base_offset = base_offset
        token.batch.last_offset = last_offset
        token.batch.pending = False

    def abort(self, token: Any) -> None:
        """Withdraw a NEW batch whose append failed, so the producer's retry is accepted."""
        if token is None:
            return
        entry: _ProducerEntry = token.entry
        try:
            entry.batches.remove(token.batch)
        except ValueError:
            return  # already dropped by an epoch bump
        producers = self._state.get(token.key, {})
        if not entry.batches and producers.get(token.producer_id) is entry:
            del producers[token.producer_id]

    def forget_partition(self, partition_key: Hashable) -> None:
        """Drop a partition's state (topic deleted)."""
        self._state.pop(partition_key, None)

    def expire(self, now_ms: int, max_idle_ms: int = 86_400_000) -> int:
        """Forget producers idle for ``max_idle_ms`` (Kafka's producer.id.expiration.ms, 1 day); returns count."""
        removed = 0
        for producers in self._state.values():
            for pid in [p for p, e in producers.items() if e.last_write_ms < now_ms - max_idle_ms]:
                if not any(b.pending for b in producers[pid].batches):
                    del producers[pid]
                    removed += 1
        return removed

    # ------------------------------------------------------------------ recovery

    def rebuild_from_headers(self, partition_key: Hashable, headers: Iterable[BatchHeaderFields]) -> int:
        """Replace a partition's state with what these batch headers (in log order) imply.

        Returns the largest producer id seen (-1 if none), for ``ProducerIdManager.observe``.
        """
        producers: dict[int, _ProducerEntry] = {}
        max_pid = -1
        for h in headers:
            if h.producer_id < 0:
                continue
            max_pid = max(max_pid, h.producer_id)
            entry = producers.get(h.producer_id)
            if h.attributes & CONTROL_FLAG:
                # A transaction marker carries the producer's epoch but no sequence: it
                # must not become the producer's last batch (the next sequence would be
                # checked against the marker's and refused).
                if entry is None or h.producer_epoch > entry.epoch:
                    producers[h.producer_id] = _ProducerEntry(h.producer_epoch)
                continue
            if entry is None or h.producer_epoch > entry.epoch:
                entry = _ProducerEntry(h.producer_epoch)
                producers[h.producer_id] = entry
            elif h.producer_epoch < entry.epoch:
                continue
            entry.batches.append(
                _BatchMeta(
                    h.base_sequence,
                    next_sequence(h.base_sequence, h.last_offset_delta),
                    h.base_offset,
                    h.base_offset + h.last_offset_delta,
                )
            )
            entry.last_write_ms = max(entry.last_write_ms, h.max_timestamp)
        self._state[partition_key] = producers
        return max_pid

    def rebuild_from_log(self, partition_key: Hashable, log: Log) -> int:
        """Rebuild a partition's state from its log's batch headers (``Log.batch_headers``).

        Returns the largest producer id seen (-1 if none).
        """
        return self.rebuild_from_headers(partition_key, log.batch_headers())
