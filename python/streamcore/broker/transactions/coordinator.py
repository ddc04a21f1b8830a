"""The transaction coordinator: Kafka's transaction protocol on one broker.

:class:`TransactionCoordinator` owns every transactional id's
:class:`~streamcore.broker.transactions.metadata.TransactionMetadata`, persists each
change in the compacted ``__transaction_state`` log before acting on it, and
recovers from that log at start. It answers:

* InitProducerId with a transactional id: a producer id and the next epoch. The
  epoch bump fences the previous producer of the id: its requests now get
  PRODUCER_FENCED (INVALID_PRODUCER_EPOCH from the partitions). An Ongoing
  transaction is first aborted with a fencing bump, and the caller is told
  CONCURRENT_TRANSACTIONS: its retry then gets the epoch after that.
* AddPartitionsToTxn (v0-3 from clients; v4+ batched, also ``verify_only``), and
  AddOffsetsToTxn (the ``__consumer_offsets`` partition joins the transaction).
* EndTxn: PrepareCommit/PrepareAbort is persisted (the decision), then a marker is
  written to every partition of the transaction, then CompleteCommit/CompleteAbort
  is persisted. The answer waits for the markers for a short while
  (``end_txn_wait_ms``) so that a producer's next transaction does not meet
  CONCURRENT_TRANSACTIONS; once the decision is durable the answer is success either
  way, and markers that failed are retried until written.
* the transaction timeout: ``tick`` aborts, with a fencing bump, every Ongoing
  transaction older than its ``transaction.timeout.ms`` (which InitProducerId
  checks against ``max_timeout_ms``, Kafka's ``transaction.max.timeout.ms``), resumes
  the markers of transactions left in Prepare* by a crash, and expires transactional
  ids idle for ``transactional_id_expiration_ms``.
* DescribeTransactions and ListTransactions.
* the verification of transactional produce batches and TxnOffsetCommit (Kafka's
  KIP-890 part 1 check, done here in-process): the batch's producer must be the
  current one of an Ongoing transaction that contains the partition.

Everything runs on the broker's event loop; a transactional id with a transition in
flight answers CONCURRENT_TRANSACTIONS to anything else that would change it, as in
Kafka. One broker coordinates every transactional id, with coordinator epoch 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import re
import struct
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from streamcore.broker.transactions.crash_points import CrashPoint, crash_point_from_environment
from streamcore.broker.transactions.log_format import decode_key, decode_value, encode_key, encode_value
from streamcore.broker.transactions.markers import AppendMarker, build_marker
from streamcore.broker.transactions.metadata import (
    NO_PRODUCER_EPOCH,
    TopicPartition,
    TransactionMetadata,
    TxnState,
    epoch_exhausted,
)
from streamcore.broker.transactions.partitions import TransactionalPartitions
from streamcore.codec import decode_batches, encode_batch
from streamcore.codec.batch_header import TRANSACTIONAL_FLAG
from streamcore.errors import (
    BackpressureError,
    ErrorCode,
    KafkaError,
    LogOfflineError,
    StorageError,
    StreamcoreError,
)

__all__ = [
    "OFFSETS_PARTITION",
    "TRANSACTION_STATE_TOPIC",
    "DescribedTransaction",
    "InitProducerIdResult",
    "ListedTransaction",
    "TransactionCoordinator",
    "TransactionSettings",
    "verification_error",
]

logger = logging.getLogger("streamcore.broker")

#: The internal topic the coordinator's state lives in (one partition, compacted).
TRANSACTION_STATE_TOPIC = "__transaction_state"
#: The partition holding committed offsets: AddOffsetsToTxn adds it to a transaction.
OFFSETS_PARTITION: TopicPartition = ("__consumer_offsets", 0)

_E = ErrorCode
_NONE = _E.NO_ERROR.code
_CONCURRENT = _E.CONCURRENT_TRANSACTIONS.code
_FENCED = _E.PRODUCER_FENCED.code
_MAPPING = _E.INVALID_PRODUCER_ID_MAPPING.code
_INVALID_STATE = _E.INVALID_TXN_STATE.code
_ABORTABLE = _E.TRANSACTION_ABORTABLE.code
#: Kafka's INVALID_REGULAR_EXPRESSION (not in ErrorCode yet): a bad ListTransactions pattern.
INVALID_REGULAR_EXPRESSION = 128
_READ_CHUNK = 4 * 1024 * 1024
#: Longest wait between two attempts to write a marker or a Complete* record, s.
_MAX_RETRY_BACKOFF_S = 5.0


@dataclass(frozen=True)
class TransactionSettings:
    """The coordinator's settings (Kafka's names in brackets)."""

    #: Largest transaction timeout a producer may ask for, ms [transaction.max.timeout.ms].
    max_timeout_ms: int = 900_000
    #: Forget a transactional id idle this long, ms [transactional.id.expiration.ms].
    transactional_id_expiration_ms: int = 604_800_000
    #: How often the broker should call ``tick``, ms
    #: [transaction.abort.timed.out.transaction.cleanup.interval.ms].
    abort_interval_ms: int = 10_000
    #: How often ``tick`` looks for expired transactional ids, ms
    #: [transaction.remove.expired.transaction.cleanup.interval.ms].
    expiration_check_interval_ms: int = 3_600_000
    #: Wait between attempts to write a marker or a Complete* record that failed, ms.
    retry_backoff_ms: int = 100
    #: How long EndTxn (and a fencing InitProducerId) waits for the markers before
    #: answering, ms; the transaction completes in the background after that.
    end_txn_wait_ms: int = 5_000


@dataclass(frozen=True)
class InitProducerIdResult:
    """InitProducerId answer."""

    error_code: int
    producer_id: int = -1
    producer_epoch: int = -1


@dataclass(frozen=True)
class DescribedTransaction:
    """DescribeTransactions answer for one id (``state`` is Kafka's state name)."""

    transactional_id: str
    error_code: int
    state: str = ""
    timeout_ms: int = 0
    start_ms: int = -1
    producer_id: int = -1
    producer_epoch: int = -1
    #: topic -> sorted partitions
    topics: dict[str, list[int]] | None = None


@dataclass(frozen=True)
class ListedTransaction:
    transactional_id: str
    producer_id: int
    state: str


def verification_error(code: int, *, generic: bool, produce: bool) -> int:
    """The error a produce or TxnOffsetCommit gets for a failed transaction check, as Kafka
    translates the coordinator's answer for them.

    ``generic``: the client knows TRANSACTION_ABORTABLE (Produce v11+, TxnOffsetCommit
    v4+); older ones get INVALID_TXN_STATE. PRODUCER_FENCED becomes
    INVALID_PRODUCER_EPOCH (abortable, the partition's own word for a stale epoch).
    For produce, retriable coordinator errors become NOT_ENOUGH_REPLICAS, which every
    client retries without a metadata refresh.
    """
    if code == _FENCED:
        return _E.INVALID_PRODUCER_EPOCH.code
    if code == _ABORTABLE and not generic:
        return _INVALID_STATE
    if produce and code in (
        _CONCURRENT,
        _E.COORDINATOR_LOAD_IN_PROGRESS.code,
        _E.COORDINATOR_NOT_AVAILABLE.code,
        _E.NOT_COORDINATOR.code,
    ):
        return _E.NOT_ENOUGH_REPLICAS.code
    return code


def _append_error(exc: BaseException) -> int:
    """What a failed ``__transaction_state`` append is answered with (Kafka's mapping)."""
    if isinstance(exc, BackpressureError):
        return _E.COORDINATOR_NOT_AVAILABLE.code
    if isinstance(exc, (StorageError, LogOfflineError)):
        return _E.NOT_COORDINATOR.code
    return _E.COORDINATOR_NOT_AVAILABLE.code


class TransactionCoordinator:
    """See the module doc.

    Args:
        state_log: the ``__transaction_state`` partition's :class:`streamcore.storage.Log`.
        producer_ids: the broker's ``ProducerIdManager`` (new producer ids come from it).
        partitions: the broker's :class:`TransactionalPartitions` (LSO, aborted index).
        append_marker: writes a marker batch to a partition (see ``markers.AppendMarker``).
        offsets: the ``OffsetStore``, told when a marker reached ``__consumer_offsets``.
        on_partition_change: ``notify(topic, partition)``, called once a marker is
            durable and the partition's LSO moved (``DelayedFetch.notify``).
        settings: :class:`TransactionSettings`.
        clock: wall clock in ms (tests pass their own).
        crash_at: a test-only :class:`~.crash_points.CrashPoint`; None reads
            ``STREAMCORE_TEST_CRASH_AT`` (normally unset: no point is armed).
    """

    def __init__(
        self,
        state_log: Any,
        *,
        producer_ids: Any,
        partitions: TransactionalPartitions,
        append_marker: AppendMarker,
        offsets: Any = None,
        on_partition_change: Callable[[str, int], None] | None = None,
        settings: TransactionSettings | None = None,
        clock: Callable[[], int] | None = None,
        coordinator_epoch: int = 0,
        crash_at: CrashPoint | None = None,
    ) -> None:
        self._log = state_log
        self._producer_ids = producer_ids
        self.partitions = partitions
        self._append_marker = append_marker
        self.offsets = offsets
        self._notify = on_partition_change
        self.settings = settings or TransactionSettings()
        self._clock = clock or (lambda: int(time.time() * 1000))
        self.coordinator_epoch = coordinator_epoch
        self._txns: dict[str, TransactionMetadata] = {}
        self._completions: dict[str, asyncio.Task[None]] = {}
        self._last_ts = -1
        self._last_expiry_check = -1
        self._closed = False
        #: Records replayed from the state log by :meth:`load` (count).
        self.replayed_records = 0
        #: The armed test crash point, None in normal operation (crash_points.py).
        #: Read once here; each point costs one ``is not None`` test when unset.
        self.crash_at = crash_at if crash_at is not None else crash_point_from_environment()
        if self.crash_at is not None:
            logger.warning(
                "TEST ONLY: the transaction coordinator will SIGKILL this process at %r", self.crash_at
            )

    # ------------------------------------------------------------------ loading and persistence

    def load(self) -> dict[str, int]:
        """Replay the state log (blocking; at start, before requests are served).

        Returns counts: ``transactional_ids``, ``ongoing`` and ``to_complete`` (left in
        PrepareCommit/PrepareAbort: the first :meth:`tick` writes their markers).
        """
        log = self._log
        txns: dict[str, TransactionMetadata] = {}
        position, end = log.log_start_offset, log.high_watermark
        largest_pid = -1
        while position < end:
            data = log.read(position, _READ_CHUNK)
            batches = decode_batches(data) if data else []
            if not batches:
                raise StreamcoreError(f"{log.directory}: no whole batch at offset {position}")
            for batch in batches:
                for record in batch.records:
                    if record.offset < position or not record.key:
                        continue
                    self.replayed_records += 1
                    self._last_ts = max(self._last_ts, record.timestamp_ms)
                    try:
                        txn_id = decode_key(record.key)
                        if txn_id is None:
                            continue
                        if record.value is None:
                            txns.pop(txn_id, None)
                            continue
                        value = decode_value(record.value)
                    except (ValueError, struct.error, UnicodeDecodeError) as exc:
                        logger.warning(
                            "skipping unreadable record at %s offset %d: %s",
                            log.directory,
                            record.offset,
                            exc,
                        )
                        continue
                    txns[txn_id] = TransactionMetadata.from_transit(txn_id, value.transit())
                    largest_pid = max(largest_pid, value.producer_id)
                position = max(position, batch.last_offset + 1)
        self._txns = txns
        if largest_pid >= 0:
            self._producer_ids.observe(largest_pid)
        counts = {
            "transactional_ids": len(txns),
            "ongoing": sum(1 for m in txns.values() if m.state is TxnState.ONGOING),
            "to_complete": sum(1 for m in txns.values() if m.state.is_prepare),
        }
        if txns:
            logger.info(
                "transaction coordinator loaded %d transactional id(s): %d ongoing, %d to complete",
                counts["transactional_ids"],
                counts["ongoing"],
                counts["to_complete"],
            )
        return counts

    def _now(self) -> int:
        return self._clock()

    def _timestamp(self) -> int:
        # Record timestamps never go backwards, so time lookups on the log stay ordered.
        self._last_ts = max(self._now(), self._last_ts)
        return self._last_ts

    async def _write(self, transactional_id: str, transit: Any) -> int:
        """Append one state record (``transit`` None: a tombstone); 0 or the error code."""
        value = None if transit is None else encode_value(transit)
        batch = encode_batch([value], keys=[encode_key(transactional_id)], timestamps_ms=[self._timestamp()])
        try:
            await self._log.append_async(batch)
        except (StreamcoreError, OSError) as exc:
            logger.warning("transaction state of %r not written: %s", transactional_id, exc)
            return _append_error(exc)
        return _NONE

    def _new_producer_id(self) -> int:
        return int(self._producer_ids.init_producer_id(None).producer_id)

    # ------------------------------------------------------------------ lookups

    def metadata(self, transactional_id: str) -> TransactionMetadata | None:
        """The metadata of a transactional id (tests, tools); do not mutate it."""
        return self._txns.get(transactional_id)

    def transactional_ids(self) -> list[str]:
        return sorted(self._txns)

    def _by_producer(self, producer_id: int) -> TransactionMetadata | None:
        for meta in self._txns.values():
            if meta.producer_id == producer_id:
                return meta
        return None

    # ------------------------------------------------------------------ InitProducerId

    async def init_producer_id(
        self,
        transactional_id: str,
        timeout_ms: int,
        producer_id: int = -1,
        producer_epoch: int = -1,
    ) -> InitProducerIdResult:
        """InitProducerId for a transactional id (see the module doc).

        ``producer_id``/``producer_epoch`` are what a v3+ client names (-1/-1: none).
        PRODUCER_FENCED is returned as such; handlers below v4 turn it into
        INVALID_PRODUCER_EPOCH.
        """
        if not transactional_id:
            return InitProducerIdResult(_E.INVALID_REQUEST.code)
        if (producer_id == -1) != (producer_epoch == NO_PRODUCER_EPOCH):
            return InitProducerIdResult(_E.INVALID_REQUEST.code)
        expected = None if producer_id == -1 else (producer_id, producer_epoch)
        if not 0 < timeout_ms <= self.settings.max_timeout_ms:
            return InitProducerIdResult(_E.INVALID_TRANSACTION_TIMEOUT.code)
        meta = self._txns.get(transactional_id)
        if meta is None:
            meta = TransactionMetadata(
                transactional_id,
                self._new_producer_id(),
                NO_PRODUCER_EPOCH,
                timeout_ms,
                TxnState.EMPTY,
                self._now(),
            )
            self._txns[transactional_id] = meta
        if meta.pending is not None:
            return InitProducerIdResult(_CONCURRENT)
        if expected is not None and not (
            meta.producer_epoch == NO_PRODUCER_EPOCH
            or expected[0] == meta.producer_id
            or (expected[0] == meta.previous_producer_id and epoch_exhausted(expected[1]))
        ):
            return InitProducerIdResult(_FENCED)
        state = meta.state
        if state.is_prepare:
            return InitProducerIdResult(_CONCURRENT)
        if state is TxnState.ONGOING:
            # Abort the open transaction under a fencing epoch (never handed out), then
            # let the client retry: its retry gets the epoch after that one.
            code, task = await self._abort(meta, fence=True)
            if code:
                return InitProducerIdResult(code)
            await self._wait_for(task)
            return InitProducerIdResult(_CONCURRENT)
        if state not in (TxnState.EMPTY, TxnState.COMPLETE_COMMIT, TxnState.COMPLETE_ABORT):
            logger.error("transactional id %r found in state %s", transactional_id, state.display_name)
            return InitProducerIdResult(_E.UNKNOWN_SERVER_ERROR.code)
        now = self._now()
        if meta.epoch_exhausted and (expected is None or expected[1] == meta.producer_epoch):
            transit = meta.prepare_producer_id_rotation(
                self._new_producer_id(), timeout_ms, now, expected is not None
            )
        else:
            code, maybe = meta.prepare_increment_epoch(
                timeout_ms, None if expected is None else expected[1], now
            )
            if maybe is None:
                return InitProducerIdResult(code)
            transit = maybe
        code = await self._write(transactional_id, transit)
        if code:
            meta.cancel()
            return InitProducerIdResult(code)
        meta.complete(transit)
        logger.info(
            "transactional id %r: producer id %d, epoch %d",
            transactional_id,
            meta.producer_id,
            meta.producer_epoch,
        )
        return InitProducerIdResult(_NONE, meta.producer_id, meta.producer_epoch)

    # ------------------------------------------------------------------ AddPartitions / AddOffsets

    def _check_producer(self, meta: TransactionMetadata | None, producer_id: int, producer_epoch: int) -> int:
        if meta is None or meta.producer_id != producer_id:
            return _MAPPING
        if meta.producer_epoch != producer_epoch:
            return _FENCED
        return _NONE

    async def add_partitions(
        self,
        transactional_id: str,
        producer_id: int,
        producer_epoch: int,
        partitions: Iterable[TopicPartition],
    ) -> int:
        """AddPartitionsToTxn (and AddOffsetsToTxn): one error code for all ``partitions``.

        The caller has checked that the partitions exist.
        """
        if not transactional_id:
            return _E.INVALID_REQUEST.code
        meta = self._txns.get(transactional_id)
        code = self._check_producer(meta, producer_id, producer_epoch)
        if code:
            return code
        assert meta is not None
        if meta.pending is not None or meta.state.is_prepare:
            return _CONCURRENT
        wanted = frozenset(partitions)
        if meta.state is TxnState.ONGOING and wanted <= meta.partitions:
            return _NONE
        transit = meta.prepare_add_partitions(wanted, self._now())
        if self.crash_at is not None:
            self.crash_at.reached("before_add_partitions_logged")
        code = await self._write(transactional_id, transit)
        if code:
            meta.cancel()
            return code
        if self.crash_at is not None:
            self.crash_at.reached("after_add_partitions_logged")
        meta.complete(transit)
        return _NONE

    async def add_offsets(
        self, transactional_id: str, producer_id: int, producer_epoch: int, group_id: str
    ) -> int:
        """AddOffsetsToTxn: the partition of ``__consumer_offsets`` holding the group's
        offsets joins the transaction (one partition here, whatever the group)."""
        return await self.add_partitions(transactional_id, producer_id, producer_epoch, [OFFSETS_PARTITION])

    def verify_partitions(
        self,
        transactional_id: str,
        producer_id: int,
        producer_epoch: int,
        partitions: Iterable[TopicPartition],
    ) -> dict[TopicPartition, int]:
        """AddPartitionsToTxn v4+ with ``verify_only``: is each partition in the producer's
        transaction? NONE, or TRANSACTION_ABORTABLE for a partition not in it; a producer or
        state problem gives every partition the same error."""
        wanted = list(partitions)
        if not transactional_id:
            return dict.fromkeys(wanted, _E.INVALID_REQUEST.code)
        meta = self._txns.get(transactional_id)
        code = self._check_producer(meta, producer_id, producer_epoch)
        if code:
            return dict.fromkeys(wanted, code)
        assert meta is not None
        if meta.state.is_prepare:
            return dict.fromkeys(wanted, _CONCURRENT)
        return {tp: (_NONE if tp in meta.partitions else _ABORTABLE) for tp in wanted}

    def verify(
        self,
        transactional_id: str | None,
        producer_id: int,
        producer_epoch: int,
        partition: TopicPartition,
    ) -> int:
        """The coordinator's answer for a transactional write (a produce batch, a
        TxnOffsetCommit) to ``partition`` (see :func:`verification_error` for what the
        writer is then told). Without a transactional id the producer id finds it."""
        meta = self._txns.get(transactional_id) if transactional_id else self._by_producer(producer_id)
        return self.verify_partitions(
            meta.transactional_id if meta is not None else (transactional_id or "?"),
            producer_id,
            producer_epoch,
            [partition],
        )[partition]

    # ------------------------------------------------------------------ EndTxn and markers

    async def end_transaction(
        self, transactional_id: str, producer_id: int, producer_epoch: int, commit: bool
    ) -> int:
        """EndTxn from the producer (see the module doc); returns the error code."""
        if not transactional_id:
            return _E.INVALID_REQUEST.code
        meta = self._txns.get(transactional_id)
        if meta is None or meta.producer_id != producer_id:
            return _MAPPING
        if producer_epoch != meta.producer_epoch:
            return _FENCED
        if meta.pending is not None:
            return _CONCURRENT
        state = meta.state
        if state is TxnState.ONGOING:
            code, task = await self._prepare_end(meta, commit)
            if code:
                return code
            await self._wait_for(task)
            return _NONE
        if state is TxnState.COMPLETE_COMMIT:
            return _NONE if commit else _INVALID_STATE
        if state is TxnState.COMPLETE_ABORT:
            return _INVALID_STATE if commit else _NONE
        if state is TxnState.PREPARE_COMMIT:
            return _CONCURRENT if commit else _INVALID_STATE
        if state is TxnState.PREPARE_ABORT:
            return _INVALID_STATE if commit else _CONCURRENT
        return _INVALID_STATE  # Empty: there is no transaction to end

    async def _prepare_end(
        self, meta: TransactionMetadata, commit: bool
    ) -> tuple[int, asyncio.Task[None] | None]:
        transit = meta.prepare_end(commit, self._now())
        if self.crash_at is not None:
            self.crash_at.reached("before_prepare_logged")
        code = await self._write(meta.transactional_id, transit)
        if code:
            meta.cancel()
            return code, None
        if self.crash_at is not None:
            self.crash_at.reached("after_prepare_commit_logged" if commit else "after_prepare_abort_logged")
        meta.complete(transit)
        return _NONE, self._start_completion(meta)

    async def _abort(
        self, meta: TransactionMetadata, *, fence: bool
    ) -> tuple[int, asyncio.Task[None] | None]:
        """Abort an idle Ongoing transaction on the coordinator's own initiative, first
        bumping the epoch when ``fence`` (so the producer can no longer write to it)."""
        if fence:
            meta.begin_epoch_fence()
        code, task = await self._prepare_end(meta, commit=False)
        if code and fence:
            # The bumped epoch was never handed out: the next attempt reuses it.
            meta.has_failed_epoch_fence = True
        return code, task

    async def _wait_for(self, task: asyncio.Task[None] | None) -> None:
        if task is None:
            return
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(task), self.settings.end_txn_wait_ms / 1000.0)

    def _start_completion(self, meta: TransactionMetadata) -> asyncio.Task[None]:
        running = self._completions.get(meta.transactional_id)
        if running is not None and not running.done():
            return running
        task = asyncio.get_running_loop().create_task(
            self._complete(meta), name=f"transaction markers {meta.transactional_id}"
        )
        self._completions[meta.transactional_id] = task
        task.add_done_callback(functools.partial(self._completion_done, meta.transactional_id))
        return task

    def _completion_done(self, transactional_id: str, task: asyncio.Task[None]) -> None:
        if self._completions.get(transactional_id) is task:
            del self._completions[transactional_id]
        if not task.cancelled() and task.exception() is not None:
            logger.error(
                "completing the transaction of %r failed", transactional_id, exc_info=task.exception()
            )

    async def _complete(self, meta: TransactionMetadata) -> None:
        """Write the markers of a Prepare* transaction, then persist Complete*."""
        commit = meta.state is TxnState.PREPARE_COMMIT
        producer_id, epoch = meta.producer_id, meta.producer_epoch
        batch = build_marker(
            producer_id,
            epoch,
            commit=commit,
            coordinator_epoch=self.coordinator_epoch,
            timestamp_ms=self._now(),
        )
        first_backoff = backoff = self.settings.retry_backoff_ms / 1000.0
        remaining = sorted(meta.partitions)
        if self.crash_at is not None and len(remaining) > 1 and self.crash_at.armed("between_markers"):
            # Test only: the first marker alone, so that the crash lands between markers.
            if await self._write_marker(remaining[0], batch, producer_id, commit):
                remaining = remaining[1:]
                self.crash_at.reached("between_markers")
        while remaining:
            results = await asyncio.gather(
                *(self._write_marker(tp, batch, producer_id, commit) for tp in remaining)
            )
            remaining = [tp for tp, ok in zip(remaining, results, strict=True) if not ok]
            if remaining:
                # A partition that stays offline is retried less and less often.
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, _MAX_RETRY_BACKOFF_S)
        if self.crash_at is not None:
            self.crash_at.reached("after_markers_before_complete")
        backoff = first_backoff
        while True:
            if meta.pending is not None or not meta.state.is_prepare or meta.producer_id != producer_id:
                return  # someone else moved it on (cannot happen while we hold Prepare*)
            transit = meta.prepare_complete(self._now())
            code = await self._write(meta.transactional_id, transit)
            if not code:
                meta.complete(transit)
                logger.debug(
                    "transaction of %r %s", meta.transactional_id, "committed" if commit else "aborted"
                )
                return
            meta.cancel()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, _MAX_RETRY_BACKOFF_S)

    async def _write_marker(self, tp: TopicPartition, batch: bytes, producer_id: int, commit: bool) -> bool:
        topic, partition = tp
        try:
            offset = await self._append_marker(topic, partition, batch)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if getattr(exc, "error_code", None) == _E.UNKNOWN_TOPIC_OR_PARTITION.code:
                # Deleted meanwhile: nothing is left to end there (Kafka drops it too).
                logger.info("no marker for %s-%d: the partition no longer exists", topic, partition)
                return True
            logger.warning("marker for %s-%d not written (will retry): %s", topic, partition, exc)
            return False
        if tp == OFFSETS_PARTITION and self.offsets is not None:
            self.offsets.complete_transaction(producer_id, commit)
        try:
            self.partitions.on_marker(topic, partition, producer_id, offset, commit)
        except Exception:
            logger.exception("transaction state of %s-%d not updated after its marker", topic, partition)
        if self._notify is not None:
            self._notify(topic, partition)
        return True

    # ------------------------------------------------------------------ periodic work

    async def tick(self, now_ms: int | None = None) -> dict[str, int]:
        """Periodic work (every ``settings.abort_interval_ms``): resume the markers of
        transactions left in Prepare*, abort timed-out transactions (fencing their
        producers), expire idle transactional ids, and forget aborted-index entries below
        each log's start. Returns counts: ``resumed``, ``aborted``, ``expired``."""
        now = self._now() if now_ms is None else now_ms
        resumed = aborted = expired = 0
        for meta in list(self._txns.values()):
            if meta.pending is not None:
                continue
            if meta.state.is_prepare and meta.transactional_id not in self._completions:
                self._start_completion(meta)
                resumed += 1
            elif meta.state is TxnState.ONGOING and meta.start_ms + meta.timeout_ms < now:
                logger.info(
                    "aborting the transaction of %r (producer id %d, epoch %d): older than its timeout of %d ms",
                    meta.transactional_id,
                    meta.producer_id,
                    meta.producer_epoch,
                    meta.timeout_ms,
                )
                code, _task = await self._abort(meta, fence=True)
                if not code:
                    aborted += 1
        if (
            self._last_expiry_check < 0
            or now - self._last_expiry_check >= self.settings.expiration_check_interval_ms
        ):
            self._last_expiry_check = now
            expired = await self.expire_transactional_ids(now)
        self.partitions.retain()
        return {"resumed": resumed, "aborted": aborted, "expired": expired}

    async def expire_transactional_ids(self, now_ms: int | None = None) -> int:
        """Forget transactional ids without a transaction, idle past the expiration;
        each gets a tombstone in the state log. Returns how many."""
        now = self._now() if now_ms is None else now_ms
        cutoff = now - self.settings.transactional_id_expiration_ms
        count = 0
        for meta in list(self._txns.values()):
            if (
                meta.pending is not None
                or meta.state not in (TxnState.EMPTY, TxnState.COMPLETE_COMMIT, TxnState.COMPLETE_ABORT)
                or meta.last_update_ms > cutoff
            ):
                continue
            meta.prepare_dead()
            code = await self._write(meta.transactional_id, None)
            if code:
                meta.cancel()
                continue
            if self._txns.get(meta.transactional_id) is meta:
                del self._txns[meta.transactional_id]
            count += 1
        return count

    async def stop(self) -> None:
        """Stop completing transactions (their Prepare* records let the next start finish them)."""
        self._closed = True
        tasks = list(self._completions.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def close(self) -> None:
        """Release the per-partition state (after :meth:`stop`)."""
        self._closed = True
        self.partitions.close()

    # ------------------------------------------------------------------ tools

    def describe(self, transactional_id: str) -> DescribedTransaction:
        """DescribeTransactions for one id."""
        if not transactional_id:
            return DescribedTransaction(transactional_id, _E.INVALID_REQUEST.code)
        meta = self._txns.get(transactional_id)
        if meta is None or meta.state is TxnState.DEAD:
            return DescribedTransaction(transactional_id, _E.TRANSACTIONAL_ID_NOT_FOUND.code)
        topics: dict[str, list[int]] = {}
        for topic, partition in sorted(meta.partitions):
            topics.setdefault(topic, []).append(partition)
        return DescribedTransaction(
            transactional_id,
            _NONE,
            meta.state.display_name,
            meta.timeout_ms,
            meta.start_ms,
            meta.producer_id,
            meta.producer_epoch,
            topics,
        )

    def list_transactions(
        self,
        states: Iterable[str] = (),
        producer_ids: Iterable[int] = (),
        duration_ms: int = -1,
        pattern: str | None = None,
        now_ms: int | None = None,
    ) -> tuple[int, list[str], list[ListedTransaction]]:
        """ListTransactions: (error code, unknown state filters, matching transactions).

        Empty filters match everything; ``duration_ms`` >= 0 keeps transactions running
        longer than that; ``pattern`` (v2) is a regular expression the whole id must match.
        """
        wanted_states: set[TxnState] = set()
        unknown: list[str] = []
        state_names = list(states)
        for name in state_names:
            found = TxnState.from_name(name)
            if found is None:
                unknown.append(name)
            else:
                wanted_states.add(found)
        pids = set(producer_ids)
        regex = None
        if pattern:
            try:
                regex = re.compile(pattern)
            except re.error:
                return INVALID_REGULAR_EXPRESSION, [], []
        now = self._now() if now_ms is None else now_ms
        out = []
        for txn_id in sorted(self._txns):
            meta = self._txns[txn_id]
            if meta.state is TxnState.DEAD:
                continue
            if pids and meta.producer_id not in pids:
                continue
            if state_names and meta.state not in wanted_states:
                continue
            if duration_ms >= 0 and now - meta.start_ms <= duration_ms:
                continue
            if regex is not None and regex.fullmatch(txn_id) is None:
                continue
            out.append(ListedTransaction(txn_id, meta.producer_id, meta.state.display_name))
        return _NONE, unknown, out

    # ------------------------------------------------------------------ what the broker asks

    def lso(self, topic: str, partition: int, high_watermark: int | None = None) -> int:
        """The partition's last stable offset (Fetch/ListOffsets with read_committed), at
        most ``high_watermark`` when given (pass the one the response reports)."""
        return self.partitions.lso(topic, partition, high_watermark)

    def lso_of_log(self, topic: str, partition: int, log: Any, high_watermark: int) -> int:
        """:meth:`lso` of the partition whose current log the caller holds (cheaper)."""
        return self.partitions.lso_of_log(topic, partition, log, high_watermark)

    def aborted_transactions(
        self, topic: str, partition: int, fetch_offset: int, upper_offset: int
    ) -> list[tuple[int, int]]:
        """(producer id, first offset) of the aborted transactions a read_committed fetch of
        [``fetch_offset``, ``upper_offset``) must drop."""
        return self.partitions.aborted_transactions(topic, partition, fetch_offset, upper_offset)

    def append(
        self,
        topic: str,
        partition: int,
        log: Any,
        batch: Any,
        info: Any,
        *,
        transactional_id: str | None,
        api_version: int,
        appender: Any,
    ) -> asyncio.Future[Any]:
        """Produce a batch of an idempotent or transactional producer (``info.producer_id``
        >= 0) through ``appender`` (the broker's ``Appender``), after the transaction
        checks; returns the append's future as ``Appender.append`` does.

        Raises KafkaError before queueing anything: INVALID_TXN_STATE for a plain batch
        of a producer with a transaction open in the partition; for a transactional batch
        whose producer is not the current one of an Ongoing transaction containing the
        partition, the error :func:`verification_error` gives (INVALID_PRODUCER_EPOCH
        for a fenced producer, INVALID_TXN_STATE or TRANSACTION_ABORTABLE for a partition
        not added, NOT_ENOUGH_REPLICAS while the transaction is being ended, ...).
        """
        transactional = bool(info.attributes & TRANSACTIONAL_FLAG)
        producer_id = info.producer_id
        if transactional:
            code = self.verify(transactional_id, producer_id, info.producer_epoch, (topic, partition))
            if code:
                raise KafkaError(
                    verification_error(code, generic=api_version > 10, produce=True),
                    f"transactional batch of producer {producer_id} epoch {info.producer_epoch} "
                    f"refused for {topic}-{partition}",
                )
        token = self.partitions.begin_append(topic, partition, producer_id, transactional)
        try:
            fut: asyncio.Future[Any] = appender.append(topic, partition, log, batch, info)
        except BaseException:
            self.partitions.finish_append(token, None)
            raise
        self.partitions.settle_when_done(token, fut)
        return fut
