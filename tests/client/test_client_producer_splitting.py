"""A batch the broker refuses as too large (MESSAGE_TOO_LARGE) is split and delivered.

Each case runs against streamcore and, as the control, a real Apache Kafka broker: a topic
whose max.message.bytes is far below the batches the producer builds receives every
record, in order, with the offsets and timestamps the futures reported.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from typing import Any

import pytest

from streamcore.aio import AdminClient, Consumer, Producer
from streamcore.client import Producer as BlockingProducer
from streamcore.client.types import TopicPartition
from streamcore.errors import ErrorCode, KafkaError

from .helpers import consume_n

# Far below what send_batch (send_batch_size: 512 KiB) and the batch_size used here build.
LIMIT = 16384


def _create(bootstrap: str, topic: str, partitions: int = 1) -> None:
    """Create ``topic`` with max.message.bytes = LIMIT and check that the broker holds it."""

    async def main() -> None:
        async with AdminClient(bootstrap) as admin:
            await admin.create_topic(
                topic, num_partitions=partitions, config={"max.message.bytes": str(LIMIT)}
            )
            configs = await admin.describe_configs(topics=[topic])
        assert configs[(2, topic)]["max.message.bytes"] == str(LIMIT)

    asyncio.run(main())


def _read(bootstrap: str, topic: str, partition: int, n: int) -> list[Any]:
    async def main() -> list[Any]:
        async with Consumer(bootstrap, auto_offset_reset="earliest") as c:
            c.assign([TopicPartition(topic, partition)])
            return await consume_n(c, n, timeout_s=30.0)

    return asyncio.run(main())


@pytest.mark.parametrize("idempotent", [True, False])
def test_send_batch_over_max_message_bytes_is_split_and_delivered_in_order(
    kafka_bootstrap: str, topic_name: str, idempotent: bool
) -> None:
    _create(kafka_bootstrap, topic_name)
    # 1.6 MB in a few send_batch_size runs, each many times LIMIT.
    values = [b"%06d" % i + os.urandom(94) for i in range(16000)]
    with BlockingProducer(kafka_bootstrap, enable_idempotence=idempotent) as p:
        # A first acknowledged batch lets the partition have several batches in flight
        # (idempotence sends only one until then), so a run may already be on its way
        # behind a refused one (then answered OUT_OF_ORDER_SEQUENCE_NUMBER and retried
        # after the halves) or still queued: timing decides, and both keep the order.
        assert p.send(topic_name, b"first", partition=0).result(30).offset == 0
        metas = p.send_batch(topic_name, values, partition=0).result(60)
        split = p.metrics["batches_split"]
        assert split > 0
        # Once a refusal showed the size the topic takes, batches still waiting are cut
        # before they are sent: fewer refusals (failed attempts) than splits.
        assert p.metrics["retry"]["failures"] < split
        # The producer remembers the size the topic took: the next call is not refused.
        again = p.send_batch(topic_name, values[:500], partition=0).result(60)
        assert p.metrics["batches_split"] == split
        assert sum(m.record_count for m in again) == 500
    # One BatchMetadata per batch written, covering every record in the call's order.
    assert sum(m.record_count for m in metas) == len(values)
    assert len(metas) > 1
    records = _read(kafka_bootstrap, topic_name, 0, 1 + len(values) + 500)
    assert len(records) == 1 + len(values) + 500
    assert records[0].value == b"first"
    assert [r.value for r in records[1 + len(values) :]] == values[:500]
    records = records[1 : 1 + len(values)]
    by_offset = {r.offset: r.value for r in records}
    start = 0
    for m in metas:
        assert [by_offset[m.base_offset + j] for j in range(m.record_count)] == values[
            start : start + m.record_count
        ]
        start += m.record_count
    if idempotent:
        # Idempotence keeps the partition's order across the halves (sequence numbers);
        # without it, as in the Java client with several batches in flight, halves sent
        # again may land after a batch that was behind them.
        assert [r.value for r in records] == values
    else:
        assert sorted(r.value for r in records) == sorted(values)


def test_keyed_send_batch_over_max_message_bytes_keeps_each_partitions_order(
    kafka_bootstrap: str, topic_name: str
) -> None:
    _create(kafka_bootstrap, topic_name, partitions=3)
    keys = [b"key-%d" % (i % 7) for i in range(2400)]
    values = [b"%06d" % i + os.urandom(120) for i in range(2400)]
    with BlockingProducer(kafka_bootstrap) as p:
        metas = p.send_batch(topic_name, values, keys=keys).result(60)
    assert sum(m.record_count for m in metas) == len(values)
    seen: list[bytes] = []
    for partition in range(3):
        expected = {m.partition for m in metas}
        if partition not in expected:
            continue
        count = sum(m.record_count for m in metas if m.partition == partition)
        records = _read(kafka_bootstrap, topic_name, partition, count)
        assert len(records) == count
        got = [r.value for r in records]
        # Within a partition the records keep the order they were given in.
        assert got == sorted(got, key=values.index)
        assert {r.key for r in records} == {k for k, v in zip(keys, values, strict=True) if v in set(got)}
        seen += got
    assert sorted(seen) == sorted(values)


def test_blocking_send_futures_report_the_offsets_their_records_got(
    kafka_bootstrap: str, topic_name: str
) -> None:
    _create(kafka_bootstrap, topic_name)
    # A long linger and a large batch_size build one batch far over the topic's limit.
    with BlockingProducer(kafka_bootstrap, batch_size=512 * 1024, linger_ms=200) as p:
        values = [b"v%05d" % i + os.urandom(200) for i in range(1500)]
        futures = [p.send(topic_name, v, partition=0) for v in values]
        p.flush(60)
        metas = [f.result(30) for f in futures]
        assert p.metrics["batches_split"] > 0
    records = _read(kafka_bootstrap, topic_name, 0, len(values))
    assert [r.value for r in records] == values
    for meta, record in zip(metas, records, strict=True):
        assert (meta.partition, meta.offset, meta.timestamp) == (0, record.offset, record.timestamp)


@pytest.mark.parametrize("idempotent", [True, False])
def test_asyncio_send_futures_report_the_offsets_their_records_got(
    kafka_bootstrap: str, topic_name: str, idempotent: bool
) -> None:
    _create(kafka_bootstrap, topic_name)
    values = [b"a%05d" % i + os.urandom(200) for i in range(1500)]

    async def main() -> list[Any]:
        async with Producer(
            kafka_bootstrap, batch_size=512 * 1024, linger_ms=200, enable_idempotence=idempotent
        ) as p:
            futures = [await p.send(topic_name, v, partition=0) for v in values]
            metas = await asyncio.wait_for(asyncio.gather(*futures), 60)
            assert p.metrics["batches_split"] > 0
            return metas

    metas = asyncio.run(main())
    records = _read(kafka_bootstrap, topic_name, 0, len(values))
    by_offset = {r.offset: r for r in records}
    for value, meta in zip(values, metas, strict=True):
        assert by_offset[meta.offset].value == value
        assert by_offset[meta.offset].timestamp == meta.timestamp
    if idempotent:
        assert [r.value for r in records] == values


def test_only_a_record_too_large_on_its_own_fails(kafka_bootstrap: str, topic_name: str) -> None:
    _create(kafka_bootstrap, topic_name)
    before = [b"before-%d" % i + os.urandom(500) for i in range(20)]
    after = [b"after-%d" % i + os.urandom(500) for i in range(20)]
    with BlockingProducer(kafka_bootstrap, batch_size=512 * 1024, linger_ms=200) as p:
        ok_before = [p.send(topic_name, v, partition=0) for v in before]
        big = p.send(topic_name, os.urandom(LIMIT * 2), partition=0)
        ok_after = [p.send(topic_name, v, partition=0) for v in after]
        p.flush(60)
        with pytest.raises(KafkaError) as refused:
            big.result(30)
        assert refused.value.error.code in (
            ErrorCode.MESSAGE_TOO_LARGE.code,
            ErrorCode.RECORD_LIST_TOO_LARGE.code,
        )
        offsets = [f.result(30).offset for f in ok_before + ok_after]
        # The producer goes on after the refused record (idempotence: under a new producer id).
        assert p.send(topic_name, b"later", partition=0).result(30).offset > max(offsets)
    records = _read(kafka_bootstrap, topic_name, 0, len(before) + len(after) + 1)
    assert [r.value for r in records] == before + after + [b"later"]
    assert [r.offset for r in records[:-1]] == offsets


def test_a_transaction_with_split_batches_commits_every_record(kafka_bootstrap: str, topic_name: str) -> None:
    _create(kafka_bootstrap, topic_name, partitions=2)
    values = [b"t%05d" % i + os.urandom(150) for i in range(2000)]

    async def main() -> None:
        async with Producer(kafka_bootstrap, transactional_id=f"split-{uuid.uuid4().hex}") as p:
            await p.init_transactions(30)
            p.begin_transaction()
            spans = await asyncio.wait_for(await p.send_batch(topic_name, values, partition=1), 60)
            await p.commit_transaction(30)
            assert p.metrics["batches_split"] > 0
        assert sum(m.record_count for m in spans) == len(values)
        async with Consumer(
            kafka_bootstrap, auto_offset_reset="earliest", isolation_level="read_committed"
        ) as c:
            c.assign([TopicPartition(topic_name, 1)])
            records = await consume_n(c, len(values), timeout_s=30.0)
        assert [r.value for r in records] == values

    asyncio.run(main())
