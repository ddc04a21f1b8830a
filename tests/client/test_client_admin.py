"""Admin client: topics, configs, groups, offsets, wait_for_topic."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest

from streamcore.aio import AdminClient, Producer
from streamcore.broker.handlers import metadata as metadata_handler
from streamcore.client import NewTopic
from streamcore.client.types import OffsetAndMetadata, TopicPartition
from streamcore.errors import ErrorCode, KafkaError
from streamcore.protocol.messages import MetadataResponse_MetadataResponseTopic

# Apache Kafka (the control) answers an alter before its broker has applied the change
# from the metadata log, so a describe right after it may still show the old state on a
# loaded runner (a CI dry run saw DEFAULT_CONFIG). Describes are polled until they show
# the change or SETTLE_S passes; the assertions then run on the last answer, so a broker
# that never applies the change still fails. streamcore answers settled at once.
SETTLE_S = 30.0


def _settled(describe: Callable[[], Any], done: Callable[[Any], bool]) -> Any:
    deadline = time.monotonic() + SETTLE_S
    while True:
        got = describe()
        if done(got) or time.monotonic() > deadline:
            return got
        time.sleep(0.05)


async def _settled_async(describe: Callable[[], Any], done: Callable[[Any], bool]) -> Any:
    deadline = time.monotonic() + SETTLE_S
    while True:
        got = await describe()
        if done(got) or time.monotonic() > deadline:
            return got
        await asyncio.sleep(0.05)


def _segment_dynamic_retention_not(entries: Any) -> bool:
    return (
        entries["segment.ms"].source == "DYNAMIC_TOPIC_CONFIG"
        and entries["retention.ms"].source != "DYNAMIC_TOPIC_CONFIG"
    )


def test_create_list_describe_delete_topics(kafka_bootstrap: str, topic_name: str) -> None:
    async def main() -> None:
        async with AdminClient(kafka_bootstrap) as admin:
            res = await admin.create_topics([NewTopic(topic_name, 3, config={"retention.ms": "60000"})])
            assert res == {topic_name: None}
            with pytest.raises(KafkaError) as info:
                await admin.create_topic(topic_name)
            assert info.value.error is ErrorCode.TOPIC_ALREADY_EXISTS
            assert topic_name in await admin.list_topics()
            info2 = (await admin.describe_topics([topic_name]))[topic_name]
            assert info2.partitions == [0, 1, 2]
            configs = await admin.describe_configs(topics=[topic_name])
            assert configs[(2, topic_name)]["retention.ms"] == "60000"
            assert await admin.delete_topics([topic_name]) == {topic_name: None}
            assert topic_name not in await admin.list_topics()

    asyncio.run(main())


def test_wait_for_topic_retries_until_it_appears(kafka_bootstrap: str, topic_name: str) -> None:
    async def main() -> None:
        async with AdminClient(kafka_bootstrap) as admin:
            waiter = asyncio.ensure_future(admin.wait_for_topic(topic_name, timeout=20))
            await asyncio.sleep(0.3)
            assert not waiter.done()
            await admin.create_topic(topic_name, num_partitions=2)
            info = await waiter
            assert info.partitions == [0, 1]

    asyncio.run(main())


def test_wait_for_topic_times_out_without_creating_it(kafka_bootstrap: str, topic_name: str) -> None:
    async def main() -> None:
        async with AdminClient(kafka_bootstrap) as admin:
            with pytest.raises(TimeoutError):
                await admin.wait_for_topic(topic_name, timeout=0.5)
            assert topic_name not in await admin.list_topics()

    asyncio.run(main())


def test_list_offsets_earliest_latest(kafka_bootstrap: str, topic_name: str) -> None:
    async def main() -> None:
        async with Producer(kafka_bootstrap) as p:
            await (await p.send_batch(topic_name, [b"v"] * 12, partition=0))
        async with AdminClient(kafka_bootstrap) as admin:
            tp = TopicPartition(topic_name, 0)
            assert await admin.list_offsets({tp: "earliest"}) == {tp: 0}
            assert await admin.list_offsets({tp: "latest"}) == {tp: 12}

    asyncio.run(main())


def test_list_and_describe_groups(kafka_bootstrap: str, topic_name: str) -> None:
    from streamcore.aio import Consumer

    async def main() -> None:
        group = f"g-{topic_name}"
        async with AdminClient(kafka_bootstrap) as admin:
            await admin.create_topic(topic_name, num_partitions=2)
            c = Consumer(kafka_bootstrap, group_id=group, session_timeout_ms=6000, heartbeat_interval_ms=100)
            c.subscribe([topic_name])
            try:
                await c.wait_for_assignment(20)
                assert group in [g for g, _, _ in await admin.list_groups()]
                (desc,) = await admin.describe_groups([group])
                assert desc.protocol_type == "consumer" and len(desc.members) == 1
                assert sorted(desc.members[0].assignment) == [
                    TopicPartition(topic_name, 0),
                    TopicPartition(topic_name, 1),
                ]
            finally:
                await c.close()

    asyncio.run(main())


class LaggingMetadata:
    """Wraps the embedded broker's Metadata handler to lag behind topic changes like a
    Kafka broker following its controller: ``hide`` answers leave ``topic`` out (as if
    not created yet), then ``stale`` answers still show it as last seen (as if not
    deleted yet)."""

    def __init__(self, topic: str, original: Any) -> None:
        self.topic = topic
        self.original = original
        self.hide = 0
        self.stale = 0
        self.last_seen: Any = None

    def handle(self, state: Any, ctx: Any, request: Any) -> Any:
        resp = self.original(state, ctx, request)
        entries = [t for t in resp.topics if t.name == self.topic]
        if entries and not entries[0].error_code:
            self.last_seen = entries[0]
        if self.hide > 0:
            self.hide -= 1
            resp.topics = [t for t in resp.topics if t.name != self.topic]
            if entries:  # asked for by name: Kafka says it does not know the topic
                resp.topics.append(
                    MetadataResponse_MetadataResponseTopic(
                        name=self.topic, error_code=ErrorCode.UNKNOWN_TOPIC_OR_PARTITION.code
                    )
                )
        elif self.stale > 0 and self.last_seen is not None and not (entries and not entries[0].error_code):
            self.stale -= 1
            resp.topics = [t for t in resp.topics if t.name != self.topic] + [self.last_seen]
        return resp


def test_create_and_delete_topics_return_once_metadata_agrees(
    streamcore_broker_factory: Callable[..., Any], topic_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    bootstrap = streamcore_broker_factory().bootstrap_servers
    lag = LaggingMetadata(topic_name, metadata_handler.handle)
    monkeypatch.setattr(metadata_handler, "handle", lag.handle)

    async def main() -> None:
        async with AdminClient(bootstrap, retry_backoff_ms=10) as admin:
            lag.hide = 3
            await admin.create_topic(topic_name, num_partitions=2)
            assert lag.hide == 0  # it kept asking until the topic showed up
            assert (await admin.list_topics())[topic_name].partitions == [0, 1]
            lag.stale = 3
            assert await admin.delete_topics([topic_name]) == {topic_name: None}
            assert lag.stale == 0  # it kept asking until the topic was gone
            assert topic_name not in await admin.list_topics()

    asyncio.run(main())


# ---------------------------------------------------------------- configs, partitions, groups, records


def test_incremental_alter_configs_sets_and_deletes(kafka_bootstrap: str, topic_name: str) -> None:
    from streamcore.client.admin import RESOURCE_TOPIC, AlterConfig, ConfigOp

    async def main() -> None:
        async with AdminClient(kafka_bootstrap) as admin:
            await admin.create_topic(topic_name, config={"retention.ms": "100000"})
            res = (RESOURCE_TOPIC, topic_name)
            errors = await admin.incremental_alter_configs(
                {
                    res: [
                        AlterConfig("segment.ms", "200000"),
                        AlterConfig("retention.ms", None, ConfigOp.DELETE),
                    ]
                }
            )
            assert errors == {res: None}
            entries = (
                await _settled_async(
                    lambda: admin.describe_config_entries([res]),
                    lambda got: _segment_dynamic_retention_not(got[res]),
                )
            )[res]
            assert entries["segment.ms"].value == "200000"
            assert entries["segment.ms"].source == "DYNAMIC_TOPIC_CONFIG"
            assert entries["retention.ms"].source != "DYNAMIC_TOPIC_CONFIG"
            # validate_only checks and changes nothing.
            errors = await admin.incremental_alter_configs(
                {res: [AlterConfig("segment.ms", "300000")]}, validate_only=True
            )
            assert errors == {res: None}
            assert (await admin.describe_configs(topics=[topic_name]))[res]["segment.ms"] == "200000"

    asyncio.run(main())


def test_incremental_alter_configs_reports_bad_values_and_unknown_topics(
    kafka_bootstrap: str, topic_name: str
) -> None:
    from streamcore.client.admin import RESOURCE_TOPIC, AlterConfig

    async def main() -> None:
        async with AdminClient(kafka_bootstrap) as admin:
            await admin.create_topic(topic_name)
            res = (RESOURCE_TOPIC, topic_name)
            errors = await admin.incremental_alter_configs({res: [AlterConfig("retention.ms", "soon")]})
            err = errors[res]
            assert err is not None and err.error is ErrorCode.INVALID_CONFIG
            missing = (RESOURCE_TOPIC, f"{topic_name}-missing")
            errors = await admin.incremental_alter_configs({missing: [AlterConfig("retention.ms", "1000")]})
            err = errors[missing]
            assert err is not None and err.error is ErrorCode.UNKNOWN_TOPIC_OR_PARTITION

    asyncio.run(main())


def test_alter_configs_replaces_the_whole_set(kafka_bootstrap: str, topic_name: str) -> None:
    from streamcore.client.admin import RESOURCE_TOPIC

    async def main() -> None:
        async with AdminClient(kafka_bootstrap) as admin:
            await admin.create_topic(topic_name, config={"retention.ms": "100000"})
            res = (RESOURCE_TOPIC, topic_name)
            assert await admin.alter_configs({res: {"segment.ms": "200000"}}) == {res: None}
            entries = (
                await _settled_async(
                    lambda: admin.describe_config_entries([res]),
                    lambda got: _segment_dynamic_retention_not(got[res]),
                )
            )[res]
            assert entries["segment.ms"].source == "DYNAMIC_TOPIC_CONFIG"
            assert entries["retention.ms"].source != "DYNAMIC_TOPIC_CONFIG"  # left out: back to default

    asyncio.run(main())


def test_create_partitions_grows_and_refuses_to_shrink(kafka_bootstrap: str, topic_name: str) -> None:
    async def main() -> None:
        async with AdminClient(kafka_bootstrap) as admin:
            await admin.create_topic(topic_name, num_partitions=2)
            assert await admin.create_partitions({topic_name: 5}) == {topic_name: None}
            assert (await admin.describe_topics([topic_name]))[topic_name].partitions == [0, 1, 2, 3, 4]
            err = (await admin.create_partitions({topic_name: 3}))[topic_name]
            assert err is not None and err.error is ErrorCode.INVALID_PARTITIONS
            err = (await admin.create_partitions({f"{topic_name}-missing": 3}))[f"{topic_name}-missing"]
            assert err is not None and err.error is ErrorCode.UNKNOWN_TOPIC_OR_PARTITION

    asyncio.run(main())


def test_group_offsets_alter_list_and_delete_group(kafka_bootstrap: str, topic_name: str) -> None:
    group = f"g-{topic_name}"

    async def main() -> None:
        async with AdminClient(kafka_bootstrap) as admin:
            await admin.create_topic(topic_name, num_partitions=2)
            tp0, tp1 = TopicPartition(topic_name, 0), TopicPartition(topic_name, 1)
            assert await admin.list_consumer_group_offsets(group) == {}
            res = await admin.alter_consumer_group_offsets(group, {tp0: 0, tp1: OffsetAndMetadata(0, "note")})
            assert res == {tp0: None, tp1: None}
            got = await admin.list_consumer_group_offsets(group)
            assert got == {tp0: OffsetAndMetadata(0, ""), tp1: OffsetAndMetadata(0, "note")}
            assert await admin.list_consumer_group_offsets(group, [tp1]) == {
                tp1: OffsetAndMetadata(0, "note")
            }
            assert await admin.delete_groups([group]) == {group: None}
            assert await admin.list_consumer_group_offsets(group) == {}
            err = (await admin.delete_groups([group]))[group]
            assert err is not None and err.error is ErrorCode.GROUP_ID_NOT_FOUND

    asyncio.run(main())


def test_delete_groups_refuses_a_group_with_members(kafka_bootstrap: str, topic_name: str) -> None:
    from streamcore.aio import Consumer

    group = f"g-{topic_name}"

    async def main() -> None:
        async with AdminClient(kafka_bootstrap) as admin:
            await admin.create_topic(topic_name)
            c = Consumer(kafka_bootstrap, group_id=group, session_timeout_ms=6000, heartbeat_interval_ms=100)
            c.subscribe([topic_name])
            try:
                await c.wait_for_assignment(20)
                err = (await admin.delete_groups([group]))[group]
                assert err is not None and err.error is ErrorCode.NON_EMPTY_GROUP
                # An admin commit into an active group is refused as well.
                res = await admin.alter_consumer_group_offsets(group, {TopicPartition(topic_name, 0): 0})
                err = res[TopicPartition(topic_name, 0)]
                assert err is not None
            finally:
                await c.close()

    asyncio.run(main())


def test_delete_records_moves_the_log_start(kafka_bootstrap: str, topic_name: str) -> None:
    async def main() -> None:
        async with Producer(kafka_bootstrap) as p:
            await (await p.send_batch(topic_name, [b"v"] * 10, partition=0))
        async with AdminClient(kafka_bootstrap) as admin:
            tp = TopicPartition(topic_name, 0)
            assert await admin.delete_records({tp: 4}) == {tp: 4}
            assert await admin.list_offsets({tp: "earliest"}) == {tp: 4}
            with pytest.raises(KafkaError) as info:
                await admin.delete_records({tp: 99})
            assert info.value.error is ErrorCode.OFFSET_OUT_OF_RANGE
            assert await admin.delete_records({tp: -1}) == {tp: 10}  # -1: up to the high watermark
            assert await admin.list_offsets({tp: "earliest"}) == {tp: 10}

    asyncio.run(main())


def test_blocking_admin_client_has_the_same_calls(kafka_bootstrap: str, topic_name: str) -> None:
    from streamcore.client.admin import RESOURCE_TOPIC, AlterConfig
    from streamcore.client.blocking import AdminClient as BlockingAdminClient
    from streamcore.client.blocking import Producer as BlockingProducer

    group = f"g-{topic_name}"
    res = (RESOURCE_TOPIC, topic_name)
    tp = TopicPartition(topic_name, 0)
    with BlockingAdminClient(kafka_bootstrap) as admin:
        admin.create_topic(topic_name, num_partitions=1)
        assert admin.create_partitions({topic_name: 2}) == {topic_name: None}
        assert admin.incremental_alter_configs({res: [AlterConfig("retention.ms", "100000")]}) == {res: None}
        assert admin.alter_configs({res: {"segment.ms": "200000"}}) == {res: None}
        entries = _settled(
            lambda: admin.describe_config_entries([res]), lambda got: _segment_dynamic_retention_not(got[res])
        )[res]
        assert entries["segment.ms"].source == "DYNAMIC_TOPIC_CONFIG"
        assert entries["retention.ms"].source != "DYNAMIC_TOPIC_CONFIG"
        with BlockingProducer(kafka_bootstrap) as p:
            p.send_batch(topic_name, [b"v"] * 3, partition=0).result(30)
        assert admin.delete_records({tp: 2}) == {tp: 2}
        assert admin.alter_consumer_group_offsets(group, {tp: 2}) == {tp: None}
        assert admin.list_consumer_group_offsets(group) == {tp: OffsetAndMetadata(2, "")}
        assert admin.delete_groups([group]) == {group: None}
