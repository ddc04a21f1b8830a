"""Request and response headers, the api-key names, and the frame splitter.

Every Kafka frame is an int32 size prefix then a header then a body; this module is
the one place that knows the header layouts, for the broker and the client alike.

Request header v1 is api_key int16, api_version int16, correlation_id int32,
client_id nullable string; flexible request versions use header v2, which adds a
tagged-field section after client_id (client_id itself stays a non-compact string).
Response header v0 is correlation_id int32; flexible versions use v1, which adds an
empty tagged-field section, except that ApiVersions responses always use header v0
so that a client that does not yet know the broker's versions can parse the answer
(KIP-511).

Broker side: ``parse_request_header``, ``encode_response``,
``unsupported_api_versions_response``. Client side: ``encode_request``,
``response_correlation_id``, ``decode_response``. Both cut their byte stream into
frames with ``FrameSplitter``.
"""

from __future__ import annotations

import enum
import functools
from typing import TYPE_CHECKING, Any, NamedTuple

from streamcore._impl import wire
from streamcore.errors import ProtocolError
from streamcore.protocol.api_versions import ADVERTISED, API_NAMES, RESPONSE_CLASSES, flexible_from
from streamcore.protocol.messages import ApiVersionsResponse, ApiVersionsResponse_ApiVersion

__all__ = [
    "ApiKey",
    "API_VERSIONS_KEY",
    "UNSUPPORTED_VERSION",
    "FrameSplitter",
    "RequestHeader",
    "parse_request_header",
    "request_header_is_flexible",
    "encode_request_header",
    "encode_request",
    "encode_request_parts",
    "response_header_is_flexible",
    "encode_response_header",
    "encode_response",
    "encode_response_parts",
    "OutOfLine",
    "unsupported_api_versions_response",
    "response_correlation_id",
    "response_body_offset",
    "decode_response",
    "decode_api_versions_response",
]

FrameSplitter = wire.FrameSplitter
"""Cuts a byte stream into frames: ``FrameSplitter(max_frame_size_bytes).feed(data) -> [frame, ...]``
(each frame without its size prefix); ProtocolError for a negative or oversized size."""


class ApiKey(enum.IntEnum):
    """Kafka api keys of the messages the generated classes cover, by their Kafka names."""

    PRODUCE = 0
    FETCH = 1
    LIST_OFFSETS = 2
    METADATA = 3
    OFFSET_COMMIT = 8
    OFFSET_FETCH = 9
    FIND_COORDINATOR = 10
    JOIN_GROUP = 11
    HEARTBEAT = 12
    LEAVE_GROUP = 13
    SYNC_GROUP = 14
    DESCRIBE_GROUPS = 15
    LIST_GROUPS = 16
    SASL_HANDSHAKE = 17
    API_VERSIONS = 18
    CREATE_TOPICS = 19
    DELETE_TOPICS = 20
    DELETE_RECORDS = 21
    INIT_PRODUCER_ID = 22
    OFFSET_FOR_LEADER_EPOCH = 23
    ADD_PARTITIONS_TO_TXN = 24
    ADD_OFFSETS_TO_TXN = 25
    END_TXN = 26
    TXN_OFFSET_COMMIT = 28
    DESCRIBE_ACLS = 29
    CREATE_ACLS = 30
    DELETE_ACLS = 31
    DESCRIBE_CONFIGS = 32
    ALTER_CONFIGS = 33
    DESCRIBE_LOG_DIRS = 35
    SASL_AUTHENTICATE = 36
    CREATE_PARTITIONS = 37
    DELETE_GROUPS = 42
    INCREMENTAL_ALTER_CONFIGS = 44
    OFFSET_DELETE = 47
    DESCRIBE_CLIENT_QUOTAS = 48
    ALTER_CLIENT_QUOTAS = 49
    DESCRIBE_USER_SCRAM_CREDENTIALS = 50
    ALTER_USER_SCRAM_CREDENTIALS = 51
    DESCRIBE_CLUSTER = 60
    DESCRIBE_PRODUCERS = 61
    DESCRIBE_TRANSACTIONS = 65
    LIST_TRANSACTIONS = 66


def _check_api_keys() -> None:
    # The names are hand-written for readability and type checking; the generated
    # classes are the truth, so a regenerated protocol that adds or renumbers a
    # message fails at import instead of drifting.
    def kafka_name(key: int) -> str:
        camel = API_NAMES[key]
        return "".join("_" + c if c.isupper() and i else c for i, c in enumerate(camel)).upper()

    want = {kafka_name(k): k for k in API_NAMES}
    have = {m.name: m.value for m in ApiKey}
    if want != have:
        raise RuntimeError(
            f"ApiKey is out of step with the generated messages: {sorted(set(want.items()) ^ set(have.items()))}"
        )


_check_api_keys()

API_VERSIONS_KEY = ApiKey.API_VERSIONS
UNSUPPORTED_VERSION = 35  # Kafka error code

_NEVER = 1 << 16  # above every int16 version: "this api has no flexible versions"


# ------------------------------------------------------------------ requests


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


def request_header_is_flexible(api_key: int, api_version: int) -> bool:
    """True if a request of (``api_key``, ``api_version``) uses request header v2 (tagged fields)."""
    return api_version >= flexible_from.get(api_key, _NEVER)


@functools.lru_cache(maxsize=1024)
def _request_header_tail(api_key: int, api_version: int, client_id: str | None) -> bytes:
    # What follows the correlation id never changes per (api, version, client), so a
    # client pays for the string and tagged-field encoding once.
    w = wire.Writer()
    w.string(client_id)
    if request_header_is_flexible(api_key, api_version):
        w.uvarint(0)
    return w.getvalue()


def encode_request_header(
    api_key: int, api_version: int, correlation_id: int, client_id: str | None
) -> bytes:
    """The request header (v1, or v2 for flexible versions), without the size prefix."""
    w = wire.Writer()
    w.int16(api_key)
    w.int16(api_version)
    w.int32(correlation_id)
    w.raw(_request_header_tail(api_key, api_version, client_id))
    return w.getvalue()


def encode_request(
    api_key: int, api_version: int, correlation_id: int, client_id: str | None, request_obj: Any
) -> bytes:
    """A complete request frame: int32 size, request header, body of ``request_obj`` at ``api_version``.

    ``request_obj`` is an instance of a generated request class; ValueError if it
    holds a value ``api_version`` cannot carry.
    """
    w = wire.Writer()
    w.int16(api_key)
    w.int16(api_version)
    w.int32(correlation_id)
    w.raw(_request_header_tail(api_key, api_version, client_id))
    request_obj.encode_into(w, api_version)
    return w.getvalue_framed()


#: Bytes values of at least this many bytes stay out of a request frame built as parts.
OUT_OF_LINE_MIN_BYTES = 32 * 1024


def encode_request_parts(
    api_key: int,
    api_version: int,
    correlation_id: int,
    client_id: str | None,
    request_obj: Any,
    min_out_of_line: int = OUT_OF_LINE_MIN_BYTES,
) -> list[Any]:
    """The frame :func:`encode_request` returns, as buffers to send back to back.

    Bytes values of at least ``min_out_of_line`` bytes (a Produce request's record
    batches) are parts of their own, the very objects the request holds: the frame
    around them is built without copying them in, and a vectored write hands them to
    the kernel as they are. Without such values there is one part. The first part
    starts with the int32 size, which counts every part. Raises as ``encode_request``.
    """
    w = _PartsWriter(min_out_of_line)
    w.int16(api_key)
    w.int16(api_version)
    w.int32(correlation_id)
    w.raw(_request_header_tail(api_key, api_version, client_id))
    request_obj.encode_into(w, api_version)
    return _parts(w)


# ------------------------------------------------------------------ responses


def response_header_is_flexible(api_key: int, api_version: int) -> bool:
    """True if the response to (``api_key``, ``api_version``) uses response header v1."""
    if api_key == API_VERSIONS_KEY:
        return False
    return api_version >= flexible_from.get(api_key, _NEVER)


def encode_response_header(correlation_id: int, api_key: int, api_version: int) -> bytes:
    """The response header for (``api_key``, ``api_version``), without the size prefix."""
    return wire.encode_response_header(correlation_id, response_header_is_flexible(api_key, api_version))


class OutOfLine:
    """A bytes field's value that the encoder leaves out of the frame it builds.

    :func:`encode_response_parts` writes only the field's length prefix and hands the
    value back as a part of its own, so that its bytes reach the socket without being
    copied into the frame (a Fetch response's record sets: ``os.sendfile`` from the
    segment files, or the buffer one read filled). Subclasses give the length in
    bytes (``__len__``) and the bytes themselves (``materialize``, for a sender that
    cannot send them out of line, such as a TLS connection).
    """

    # Not an abc.ABC: isinstance against an ABC runs Python code, and the encoder and the
    # sender ask it of every field and part of every Fetch response. The two methods
    # every subclass defines are declared for the type checker only, so that a class
    # missing one fails where it is used rather than through a placeholder here.
    __slots__ = ()

    if TYPE_CHECKING:

        def __len__(self) -> int:
            """The value's length in bytes."""

        def materialize(self) -> bytes | bytearray | memoryview:
            """The bytes, in memory."""

    def __bool__(self) -> bool:
        return len(self) > 0

    def close(self) -> None:
        """Release what the value holds (open files); the default holds nothing."""


_Writer: Any = wire.Writer


class _PartsWriter(_Writer):
    """A Writer that leaves OutOfLine values out, noting where each belongs; with
    ``min_buffer`` set, also bytes-like values of at least that many bytes."""

    __slots__ = ("holes", "min_buffer")

    def __init__(self, min_buffer: int | None = None) -> None:
        super().__init__()
        #: (bytes written before the value, the value), in order.
        self.holes: list[tuple[int, Any]] = []
        self.min_buffer = min_buffer

    def _leaves_out(self, b: object) -> bool:
        if isinstance(b, OutOfLine):
            return True
        limit = self.min_buffer
        return limit is not None and isinstance(b, (bytes, bytearray, memoryview)) and len(b) >= limit

    def bytes_(self, b: object) -> None:
        if self._leaves_out(b):
            self.int32(len(b))  # type: ignore[arg-type]
            self.holes.append((len(self), b))
        else:
            super().bytes_(b)

    def compact_bytes(self, b: object) -> None:
        if self._leaves_out(b):
            self.uvarint(len(b) + 1)  # type: ignore[arg-type]
            self.holes.append((len(self), b))
        else:
            super().compact_bytes(b)


def _parts(w: _PartsWriter) -> list[Any]:
    """What ``w`` wrote, as a frame in parts: the inline bytes cut at every hole, with the
    value left out in between; the int32 size first."""
    holes = w.holes
    if not holes:
        return [w.getvalue_framed()]
    inline = w.getvalue()
    size = len(inline) + sum(len(value) for _, value in holes)
    if size > 0x7FFFFFFF:
        raise ValueError(f"frame of {size} bytes does not fit an int32 size")
    parts: list[Any] = []
    start = 0
    for at, value in holes:
        piece = inline[start:at]
        if not parts:
            piece = size.to_bytes(4, "big") + piece
        parts.append(piece)
        parts.append(value)
        start = at
    if start < len(inline):
        parts.append(inline[start:])
    return parts


def _check_response(api_key: int, response_obj: object) -> None:
    cls = RESPONSE_CLASSES.get(api_key)
    if cls is None or type(response_obj) is not cls:
        raise ValueError(
            f"a response to api key {api_key} must be a {cls.__name__ if cls else 'known'} instance"
        )


def encode_response(correlation_id: int, api_key: int, api_version: int, response_obj: object) -> bytes:
    """A complete response frame: int32 size, response header, body at ``api_version``.

    ``response_obj`` must be an instance of the generated response class of
    ``api_key``; ValueError if it is not or if it holds a value ``api_version``
    cannot carry. OutOfLine values are materialized into the frame.
    """
    _check_response(api_key, response_obj)
    if api_key == ApiKey.FETCH:
        parts = encode_response_parts(correlation_id, api_key, api_version, response_obj)
        if len(parts) == 1:
            return bytes(parts[0])  # type: ignore[arg-type]
        return b"".join(p.materialize() if isinstance(p, OutOfLine) else p for p in parts)
    w = wire.Writer()
    w.int32(correlation_id)
    if response_header_is_flexible(api_key, api_version):
        w.uvarint(0)
    response_obj.encode_into(w, api_version)  # type: ignore[attr-defined]
    return w.getvalue_framed()


def encode_response_parts(
    correlation_id: int, api_key: int, api_version: int, response_obj: object
) -> list[bytes | OutOfLine]:
    """A response frame as parts: bytes, and the OutOfLine values in between, in order.

    Sending the parts back to back sends the frame :func:`encode_response` returns;
    the first part starts with the int32 size, which counts the OutOfLine values'
    lengths. Without OutOfLine values there is one part. Raises as ``encode_response``.
    """
    _check_response(api_key, response_obj)
    w = _PartsWriter()
    w.int32(correlation_id)
    if response_header_is_flexible(api_key, api_version):
        w.uvarint(0)
    response_obj.encode_into(w, api_version)  # type: ignore[attr-defined]
    return _parts(w)


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


def response_correlation_id(frame: bytes | bytearray | memoryview) -> int:
    """The correlation id at the start of a response ``frame`` (without its size prefix).

    It comes first in every response header version, so it can be read before the
    caller knows which request the frame answers. ProtocolError for a frame shorter
    than 4 bytes.
    """
    if len(frame) < 4:
        raise ProtocolError(f"response frame of {len(frame)} bytes is too short for a correlation id")
    return int.from_bytes(frame[:4], "big", signed=True)


def response_body_offset(frame: bytes | bytearray | memoryview, api_key: int, api_version: int) -> int:
    """Where the body starts in a response ``frame`` to (``api_key``, ``api_version``), in bytes.

    Skips the correlation id and, for header v1, the tagged-field section (which may
    carry fields we do not know). ProtocolError for a truncated header.
    """
    if not response_header_is_flexible(api_key, api_version):
        return 4
    r = wire.Reader(frame, 4)
    r.tagged_fields()
    return r.pos


def decode_response(frame: bytes | bytearray | memoryview, api_key: int, api_version: int) -> Any:
    """Decode a whole response ``frame`` (without its size prefix) to the request (``api_key``, ``api_version``).

    Returns an instance of the generated response class. ApiVersions answers go
    through ``decode_api_versions_response`` (its v0 downgrade body). ProtocolError
    for a truncated or malformed frame; KeyError for an api key without a class.
    """
    body = memoryview(frame)[response_body_offset(frame, api_key, api_version) :]
    if api_key == API_VERSIONS_KEY:
        return decode_api_versions_response(body, api_version)
    response_class: Any = RESPONSE_CLASSES[api_key]  # generated classes: typed as plain `type`
    return response_class.decode(body, api_version)


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
