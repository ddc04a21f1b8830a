"""ApiVersions on the wire: v0, flexible v3 with its always-v0 response header, the downgrade answer."""

from __future__ import annotations

import struct

from streamcore._impl import wire
from streamcore.protocol import messages as m
from streamcore.protocol.api_versions import ADVERTISED

from .wire_client import WireClient, request_frame

UNSUPPORTED_VERSION = 35


def _ranges(resp: m.ApiVersionsResponse) -> dict[int, tuple[int, int]]:
    return {k.api_key: (k.min_version, k.max_version) for k in resp.api_keys}


def test_api_versions_v0_lists_every_advertised_range(client: WireClient) -> None:
    resp = client.request(m.ApiVersionsRequest(), 0)
    assert resp.error_code == 0
    assert _ranges(resp) == ADVERTISED
    # The ranges librdkafka < 2.11.1 looks for (DESIGN "Known traps").
    assert _ranges(resp)[0][0] == 0
    assert _ranges(resp)[22][0] == 0


def test_api_versions_v3_flexible_request_gets_a_v0_response_header(client: WireClient) -> None:
    client.send_raw(
        request_frame(
            m.ApiVersionsRequest(client_software_name="wire-test", client_software_version="1.0"), 3, 77
        )
    )
    frame = client.recv_frame()
    (correlation_id,) = struct.unpack_from(">i", frame)
    assert correlation_id == 77
    # Header v0: the body starts right after the correlation id, no tagged-field byte.
    reader = wire.Reader(frame[4:])
    body = m.ApiVersionsResponse.decode(reader, 3)
    assert reader.remaining() == 0
    assert body.error_code == 0
    assert _ranges(body) == ADVERTISED


def test_api_versions_above_our_max_gets_the_v0_downgrade_answer(client: WireClient) -> None:
    # v9 does not exist in the classes: header says 9, body encoded as v4 (flexible).
    client.send_raw(request_frame(m.ApiVersionsRequest(client_software_name="future"), 9, 5, body_version=4))
    frame = client.recv_frame()
    (correlation_id,) = struct.unpack_from(">i", frame)
    assert correlation_id == 5
    reader = wire.Reader(frame[4:])
    body = m.ApiVersionsResponse.decode(reader, 0)
    assert reader.remaining() == 0
    assert body.error_code == UNSUPPORTED_VERSION
    assert _ranges(body)[18] == ADVERTISED[18]
    assert _ranges(body) == ADVERTISED
    # The connection stays usable: the client retries at a version we listed.
    retry = client.request(m.ApiVersionsRequest(client_software_name="future"), ADVERTISED[18][1])
    assert retry.error_code == 0
