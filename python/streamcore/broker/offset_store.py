"""Committed consumer offsets, in memory and durable in ``__consumer_offsets`` partition 0.

Each commit appends one record batch to the internal log before it is
acknowledged; the in-memory table is rebuilt from that log at start. Records use
Kafka's own ``__consumer_offsets`` layout, so the log is readable by Kafka tools:

* key (version 1): ``int16 version, string group, string topic, int32 partition``
* value (version 3): ``int16 version, int64 offset, int32 leader_epoch, string metadata,
  int64 commit_timestamp``; a deletion is a tombstone (null value).

(``string`` = int16 length + UTF-8.) The topic is compacted, as Kafka's is: the
log cleaner keeps the latest record per key (group, topic, partition), and the
tombstones of deleted or expired offsets go after ``delete.retention.ms``, so the
log (and the replay at start) stays proportional to the live offsets. Record
timestamps never go backwards.

Commit validation (generation, member id, static-member fencing) is delegated to
a ``validator(group_id, generation_id, member_id, group_instance_id) -> error
code`` -- normally :meth:`GroupCoordinator.validate_commit`.

Transactional commits (TxnOffsetCommit) are appended the same way but as a
transactional batch of the producer (its id and epoch, the transactional bit set)
and kept *pending* per producer id: fetches do not see them. When the transaction
coordinator has written the producer's COMMIT marker to this log it calls
:meth:`OffsetStore.complete_transaction`, which makes them the committed offsets;
after an ABORT marker they are dropped. Replay follows the same records: a
transactional batch is pending until the marker after it. A plain commit of a
partition made while a transactional one is pending wins over it (it is later in the
log, as in Kafka), so the pending one is dropped then.
"""

from __future__ import annotations

import logging
import struct
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from streamcore.codec import decode_batches, encode_batch
from streamcore.codec.batch_header import CONTROL_FLAG, TRANSACTIONAL_FLAG
from streamcore.errors import ErrorCode, StreamcoreError

__all__ = ["CommittedOffset", "OffsetStore", "OffsetCommitItem", "encode_offset_key", "encode_offset_value"]

logger = logging.getLogger("streamcore.broker")

_KEY_VERSION = 1
# A control record's key (transaction markers): int16 version 0, int16 type.
_CONTROL_KEY = struct.Struct(">hh")
_CONTROL_COMMIT = 1
_CONTROL_ABORT = 0
_VALUE_VERSION = 3
_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")
_VALUE_HEAD = struct.Struct(">hqi")  # version, offset, leader epoch
_I64 = struct.Struct(">q")
_RECORDS_PER_BATCH = 1000
_READ_CHUNK = 4 * 1024 * 1024

_NONE = ErrorCode.NO_ERROR.code

#: (topic, partition, offset, leader_epoch, metadata) as an OffsetCommit request lists them.
OffsetCommitItem = tuple[str, int, int, int, "str | None"]


@dataclass(frozen=True)
class CommittedOffset:
    """A committed position: ``offset`` (next record to read), ``leader_epoch`` (-1 unknown),
    client ``metadata`` and ``commit_timestamp_ms`` (ms since the epoch)."""

    offset: int
    leader_epoch: int
    metadata: str
    commit_timestamp_ms: int


def _string(text: str) -> bytes:
    raw = text.encode("utf-8")
    return _I16.pack(len(raw)) + raw


def _read_string(buf: bytes, pos: int) -> tuple[str, int]:
    (n,) = _I16.unpack_from(buf, pos)
    pos += 2
    if n < 0:
        return "", pos
    if pos + n > len(buf):
        raise ValueError("string runs past the end")
    return buf[pos : pos + n].decode("utf-8"), pos + n


def encode_offset_key(group: str, topic: str, partition: int) -> bytes:
    """Kafka's offset-commit key, version 1."""
    return _I16.pack(_KEY_VERSION) + _string(group) + _string(topic) + _I32.pack(partition)


def encode_offset_value(entry: CommittedOffset) -> bytes:
    """Kafka's offset-commit value, version 3."""
    return (
        _VALUE_HEAD.pack(_VALUE_VERSION, entry.offset, entry.leader_epoch)
        + _string(entry.metadata)
        + _I64.pack(entry.commit_timestamp_ms)
    )


def _decode_key(key: bytes) -> tuple[str, str, int] | None:
    (version,) = _I16.unpack_from(key, 0)
    if version not in (0, 1):
        return None  # group metadata (version 2) and anything newer: not offsets
    group, pos = _read_string(key, 2)
    topic, pos = _read_string(key, pos)
    (partition,) = _I32.unpack_from(key, pos)
    return group, topic, partition


def _decode_value(value: bytes, record_ts: int) -> CommittedOffset:
    (version,) = _I16.unpack_from(value, 0)
    if version in (1, 3):
        _, offset, epoch = _VALUE_HEAD.unpack_from(value, 0)
        pos = _VALUE_HEAD.size
        if version == 1:
            epoch, pos = -1, 10
    elif version in (0, 2):
        offset = _I64.unpack_from(value, 2)[0]
        epoch, pos = -1, 10
    else:
        raise ValueError(f"unknown offset value version {version}")
    metadata, pos = _read_string(value, pos)
    (ts,) = _I64.unpack_from(value, pos)
    return CommittedOffset(offset, epoch, metadata, ts if ts >= 0 else record_ts)


class OffsetStore:
    """Committed offsets keyed by (group, topic, partition), backed by ``log``.

    ``log``: a :class:`streamcore.storage.Log` (``TopicManager.offsets_log()``); it is
    replayed here. ``validator``: see the module doc; None accepts every commit.
    ``max_metadata_bytes``: longer client metadata gets OFFSET_METADATA_TOO_LARGE.
    """

    def __init__(
        self,
        log: Any,
        *,
        validator: Callable[[str, int, str, str | None], int] | None = None,
        max_metadata_bytes: int = 4096,
        wall_clock_ms: Callable[[], int] | None = None,
    ) -> None:
        self._log = log
        self.validator = validator
        self.max_metadata_bytes = max_metadata_bytes
        self._now = wall_clock_ms or (lambda: int(time.time() * 1000))
        # group -> {(topic, partition): CommittedOffset}
        self._offsets: dict[str, dict[tuple[str, int], CommittedOffset]] = {}
        # producer id -> group -> {(topic, partition): CommittedOffset}: transactional
        # commits waiting for their transaction's marker
        self._pending: dict[int, dict[str, dict[tuple[str, int], CommittedOffset]]] = {}
        self._last_ts = -1  # newest record timestamp written or replayed
        #: Records replayed from the log at start (count).
        self.replayed_records = 0
        self._replay()

    # ------------------------------------------------------------------ replay

    def _replay(self) -> None:
        log = self._log
        position = log.log_start_offset
        end = log.high_watermark
        while position < end:
            data = log.read(position, _READ_CHUNK)
            if not data:
                break
            batches = decode_batches(data)
            if not batches:
                raise StreamcoreError(f"offsets log {log.directory}: no whole batch at offset {position}")
            for batch in batches:
                if batch.attributes & CONTROL_FLAG:
                    if batch.last_offset >= position:
                        self._replay_marker(batch)
                    position = max(position, batch.last_offset + 1)
                    continue
                producer = batch.producer_id if batch.attributes & TRANSACTIONAL_FLAG else None
                for record in batch.records:
                    if record.offset < position:
                        continue
                    self._replay_record(record.key, record.value, record.timestamp_ms, producer)
                    self.replayed_records += 1
                    self._last_ts = max(self._last_ts, record.timestamp_ms)
                position = max(position, batch.last_offset + 1)

    def _replay_marker(self, batch: Any) -> None:
        """A transaction marker in the log: the producer's pending commits end here."""
        if not batch.records:
            return  # a control batch emptied by cleaning ends nothing
        key = batch.records[0].key
        if key is None or len(key) < _CONTROL_KEY.size:
            return
        _version, kind = _CONTROL_KEY.unpack_from(key, 0)
        if kind in (_CONTROL_COMMIT, _CONTROL_ABORT):
            self.complete_transaction(batch.producer_id, kind == _CONTROL_COMMIT)

    def _replay_record(
        self, key: bytes | None, value: bytes | None, ts: int, producer_id: int | None = None
    ) -> None:
        if not key:
            return
        try:
            decoded = _decode_key(key)
            if decoded is None:
                return
            group, topic, partition = decoded
            tp = (topic, partition)
            if producer_id is not None:
                if value is not None:
                    self._pending.setdefault(producer_id, {}).setdefault(group, {})[tp] = _decode_value(
                        value, ts
                    )
            elif value is None:
                self._forget(group, tp)
            else:
                self._offsets.setdefault(group, {})[tp] = _decode_value(value, ts)
                self._supersede_pending(group, tp)
        except (ValueError, struct.error, UnicodeDecodeError) as exc:
            # one unreadable record must not keep every group from starting
            logger.warning("skipping unreadable record in %s: %s", self._log.directory, exc)

    def _forget(self, group: str, tp: tuple[str, int]) -> None:
        table = self._offsets.get(group)
        if table is not None:
            table.pop(tp, None)
            if not table:
                del self._offsets[group]
        self._supersede_pending(group, tp)

    def _supersede_pending(self, group: str, tp: tuple[str, int]) -> None:
        """A later plain commit or deletion of (group, tp) wins over pending transactional ones."""
        if not self._pending:
            return
        for producer_id in list(self._pending):
            groups = self._pending[producer_id]
            table = groups.get(group)
            if table is None or tp not in table:
                continue
            del table[tp]
            if not table:
                del groups[group]
            if not groups:
                del self._pending[producer_id]

    # ------------------------------------------------------------------ commit

    def _timestamp(self) -> int:
        # never behind an earlier record, so time-based lookups in the log stay ordered
        self._last_ts = max(self._now(), self._last_ts)
        return self._last_ts

    def _prepare_commit(
        self,
        group_id: str,
        offsets: Iterable[OffsetCommitItem],
        generation_id: int,
        member_id: str,
        group_instance_id: str | None,
    ) -> tuple[dict[tuple[str, int], int], list[tuple[tuple[str, int], CommittedOffset]], list[bytes]]:
        items = list(offsets)
        errors: dict[tuple[str, int], int] = {}
        if not group_id:
            code = ErrorCode.INVALID_GROUP_ID.code
            return {(t, p): code for t, p, *_ in items}, [], []
        code = _NONE
        if self.validator is not None:
            code = self.validator(group_id, generation_id, member_id, group_instance_id)
        if code != _NONE:
            return {(t, p): code for t, p, *_ in items}, [], []
        now = self._timestamp()
        accepted: list[tuple[tuple[str, int], CommittedOffset]] = []
        for topic, partition, offset, leader_epoch, metadata in items:
            metadata = metadata or ""
            if len(metadata.encode("utf-8")) > self.max_metadata_bytes:
                errors[(topic, partition)] = ErrorCode.OFFSET_METADATA_TOO_LARGE.code
                continue
            accepted.append(((topic, partition), CommittedOffset(offset, leader_epoch, metadata, now)))
        batches = self._encode(
            [
                (encode_offset_key(group_id, tp[0], tp[1]), encode_offset_value(entry))
                for tp, entry in accepted
            ],
            now,
        )
        return errors, accepted, batches

    @staticmethod
    def _encode(
        records: Sequence[tuple[bytes, bytes | None]], ts: int, producer: tuple[int, int] | None = None
    ) -> list[bytes]:
        out = []
        if producer is not None:
            # One batch: a transaction's commit must not be split across batches that a
            # failure could leave half written. Base sequence 0, as Kafka's coordinator writes.
            return [
                encode_batch(
                    [v for _, v in records],
                    keys=[k for k, _ in records],
                    timestamps_ms=[ts] * len(records),
                    producer_id=producer[0],
                    producer_epoch=producer[1],
                    base_sequence=0,
                    transactional=True,
                )
            ]
        for i in range(0, len(records), _RECORDS_PER_BATCH):
            chunk = records[i : i + _RECORDS_PER_BATCH]
            out.append(
                encode_batch(
                    [v for _, v in chunk], keys=[k for k, _ in chunk], timestamps_ms=[ts] * len(chunk)
                )
            )
        return out

    def _apply(
        self,
        group_id: str,
        errors: dict[tuple[str, int], int],
        accepted: list[tuple[tuple[str, int], CommittedOffset]],
    ) -> dict[tuple[str, int], int]:
        table = self._offsets.setdefault(group_id, {}) if accepted else None
        for tp, entry in accepted:
            assert table is not None
            table[tp] = entry
            errors[tp] = _NONE
            self._supersede_pending(group_id, tp)
        return errors

    @staticmethod
    def _storage_failure(
        errors: dict[tuple[str, int], int],
        accepted: list[tuple[tuple[str, int], CommittedOffset]],
        exc: Exception,
    ) -> dict[tuple[str, int], int]:
        logger.warning("offset commit not stored: %s", exc)
        for tp, _ in accepted:
            # retriable: the client retries or re-discovers the coordinator
            errors[tp] = ErrorCode.COORDINATOR_NOT_AVAILABLE.code
        return errors

    def commit(
        self,
        group_id: str,
        offsets: Iterable[OffsetCommitItem],
        *,
        generation_id: int = -1,
        member_id: str = "",
        group_instance_id: str | None = None,
    ) -> dict[tuple[str, int], int]:
        """Validate and durably store offsets; returns (topic, partition) -> error code.

        Blocks until the append is durable per the log's fsync policy; use
        :meth:`commit_async` on the event loop. A storage failure answers
        COORDINATOR_NOT_AVAILABLE (retriable) and changes nothing in memory.
        """
        errors, accepted, batches = self._prepare_commit(
            group_id, offsets, generation_id, member_id, group_instance_id
        )
        try:
            for batch in batches:
                self._log.append(batch)
        except StreamcoreError as exc:
            return self._storage_failure(errors, accepted, exc)
        return self._apply(group_id, errors, accepted)

    async def commit_async(
        self,
        group_id: str,
        offsets: Iterable[OffsetCommitItem],
        *,
        generation_id: int = -1,
        member_id: str = "",
        group_instance_id: str | None = None,
    ) -> dict[tuple[str, int], int]:
        """:meth:`commit` without blocking the event loop (appends with ``append_async``)."""
        errors, accepted, batches = self._prepare_commit(
            group_id, offsets, generation_id, member_id, group_instance_id
        )
        try:
            for batch in batches:
                await self._log.append_async(batch)
        except StreamcoreError as exc:
            return self._storage_failure(errors, accepted, exc)
        return self._apply(group_id, errors, accepted)

    # ------------------------------------------------------------------ transactional commits

    async def commit_transactional_async(
        self,
        group_id: str,
        producer_id: int,
        producer_epoch: int,
        offsets: Iterable[OffsetCommitItem],
        *,
        generation_id: int = -1,
        member_id: str = "",
        group_instance_id: str | None = None,
    ) -> dict[tuple[str, int], int]:
        """TxnOffsetCommit: validate and durably append offsets as part of ``producer_id``'s
        transaction; they stay pending (invisible to :meth:`fetch`) until
        :meth:`complete_transaction`. Returns (topic, partition) -> error code.

        The caller (the TxnOffsetCommit handler) has checked with the transaction
        coordinator that the producer's transaction includes this log. A storage
        failure answers COORDINATOR_NOT_AVAILABLE and changes nothing in memory.
        """
        errors, accepted, _ = self._prepare_commit(
            group_id, offsets, generation_id, member_id, group_instance_id
        )
        if not accepted:
            return errors
        now = accepted[0][1].commit_timestamp_ms
        records = [
            (encode_offset_key(group_id, tp[0], tp[1]), encode_offset_value(entry)) for tp, entry in accepted
        ]
        try:
            for batch in self._encode(records, now, (producer_id, producer_epoch)):
                await self._log.append_async(batch)
        except StreamcoreError as exc:
            return self._storage_failure(errors, accepted, exc)
        table = self._pending.setdefault(producer_id, {}).setdefault(group_id, {})
        for tp, entry in accepted:
            table[tp] = entry
            errors[tp] = _NONE
        return errors

    def complete_transaction(self, producer_id: int, commit: bool) -> int:
        """The producer's marker is durable in this log: on commit its pending offsets
        become the committed ones, on abort they are dropped. Returns how many changed."""
        groups = self._pending.pop(producer_id, None)
        if not groups:
            return 0
        count = 0
        for group, table in groups.items():
            count += len(table)
            if commit:
                self._offsets.setdefault(group, {}).update(table)
        return count

    def pending_partitions(self, group_id: str) -> set[tuple[str, int]]:
        """Partitions of ``group_id`` with a transactional commit still pending (OffsetFetch
        with require_stable answers UNSTABLE_OFFSET_COMMIT for them)."""
        out: set[tuple[str, int]] = set()
        for groups in self._pending.values():
            out.update(groups.get(group_id, ()))
        return out

    def pending_producers(self) -> list[int]:
        """Producer ids with pending transactional commits, sorted."""
        return sorted(self._pending)

    # ------------------------------------------------------------------ fetch

    def fetch(
        self, group_id: str, partitions: Iterable[tuple[str, int]] | None = None
    ) -> dict[tuple[str, int], CommittedOffset | None]:
        """OffsetFetch: the given partitions (None = every partition the group committed).

        A partition without a committed offset maps to None (answer offset -1, no error).
        """
        table = self._offsets.get(group_id, {})
        if partitions is None:
            return dict(sorted(table.items()))
        return {tp: table.get(tp) for tp in partitions}

    def groups(self) -> list[str]:
        """Groups that have committed offsets, sorted."""
        return sorted(self._offsets)

    # ------------------------------------------------------------------ deletion and expiry

    def _delete(self, doomed: list[tuple[str, tuple[str, int]]]) -> int:
        if not doomed:
            return 0
        ts = self._timestamp()
        for batch in self._encode([(encode_offset_key(g, tp[0], tp[1]), None) for g, tp in doomed], ts):
            self._log.append(batch)
        for group, tp in doomed:
            self._forget(group, tp)
        return len(doomed)

    async def _delete_async(self, doomed: list[tuple[str, tuple[str, int]]]) -> int:
        # The tombstones are durable (per the fsync policy) before memory forgets the
        # offsets, so a deletion that was answered stays done after a restart.
        if not doomed:
            return 0
        ts = self._timestamp()
        for batch in self._encode([(encode_offset_key(g, tp[0], tp[1]), None) for g, tp in doomed], ts):
            await self._log.append_async(batch)
        for group, tp in doomed:
            self._forget(group, tp)
        return len(doomed)

    async def delete_group_async(self, group_id: str) -> int:
        """:meth:`delete_group` without blocking the event loop."""
        self._drop_pending_group(group_id)
        return await self._delete_async([(group_id, tp) for tp in self._offsets.get(group_id, {})])

    def _drop_pending_group(self, group_id: str) -> None:
        for producer_id in list(self._pending):
            groups = self._pending[producer_id]
            groups.pop(group_id, None)
            if not groups:
                del self._pending[producer_id]

    async def delete_offsets_async(self, group_id: str, partitions: Iterable[tuple[str, int]]) -> int:
        """:meth:`delete_offsets` without blocking the event loop."""
        table = self._offsets.get(group_id, {})
        return await self._delete_async([(group_id, tp) for tp in partitions if tp in table])

    def has_group(self, group_id: str) -> bool:
        """True when the group has committed offsets."""
        return bool(self._offsets.get(group_id))

    def delete_group(self, group_id: str) -> int:
        """Delete every offset of a group (DeleteGroups); returns how many were removed."""
        self._drop_pending_group(group_id)
        return self._delete([(group_id, tp) for tp in self._offsets.get(group_id, {})])

    def delete_offsets(self, group_id: str, partitions: Iterable[tuple[str, int]]) -> int:
        """Delete some offsets of a group (OffsetDelete); the handler checks the group is not using them."""
        table = self._offsets.get(group_id, {})
        return self._delete([(group_id, tp) for tp in partitions if tp in table])

    def delete_topic(self, topic: str) -> int:
        """Forget every group's offsets for a deleted topic."""
        return self._delete([(g, tp) for g, table in self._offsets.items() for tp in table if tp[0] == topic])

    def expire(self, now_ms: int, retention_ms: int, empty_since_ms: Callable[[str], int | None]) -> int:
        """Drop offsets of groups without members once ``retention_ms`` has passed.

        ``empty_since_ms(group)`` gives when the group lost its last member (0 if the
        coordinator does not know the group, None while it has members). An offset
        expires when both its commit time and that moment are older than
        ``now_ms - retention_ms``. Returns the number of offsets removed.
        """
        cutoff = now_ms - retention_ms
        doomed: list[tuple[str, tuple[str, int]]] = []
        for group, table in self._offsets.items():
            since = empty_since_ms(group)
            if since is None or since > cutoff:
                continue
            doomed.extend((group, tp) for tp, entry in table.items() if entry.commit_timestamp_ms <= cutoff)
        return self._delete(doomed)

    def live_count(self) -> int:
        """Number of committed offsets held."""
        return sum(len(t) for t in self._offsets.values())
