"""Request header parsing, response framing, the ApiVersions special cases and tagged fields."""

from __future__ import annotations

import struct

import pytest

from streamcore._impl import wire
from streamcore.errors import ProtocolError
from streamcore.protocol import headers
from streamcore.protocol import messages as m
from streamcore.protocol.api_versions import ADVERTISED, flexible_from

# ApiVersions v3 request as librdkafka 2.x sends it: header v2 (client_id stays an
# int16-length string, then an empty tagged-field section), then a flexible body with
# compact strings for the software name and version and an empty tagged section.
LIBRDKAFKA_API_VERSIONS_V3 = (
    b"\x00\x12"  # api_key 18
    b"\x00\x03"  # api_version 3
    b"\x00\x00\x00\x01"  # correlation_id 1
    b"\x00\x07rdkafka"  # client_id
    b"\x00"  # header tagged fields
    b"\x0blibrdkafka"  # ClientSoftwareName, compact (length + 1)
    b"\x062.0.2"  # ClientSoftwareVersion
    b"\x00"  # body tagged fields
)


def test_librdkafka_api_versions_v3_request_parses():
    hdr = headers.parse_request_header(LIBRDKAFKA_API_VERSIONS_V3)
    assert hdr == headers.RequestHeader(18, 3, 1, "rdkafka", 18)
    body = m.ApiVersionsRequest.decode(memoryview(LIBRDKAFKA_API_VERSIONS_V3)[hdr.body_offset :], 3)
    assert body.client_software_name == "librdkafka"
    assert body.client_software_version == "2.0.2"
    assert m.ApiVersionsRequest(client_software_name="librdkafka", client_software_version="2.0.2").encode(
        3
    ) == bytes(LIBRDKAFKA_API_VERSIONS_V3[hdr.body_offset :])


def test_request_header_v1_for_non_flexible_versions():
    frame = b"\x00\x00\x00\x08" + b"\x00\x00\x00\x09" + b"\xff\xff" + m.ProduceRequest().encode(8)
    hdr = headers.parse_request_header(frame)
    assert hdr == headers.RequestHeader(0, 8, 9, None, 10)


def test_truncated_request_header_raises_protocol_error():
    with pytest.raises(ProtocolError):
        headers.parse_request_header(LIBRDKAFKA_API_VERSIONS_V3[:9])


def test_api_versions_response_header_is_v0_even_when_the_body_is_flexible():
    resp = m.ApiVersionsResponse(
        api_keys=[m.ApiVersionsResponse_ApiVersion(api_key=0, min_version=0, max_version=9)]
    )
    frame = headers.encode_response(5, 18, 3, resp)
    (size,) = struct.unpack_from(">i", frame)
    assert size == len(frame) - 4
    assert frame[4:8] == b"\x00\x00\x00\x05"
    assert frame[8:] == resp.encode(3)  # no tagged-field byte between header and body


def test_flexible_response_gets_header_v1():
    resp = m.HeartbeatResponse(error_code=0)
    frame = headers.encode_response(7, 12, 4, resp)
    assert frame == struct.pack(">ii", 4 + 1 + len(resp.encode(4)), 7) + b"\x00" + resp.encode(4)
    frame = headers.encode_response(7, 12, 3, resp)
    assert frame == struct.pack(">ii", 4 + len(resp.encode(3)), 7) + resp.encode(3)


def test_encode_response_rejects_a_body_of_another_api():
    with pytest.raises(ValueError):
        headers.encode_response(1, 0, 9, m.FetchResponse())


def test_unsupported_api_versions_answer_is_a_v0_body_with_our_ranges():
    frame = headers.unsupported_api_versions_response(77)
    (size, corr) = struct.unpack_from(">ii", frame)
    assert size == len(frame) - 4 and corr == 77
    body = m.ApiVersionsResponse.decode(frame[8:], 0)
    assert body.error_code == headers.UNSUPPORTED_VERSION == 35
    assert {k.api_key: (k.min_version, k.max_version) for k in body.api_keys} == ADVERTISED
    # A client that asked with v3 falls back to reading it as v0.
    assert headers.decode_api_versions_response(frame[8:], 3) == body


def test_kafka_python_reads_the_unsupported_version_answer():
    kp = pytest.importorskip("kafka.protocol.metadata")
    frame = headers.unsupported_api_versions_response(1)
    theirs = kp.ApiVersionsResponse.decode(frame[8:], version=0)
    assert theirs.error_code == 35
    assert len(theirs.api_keys) == len(ADVERTISED)


def test_request_header_flexibility_comes_from_the_generated_classes():
    assert flexible_from[18] == 3 and flexible_from[1] == 12 and flexible_from[0] == 9
    assert 17 not in flexible_from  # SaslHandshake is never flexible


def _tagged_section(fields: dict[int, bytes]) -> bytes:
    w = wire.Writer()
    w.tagged_fields(fields)
    return w.getvalue()


def test_unknown_tagged_fields_are_skipped_on_decode():
    req = m.HeartbeatRequest(group_id="g", generation_id=3, member_id="m", group_instance_id=None)
    data = req.encode(4)
    assert data.endswith(b"\x00")  # empty tagged section
    with_unknown = data[:-1] + _tagged_section({7: b"future", 300: b"\x01\x02"})
    assert m.HeartbeatRequest.decode(with_unknown, 4) == req


def test_known_tagged_field_round_trips_and_unknown_ones_beside_it_are_ignored():
    req = m.FetchRequest(cluster_id="cluster-A", max_wait_ms=100, min_bytes=1)
    data = req.encode(12)
    assert m.FetchRequest.decode(data, 12).cluster_id == "cluster-A"
    # Rebuild the top-level tagged section with an extra unknown tag after tag 0.
    tag0 = wire.Writer()
    tag0.compact_string("cluster-B")
    section = _tagged_section({0: tag0.getvalue(), 9: b"zz"})
    default_data = m.FetchRequest(max_wait_ms=100, min_bytes=1).encode(12)
    assert default_data.endswith(b"\x00")
    decoded = m.FetchRequest.decode(default_data[:-1] + section, 12)
    assert decoded.cluster_id == "cluster-B"


def test_tagged_struct_fields_are_written_only_when_not_default():
    resp = m.ApiVersionsResponse()
    plain = resp.encode(3)
    resp.finalized_features_epoch = 5
    resp.supported_features = [
        m.ApiVersionsResponse_SupportedFeatureKey(name="metadata.version", min_version=1, max_version=20)
    ]
    tagged = resp.encode(3)
    assert len(tagged) > len(plain)
    assert m.ApiVersionsResponse.decode(tagged, 3) == resp


def test_tagged_fields_out_of_order_are_a_protocol_error():
    data = m.HeartbeatRequest(group_id="g", member_id="m").encode(4)
    bad = data[:-1] + b"\x02" + b"\x05\x00" + b"\x01\x00"  # tag 5 then tag 1
    with pytest.raises(ProtocolError):
        m.HeartbeatRequest.decode(bad, 4)
