"""split_batch, SplitOutcome and Sequencer.split without a broker (both ProducerBatch twins)."""

from __future__ import annotations

from typing import Any

import pytest

from streamcore.client.accumulator import ProducerBatch
from streamcore.client.producer import _SpanCollector
from streamcore.client.sender import _split_span
from streamcore.client.sequencing import Sequencer
from streamcore.client.splitting import SplitOutcome, is_too_large, split_batch
from streamcore.client.types import TopicPartition
from streamcore.errors import ErrorCode, KafkaError

TP = TopicPartition("t", 0)


class _Future:
    def __init__(self, name: str) -> None:
        self.name = name


def _batch(n: int) -> ProducerBatch:
    b = ProducerBatch(TP, 1.0, 99.0)
    for i in range(n):
        key = b"k%d" % i if i % 3 == 0 else None
        headers = [("h", b"%d" % i)] if i % 4 == 0 else None
        b.add(
            b"v%d" % i,
            key,
            headers,
            1000 + i if i % 5 == 0 else None,
            10,
            _Future(f"f{i}") if i % 2 else None,
        )
    return b


def test_halves_keep_every_column_and_future_at_their_new_index() -> None:
    b = _batch(9)
    b.attempts = 2
    first, second = split_batch(b, _split_span)
    assert (first.count, second.count) == (4, 5)
    assert first.values + second.values == b.values
    assert first.keys + second.keys == b.keys  # type: ignore[operator]
    assert first.headers + second.headers == b.headers  # type: ignore[operator]
    assert first.timestamps + second.timestamps == b.timestamps  # type: ignore[operator]
    assert first.size + second.size == b.size == 90
    for half, offset in ((first, 0), (second, 4)):
        assert half.tp == TP and half.explicit_ts and half.attempts == 2
        assert half.encoded is None and half.base_sequence == -1
        for i, f in zip(half.record_indices, half.record_futures, strict=True):
            assert f.name == f"f{i + offset}"
    assert [f.name for f in first.record_futures + second.record_futures] == [
        f.name for f in b.record_futures
    ]


def test_a_batch_of_one_record_is_not_split() -> None:
    with pytest.raises(ValueError):
        split_batch(_batch(1), _split_span)


def test_a_send_batch_span_cut_by_the_split_becomes_two_ordered_parts() -> None:
    future: Any = type(
        "F", (), {"done": lambda self: False, "set_result": lambda self, r: setattr(self, "r", r)}
    )()
    collector = _SpanCollector(future, 2)
    b = ProducerBatch(TP, 1.0, 99.0)
    b.add_many([b"a%d" % i for i in range(3)], None, 30, (collector, collector.next_order()))
    b.add_many([b"b%d" % i for i in range(5)], None, 50, (collector, collector.next_order()))
    first, second = split_batch(b, _split_span)  # 4 | 4: the second span is cut after 1 record
    assert [(s, n) for s, n, _ in first.span_futures] == [(0, 3), (3, 1)]
    assert [(s, n) for s, n, _ in second.span_futures] == [(0, 4)]
    assert collector.left == 3
    # Answered out of order, the parts still come back in the call's order.
    for half in (second, first):
        for start, count, (c, order) in half.span_futures:
            c.done(order, (half is first, start, count), None)
    assert future.r == [(True, 0, 3), (True, 3, 1), (False, 0, 4)]


def test_split_outcome_answers_each_record_from_its_part() -> None:
    outcome = SplitOutcome(5)
    assert not outcome.add(2, 3, (100, -1), 7)
    assert outcome.add(0, 2, (40, -1), 6)
    assert outcome.at(0) == ((40, -1), 6, 0)
    assert outcome.at(3) == ((100, -1), 7, 1)
    with pytest.raises(IndexError):
        outcome.at(5)


def test_sequencer_gives_the_halves_the_refused_batchs_sequences_in_its_place() -> None:
    seq = Sequencer()
    seq.producer_id, seq.producer_epoch = 7, 0
    batches = [_batch(4), _batch(6), _batch(2)]
    for b in batches:
        seq.assign(b)
    assert [b.base_sequence for b in batches] == [0, 4, 10]
    first, second = split_batch(batches[1], _split_span)
    seq.split(batches[1], first, second)
    assert (first.base_sequence, second.base_sequence) == (4, 7)
    assert (first.producer_id, second.producer_id) == (7, 7)
    assert list(seq._unacked[TP]) == [batches[0], first, second, batches[2]]
    # The batch behind the refused one is not the lowest unacknowledged: a retry cures it.
    assert seq.out_of_order_is_retriable(batches[2])


def test_halves_of_a_batch_of_an_earlier_producer_id_are_sequenced_afresh() -> None:
    seq = Sequencer()
    seq.producer_id, seq.producer_epoch = 7, 0
    b = _batch(4)
    seq.assign(b)
    seq.producer_id = 8  # a new producer id came meanwhile
    first, second = split_batch(b, _split_span)
    seq.split(b, first, second)
    assert first.base_sequence == second.base_sequence == -1


def test_only_too_large_answers_split() -> None:
    assert is_too_large(KafkaError(ErrorCode.MESSAGE_TOO_LARGE, "x"))
    assert is_too_large(KafkaError(ErrorCode.RECORD_LIST_TOO_LARGE, "x"))
    assert not is_too_large(KafkaError(ErrorCode.CORRUPT_MESSAGE, "x"))
    assert not is_too_large(ValueError("x"))
