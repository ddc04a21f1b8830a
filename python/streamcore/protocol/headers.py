"""Request and response headers, and response framing.

A request frame (after the int32 size prefix) is a request header then the body.
Header v1 is api_key int16, api_version int16, correlation_id int32, client_id
nullable string; flexible request versions use header v2, which adds a tagged-field
section. A response is the int32 size prefix, a response header (v0: correlation_id;
v1 for flexible versions: + empty tagged fields) and the body, except that
ApiVersions responses always use header v0 so a client that does not yet know the
broker's versions can parse the answer (KIP-511).
"""

from __future__ import annotations

from typing import NamedTuple

from streamcore._impl import wire
from streamcore.errors import ProtocolError
from streamcore.protocol.api_versions import ADVERTISED, RESPONSE_CLASSES, flexible_from
from streamcore.protocol.messages import ApiVersionsResponse, ApiVersionsResponse_ApiVersion

__all__ = [
    "API_VERSIONS_KEY",
    "UNSUPPORTED_VERSION",
    "RequestHeader",
    "parse_request_header",
    "response_header_is_flexible",
    "encode_response_header",
    "encode_response",
    "unsupported_api_versions_response",
    "decode_api_versions_response",
]

API_VERSIONS_KEY = 18
UNSUPPORTED_VERSION = 35  # Kafka error code


class RequestHeader(NamedTuple):
    """A decoded request header; ``body_offset`` is where the body starts in the frame (bytes)."""

    api_key: int
    api_version: int
    correlation_id: int
    client_id: str | None
    body_offset: int


def parse_request_header(frame: bytes | bytearray | memoryview) -> RequestHeader:
    """Decode the header at the start of ``frame`` (a frame without its size prefix).

    Raises ProtocolError for a truncated header. Unknown api keys are parsed with
    header v1 (the caller answers or closes the connection).
    """
    return RequestHeader(*wire.parse_request_header(frame, flexible_from))


def response_header_is_flexible(api_key: int, api_version: int) -> bool:
    """True if the response to (``api_key``, ``api_version``) uses response header v1."""
    if api_key == API_VERSIONS_KEY:
        return False
    first = flexible_from.get(api_key)
    return first is not None and api_version >= first


def encode_response_header(correlation_id: int, api_key: int, api_version: int) -> bytes:
    """The response header for (``api_key``, ``api_version``), without the size prefix."""
    return wire.encode_response_header(correlation_id, response_header_is_flexible(api_key, api_version))


def encode_response(correlation_id: int, api_key: int, api_version: int, response_obj: object) -> bytes:
    """A complete response frame: int32 size, response header, body at ``api_version``.

    ``response_obj`` must be an instance of the generated response class of
    ``api_key``; ValueError if it is not or if it holds a value ``api_version``
    cannot carry.
    """
    cls = RESPONSE_CLASSES.get(api_key)
    if cls is None or type(response_obj) is not cls:
        raise ValueError(
            f"a response to api key {api_key} must be a {cls.__name__ if cls else 'known'} instance"
        )
    w = wire.Writer()
    w.int32(correlation_id)
    if response_header_is_flexible(api_key, api_version):
        w.uvarint(0)
    response_obj.encode_into(w, api_version)  # type: ignore[attr-defined]
    return w.getvalue_framed()


def unsupported_api_versions_response(correlation_id: int) -> bytes:
    """The downgrade answer to an ApiVersions request above our highest version.

    Error UNSUPPORTED_VERSION (35) and the advertised ranges in a v0 body with a v0
    header, which every client can read; it then retries with the highest version
    listed for ApiVersions.
    """
    body = ApiVersionsResponse(
        error_code=UNSUPPORTED_VERSION,
        api_keys=[
            ApiVersionsResponse_ApiVersion(api_key=k, min_version=lo, max_version=hi)
            for k, (lo, hi) in sorted(ADVERTISED.items())
        ],
    )
    w = wire.Writer()
    w.int32(correlation_id)
    body.encode_into(w, 0)
    return w.getvalue_framed()


def decode_api_versions_response(body: bytes | bytearray | memoryview, version: int) -> ApiVersionsResponse:
    """Decode an ApiVersions response body sent in answer to a request of ``version``.

    A broker that does not know ``version`` answers with UNSUPPORTED_VERSION in a v0
    body, so (like the Java client) a body that does not parse at ``version``, or
    parses with that error code, is read again as v0.
    """
    try:
        resp = ApiVersionsResponse.decode(body, version)
    except ProtocolError:
        return ApiVersionsResponse.decode(body, 0)
    if resp.error_code == UNSUPPORTED_VERSION and version > 0:
        return ApiVersionsResponse.decode(body, 0)
    return resp
