"""DescribeLogDirs (35): the one log directory, and each partition's size in it.

v1-v4 (Kafka 4.0's range: v0 is gone from the spec); v2 is flexible, v3 adds a
top-level error code, v4 the volume's total and usable bytes. The answer has one
directory, the broker's data directory (absolute path); per partition its size is
the bytes of its segments and its offset lag 0 (there are no replicas to trail and
no future logs). Null topics mean every partition, ``__consumer_offsets`` included;
named topics or partitions that do not exist are left out, as Kafka leaves them out.

With an authorizer, a sender without DESCRIBE on the cluster gets
CLUSTER_AUTHORIZATION_FAILED (v3+; older versions just an empty list), as in Kafka.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from streamcore.broker.authorizer import CLUSTER_NAME, AclOperation, ResourceType, denied
from streamcore.errors import ErrorCode
from streamcore.protocol.messages import (
    DescribeLogDirsRequest,
    DescribeLogDirsResponse,
    DescribeLogDirsResponse_DescribeLogDirsPartition,
    DescribeLogDirsResponse_DescribeLogDirsResult,
    DescribeLogDirsResponse_DescribeLogDirsTopic,
)

if TYPE_CHECKING:
    from streamcore.broker.context import RequestContext
    from streamcore.broker.state import BrokerState

API_KEY = 35
REQUEST = DescribeLogDirsRequest


def handle(
    state: BrokerState, ctx: RequestContext, request: DescribeLogDirsRequest
) -> DescribeLogDirsResponse:
    if denied(state, ctx, AclOperation.DESCRIBE, ResourceType.CLUSTER, CLUSTER_NAME):
        code = ErrorCode.CLUSTER_AUTHORIZATION_FAILED.code
        state.metrics.error(code)
        return DescribeLogDirsResponse(error_code=code if ctx.api_version >= 3 else 0, results=[])
    every = {t.name: t.partitions for t in state.topics.list_topics(include_internal=True)}
    wanted: dict[str, list[int]]
    if request.topics is None:
        wanted = {name: list(range(count)) for name, count in every.items()}
    else:
        wanted = {}
        for t in request.topics:
            if t.topic in every:
                wanted[t.topic] = sorted({p for p in t.partitions if 0 <= p < every[t.topic]})
    topics_out = []
    # An offline partition is in no online log directory, so Kafka lists it nowhere.
    offline = set(state.topics.logs.offline_partitions())
    for name, partitions in sorted(wanted.items()):
        parts = [
            DescribeLogDirsResponse_DescribeLogDirsPartition(
                partition_index=p, partition_size=state.topics.log(name, p).size_bytes, offset_lag=0
            )
            for p in partitions
            if (name, p) not in offline
        ]
        if parts:
            topics_out.append(DescribeLogDirsResponse_DescribeLogDirsTopic(name=name, partitions=parts))
    data_dir = os.path.abspath(state.config.data_dir)
    result = DescribeLogDirsResponse_DescribeLogDirsResult(log_dir=data_dir, topics=topics_out)
    if ctx.api_version >= 4:
        fs = os.statvfs(data_dir)
        result.total_bytes = fs.f_blocks * fs.f_frsize
        result.usable_bytes = fs.f_bavail * fs.f_frsize
    return DescribeLogDirsResponse(results=[result])
