"""DeliveryFuture: a lazily-completed concurrent.futures.Future bound to a producer batch."""

from __future__ import annotations

import concurrent.futures
import threading

import pytest

from streamcore.client.accumulator import ProducerBatch
from streamcore.client.sync import DeliveryFuture, complete_batch
from streamcore.client.types import RecordMetadata, TopicPartition


def _bound(n: int) -> tuple[ProducerBatch, list[DeliveryFuture]]:
    batch = ProducerBatch(TopicPartition("t", 3), 0.0, 10.0)
    batch.first_ts = 1234
    futs = []
    for i in range(n):
        f = DeliveryFuture()
        f._batch, f._index = batch, i
        futs.append(f)
    return batch, futs


def test_bound_futures_read_their_metadata_from_the_batch_outcome() -> None:
    batch, futs = _bound(3)
    assert not any(f.done() for f in futs)
    complete_batch(batch, (100, -1))
    assert [f.result(0) for f in futs] == [RecordMetadata("t", 3, 100 + i, 1234) for i in range(3)]


def test_waiters_registered_before_completion_are_woken() -> None:
    batch, futs = _bound(4)
    results: list[object] = []
    t = threading.Thread(target=lambda: results.append(futs[1].result(10)))
    t.start()
    seen: list[object] = []
    futs[2].add_done_callback(lambda f: seen.append(f.result()))
    threading.Timer(0.1, complete_batch, (batch, (0, -1))).start()
    done, not_done = concurrent.futures.wait(futs, timeout=10)
    t.join(10)
    assert not not_done and results == [RecordMetadata("t", 3, 1, 1234)]
    assert seen == [RecordMetadata("t", 3, 2, 1234)]
    assert sorted(f.result().offset for f in concurrent.futures.as_completed(futs, timeout=1)) == [0, 1, 2, 3]


def test_failed_batch_sets_the_exception_on_every_future() -> None:
    batch, futs = _bound(2)
    err = ValueError("boom")
    complete_batch(batch, err)
    for f in futs:
        assert f.exception(0) is err
        with pytest.raises(ValueError):
            f.result(0)


def test_unbound_future_behaves_like_a_plain_future() -> None:
    f = DeliveryFuture()
    with pytest.raises(concurrent.futures.TimeoutError):
        f.result(0.01)
    f.set_result(5)
    assert f.done() and f.result() == 5
    with pytest.raises(concurrent.futures.InvalidStateError):
        f.set_result(6)
    g = DeliveryFuture()
    assert g.cancel() and g.cancelled()
