"""ListOffsets, CreateTopics, DeleteTopics, DescribeConfigs and durable committed offsets, on the wire."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from streamcore.errors import ErrorCode
from streamcore.protocol import messages as m

from .wire_client import WireClient, batch, create_topic, produce

EARLIEST = -2
LATEST = -1
MAX_TIMESTAMP = -3


def _list_offset(c: WireClient, topic: str, timestamp: int) -> tuple[int, int, int]:
    """(error_code, offset, timestamp) that ListOffsets v7 answers for partition 0."""
    resp = c.request(
        m.ListOffsetsRequest(
            replica_id=-1,
            topics=[
                m.ListOffsetsRequest_ListOffsetsTopic(
                    name=topic,
                    partitions=[
                        m.ListOffsetsRequest_ListOffsetsPartition(partition_index=0, timestamp=timestamp)
                    ],
                )
            ],
        ),
        7,
    )
    [t] = resp.topics
    [p] = t.partitions
    return p.error_code, p.offset, p.timestamp


def test_list_offsets_earliest_latest_and_by_timestamp(client: WireClient) -> None:
    create_topic(client, "lo")
    base = int(time.time() * 1000) - 60_000
    assert produce(client, "lo", 0, batch([b"a", b"b"], timestamps_ms=[base, base + 1])).base_offset == 0
    assert produce(client, "lo", 0, batch([b"c"], timestamps_ms=[base + 1000])).base_offset == 2
    assert produce(client, "lo", 0, batch([b"d"], timestamps_ms=[base + 2000])).base_offset == 3

    assert _list_offset(client, "lo", EARLIEST)[:2] == (0, 0)
    assert _list_offset(client, "lo", LATEST)[:2] == (0, 4)
    # The first record whose timestamp is at or after the target.
    assert _list_offset(client, "lo", base + 500) == (0, 2, base + 1000)
    assert _list_offset(client, "lo", base + 1) == (0, 1, base + 1)
    assert _list_offset(client, "lo", base + 2000) == (0, 3, base + 2000)
    # Nothing that late: offset -1 (Kafka's "no such record").
    assert _list_offset(client, "lo", base + 10_000)[:2] == (0, -1)
    assert _list_offset(client, "lo", MAX_TIMESTAMP) == (0, 3, base + 2000)


def test_list_offsets_of_an_unknown_partition_is_an_error(client: WireClient) -> None:
    code, _, _ = _list_offset(client, "never-created-lo", LATEST)
    assert code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION.code


def test_create_topics_with_replication_factor_3_is_invalid_replication_factor(client: WireClient) -> None:
    resp = client.request(
        m.CreateTopicsRequest(
            topics=[m.CreateTopicsRequest_CreatableTopic(name="rf3", num_partitions=1, replication_factor=3)],
            timeout_ms=10_000,
        ),
        5,
    )
    [t] = resp.topics
    assert t.name == "rf3"
    assert t.error_code == ErrorCode.INVALID_REPLICATION_FACTOR.code
    assert t.error_message, "the refusal should say why (one broker, replication factor 1)"
    meta = client.request(
        m.MetadataRequest(
            topics=[m.MetadataRequest_MetadataRequestTopic(name="rf3")], allow_auto_topic_creation=False
        ),
        12,
    )
    assert [(x.name, x.error_code) for x in meta.topics] == [
        ("rf3", ErrorCode.UNKNOWN_TOPIC_OR_PARTITION.code)
    ]


def test_create_topics_twice_is_topic_already_exists(client: WireClient) -> None:
    create_topic(client, "twice", partitions=2)
    resp = client.request(
        m.CreateTopicsRequest(
            topics=[
                m.CreateTopicsRequest_CreatableTopic(name="twice", num_partitions=2, replication_factor=1)
            ]
        ),
        5,
    )
    assert [(t.name, t.error_code) for t in resp.topics] == [("twice", ErrorCode.TOPIC_ALREADY_EXISTS.code)]


def test_delete_topics_removes_the_topic(streamcore_broker_factory: Callable[..., Any]) -> None:
    b = streamcore_broker_factory(auto_create=False)
    with WireClient(b.bootstrap_servers) as c:
        create_topic(c, "doomed", partitions=2)
        assert produce(c, "doomed", 1, batch([b"x"])).error_code == 0
        resp = c.request(m.DeleteTopicsRequest(topic_names=["doomed"], timeout_ms=10_000), 4)
        assert [(r.name, r.error_code) for r in resp.responses] == [("doomed", 0)]
        meta = c.request(
            m.MetadataRequest(
                topics=[m.MetadataRequest_MetadataRequestTopic(name="doomed")],
                allow_auto_topic_creation=False,
            ),
            12,
        )
        assert [(t.name, t.error_code) for t in meta.topics] == [
            ("doomed", ErrorCode.UNKNOWN_TOPIC_OR_PARTITION.code)
        ]
        again = c.request(m.DeleteTopicsRequest(topic_names=["doomed"], timeout_ms=10_000), 4)
        assert [(r.name, r.error_code) for r in again.responses] == [
            ("doomed", ErrorCode.UNKNOWN_TOPIC_OR_PARTITION.code)
        ]


TOPIC_RESOURCE = 2
BROKER_RESOURCE = 4


def _describe(
    c: WireClient, resource_type: int, name: str
) -> m.DescribeConfigsResponse_DescribeConfigsResult:
    resp = c.request(
        m.DescribeConfigsRequest(
            resources=[
                # configuration_keys None = every config (an empty list asks for none).
                m.DescribeConfigsRequest_DescribeConfigsResource(
                    resource_type=resource_type, resource_name=name, configuration_keys=None
                )
            ]
        ),
        4,
    )
    [result] = resp.results
    assert (result.resource_type, result.resource_name) == (resource_type, name)
    return result


def test_describe_configs_of_a_topic_shows_its_overrides_and_defaults(client: WireClient) -> None:
    resp = client.request(
        m.CreateTopicsRequest(
            topics=[
                m.CreateTopicsRequest_CreatableTopic(
                    name="conf",
                    num_partitions=1,
                    replication_factor=1,
                    configs=[m.CreateTopicsRequest_CreatableTopicConfig(name="retention.ms", value="123456")],
                )
            ]
        ),
        5,
    )
    assert [t.error_code for t in resp.topics] == [0]
    result = _describe(client, TOPIC_RESOURCE, "conf")
    assert result.error_code == 0
    configs = {c.name: c for c in result.configs}
    assert configs["retention.ms"].value == "123456"
    # v1+ say where a value comes from: 1 = a topic override, 5 = the default.
    assert configs["retention.ms"].config_source == 1
    assert configs["segment.bytes"].value == str(1 << 30)
    assert configs["segment.bytes"].config_source in (4, 5)


def test_describe_configs_of_the_broker_and_of_an_unknown_topic(client: WireClient) -> None:
    broker = _describe(client, BROKER_RESOURCE, "0")
    assert broker.error_code == 0
    configs = {c.name: c.value for c in broker.configs}
    assert configs["message.max.bytes"] == str(1024 * 1024 + 12)
    unknown = _describe(client, TOPIC_RESOURCE, "no-such-topic-dc")
    assert unknown.error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION.code


def _commit(c: WireClient, group: str, topic: str, offset: int, metadata: str) -> int:
    resp = c.request(
        m.OffsetCommitRequest(
            group_id=group,
            generation_id_or_member_epoch=-1,
            member_id="",
            topics=[
                m.OffsetCommitRequest_OffsetCommitRequestTopic(
                    name=topic,
                    partitions=[
                        m.OffsetCommitRequest_OffsetCommitRequestPartition(
                            partition_index=0, committed_offset=offset, committed_metadata=metadata
                        )
                    ],
                )
            ],
        ),
        8,
    )
    [t] = resp.topics
    [p] = t.partitions
    return p.error_code


def _committed(c: WireClient, group: str, topic: str) -> tuple[int, int, str | None]:
    resp = c.request(
        m.OffsetFetchRequest(
            group_id=group,
            topics=[m.OffsetFetchRequest_OffsetFetchRequestTopic(name=topic, partition_indexes=[0])],
        ),
        7,
    )
    assert resp.error_code == 0
    [t] = resp.topics
    [p] = t.partitions
    return p.error_code, p.committed_offset, p.metadata


def test_committed_offsets_survive_a_broker_restart(streamcore_broker_factory: Callable[..., Any]) -> None:
    first = streamcore_broker_factory()
    data_dir = first.config.data_dir
    with WireClient(first.bootstrap_servers) as c:
        create_topic(c, "durable")
        assert produce(c, "durable", 0, batch([b"r%d" % i for i in range(50)])).error_code == 0
        assert _commit(c, "grp", "durable", 42, "where I was") == 0
        assert _committed(c, "grp", "durable") == (0, 42, "where I was")
    first.stop()

    second = streamcore_broker_factory(data_dir=data_dir)
    with WireClient(second.bootstrap_servers) as c:
        assert _committed(c, "grp", "durable") == (0, 42, "where I was")
        assert _list_offset(c, "durable", LATEST)[:2] == (0, 50)


def test_create_topics_opens_the_new_logs_without_waiting_for_a_produce(
    broker: Any, client: WireClient
) -> None:
    # As in Kafka, a created topic's logs exist before its first write: the first
    # Produce then does not hold the event loop while files are created and fsynced.
    create_topic(client, "eager", partitions=3)
    logs = broker.state.topics.logs
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not all(logs.get(("eager", p)) for p in range(3)):
        time.sleep(0.01)
    assert all(logs.get(("eager", p)) is not None for p in range(3))
    assert produce(client, "eager", 2, batch([b"a"])).base_offset == 0

    resp = client.request(
        m.CreateTopicsRequest(
            topics=[m.CreateTopicsRequest_CreatableTopic(name="dry", num_partitions=2, replication_factor=1)],
            timeout_ms=10_000,
            validate_only=True,
        ),
        5,
    )
    assert resp.topics[0].error_code == 0
    time.sleep(0.2)
    assert logs.get(("dry", 0)) is None and logs.get(("dry", 1)) is None


def test_a_topic_deleted_while_its_logs_open_leaves_nothing_open(broker: Any, client: WireClient) -> None:
    for i in range(5):
        name = f"brief-{i}"
        create_topic(client, name, partitions=4)
        resp = client.request(m.DeleteTopicsRequest(topic_names=[name], timeout_ms=10_000), 3)
        assert resp.responses[0].error_code == 0
    topics = broker.state.topics
    # One opener works in order: once this (a deleted topic: nothing to open) is done,
    # so is every opening queued before it.
    done = topics.open_soon("brief-0")
    assert done is not None
    done.result(timeout=20)
    assert not [key for key, _ in topics.open_logs() if key[0].startswith("brief-")]


def test_the_opener_lets_others_take_the_topic_lock_between_partitions(
    broker: Any, client: WireClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Opening a log holds the manager's lock, and Python's locks are not fair: opening a
    # 100-partition topic's logs back to back kept the event loop out for 50-150 ms. The
    # opener pauses between partitions with the lock free; here each pause is used to
    # take the lock from another thread, as the loop's next CreateTopics would.
    from streamcore.broker import topics as topics_mod

    manager = broker.state.topics
    seen: list[int] = []
    real_sleep = time.sleep

    def pause(seconds: float) -> None:
        if threading.current_thread().name.startswith("streamcore-log-open"):
            taken: list[bool] = []

            def take() -> None:
                got = manager._lock.acquire(timeout=10)
                taken.append(got)
                if got:
                    seen.append(sum(1 for key, _ in manager.open_logs() if key[0] == "wide"))
                    manager._lock.release()

            other = threading.Thread(target=take)
            other.start()
            other.join()
            assert taken == [True]
        real_sleep(seconds)

    monkeypatch.setattr(topics_mod.time, "sleep", pause)
    create_topic(client, "wide", partitions=12)
    deadline = time.monotonic() + 30
    while len(seen) < 11 and time.monotonic() < deadline:
        real_sleep(0.01)
    assert seen == list(range(1, 12))
