"""Our encodings agree with kafka-python 3.0.12's own protocol implementation, both ways."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, assume, given, settings
from protocol_strategies import instances

from streamcore.protocol import messages as m

kp_producer = pytest.importorskip("kafka.protocol.producer")
kp_consumer = pytest.importorskip("kafka.protocol.consumer")
kp_metadata = pytest.importorskip("kafka.protocol.metadata")
kp_admin = pytest.importorskip("kafka.protocol.admin")


def _theirs(name: str):
    for mod in (kp_producer, kp_consumer, kp_metadata, kp_admin):
        if hasattr(mod, name):
            return getattr(mod, name)
    pytest.skip(f"kafka-python has no {name}")


def _versions(cls):
    lo, hi = (
        max(cls.MIN_VERSION, 3 if cls is m.ProduceRequest or cls is m.ProduceResponse else 0),
        cls.MAX_VERSION,
    )
    picks = {lo, hi}
    if cls.FLEXIBLE_FROM is not None:
        picks |= {cls.FLEXIBLE_FROM, max(lo, cls.FLEXIBLE_FROM - 1)}
    return sorted(picks)


SELECTION = [
    m.ApiVersionsRequest,
    m.ApiVersionsResponse,
    m.MetadataRequest,
    m.MetadataResponse,
    m.ProduceRequest,
    m.ProduceResponse,
    m.FetchRequest,
    m.FetchResponse,
    m.ListOffsetsRequest,
    m.ListOffsetsResponse,
    m.FindCoordinatorResponse,
    m.JoinGroupRequest,
    m.JoinGroupResponse,
    m.SyncGroupRequest,
    m.OffsetCommitRequest,
    m.OffsetFetchResponse,
    m.DescribeGroupsResponse,
    m.CreateTopicsRequest,
    m.DescribeConfigsResponse,
    m.InitProducerIdResponse,
]
CASES = [(cls, v) for cls in SELECTION for v in _versions(cls)]


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0].__name__}-v{c[1]}")
def test_kafka_python_decodes_ours_and_we_decode_theirs(case):
    cls, version = case
    theirs = _theirs(cls.__name__)

    @settings(max_examples=4, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(obj=instances(cls, version))
    def check(obj):
        # kafka-python stops reading an ApiVersions response after a non-zero error
        # code (the broker's downgrade answer is a v0 body), so compare the success case.
        assume(cls is not m.ApiVersionsResponse or obj.error_code == 0)
        ours = obj.encode(version)
        decoded_by_them = theirs.decode(ours, version=version)
        # Encode what they decoded with their code, decode it with ours. (Their decode
        # leaves no request header slot, which their top-level encode reads.)
        flexible = theirs.flexible_version_q(version)
        their_bytes = theirs._struct.encode(
            decoded_by_them, version=version, compact=flexible, tagged=flexible
        )
        assert cls.decode(their_bytes, version) == obj
        assert their_bytes == ours

    check()


def test_kafka_python_reads_our_fields_by_name():
    req = m.MetadataRequest(
        topics=[m.MetadataRequest_MetadataRequestTopic(name="events")], allow_auto_topic_creation=False
    )
    theirs = kp_metadata.MetadataRequest.decode(req.encode(8), version=8)
    assert [t.name for t in theirs.topics] == ["events"]
    assert theirs.allow_auto_topic_creation is False
