"""Produce then consume through the asyncio API: content, order, counts, partitioning; how the
consumer's fetcher takes a Fetch answer, without a broker."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from streamcore.aio import AdminClient, Consumer, Producer
from streamcore.client.config import build_config
from streamcore.client.fetcher import Fetcher, FetchSession, PartitionState
from streamcore.client.types import TopicPartition
from streamcore.codec import encode_batch
from streamcore.codec.partitioner import default_partition

from .helpers import by_partition, consume_n

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]


@pytest.mark.parametrize("codec", CODECS)
def test_round_trip_keeps_content_headers_and_per_partition_order(
    kafka_bootstrap: str, topic_name: str, codec: str
) -> None:
    n = 300

    async def main() -> None:
        async with AdminClient(kafka_bootstrap) as admin:
            await admin.create_topic(topic_name, num_partitions=3)
        async with Producer(kafka_bootstrap, compression_type=codec, linger_ms=2, batch_size=2048) as p:
            futs = [
                await p.send(
                    topic_name, b"value-%d" % i, key=b"key-%d" % (i % 11), headers=[("i", b"%d" % i)]
                )
                for i in range(n)
            ]
            await p.flush()
            metas = [f.result() for f in futs]
        async with Consumer(kafka_bootstrap, auto_offset_reset="earliest") as c:
            c.assign([TopicPartition(topic_name, p) for p in range(3)])
            records = await consume_n(c, n)
        assert len(records) == n
        sent = {(m.partition, m.offset): i for i, m in enumerate(metas)}
        for r in records:
            i = sent[(r.partition, r.offset)]
            assert r.value == b"value-%d" % i
            assert r.key == b"key-%d" % (i % 11)
            assert r.headers == [("i", b"%d" % i)]
        for tp, recs in by_partition(records).items():
            indexes = [int(r.value.split(b"-")[1]) for r in recs]
            assert indexes == sorted(indexes), f"{tp} out of order"
            offsets = [r.offset for r in recs]
            assert offsets == list(range(offsets[0], offsets[0] + len(offsets)))

    asyncio.run(main())


def test_keyed_records_go_to_the_murmur2_partition(kafka_bootstrap: str, topic_name: str) -> None:
    async def main() -> None:
        async with AdminClient(kafka_bootstrap) as admin:
            await admin.create_topic(topic_name, num_partitions=5)
        async with Producer(kafka_bootstrap) as p:
            keys = [b"user-%d" % i for i in range(50)] + [b"", b"\xff" * 7]
            metas = [await (await p.send(topic_name, b"v", key=k)) for k in keys]
        for k, m in zip(keys, metas, strict=True):
            assert m.partition == default_partition(k, 5)

    asyncio.run(main())


def test_send_batch_writes_every_record_once_in_order(kafka_bootstrap: str, topic_name: str) -> None:
    n = 5000

    async def main() -> None:
        async with AdminClient(kafka_bootstrap) as admin:
            await admin.create_topic(topic_name, num_partitions=2)
        async with Producer(kafka_bootstrap, batch_size=4096) as p:
            values = [b"%06d" % i for i in range(n)]
            spans = await (await p.send_batch(topic_name, values))
            keyed = await (await p.send_batch(topic_name, [b"k"] * 10, keys=[b"same"] * 10))
        assert sum(s.record_count for s in spans) == n
        assert {s.partition for s in keyed} == {default_partition(b"same", 2)}
        async with Consumer(kafka_bootstrap, auto_offset_reset="earliest") as c:
            c.assign([TopicPartition(topic_name, 0), TopicPartition(topic_name, 1)])
            records = await consume_n(c, n + 10)
        assert len(records) == n + 10
        got = sorted(r.value for r in records if r.value != b"k")
        assert got == values
        # Each span names where its run of records landed.
        at = {(r.partition, r.offset): r.value for r in records}
        start = 0
        for s in spans:
            assert at[(s.partition, s.base_offset)] == values[start]
            start += s.record_count

    asyncio.run(main())


def test_serializers_apply_to_keys_and_values(kafka_bootstrap: str, topic_name: str) -> None:
    async def main() -> None:
        async with Producer(
            kafka_bootstrap, value_serializer=lambda v: repr(v).encode(), key_serializer=str.encode
        ) as p:
            meta = await (await p.send(topic_name, {"a": 1}, key="k"))
        async with Consumer(
            kafka_bootstrap, auto_offset_reset="earliest", value_deserializer=lambda b: b.decode()
        ) as c:
            c.assign([TopicPartition(topic_name, meta.partition)])
            (rec,) = await consume_n(c, 1)
        assert rec.value == "{'a': 1}" and rec.key == b"k"

    asyncio.run(main())


def test_columnar_poll_returns_numpy_columns(kafka_bootstrap: str, topic_name: str) -> None:
    async def main() -> None:
        async with Producer(kafka_bootstrap) as p:
            await (await p.send_batch(topic_name, [b"%d" % i for i in range(100)], partition=0))
        async with Consumer(kafka_bootstrap, auto_offset_reset="earliest", columnar=True) as c:
            c.assign([TopicPartition(topic_name, 0)])
            chunks = []
            for _ in range(50):
                chunks += await c.poll(timeout_ms=200)
                if sum(len(ch.columns["offset"]) for ch in chunks) >= 100:
                    break
        offsets = [int(o) for ch in chunks for o in ch.columns["offset"]]
        assert offsets == list(range(100))
        ch = chunks[0]
        buf = ch.columns["buffer"]
        first = bytes(
            buf[ch.columns["value_offset"][0] : ch.columns["value_offset"][0] + ch.columns["value_length"][0]]
        )
        assert first == b"0"

    asyncio.run(main())


def test_seek_pause_resume_and_position(kafka_bootstrap: str, topic_name: str) -> None:
    async def main() -> None:
        tp = TopicPartition(topic_name, 0)
        async with Producer(kafka_bootstrap) as p:
            await (await p.send_batch(topic_name, [b"%d" % i for i in range(20)], partition=0))
        async with Consumer(kafka_bootstrap, auto_offset_reset="latest") as c:
            c.assign([tp])
            assert await c.position(tp) == 20
            c.seek_to_beginning(tp)
            assert await c.position(tp) == 0
            c.seek(tp, 15)
            recs = await consume_n(c, 5)
            assert [r.offset for r in recs] == [15, 16, 17, 18, 19]
            assert await c.position(tp) == 20
            c.pause(tp)
            assert c.paused() == {tp}
            c.seek(tp, 0)
            assert await c.poll(timeout_ms=300) == []
            c.resume(tp)
            recs = await consume_n(c, 20)
            assert [r.offset for r in recs] == list(range(20))
            c.seek_to_end(tp)
            assert await c.position(tp) == 20

    asyncio.run(main())


# ---------------------------------------------------------------- Fetcher answers without a broker


def _fetch_answer(topic: str, partition: int, records: bytes, error_code: int = 0, hw: int = 0):
    part = SimpleNamespace(
        partition_index=partition, error_code=error_code, high_watermark=hw, records=records
    )
    return SimpleNamespace(responses=[SimpleNamespace(topic=topic, partitions=[part])])


def _fetcher(**settings):
    config = build_config("consumer", "127.0.0.1:1", None, settings)
    tp = TopicPartition("t", 0)
    st = PartitionState(tp)
    st.seek(10)
    fetcher = Fetcher(None, config, {tp: st}, None, {}, asyncio.Event())
    return fetcher, st, FetchSession()


def test_fetcher_buffers_an_answer_from_the_fetch_offset_and_signals_poll() -> None:
    fetcher, st, session = _fetcher()
    # A batch from offset 8 that overlaps the fetch offset (10) is kept whole: poll skips
    # the records below the position; the fetch offset moves past the batch.
    batch = encode_batch([b"a", b"b", b"c", b"d"], timestamps_ms=[1] * 4, base_offset=8)
    fetcher._handle_fetch(_fetch_answer("t", 0, batch, hw=12), {st.tp: st.epoch}, session)
    assert (st.fetch_offset, st.high_watermark, st.buffered) == (12, 12, 4)
    assert fetcher.data.is_set()


def test_fetcher_drops_an_answer_for_a_partition_seeked_while_it_was_in_flight() -> None:
    fetcher, st, session = _fetcher()
    epoch = st.epoch
    st.seek(0)
    session.sent[st.tp] = 10
    batch = encode_batch([b"a"], timestamps_ms=[1], base_offset=10)
    fetcher._handle_fetch(_fetch_answer("t", 0, batch, hw=11), {st.tp: epoch}, session)
    assert (st.fetch_offset, st.buffered) == (0, 0)
    assert st.tp not in session.sent  # the next request names the partition again
    assert not fetcher.data.is_set()


@pytest.mark.parametrize(("policy", "reset"), [("earliest", -2), ("latest", -1)])
def test_fetcher_resets_an_out_of_range_partition_by_auto_offset_reset(policy: str, reset: int) -> None:
    fetcher, st, session = _fetcher(auto_offset_reset=policy)
    fetcher._handle_fetch(_fetch_answer("t", 0, b"", error_code=1), {st.tp: st.epoch}, session)
    assert st.reset == reset and st.error is None


def test_fetcher_reports_out_of_range_to_poll_under_auto_offset_reset_none() -> None:
    fetcher, st, session = _fetcher(auto_offset_reset="none")
    fetcher._handle_fetch(_fetch_answer("t", 0, b"", error_code=1), {st.tp: st.epoch}, session)
    assert st.error is not None and "t-0" in str(st.error)
    assert fetcher.data.is_set()
