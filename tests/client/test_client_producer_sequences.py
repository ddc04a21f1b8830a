"""Idempotent producer sequences when a batch fails while later ones are in flight.

The embedded broker checks sequences like Kafka (a producer it holds no state for is
accepted at any first sequence). Its Produce handler is wrapped here so that chosen
requests are answered with an error instead of being appended, which makes the
races seen against a real broker (NOT_LEADER_OR_FOLLOWER for a partition whose log
does not exist yet) happen every time.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable
from typing import Any

import pytest

from streamcore.aio import AdminClient, Consumer, Producer
from streamcore.broker.handlers import produce as produce_handler
from streamcore.client.types import TopicPartition
from streamcore.errors import ErrorCode, KafkaError
from streamcore.protocol.messages import (
    ProduceResponse,
    ProduceResponse_PartitionProduceResponse,
    ProduceResponse_TopicProduceResponse,
)

from .helpers import consume_n

NOT_LEADER = ErrorCode.NOT_LEADER_OR_FOLLOWER.code
OUT_OF_ORDER = ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER.code

# ~17 records of this size fill a 512-byte batch: 100 records make 6 batches.
N = 100
BATCH = 512


class ProduceFaults:
    """Answers the next Produce requests for ``topic`` with the codes in ``plan``.

    Other requests reach the real handler; ``answers`` counts the error codes the
    real handler gave for ``topic``.
    """

    def __init__(self, topic: str, original: Callable[..., Any]) -> None:
        self.topic = topic
        self.original = original
        self.plan: list[int] = []
        self.refused = 0
        self.answers: collections.Counter[int] = collections.Counter()

    def handle(self, state: Any, ctx: Any, request: Any) -> Any:
        if not any(t.name == self.topic for t in request.topic_data):
            return self.original(state, ctx, request)
        if self.plan:
            self.refused += 1
            return self._refuse(request, self.plan.pop(0))
        return self._count(self.original(state, ctx, request))

    async def _refuse(self, request: Any, code: int) -> ProduceResponse:
        return ProduceResponse(
            responses=[
                ProduceResponse_TopicProduceResponse(
                    name=t.name,
                    partition_responses=[
                        ProduceResponse_PartitionProduceResponse(
                            index=p.index, error_code=code, base_offset=-1
                        )
                        for p in t.partition_data
                    ],
                )
                for t in request.topic_data
            ],
            throttle_time_ms=0,
        )

    async def _count(self, result: Any) -> Any:
        resp = await result
        for t in resp.responses:
            for p in t.partition_responses:
                self.answers[p.error_code] += 1
        return resp


@pytest.fixture
def faults(
    streamcore_broker_factory: Callable[..., Any], topic_name: str, monkeypatch: pytest.MonkeyPatch
) -> tuple[str, ProduceFaults]:
    broker = streamcore_broker_factory()
    f = ProduceFaults(topic_name, produce_handler.handle)
    monkeypatch.setattr(produce_handler, "handle", f.handle)
    return broker.bootstrap_servers, f


async def _values_in(bootstrap: str, topic: str, expected: int) -> list[bytes]:
    async with Consumer(bootstrap, auto_offset_reset="earliest") as c:
        c.assign([TopicPartition(topic, 0)])
        records = await consume_n(c, expected)
        assert await c.poll(timeout_ms=300) == []  # nothing beyond: no duplicate was written
    assert [r.offset for r in records] == list(range(len(records)))
    return [r.value for r in records]


def test_a_new_partition_gets_one_batch_at_a_time_until_the_broker_acknowledges_one(
    faults: tuple[str, ProduceFaults], topic_name: str
) -> None:
    # The first batch is refused; a broker with no state for the producer would
    # accept a second batch in flight behind it at any sequence, writing it first
    # and leaving a hole the first batch's retry could never fill.
    bootstrap, f = faults

    async def main() -> None:
        async with AdminClient(bootstrap) as admin:
            await admin.create_topic(topic_name, num_partitions=1)
        f.plan = [NOT_LEADER]
        async with Producer(bootstrap, linger_ms=1000, batch_size=BATCH, retry_backoff_ms=10) as p:
            futs = [await p.send(topic_name, b"%05d" % i, partition=0) for i in range(N)]
            await p.flush(30)
            metas = [f.result() for f in futs]
        assert f.refused == 1
        assert [m.offset for m in metas] == list(range(N))
        assert await _values_in(bootstrap, topic_name, N) == [b"%05d" % i for i in range(N)]

    asyncio.run(main())


def test_batches_behind_a_refused_batch_come_back_out_of_order_and_are_retried_in_sequence(
    faults: tuple[str, ProduceFaults], topic_name: str
) -> None:
    bootstrap, f = faults

    async def main() -> None:
        async with Producer(bootstrap, linger_ms=1000, batch_size=BATCH, retry_backoff_ms=10) as p:
            await (await p.send(topic_name, b"warm-up", partition=0))  # the broker now knows the producer
            f.plan = [NOT_LEADER]
            futs = [await p.send(topic_name, b"%05d" % i, partition=0) for i in range(N)]
            await p.flush(30)
            metas = [f.result() for f in futs]
        assert f.refused == 1
        # The batches pipelined behind the refused one reached the broker out of order.
        assert f.answers[OUT_OF_ORDER] >= 1
        assert [m.offset for m in metas] == list(range(1, N + 1))
        values = await _values_in(bootstrap, topic_name, N + 1)
        assert values == [b"warm-up"] + [b"%05d" % i for i in range(N)]

    asyncio.run(main())


def test_out_of_order_for_the_first_unacknowledged_batch_fails_it_and_resequences_the_rest(
    faults: tuple[str, ProduceFaults], topic_name: str
) -> None:
    bootstrap, f = faults

    async def main() -> None:
        async with Producer(bootstrap, linger_ms=1000, batch_size=BATCH, retry_backoff_ms=10) as p:
            await (await p.send(topic_name, b"warm-up", partition=0))
            first_pid = p._core.producer_id
            f.plan = [OUT_OF_ORDER]
            futs = [await p.send(topic_name, b"%05d" % i, partition=0) for i in range(N)]
            await p.flush(30)
            failed = [i for i, fut in enumerate(futs) if fut.exception() is not None]
            for i in failed:
                exc = futs[i].exception()
                assert isinstance(exc, KafkaError) and exc.error is ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER
            assert p._core.producer_id != first_pid  # the hole is closed by a new producer id
        # Exactly the refused batch failed: a run of records from the start.
        assert failed and failed == list(range(len(failed))) and len(failed) < N
        delivered = [b"%05d" % i for i in range(len(failed), N)]
        assert await _values_in(bootstrap, topic_name, 1 + len(delivered)) == [b"warm-up"] + delivered

    asyncio.run(main())
