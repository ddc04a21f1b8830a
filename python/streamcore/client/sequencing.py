"""Idempotent sequencing: the producer id and each partition's batch sequence numbers.

InitProducerId gives a producer id and epoch; each partition's batches get
consecutive sequence numbers when first sent, so a broker recognises a resent batch
it already wrote. The bookkeeping, per partition, reasons like the Java client:

* Until the broker has acknowledged one batch of the current producer id on a
  partition, that partition has ONE batch in flight. A broker accepts any
  sequence from a producer it holds no state for, so if the first batch failed
  (NOT_LEADER_OR_FOLLOWER is common right after a topic is created: the
  broker's metadata lists the partition before its log exists) a second batch
  in flight behind it would be written first, leaving a hole no retry can fill.
* A batch whose sequence is not the lowest one still unacknowledged gets
  OUT_OF_ORDER_SEQUENCE_NUMBER because an earlier batch failed or is being
  retried; it is retried after that one, in sequence order, one at a time.
  Only the lowest unacknowledged batch's OUT_OF_ORDER is fatal.
* A batch that fails for good after getting a sequence leaves a hole: nothing
  more is sent until every answer is in, then the producer takes a new producer
  id and the batches still queued are sequenced again under it.

A transactional producer (``transactions``) uses the same bookkeeping with the
producer id and epoch its coordinator gives; a hole there dooms the transaction, and
the abort takes the next epoch instead of a new producer id.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections import defaultdict

from streamcore.client.accumulator import Accumulator, ProducerBatch
from streamcore.client.cluster import Cluster
from streamcore.client.errors import broker_error
from streamcore.client.retrying import Backoff, is_retriable
from streamcore.client.types import TopicPartition
from streamcore.protocol.messages import InitProducerIdRequest

__all__ = ["Sequencer"]

_SEQUENCE_MASK = 0x7FFFFFFF  # sequences are int32 and wrap to 0


class Sequencer:
    """Producer id, epoch and per-partition sequences of one idempotent producer.

    Used on the event loop only (by the sender). ``needs_new_id`` is set when a
    sequence hole appears; the sender then stops sending, waits for every answer and
    calls ``init_producer_id`` again.
    """

    def __init__(self) -> None:
        self.producer_id = -1
        self.producer_epoch = -1
        self.needs_new_id = False
        self._next_seq: dict[TopicPartition, int] = defaultdict(int)
        # Batches with a sequence of the current producer id, not yet acknowledged
        # nor failed for good, in sequence order (in flight or queued for a retry).
        self._unacked: dict[TopicPartition, collections.deque[ProducerBatch]] = defaultdict(collections.deque)
        # Partitions where the broker acknowledged a batch of the current producer id.
        self._confirmed: set[TopicPartition] = set()

    async def init_producer_id(
        self, cluster: Cluster, backoff: Backoff, max_block_ms: int, acc: Accumulator
    ) -> None:
        """Get a producer id (retrying retriable errors for up to ``max_block_ms``), then
        start every partition's sequence over under it (``start_over``)."""
        deadline = time.monotonic() + max_block_ms / 1000.0
        attempt = 0
        while True:
            try:
                conn = await cluster.any_connection()
                resp = await conn.request(
                    InitProducerIdRequest(
                        transactional_id=None, transaction_timeout_ms=-1, producer_id=-1, producer_epoch=-1
                    )
                )
                if resp.error_code:
                    raise broker_error(resp.error_code, "InitProducerId")
                self.producer_id, self.producer_epoch = resp.producer_id, resp.producer_epoch
                self.start_over(acc)
                return
            except Exception as exc:
                if not is_retriable(exc) or time.monotonic() >= deadline:
                    raise
                await asyncio.sleep(backoff.delay_ms(attempt) / 1000.0)
                attempt += 1

    def start_over(self, acc: Accumulator) -> None:
        """Start every partition's sequence over for a new producer id.

        Queued batches that had a sequence of the previous id are encoded again
        when next sent (called when nothing is in flight).
        """
        self._next_seq.clear()
        self._unacked.clear()
        self._confirmed.clear()
        with acc.lock:
            for q in acc.sealed.values():
                for b in q:
                    if b.base_sequence >= 0:
                        b.encoded = None
                        b.base_sequence = b.producer_id = b.producer_epoch = -1

    def must_go_alone(self, tp: TopicPartition, batch: ProducerBatch) -> bool:
        """True if ``batch`` may only be sent with nothing else of its partition in flight:
        a retry (it is then the lowest unacknowledged sequence), or the first batch of a
        producer id on the partition. The halves of a split batch (a sequence, not yet
        encoded) were never sent: they go in order like new batches."""
        return (batch.base_sequence >= 0 and batch.encoded is not None) or tp not in self._confirmed

    def assign(self, b: ProducerBatch) -> None:
        """Give ``b`` the next sequence of its partition and the current producer id (first send)."""
        seq = self._next_seq[b.tp]
        b.base_sequence = seq
        self._next_seq[b.tp] = (seq + b.count) & _SEQUENCE_MASK
        b.producer_id, b.producer_epoch = self.producer_id, self.producer_epoch
        self._unacked[b.tp].append(b)

    def split(self, b: ProducerBatch, first: ProducerBatch, second: ProducerBatch) -> None:
        """``b`` was refused as too large and goes out as ``first`` then ``second``.

        The broker wrote nothing of ``b``, so its partition still expects ``b``'s first
        sequence: ``first`` takes it, ``second`` the one after ``first``'s records, and
        the two take ``b``'s place among the unacknowledged batches. A ``b`` of an
        earlier producer id (or never sent) leaves the halves unsequenced.
        """
        if (
            b.base_sequence < 0
            or b.producer_id != self.producer_id
            or b.producer_epoch != self.producer_epoch
        ):
            for h in (first, second):
                h.base_sequence = h.producer_id = h.producer_epoch = -1
            self._forget(b)
            return
        first.base_sequence = b.base_sequence
        second.base_sequence = (b.base_sequence + first.count) & _SEQUENCE_MASK
        q = self._unacked[b.tp]
        try:
            at = q.index(b)
        except ValueError:
            q.appendleft(second)
            q.appendleft(first)
            return
        q[at] = first
        q.insert(at + 1, second)

    def acknowledged(self, b: ProducerBatch) -> None:
        """``b`` was written (or recognised as a duplicate) by the broker."""
        if b.base_sequence >= 0:
            self._forget(b)
            if b.producer_id == self.producer_id:
                self._confirmed.add(b.tp)

    def out_of_order_is_retriable(self, b: ProducerBatch) -> bool:
        """Whether OUT_OF_ORDER_SEQUENCE_NUMBER for ``b`` can be cured by a retry.

        The broker waits for a lower sequence of this partition: a batch sent before
        this one failed or is being retried (or a hole is about to be closed by a new
        producer id). Only for the lowest unacknowledged batch does it mean the broker
        lost what it acknowledged: fatal.
        """
        if self.needs_new_id:
            return True
        q = self._unacked.get(b.tp)
        return not (q is not None and len(q) > 0 and q[0] is b)

    def hole(self, b: ProducerBatch) -> None:
        """``b`` failed for good: if it had a sequence, later ones cannot follow it."""
        if b.base_sequence >= 0:
            self._forget(b)
            # Every later batch of the partition would be out of order: start over
            # with a fresh producer id once nothing is in flight.
            self.needs_new_id = True

    def _forget(self, b: ProducerBatch) -> None:
        q = self._unacked.get(b.tp)
        if q:
            if q[0] is b:  # the usual case: answers come in sequence order
                q.popleft()
            else:
                try:
                    q.remove(b)
                except ValueError:
                    pass  # a batch of an earlier producer id
