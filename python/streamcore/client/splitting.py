"""Splitting a batch the broker refused as too large into two halves, as the Java client does.

A topic's ``max.message.bytes`` can be smaller than the batches a producer builds
(``send_batch`` aims at ``send_batch_size``, 512 KiB by default, and ``batch_size``
can be set above a topic's limit). The producer cannot know a topic's limit, so when
the broker answers a batch of more than one record with MESSAGE_TOO_LARGE (or
RECORD_LIST_TOO_LARGE), the sender splits it in two by record count and sends the
halves in its place, splitting again while a half is still refused. Only a single
record too large fails, with that error.

What a split keeps:

* **Order and sequences.** The broker wrote nothing of the refused batch, so its
  partition still expects the refused batch's first sequence: the first half takes
  that sequence and the second the one after the first half's records. Batches sent
  behind the refused one are answered OUT_OF_ORDER_SEQUENCE_NUMBER and retried after
  the halves (``Sequencer.split`` puts the halves in the refused batch's place).
* **Futures.** A half carries its records' asyncio futures (at their index in the
  half) and its share of each ``send_batch`` span: a span cut by the split becomes
  two, and the call's result lists one ``BatchMetadata`` per batch written. The
  blocking API's record futures read their result from the batch they were appended
  to; that batch gets a :class:`SplitOutcome` once every half is answered.
* **Memory.** The halves' ``size`` (bytes charged to ``buffer_memory``) add up to the
  refused batch's, so answering both releases what it held.
"""

from __future__ import annotations

from typing import Any

from streamcore.client.accumulator import ProducerBatch
from streamcore.errors import ErrorCode, KafkaError

__all__ = ["SplitOutcome", "is_too_large", "split_batch"]

_TOO_LARGE = frozenset((ErrorCode.MESSAGE_TOO_LARGE.code, ErrorCode.RECORD_LIST_TOO_LARGE.code))


def is_too_large(exc: BaseException) -> bool:
    """True for the answers a split may cure: MESSAGE_TOO_LARGE, RECORD_LIST_TOO_LARGE."""
    return isinstance(exc, KafkaError) and exc.error.code in _TOO_LARGE


class SplitOutcome:
    """The outcome of a batch whose records went out in several smaller batches.

    ``parts``: (first record index in the split batch, record count, outcome of that
    part's batch — (base offset, log append time) or an exception —, that batch's
    first timestamp in ms), in the order the parts were answered.
    """

    __slots__ = ("parts", "covered", "count")

    def __init__(self, count: int) -> None:
        self.parts: list[tuple[int, int, Any, int]] = []
        self.covered = 0
        #: Records of the split batch: complete once ``covered`` reaches it.
        self.count = count

    def add(self, start: int, count: int, outcome: Any, first_ts: int) -> bool:
        """Record one part's answer; True once every record of the batch is answered."""
        self.parts.append((start, count, outcome, first_ts))
        self.covered += count
        return self.covered >= self.count

    def at(self, index: int) -> tuple[Any, int, int]:
        """(outcome, first timestamp in ms, index within its part) of record ``index``."""
        for start, count, outcome, first_ts in self.parts:
            if start <= index < start + count:
                return outcome, first_ts, index - start
        raise IndexError(f"record {index} is in no answered part")


def _half(b: ProducerBatch, lo: int, hi: int, size: int, split_span: Any) -> ProducerBatch:
    """A new batch of ``b``'s records [lo, hi), charged ``size`` bytes."""
    h = ProducerBatch(b.tp, b.created, b.deadline)
    h.values = b.values[lo:hi]
    if b.keys is not None:
        h.keys = b.keys[lo:hi]
    if b.headers is not None:
        h.headers = b.headers[lo:hi]
    if b.timestamps is not None:
        h.timestamps = b.timestamps[lo:hi]
    h.explicit_ts = b.explicit_ts
    futures, indices = [], []
    for i, f in zip(b.record_indices, b.record_futures, strict=True):
        if lo <= i < hi:
            indices.append(i - lo)
            futures.append(f)
    h.record_futures = futures
    h.record_indices = indices
    spans = []
    for start, count, token in b.span_futures:
        first, last = max(start, lo), min(start + count, hi)
        if first < last:
            cut = first != start or last != start + count
            spans.append((first - lo, last - first, split_span(token, first - start) if cut else token))
    h.span_futures = spans
    h.size = size
    h.count = hi - lo
    h.attempts = b.attempts
    h.producer_id, h.producer_epoch = b.producer_id, b.producer_epoch
    return h


def split_batch(b: ProducerBatch, split_span: Any) -> tuple[ProducerBatch, ProducerBatch]:
    """``b`` (two records or more) as two batches of half its records each, in order.

    ``split_span(token, offset)``: the token of a ``send_batch`` span's part that
    starts ``offset`` records into the span (the caller's collectors know how).
    Sequences are set by the caller (``Sequencer.split``); the halves are not encoded.
    """
    if b.count < 2:
        raise ValueError("a batch of one record cannot be split")
    k = b.count // 2
    first_size = b.size * k // b.count
    first = _half(b, 0, k, first_size, split_span)
    second = _half(b, k, b.count, b.size - first_size, split_span)
    return first, second
