"""ListOffsets batched per leader: one request per broker, however many partitions."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Mapping
from typing import Any

from streamcore.client.cluster import Cluster
from streamcore.client.errors import broker_error
from streamcore.client.types import TopicPartition
from streamcore.errors import ErrorCode, KafkaError
from streamcore.protocol.messages import (
    ListOffsetsRequest,
    ListOffsetsRequest_ListOffsetsPartition,
    ListOffsetsRequest_ListOffsetsTopic,
)

__all__ = ["EARLIEST", "LATEST", "list_offsets"]

EARLIEST = -2
LATEST = -1


async def list_offsets(
    cluster: Cluster, specs: Mapping[TopicPartition, int], isolation_level: int = 0
) -> tuple[dict[TopicPartition, int], dict[TopicPartition, BaseException]]:
    """Resolve ``specs`` (partition -> EARLIEST, LATEST or a timestamp in ms).

    Partitions are grouped by leader and each leader gets one ListOffsets request,
    all sent at once. Returns (offsets, errors): a partition whose leader is unknown
    or that answered an error is in ``errors`` (the caller retries or backs off).
    """
    by_leader: dict[int, dict[str, list[tuple[int, int]]]] = defaultdict(lambda: defaultdict(list))
    errors: dict[TopicPartition, BaseException] = {}
    for tp, ts in specs.items():
        leader = cluster.leader_for(tp.topic, tp.partition)
        if leader is None:
            errors[tp] = broker_error(ErrorCode.LEADER_NOT_AVAILABLE.code, f"{tp.topic}-{tp.partition}")
            continue
        by_leader[leader][tp.topic].append((tp.partition, ts))

    async def one(node: int, topics: dict[str, list[tuple[int, int]]]) -> Any:
        conn = await cluster.connection(node)
        req = ListOffsetsRequest(
            replica_id=-1,
            isolation_level=isolation_level,
            topics=[
                ListOffsetsRequest_ListOffsetsTopic(
                    name=t,
                    partitions=[
                        ListOffsetsRequest_ListOffsetsPartition(
                            partition_index=p, timestamp=ts, current_leader_epoch=-1
                        )
                        for p, ts in parts
                    ],
                )
                for t, parts in topics.items()
            ],
        )
        return await conn.request(req)

    nodes = list(by_leader)
    answers = await asyncio.gather(*(one(n, by_leader[n]) for n in nodes), return_exceptions=True)
    offsets: dict[TopicPartition, int] = {}
    for node, resp in zip(nodes, answers, strict=False):
        if isinstance(resp, BaseException):
            for t, parts in by_leader[node].items():
                for p, _ in parts:
                    errors[TopicPartition(t, p)] = resp
            continue
        for t in resp.topics:
            for p in t.partitions:
                tp = TopicPartition(t.name, p.partition_index)
                if p.error_code:
                    errors[tp] = broker_error(p.error_code, f"ListOffsets {t.name}-{p.partition_index}")
                else:
                    offsets[tp] = p.offset
    return offsets, errors


def first_error(errors: Mapping[TopicPartition, BaseException]) -> BaseException | None:
    """Any one error of ``errors`` (for raising), preferring broker errors."""
    for e in errors.values():
        if isinstance(e, KafkaError):
            return e
    return next(iter(errors.values()), None)
