"""The client's side of protocol/headers.py: request frames out, response frames in.

The broker's side (parse_request_header, encode_response) is pinned in
tests/protocol; these tests pin that the two sides agree byte for byte, so the
client and the broker can never disagree about a header layout.
"""

from __future__ import annotations

import struct

import pytest

from streamcore.errors import ProtocolError
from streamcore.protocol import headers
from streamcore.protocol import messages as m
from streamcore.protocol.api_versions import API_NAMES, REQUEST_CLASSES, flexible_from
from streamcore.protocol.headers import ApiKey


def test_api_key_names_are_the_kafka_names_of_every_generated_message() -> None:
    assert {k.value for k in ApiKey} == set(REQUEST_CLASSES)
    assert ApiKey.API_VERSIONS == 18 and ApiKey.PRODUCE == 0 and ApiKey.DESCRIBE_CLUSTER == 60
    for key in ApiKey:
        assert key.name.replace("_", "") == API_NAMES[key].upper()


@pytest.mark.parametrize(
    ("api_key", "version"), [(ApiKey.METADATA, 1), (ApiKey.METADATA, 12), (ApiKey.HEARTBEAT, 4)]
)
def test_request_frame_parses_back_with_the_broker_header_parser(api_key: ApiKey, version: int) -> None:
    msg = REQUEST_CLASSES[api_key]()
    frame = headers.encode_request(api_key, version, 1234, "my-client", msg)
    (size,) = struct.unpack(">i", frame[:4])
    assert size == len(frame) - 4
    hdr = headers.parse_request_header(frame[4:])
    assert hdr[:4] == (api_key, version, 1234, "my-client")
    first = flexible_from.get(api_key)
    assert headers.request_header_is_flexible(api_key, version) == (first is not None and version >= first)
    assert frame[4:][: hdr.body_offset] == headers.encode_request_header(api_key, version, 1234, "my-client")
    assert type(msg).decode(frame[4 + hdr.body_offset :], version) == msg


def test_null_client_id_is_written_as_a_null_string() -> None:
    hdr = headers.encode_request_header(ApiKey.METADATA, 1, 7, None)
    assert hdr == b"\x00\x03\x00\x01\x00\x00\x00\x07\xff\xff"


@pytest.mark.parametrize(
    ("api_key", "version"), [(ApiKey.HEARTBEAT, 4), (ApiKey.HEARTBEAT, 3), (ApiKey.API_VERSIONS, 3)]
)
def test_response_frame_decodes_back_to_the_response(api_key: ApiKey, version: int) -> None:
    resp = (
        m.HeartbeatResponse(error_code=27)
        if api_key == ApiKey.HEARTBEAT
        else m.ApiVersionsResponse(
            api_keys=[m.ApiVersionsResponse_ApiVersion(api_key=0, min_version=0, max_version=12)]
        )
    )
    frame = headers.encode_response(99, api_key, version, resp)[4:]
    assert headers.response_correlation_id(frame) == 99
    assert headers.decode_response(frame, api_key, version) == resp


def test_api_versions_response_header_is_v0_even_for_flexible_versions() -> None:
    assert not headers.response_header_is_flexible(ApiKey.API_VERSIONS, 3)
    assert headers.response_header_is_flexible(ApiKey.HEARTBEAT, 4)
    assert headers.response_body_offset(b"\x00\x00\x00\x01\x00", ApiKey.API_VERSIONS, 3) == 4
    assert headers.response_body_offset(b"\x00\x00\x00\x01\x00", ApiKey.HEARTBEAT, 4) == 5


def test_unknown_tagged_fields_in_a_v1_response_header_are_skipped() -> None:
    body = m.HeartbeatResponse(error_code=0).encode(4)
    # One tagged field (tag 5, two bytes) that this client does not know.
    frame = b"\x00\x00\x00\x02" + b"\x01\x05\x02ab" + body
    assert headers.decode_response(frame, ApiKey.HEARTBEAT, 4) == m.HeartbeatResponse(error_code=0)


def test_api_versions_downgrade_answer_decodes_for_any_requested_version() -> None:
    frame = headers.unsupported_api_versions_response(3)[4:]
    resp = headers.decode_response(frame, ApiKey.API_VERSIONS, 4)
    assert resp.error_code == headers.UNSUPPORTED_VERSION
    assert resp.api_keys


@pytest.mark.parametrize("frame", [b"", b"\x00\x00\x01"])
def test_short_response_frame_is_a_protocol_error(frame: bytes) -> None:
    with pytest.raises(ProtocolError):
        headers.response_correlation_id(frame)


def test_truncated_response_header_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError):
        headers.decode_response(b"\x00\x00\x00\x01", ApiKey.HEARTBEAT, 4)


def test_frame_splitter_is_the_wire_capability() -> None:
    splitter = headers.FrameSplitter(100)
    assert splitter.feed(b"\x00\x00\x00\x02ab\x00\x00") == [b"ab"]
    with pytest.raises(ProtocolError):
        headers.FrameSplitter(3).feed(b"\x00\x00\x00\x04abcd")


def _produce_request(batches: list[bytes]) -> m.ProduceRequest:
    return m.ProduceRequest(
        transactional_id=None,
        acks=-1,
        timeout_ms=30_000,
        topic_data=[
            m.ProduceRequest_TopicProduceData(
                name="t",
                partition_data=[
                    m.ProduceRequest_PartitionProduceData(index=i, records=b) for i, b in enumerate(batches)
                ],
            )
        ],
    )


@pytest.mark.parametrize("version", [3, 8, 9, 12])
def test_request_in_parts_leaves_large_values_out_and_joins_to_the_same_frame(version: int) -> None:
    big = [bytes([i]) * (40_000 + i) for i in range(3)]
    small = b"s" * 100
    req = _produce_request([big[0], small, big[1], big[2]])
    whole = headers.encode_request(ApiKey.PRODUCE, version, 77, "c", req)
    parts = headers.encode_request_parts(ApiKey.PRODUCE, version, 77, "c", req, min_out_of_line=32_768)
    assert b"".join(parts) == whole
    # Each large batch is a part of its own, the very object the request holds (no
    # copy); the small one is inside the bytes around them.
    out_of_line = [p for p in parts if any(p is b for b in big)]
    assert out_of_line == big
    # Inline bytes before each of them, and after the last only when fields follow it
    # (the tagged-field count of flexible versions).
    assert parts[1::2] == big
    assert len(parts) == 2 * len(big) + (1 if version >= 9 else 0)
    assert struct.unpack(">i", parts[0][:4])[0] == len(whole) - 4


def test_request_in_parts_without_large_values_is_one_part() -> None:
    req = _produce_request([b"x" * 1000])
    parts = headers.encode_request_parts(ApiKey.PRODUCE, 9, 5, "c", req)
    assert parts == [headers.encode_request(ApiKey.PRODUCE, 9, 5, "c", req)]
    meta = headers.encode_request_parts(ApiKey.METADATA, 12, 6, "c", m.MetadataRequest(topics=[]))
    assert meta == [headers.encode_request(ApiKey.METADATA, 12, 6, "c", m.MetadataRequest(topics=[]))]
