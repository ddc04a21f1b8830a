"""Idempotent sequencing (client/sequencing.py) without a broker: the rules that keep a
partition's batches in sequence order across retries, holes and new producer ids."""

from __future__ import annotations

import collections

from streamcore.client.accumulator import Accumulator, ProducerBatch
from streamcore.client.sequencing import Sequencer
from streamcore.client.types import TopicPartition

TP = TopicPartition("t", 0)


def _batch(count: int, tp: TopicPartition = TP) -> ProducerBatch:
    b = ProducerBatch(tp, 0.0, 1e9)
    for _ in range(count):
        b.add(b"v", None, None, None, 1, None)
    return b


def _sequencer(pid: int = 7) -> Sequencer:
    s = Sequencer()
    s.producer_id, s.producer_epoch = pid, 0
    return s


def test_batches_get_consecutive_sequences_per_partition_and_wrap_at_int32() -> None:
    s = _sequencer()
    a, b, other = _batch(3), _batch(2), _batch(4, TopicPartition("t", 1))
    for x in (a, b, other):
        s.assign(x)
    assert (a.base_sequence, b.base_sequence, other.base_sequence) == (0, 3, 0)
    assert (a.producer_id, a.producer_epoch) == (7, 0)
    s._next_seq[TP] = 0x7FFFFFFF
    c, d = _batch(1), _batch(1)
    s.assign(c)
    s.assign(d)
    assert (c.base_sequence, d.base_sequence) == (0x7FFFFFFF, 0)


def test_a_partition_sends_one_batch_at_a_time_until_the_broker_acknowledges_one() -> None:
    s = _sequencer()
    first, queued = _batch(1), _batch(1)
    assert s.must_go_alone(TP, queued)
    s.assign(first)
    s.acknowledged(first)
    assert not s.must_go_alone(TP, queued)
    s.assign(queued)
    queued.encoded = b"bytes"  # the sender encodes a batch right after assign
    assert s.must_go_alone(TP, queued)  # a retry of a sequenced batch goes alone
    # A half of a split batch has a sequence but was never sent (not encoded): it goes
    # in order with the batches behind it, not alone.
    queued.encoded = None
    assert not s.must_go_alone(TP, queued)


def test_out_of_order_is_fatal_only_for_the_lowest_unacknowledged_batch() -> None:
    s = _sequencer()
    a, b = _batch(1), _batch(1)
    s.assign(a)
    s.assign(b)
    assert not s.out_of_order_is_retriable(a)
    assert s.out_of_order_is_retriable(b)
    s.acknowledged(a)
    assert not s.out_of_order_is_retriable(b)


def test_a_hole_asks_for_a_new_producer_id_and_start_over_resequences_queued_batches() -> None:
    s = _sequencer()
    acc = Accumulator(1000, 10_000, 0, 60_000)
    failed, queued = _batch(1), _batch(1)
    s.assign(failed)
    s.assign(queued)
    queued.encoded = b"old bytes"
    acc.sealed.setdefault(TP, collections.deque()).append(queued)
    s.hole(failed)
    assert s.needs_new_id
    assert s.out_of_order_is_retriable(queued)  # the new producer id will close the hole
    s.start_over(acc)
    assert (queued.base_sequence, queued.producer_id, queued.encoded) == (-1, -1, None)
    fresh = _batch(1)
    s.assign(fresh)
    assert fresh.base_sequence == 0


def test_a_batch_without_a_sequence_leaves_no_hole() -> None:
    s = _sequencer()
    s.hole(_batch(1))
    assert not s.needs_new_id
