"""A malformed frame closes that one connection; the broker keeps serving everyone else."""

from __future__ import annotations

import struct
from typing import Any

import pytest

from streamcore.protocol import messages as m

from .wire_client import WireClient, produce_request, request_frame


def _header(api_key: int, version: int, correlation_id: int = 1, client_id: bytes = b"bad") -> bytes:
    return struct.pack(">hhih", api_key, version, correlation_id, len(client_id)) + client_id


def _framed(payload: bytes) -> bytes:
    return struct.pack(">i", len(payload)) + payload


MAX_REQUEST_BYTES = 100 * 1024 * 1024  # the broker default

MALFORMED = {
    # An HTTP request: its first four bytes read as a frame size of about 1.2 GB.
    "http_garbage": b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    "random_bytes": bytes(range(7, 250, 3)) * 3,
    "negative_size": struct.pack(">i", -2) + b"\x00" * 16,
    # Only the size prefix is sent: the broker must not wait for 100 MiB that never come.
    "size_over_max_request_bytes": struct.pack(">i", MAX_REQUEST_BYTES + 1),
    "truncated_header": _framed(b"\x00\x03\x00"),
    "header_cut_inside_client_id": _framed(struct.pack(">hhih", 3, 1, 9, 50) + b"short"),
    "unknown_api_key": _framed(_header(999, 0)),
    "unsupported_produce_version": request_frame(
        produce_request("t", 0, b"", acks=1), 42, 1, body_version=12
    ),
    "garbage_metadata_body": _framed(_header(3, 1) + b"\x7f\xff\xff\xff"),
}


@pytest.mark.parametrize("payload", list(MALFORMED.values()), ids=list(MALFORMED))
def test_malformed_frame_closes_only_its_connection(broker: Any, payload: bytes) -> None:
    with WireClient(broker.bootstrap_servers) as bystander, WireClient(broker.bootstrap_servers) as bad:
        assert bystander.request(m.ApiVersionsRequest(), 3).error_code == 0
        bad.send_raw(payload)
        assert bad.is_closed_by_peer(timeout_s=10.0), (
            "the broker kept a connection that sent a malformed frame"
        )
        # The connection opened before still works, and so does a new one.
        meta = bystander.request(m.MetadataRequest(topics=None), 12)
        assert [b.port for b in meta.brokers] == [broker.port]
    with WireClient(broker.bootstrap_servers) as fresh:
        assert fresh.request(m.ApiVersionsRequest(), 0).error_code == 0


def test_a_request_dribbled_slower_than_request_timeout_is_closed(streamcore_broker_factory: Any) -> None:
    # The idle timeout is far away: only the request timeout, counted from the request's
    # first byte, can close this connection, though it sends a byte every 0.1 s.
    broker = streamcore_broker_factory(limits_request_timeout_ms=1000, limits_connection_idle_ms=600_000)
    payload = request_frame(m.MetadataRequest(topics=None), 12, 1)
    with WireClient(broker.bootstrap_servers) as slow, WireClient(broker.bootstrap_servers) as bystander:
        closed = False
        for i in range(len(payload) - 1):  # never the last byte; bounded by the payload
            try:
                slow.send_raw(payload[i : i + 1])
            except OSError:
                closed = True
                break
            if slow.is_closed_by_peer(timeout_s=0.1):
                closed = True
                break
        assert closed or slow.is_closed_by_peer(timeout_s=10.0), (
            "a dribbling client outlived request_timeout_ms"
        )
        assert bystander.request(m.ApiVersionsRequest(), 3).error_code == 0


def test_a_frame_declaring_a_huge_size_does_not_preallocate(streamcore_broker_factory: Any) -> None:
    # Declares the maximum request size, sends 10 bytes: the broker holds 10 bytes, not 100 MiB,
    # and closes the connection once the request timeout passes.
    broker = streamcore_broker_factory(limits_request_timeout_ms=500)
    with WireClient(broker.bootstrap_servers) as c:
        c.send_raw(struct.pack(">i", MAX_REQUEST_BYTES) + b"\x00" * 10)
        assert c.is_closed_by_peer(timeout_s=10.0)
    assert broker.runtime._server.memory.peak < 1024 * 1024
