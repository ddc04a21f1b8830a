"""Appending a validated record batch to a partition: the one place that does it.

The Produce handler validates a batch (``streamcore.codec.validate_batch``, which
returns the batch's ``BatchInfo``) and hands it here with the partition's log.
:class:`Appender` then, in one step on the event loop:

* for a batch from an idempotent producer (``producer_id >= 0``), checks its
  sequence against the producer state and reserves it, so that a producer's
  pipelined batches reach the log in the order they were checked; a duplicate is
  answered with the offsets it was first written at, without touching the log;
* queues the append on the partition's WAL (``Log.append_async``), which copies
  the batch, so the caller may hand over the request frame's memoryview;
* when the append is durable, records where the batch landed in the producer
  state (or withdraws the reservation if the append failed, so the producer's
  retry is accepted) and wakes long-polling fetches of the partition.

The result is the WAL's :class:`streamcore.storage.AppendResult`, unchanged, from
the writer thread to the Produce response.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from streamcore.broker.delayed_fetch import DelayedFetch
from streamcore.broker.producer_state import ProducerStateManager, SequenceStatus
from streamcore.errors import KafkaError
from streamcore.storage import AppendResult, Log

if TYPE_CHECKING:
    from streamcore.codec.batch_header import BatchInfo

__all__ = ["Appender"]


class Appender:
    """Appends validated batches to partition logs, exactly once for idempotent producers.

    ``producers`` holds the idempotent producers' sequence state; ``delayed`` is
    told about every successful append so that waiting fetches wake up.
    """

    __slots__ = ("_delayed", "_producers")

    def __init__(self, producers: ProducerStateManager, delayed: DelayedFetch) -> None:
        self._producers = producers
        self._delayed = delayed

    def append(
        self, topic: str, partition: int, log: Log, batch: Any, info: BatchInfo
    ) -> asyncio.Future[AppendResult]:
        """Queue ``batch`` (validated; ``info`` is its ``validate_batch`` result) on ``log``.

        ``batch`` is a Produce request's record set (the request frame's memory, which
        nothing writes to once received, or ``bytes``): it is lent to the WAL, which
        writes it from there instead of from a copy (``Log.append_async(lend=True)``).

        Returns a future of where the batch landed. Raises at once, before queueing
        anything: KafkaError for an idempotent sequence the producer state refuses
        (its ``error`` is the code to answer with), and whatever ``Log.append_async``
        raises (BackpressureError, CorruptRecordError, LogOfflineError). The future
        fails with StorageError or LogOfflineError when the write or fsync fails.

        For an idempotent batch the future may be cancelled (the client hung up):
        the append and its sequence record still complete, so the client's retry is
        answered as a duplicate.
        """
        producer_id = info.producer_id
        if producer_id < 0:
            return log.append_async(batch, lend=True, on_written=_Notify(self._delayed, topic, partition))
        key = (topic, partition)
        check = self._producers.check_and_record(
            key, producer_id, info.producer_epoch, info.base_sequence, info.last_offset_delta
        )
        status = check.status
        if status is SequenceStatus.DUPLICATE:
            done: asyncio.Future[AppendResult] = asyncio.get_running_loop().create_future()
            done.set_result(AppendResult(check.base_offset, check.last_offset, -1))
            return done
        if status is not SequenceStatus.NEW:
            raise KafkaError(check.error_code, "idempotent producer sequence check failed")
        record = _Record(self._producers, self._delayed, topic, partition, check.token)
        try:
            # The hook runs when the append finishes even if the caller cancelled the
            # future meanwhile (a hang-up): the sequence record completes with the write.
            return log.append_async(batch, lend=True, on_written=record)
        except BaseException:
            self._producers.abort(check.token)
            raise


class _Notify:
    """``on_written`` hook of a plain append: wake the partition's waiting fetches."""

    __slots__ = ("_delayed", "_partition", "_topic")

    def __init__(self, delayed: DelayedFetch, topic: str, partition: int) -> None:
        self._delayed = delayed
        self._topic = topic
        self._partition = partition

    def __call__(self, result: AppendResult | None, exc: BaseException | None) -> None:
        if exc is None:
            self._delayed.notify(self._topic, self._partition)


class _Record:
    """``on_written`` hook of an idempotent append: record or withdraw the sequence reservation."""

    __slots__ = ("_delayed", "_partition", "_producers", "_token", "_topic")

    def __init__(
        self, producers: ProducerStateManager, delayed: DelayedFetch, topic: str, partition: int, token: Any
    ) -> None:
        self._producers = producers
        self._delayed = delayed
        self._topic = topic
        self._partition = partition
        self._token = token

    def __call__(self, result: AppendResult | None, exc: BaseException | None) -> None:
        if exc is not None or result is None:
            self._producers.abort(self._token)
            return
        self._producers.complete(self._token, result.base_offset, result.last_offset)
        self._delayed.notify(self._topic, self._partition)
