"""The client's one dependency on :mod:`streamcore.retry`.

Every retry loop in the client asks this module how long to wait before attempt
*n* (``Backoff.delay_ms``, an exponential ``streamcore.retry.RetryPolicy`` with
jitter) and what an error means for routing (``category_of``: refresh metadata,
find the coordinator again, give up ...). Errors handed to the application carry
the project-wide ``streamcore.retry.ErrorCategory`` as ``.category`` (``tag``).
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from streamcore.errors import ErrorCode, KafkaError
from streamcore.retry import ErrorCategory, RetryMetrics, RetryPolicy, categorize

__all__ = [
    "Category",
    "Backoff",
    "ErrorCategory",
    "RetryMetrics",
    "category_of",
    "is_retriable",
    "retry_async",
    "tag",
]

T = TypeVar("T")


class Category(str, enum.Enum):
    """What kind of failure an error is, which decides whether a retry can help."""

    NETWORK = "network"  # connection lost, timeout: retry on a fresh connection
    LEADERSHIP = "leadership"  # stale metadata: refresh metadata, then retry
    TOPIC_MISSING = "topic_missing"  # the topic does not exist (yet)
    COORDINATOR = "coordinator"  # group coordinator moved or loading: find it again
    THROTTLED = "throttled"  # broker asked us to slow down
    AUTHORIZATION = "authorization"
    CONFIGURATION = "configuration"  # the request can never succeed as sent
    FATAL = "fatal"


_LEADERSHIP = {
    ErrorCode.NOT_LEADER_OR_FOLLOWER,
    ErrorCode.LEADER_NOT_AVAILABLE,
    ErrorCode.FENCED_LEADER_EPOCH,
    ErrorCode.UNKNOWN_LEADER_EPOCH,
    ErrorCode.REPLICA_NOT_AVAILABLE,
    ErrorCode.NOT_ENOUGH_REPLICAS,
    ErrorCode.NOT_ENOUGH_REPLICAS_AFTER_APPEND,
}
_COORDINATOR = {
    ErrorCode.COORDINATOR_NOT_AVAILABLE,
    ErrorCode.NOT_COORDINATOR,
    ErrorCode.COORDINATOR_LOAD_IN_PROGRESS,
}
_AUTH = {
    ErrorCode.TOPIC_AUTHORIZATION_FAILED,
    ErrorCode.GROUP_AUTHORIZATION_FAILED,
    ErrorCode.CLUSTER_AUTHORIZATION_FAILED,
    ErrorCode.SASL_AUTHENTICATION_FAILED,
}
_CONFIG = {
    ErrorCode.INVALID_TOPIC_EXCEPTION,
    ErrorCode.MESSAGE_TOO_LARGE,
    ErrorCode.RECORD_LIST_TOO_LARGE,
    ErrorCode.INVALID_REQUIRED_ACKS,
    ErrorCode.INVALID_CONFIG,
    ErrorCode.INVALID_PARTITIONS,
    ErrorCode.INVALID_REPLICATION_FACTOR,
    ErrorCode.UNSUPPORTED_VERSION,
    ErrorCode.UNSUPPORTED_COMPRESSION_TYPE,
    ErrorCode.INVALID_REQUEST,
}


def category_of(exc: BaseException) -> Category:
    """The category of ``exc`` (a KafkaError, a connection error, a timeout ...)."""
    if isinstance(exc, KafkaError):
        code = exc.error
        if code in (ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, ErrorCode.UNKNOWN_TOPIC_ID):
            return Category.TOPIC_MISSING
        if code in _LEADERSHIP:
            return Category.LEADERSHIP
        if code in _COORDINATOR:
            return Category.COORDINATOR
        if code in (ErrorCode.THROTTLING_QUOTA_EXCEEDED, ErrorCode.KAFKA_STORAGE_ERROR):
            return Category.THROTTLED
        if code in _AUTH:
            return Category.AUTHORIZATION
        if code in _CONFIG:
            return Category.CONFIGURATION
        if code in (ErrorCode.REQUEST_TIMED_OUT, ErrorCode.NETWORK_EXCEPTION):
            return Category.NETWORK
        return Category.LEADERSHIP if code.retriable else Category.FATAL
    if isinstance(exc, (ConnectionError, TimeoutError, OSError, asyncio.TimeoutError)):
        return Category.NETWORK
    if getattr(exc, "retriable", False):
        return Category.THROTTLED
    return Category.FATAL


def is_retriable(exc: BaseException) -> bool:
    """True if retrying the same request later can succeed."""
    if isinstance(exc, KafkaError):
        return exc.retriable or category_of(exc) is Category.TOPIC_MISSING
    return category_of(exc) in (Category.NETWORK, Category.THROTTLED)


def tag(exc: BaseException) -> BaseException:
    """Attach ``exc.category`` (a streamcore.retry.ErrorCategory) if it has none; returns ``exc``."""
    if getattr(exc, "category", None) is None:
        try:
            exc.category = categorize(exc)  # type: ignore[attr-defined]
        except AttributeError:
            pass  # exceptions with __slots__ cannot carry it
    return exc


class Backoff:
    """Exponential backoff: ``initial_ms * multiplier**attempt`` capped at ``max_ms``, with jitter.

    ``jitter`` is the fraction (0..1) of each delay drawn at random, so that many
    clients failing together do not retry in lockstep. Delays come from a
    ``streamcore.retry.RetryPolicy``.
    """

    def __init__(
        self, initial_ms: int = 100, max_ms: int = 1000, multiplier: float = 2.0, jitter: float = 0.2
    ):
        initial_ms = int(initial_ms)
        self.policy = RetryPolicy(
            "exponential",
            interval=initial_ms,
            multiplier=multiplier,
            max_delay=max(int(max_ms), initial_ms),
            jitter=jitter,
        )

    def delay_ms(self, attempt: int) -> float:
        """Delay before retry number ``attempt`` (0 = first retry), in milliseconds."""
        return self.policy.delay_us(attempt) / 1000.0


async def retry_async(
    call: Callable[[], Awaitable[T]],
    backoff: Backoff,
    deadline: float,
    *,
    retriable: Callable[[BaseException], bool] = is_retriable,
    on_error: Callable[[BaseException], Awaitable[None] | None] | None = None,
) -> T:
    """Await ``call()`` until it succeeds, retrying retriable errors until ``deadline``.

    ``deadline`` is a ``time.monotonic()`` value. ``on_error`` runs after each
    retriable failure (e.g. to refresh metadata). The last error is raised when
    the deadline passes or an error is not retriable.
    """
    attempt = 0
    while True:
        try:
            return await call()
        except Exception as exc:
            if not retriable(exc):
                raise
            delay = backoff.delay_ms(attempt) / 1000.0
            if time.monotonic() + delay >= deadline:
                raise
            if on_error is not None:
                res = on_error(exc)
                if res is not None:
                    await res
            attempt += 1
            await asyncio.sleep(delay)
