"""The broker-side pieces behind the admin APIs, without a server.

IncrementalAlterConfigs in TopicManager (operations, validation, persistence), the
offset store's durable group/offset deletion, the producer table DescribeProducers
reads, and the member subscriptions OffsetDelete checks.
"""

from __future__ import annotations

import asyncio
import struct

import pytest

from streamcore.broker.config import load_config
from streamcore.broker.group_coordinator import GroupCoordinator
from streamcore.broker.handlers.offset_delete import subscribed_topics
from streamcore.broker.offset_store import OffsetStore
from streamcore.broker.producer_state import ProducerStateManager
from streamcore.broker.topic_configs import OP_APPEND, OP_DELETE, OP_SET, OP_SUBTRACT, incremental_change
from streamcore.broker.topics import CONFIG_SOURCE_TOPIC, TopicError, TopicManager
from streamcore.errors import ErrorCode
from streamcore.protocol.messages import ConsumerProtocolSubscription
from streamcore.storage import Log

E = ErrorCode


def manager(tmp_path):
    cfg = load_config(env={"STREAMCORE_STORAGE_FSYNC": "never"}, cli={})
    return TopicManager(tmp_path / "data", cfg)


# ---------------------------------------------------------------- incremental config operations


def test_append_and_subtract_work_on_list_items_without_duplicates():
    assert incremental_change("cleanup.policy", OP_APPEND, "delete", "delete") == "delete"
    assert incremental_change("cleanup.policy", OP_APPEND, "compact", "delete") == "delete,compact"
    assert incremental_change("cleanup.policy", OP_SUBTRACT, "compact", "delete,compact") == "delete"
    assert incremental_change("cleanup.policy", OP_DELETE, None, "delete") is None
    assert incremental_change("retention.ms", OP_SET, "5", "7") == "5"


@pytest.mark.parametrize(
    ("name", "op", "value", "code"),
    [
        ("retention.ms", OP_APPEND, "5", E.INVALID_CONFIG),
        ("retention.ms", OP_SUBTRACT, "5", E.INVALID_CONFIG),
        ("retention.ms", OP_SET, None, E.INVALID_REQUEST),  # Kafka: "Null value not supported"
        ("no.such.config", OP_SET, "1", E.INVALID_CONFIG),
        ("retention.ms", 9, "1", E.INVALID_REQUEST),
    ],
)
def test_incremental_change_refusals(name, op, value, code):
    with pytest.raises(TopicError) as info:
        incremental_change(name, op, value, "1")
    assert info.value.error_code == code.code


def test_incremental_alter_configs_is_persisted_and_validated_as_a_whole(tmp_path):
    with manager(tmp_path) as topics:
        topics.create_topic("t", 1)
        topics.incremental_alter_configs(
            "t", [("retention.ms", OP_SET, "5000"), ("segment.bytes", OP_SET, "2097152")]
        )
        # A refused change leaves everything as it was, the valid part included.
        with pytest.raises(TopicError):
            topics.incremental_alter_configs(
                "t", [("retention.ms", OP_SET, "9"), ("segment.bytes", OP_SET, "1")]
            )
        with pytest.raises(TopicError) as info:
            topics.incremental_alter_configs(
                "t", [("retention.ms", OP_SET, "1"), ("retention.ms", OP_DELETE, None)]
            )
        assert info.value.error_code == E.INVALID_REQUEST.code
        topics.incremental_alter_configs("t", [("segment.bytes", OP_DELETE, None)])
        validated = topics.incremental_alter_configs("t", [("retention.ms", OP_SET, "1")], validate_only=True)
        assert validated.configs["retention.ms"] == "1"
    with manager(tmp_path) as topics:
        configs = topics.describe_configs("t")
        assert (configs["retention.ms"].value, configs["retention.ms"].source) == (
            "5000",
            CONFIG_SOURCE_TOPIC,
        )
        assert configs["segment.bytes"].source != CONFIG_SOURCE_TOPIC


def test_new_retention_reaches_open_logs(tmp_path):
    with manager(tmp_path) as topics:
        topics.create_topic("r", 2)
        log = topics.log("r", 1)
        topics.incremental_alter_configs("r", [("retention.bytes", OP_SET, "123456")])
        assert log.retention_bytes == 123456
        topics.incremental_alter_configs("r", [("retention.bytes", OP_DELETE, None)])
        assert log.retention_bytes is None


# ---------------------------------------------------------------- offsets: durable deletion


def _store(tmp_path):
    return OffsetStore(Log(tmp_path / "offsets", fsync="never"))


def test_deleted_group_and_offsets_stay_deleted_after_replay(tmp_path):
    store = _store(tmp_path)
    store.commit("g", [("a", 0, 5, -1, ""), ("b", 0, 6, -1, "")])
    store.commit("h", [("a", 0, 7, -1, ""), ("a", 1, 8, -1, "")])

    async def delete() -> tuple[int, int]:
        return await store.delete_group_async("g"), await store.delete_offsets_async(
            "h", [("a", 1), ("zz", 0)]
        )

    assert asyncio.run(delete()) == (2, 1)
    assert not store.has_group("g")
    store._log.close()
    replayed = _store(tmp_path)
    assert not replayed.has_group("g")
    kept = replayed.fetch("h")
    assert set(kept) == {("a", 0)} and kept[("a", 0)].offset == 7
    replayed._log.close()


# ---------------------------------------------------------------- producers and subscriptions


def test_describe_lists_each_producers_epoch_last_sequence_and_timestamp():
    producers = ProducerStateManager()
    first = producers.check_and_record(("t", 0), 7, 0, 0, 4, now_ms=1000)
    producers.complete(first.token, 0, 4)
    producers.check_and_record(("t", 0), 9, 2, 0, 0, now_ms=2000)  # still pending: nothing written yet
    assert producers.describe(("t", 0)) == [(7, 0, 4, 1000), (9, 2, -1, -1)]
    assert producers.describe(("t", 1)) == []


def _subscription(topics: list[str], version: int = 1) -> bytes:
    return struct.pack(">h", version) + ConsumerProtocolSubscription(topics=topics).encode(min(version, 3))


def test_subscribed_topics_reads_every_members_subscription():
    assert subscribed_topics([_subscription(["a", "b"]), _subscription(["c"], version=3)]) == {"a", "b", "c"}
    # A subscription from a newer protocol version is read with the highest known one.
    newer = struct.pack(">h", 9) + ConsumerProtocolSubscription(topics=["d"]).encode(3)
    assert subscribed_topics([newer]) == {"d"}
    # Unreadable: every topic counts as subscribed (None), as Kafka errs on the safe side.
    assert subscribed_topics([b"\x00"]) is None


def test_member_subscriptions_come_from_each_members_latest_join():
    async def scenario() -> tuple[str, list[bytes]]:
        coordinator = GroupCoordinator()
        result = await coordinator.join_group(
            "g",
            "",
            None,
            "client",
            "/127.0.0.1",
            30_000,
            30_000,
            "consumer",
            [("range", _subscription(["x"]))],
        )
        assert result.error_code == 0
        return coordinator.member_subscriptions("g")

    protocol_type, metadata = asyncio.run(scenario())
    assert protocol_type == "consumer"
    assert subscribed_topics(metadata) == {"x"}
    assert GroupCoordinator().member_subscriptions("unknown") == ("", [])
