"""Topic-creation limits (topics.max_partitions_per_request, topics.max_partitions) on the wire."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from streamcore.errors import ErrorCode
from streamcore.protocol import messages as m

from .wire_client import WireClient


def _create(c: WireClient, topics: dict[str, int]) -> dict[str, tuple[int, str | None]]:
    resp = c.request(
        m.CreateTopicsRequest(
            topics=[
                m.CreateTopicsRequest_CreatableTopic(name=name, num_partitions=n, replication_factor=1)
                for name, n in topics.items()
            ],
            timeout_ms=10_000,
        ),
        5,
    )
    return {t.name: (t.error_code, t.error_message) for t in resp.topics}


def _grow(c: WireClient, name: str, total: int) -> tuple[int, str | None]:
    resp = c.request(
        m.CreatePartitionsRequest(
            topics=[
                m.CreatePartitionsRequest_CreatePartitionsTopic(name=name, count=total, assignments=None)
            ],
            timeout_ms=10_000,
            validate_only=False,
        ),
        2,
    )
    [r] = resp.results
    return r.error_code, r.error_message


def _topics(c: WireClient) -> set[str]:
    resp = c.request(m.MetadataRequest(topics=None, allow_auto_topic_creation=False), 9)
    return {t.name for t in resp.topics}


def test_a_topic_with_more_partitions_than_one_request_may_add_is_a_policy_violation(
    streamcore_broker_factory: Callable[..., Any],
) -> None:
    broker = streamcore_broker_factory(topics_max_partitions_per_request=8)
    with WireClient(broker.bootstrap_servers) as c:
        answers = _create(c, {"too-wide": 9, "fits": 8})
        code, message = answers["too-wide"]
        assert code == ErrorCode.POLICY_VIOLATION.code
        assert message is not None and "max_partitions_per_request" in message
        assert answers["fits"][0] == 0
        # CreatePartitions counts the increase, not the new total.
        assert _grow(c, "fits", 16)[0] == 0
        code, message = _grow(c, "fits", 25)
        assert code == ErrorCode.POLICY_VIOLATION.code
        assert "too-wide" not in _topics(c)
        # Nothing was left behind: no directory of the refused topic.
        assert not list(Path(broker.config.data_dir).glob("too-wide-*"))


def test_the_broker_wide_partition_cap_refuses_with_invalid_partitions(
    streamcore_broker_factory: Callable[..., Any],
) -> None:
    # __consumer_offsets and __transaction_state hold one partition each of the 10.
    broker = streamcore_broker_factory(topics_max_partitions=10)
    with WireClient(broker.bootstrap_servers) as c:
        assert _create(c, {"a": 6})["a"][0] == 0
        code, message = _create(c, {"b": 3})["b"]
        assert code == ErrorCode.INVALID_PARTITIONS.code
        assert message is not None and "topics.max_partitions" in message
        assert _create(c, {"b": 2})["b"][0] == 0
        assert _grow(c, "b", 3)[0] == ErrorCode.INVALID_PARTITIONS.code
        # Auto-creation takes the same path and is refused the same way once full.
        c.request(
            m.MetadataRequest(
                topics=[m.MetadataRequest_MetadataRequestTopic(name="auto")], allow_auto_topic_creation=True
            ),
            9,
        )
        assert "auto" not in _topics(c)
