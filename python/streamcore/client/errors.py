"""Errors the client raises beyond those in :mod:`streamcore.errors`.

``BufferFullError`` is defined in streamcore.errors and re-exported here.
"""

from __future__ import annotations

from streamcore.errors import BufferFullError, ErrorCode, KafkaError, StreamcoreError

__all__ = [
    "BufferFullError",
    "ClientClosedError",
    "ConnectionLostError",
    "RequestTimeoutError",
    "broker_error",
]


class ClientClosedError(StreamcoreError):
    """The client was closed; create a new one."""


class ConnectionLostError(StreamcoreError, ConnectionError):
    """A broker connection closed before the answer to a request arrived.

    The request may or may not have been processed; the client retries it (an
    idempotent producer's retry cannot duplicate records).
    """

    retriable = True


class RequestTimeoutError(StreamcoreError, TimeoutError):
    """No answer within ``request_timeout_ms``; the connection is closed and the request retried."""

    retriable = True


def broker_error(code: int, context: str = "") -> KafkaError:
    """A KafkaError for an error code a broker answered, with ``.category`` (streamcore.retry.ErrorCategory)."""
    from streamcore.client.retrying import tag

    err = KafkaError(ErrorCode.from_code(code), context)
    tag(err)
    return err
