"""``ProducerBatch.resolve_records`` and the garbage collector (both twins).

The native twin hands each asyncio ``send()`` future a RecordMetadata that the
collector does not track when its items are plain str and int objects (no cycle can
go through it); anything else must stay tracked, or a cycle through it would never
be freed. The futures and their indices are kept in two parallel lists.
"""

from __future__ import annotations

import asyncio
import gc
from types import ModuleType
from typing import Any, NamedTuple

import pytest

from streamcore import _impl
from streamcore._reference import accumulator as ref_accumulator
from streamcore.client.types import RecordMetadata, TopicPartition

ACCUMULATORS = [pytest.param(_impl.accumulator, id="active")]
if _impl.accumulator is not ref_accumulator:
    ACCUMULATORS.append(pytest.param(ref_accumulator, id="reference"))


class _Topic(str):
    """A str subclass: it may carry attributes, so it can be part of a cycle."""


class _WithDict(tuple):  # type: ignore[type-arg]
    """A tuple subclass with an instance dict (a cycle can go through the dict)."""

    def __new__(cls, *fields: Any) -> _WithDict:
        return super().__new__(cls, fields)


class _Meta(NamedTuple):
    topic: str
    partition: int
    offset: int
    timestamp: int


def _resolved(impl: ModuleType, topic: str, metadata: Any, timestamps: list[Any] | None = None) -> list[Any]:
    loop = asyncio.new_event_loop()
    try:
        b = impl.ProducerBatch(TopicPartition(topic, 1), 0.0, 9.0)
        futs = [loop.create_future() for _ in range(3)]
        for i, f in enumerate(futs):
            b.add(b"v", None, None, None if timestamps is None else timestamps[i], 25, f)
        b.first_ts = 5
        assert b.record_indices == [0, 1, 2] and b.record_futures == futs
        b.resolve_records(10, -1, metadata)
        return [f.result() for f in futs]
    finally:
        loop.close()


@pytest.mark.parametrize("impl", ACCUMULATORS)
def test_metadata_of_plain_items_is_right_and_untracked_by_the_native_twin(impl: ModuleType) -> None:
    got = _resolved(impl, "t", RecordMetadata)
    assert got == [RecordMetadata("t", 1, 10 + i, 5) for i in range(3)]
    assert all(type(m) is RecordMetadata for m in got)
    if impl is not ref_accumulator:
        assert not any(gc.is_tracked(m) for m in got)


@pytest.mark.parametrize("impl", ACCUMULATORS)
def test_metadata_that_could_be_in_a_cycle_stays_tracked(impl: ModuleType) -> None:
    # A str subclass as the topic.
    got = _resolved(impl, _Topic("t"), RecordMetadata)
    assert [m.offset for m in got] == [10, 11, 12]
    assert all(gc.is_tracked(m) for m in got)
    # A tuple subclass with an instance dict as the metadata type.
    got = _resolved(impl, "t", _WithDict)
    assert got == [("t", 1, 10 + i, 5) for i in range(3)] and all(type(m) is _WithDict for m in got)
    assert all(gc.is_tracked(m) for m in got)
    # A timestamp that is not an int.
    ts = [7, [8], None]
    got = _resolved(impl, "t", _Meta, ts)
    assert [m.timestamp for m in got] == [7, [8], 5]
    assert gc.is_tracked(got[1])


@pytest.mark.parametrize("impl", ACCUMULATORS)
def test_any_other_callable_makes_the_metadata(impl: ModuleType) -> None:
    got = _resolved(impl, "t", lambda *a: list(a))
    assert got == [["t", 1, 10 + i, 5] for i in range(3)]
    assert all(gc.is_tracked(m) for m in got)
