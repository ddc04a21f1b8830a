"""Admin client: topics, configs, groups, offsets, wait_for_topic."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from streamcore.aio import AdminClient, Producer
from streamcore.broker.handlers import metadata as metadata_handler
from streamcore.client import NewTopic
from streamcore.client.types import TopicPartition
from streamcore.errors import ErrorCode, KafkaError
from streamcore.protocol.messages import MetadataResponse_MetadataResponseTopic


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
