"""Every generated message round-trips at every version, with defaults and random values."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from protocol_strategies import all_versions, instances

from streamcore.errors import ProtocolError
from streamcore.protocol import messages as m

CASES = all_versions(m.MESSAGES)
# Spread the CI budget over all (message, version) cases; a few each in development.
PER_CASE = max(3, int(os.environ.get("STREAMCORE_FUZZ_EXAMPLES", "2000")) // (10 * len(CASES)))


def _id(case):
    cls, version = case
    return f"{cls.__name__}-v{version}"


@pytest.mark.parametrize("case", CASES, ids=_id)
def test_default_instance_round_trips_byte_for_byte(case):
    cls, version = case
    data = cls().encode(version)
    decoded = cls.decode(data, version)
    assert decoded.encode(version) == data
    assert cls.decode(memoryview(data), version) == decoded


@pytest.mark.parametrize("case", CASES, ids=_id)
def test_random_instance_round_trips(case):
    cls, version = case

    @settings(max_examples=PER_CASE, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(obj=instances(cls, version))
    def check(obj):
        data = obj.encode(version)
        decoded = cls.decode(data, version)
        assert decoded == obj
        assert decoded.encode(version) == data

    check()


def test_every_message_declares_its_metadata():
    for cls in m.MESSAGES:
        assert cls.MIN_VERSION <= cls.MAX_VERSION
        if cls.FLEXIBLE_FROM is not None:
            assert cls.MIN_VERSION <= cls.FLEXIBLE_FROM <= cls.MAX_VERSION
        assert [f.attr for f in cls.FIELDS] == list(cls.__slots__)
    assert m.REQUESTS[1] is m.FetchRequest and m.RESPONSES[0] is m.ProduceResponse


def test_requested_apis_are_all_generated():
    wanted = {0, 1, 2, 3, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 22, 23, 32, 60}
    assert wanted <= set(m.REQUESTS) and wanted <= set(m.RESPONSES)
    assert m.ConsumerProtocolSubscription.API_KEY is None
    assert m.ConsumerProtocolAssignment.MAX_VERSION >= 3


def test_produce_v0_to_v2_are_decodable_for_old_librdkafka():
    req = m.ProduceRequest(acks=1, timeout_ms=5, topic_data=[])
    for version in (0, 1, 2):
        assert m.ProduceRequest.decode(req.encode(version), version) == req
    # v0 responses have no throttle time, v1 adds it, v2 adds log append time.
    resp = m.ProduceResponse()
    assert len(resp.encode(0)) == 4 and len(resp.encode(1)) == 8


def test_records_decode_as_zero_copy_view_of_the_input():
    req = m.ProduceRequest(
        acks=-1,
        timeout_ms=1000,
        topic_data=[
            m.ProduceRequest_TopicProduceData(
                name="t", partition_data=[m.ProduceRequest_PartitionProduceData(index=0, records=b"batch")]
            )
        ],
    )
    data = bytearray(req.encode(9))
    records = m.ProduceRequest.decode(data, 9).topic_data[0].partition_data[0].records
    assert isinstance(records, memoryview) and records == b"batch"
    data[data.index(b"batch")] = ord("B")
    assert records == b"Batch"  # a view of the caller's buffer, not a copy


def test_ignorable_field_absent_from_version_is_dropped():
    req = m.FetchRequest(rack_id="rack-1")  # RackId exists from v11, ignorable
    assert m.FetchRequest.decode(req.encode(10), 10).rack_id == ""


def test_non_ignorable_field_absent_from_version_raises_value_error():
    part = m.FetchRequest_FetchPartition(last_fetched_epoch=7)  # v12+, not ignorable
    req = m.FetchRequest(topics=[m.FetchRequest_FetchTopic(topic="t", partitions=[part])])
    req.encode(12)
    with pytest.raises(ValueError, match="last_fetched_epoch"):
        req.encode(11)


def test_none_in_non_nullable_field_raises_value_error_on_encode():
    with pytest.raises(ValueError, match="group_id"):
        m.HeartbeatRequest(group_id=None).encode(3)


def test_null_in_non_nullable_field_raises_protocol_error_on_decode():
    body = b"\xff\xff" + b"\x00\x00\x00\x01" + b"\x00\x01m"  # group_id = null
    with pytest.raises(ProtocolError, match="group_id"):
        m.HeartbeatRequest.decode(body, 0)


def test_version_outside_range_is_rejected():
    with pytest.raises(ProtocolError):
        m.FetchRequest.decode(b"", 3)
    with pytest.raises(ValueError):
        m.FetchRequest().encode(19)


def test_out_of_range_integer_raises_value_error():
    with pytest.raises(ValueError):
        m.HeartbeatRequest(group_id="g", generation_id=1 << 40, member_id="m").encode(0)


def test_encode_into_appends_to_an_existing_writer():
    from streamcore._impl import wire

    w = wire.Writer()
    w.int32(42)
    m.HeartbeatResponse(error_code=27).encode_into(w, 0)
    assert w.getvalue() == b"\x00\x00\x00\x2a\x00\x1b"


def test_decode_accepts_a_reader_positioned_inside_a_frame():
    from streamcore._impl import wire

    frame = b"HEAD" + m.HeartbeatResponse(error_code=27, throttle_time_ms=5).encode(4)
    assert m.HeartbeatResponse.decode(wire.Reader(frame, 4), 4).throttle_time_ms == 5


@given(st.integers(-(1 << 31), (1 << 31) - 1))
@settings(max_examples=20, deadline=None, database=None)
def test_equality_and_repr_reflect_fields(n):
    a = m.HeartbeatRequest(group_id="g", generation_id=n, member_id="m")
    assert a == m.HeartbeatRequest(group_id="g", generation_id=n, member_id="m")
    assert a != m.HeartbeatRequest(group_id="h", generation_id=n, member_id="m")
    assert f"generation_id={n}" in repr(a)
