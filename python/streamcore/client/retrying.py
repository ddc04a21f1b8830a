"""The client's one dependency on :mod:`streamcore.retry`.

Every retry loop in the client asks this module how long to wait before attempt
*n* (``Backoff.delay_ms``, a ``streamcore.retry.RetryPolicy`` built from the client's
``retry_*`` settings by ``Backoff.from_config``), whether an error is worth retrying (``is_retriable``) and what must be
done before the retry: refresh metadata (``metadata_is_stale``), find the group
coordinator again (``coordinator_moved``) or reconnect (``connection_failed``).
What kind of failure an error is has one name in the project,
``streamcore.retry.ErrorCategory``; errors handed to the application carry it as
``.category`` (``tag``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from streamcore.errors import ErrorCode, KafkaError
from streamcore.retry import ErrorCategory, RetryMetrics, RetryPolicy, categorize

__all__ = [
    "Backoff",
    "ErrorCategory",
    "RetryMetrics",
    "connection_failed",
    "coordinator_moved",
    "is_retriable",
    "metadata_is_stale",
    "retry_async",
    "tag",
]

T = TypeVar("T")

# Kafka codes by the action that lets a retry succeed. A retriable code in none of
# these sets is treated as stale leadership: refreshing metadata is the cheap cure
# that the Java client applies to unknown retriable answers too.
_TOPIC_MISSING = frozenset({ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, ErrorCode.UNKNOWN_TOPIC_ID})
_LEADERSHIP = frozenset(
    {
        ErrorCode.NOT_LEADER_OR_FOLLOWER,
        ErrorCode.LEADER_NOT_AVAILABLE,
        ErrorCode.FENCED_LEADER_EPOCH,
        ErrorCode.UNKNOWN_LEADER_EPOCH,
        ErrorCode.REPLICA_NOT_AVAILABLE,
        ErrorCode.NOT_ENOUGH_REPLICAS,
        ErrorCode.NOT_ENOUGH_REPLICAS_AFTER_APPEND,
    }
)
_COORDINATOR = frozenset(
    {
        ErrorCode.COORDINATOR_NOT_AVAILABLE,
        ErrorCode.NOT_COORDINATOR,
        ErrorCode.COORDINATOR_LOAD_IN_PROGRESS,
    }
)
_NETWORK = frozenset({ErrorCode.REQUEST_TIMED_OUT, ErrorCode.NETWORK_EXCEPTION})
# Codes that a retry cures by waiting (throttled, storage busy), that no retry cures
# (authorization, a request that can never succeed as sent), or that the sets above
# route: none of them means stale leadership.
_NOT_LEADERSHIP = (
    _COORDINATOR
    | _NETWORK
    | {ErrorCode.THROTTLING_QUOTA_EXCEEDED, ErrorCode.KAFKA_STORAGE_ERROR}
    | {
        ErrorCode.TOPIC_AUTHORIZATION_FAILED,
        ErrorCode.GROUP_AUTHORIZATION_FAILED,
        ErrorCode.CLUSTER_AUTHORIZATION_FAILED,
        ErrorCode.SASL_AUTHENTICATION_FAILED,
    }
    | {
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
)
_CONNECTION_ERRORS = (ConnectionError, TimeoutError, OSError, asyncio.TimeoutError)


def metadata_is_stale(exc: BaseException) -> bool:
    """True if ``exc`` is a broker answer that fresh metadata can cure: a missing topic
    (it may be created or not yet known), a moved or unknown leader, or another
    retriable code that no other action cures."""
    if not isinstance(exc, KafkaError):
        return False
    code = exc.error
    return code in _TOPIC_MISSING or code in _LEADERSHIP or (code.retriable and code not in _NOT_LEADERSHIP)


def coordinator_moved(exc: BaseException) -> bool:
    """True if ``exc`` says the group coordinator moved or is loading: find it again, then retry."""
    return isinstance(exc, KafkaError) and exc.error in _COORDINATOR


def connection_failed(exc: BaseException) -> bool:
    """True if ``exc`` is a lost connection or a timeout (ours or the broker's): retry on a
    fresh connection."""
    if isinstance(exc, KafkaError):
        return exc.error in _NETWORK
    return isinstance(exc, _CONNECTION_ERRORS)


def is_retriable(exc: BaseException) -> bool:
    """True if retrying the same request later can succeed."""
    if isinstance(exc, KafkaError):
        return exc.retriable or exc.error in _TOPIC_MISSING
    return isinstance(exc, _CONNECTION_ERRORS) or bool(getattr(exc, "retriable", False))


def tag(exc: BaseException) -> BaseException:
    """Attach ``exc.category`` (a streamcore.retry.ErrorCategory) if it has none; returns ``exc``."""
    if getattr(exc, "category", None) is None:
        try:
            exc.category = categorize(exc)  # type: ignore[attr-defined]
        except AttributeError:
            pass  # exceptions with __slots__ cannot carry it
    return exc


class Backoff:
    """Delays between retries: a ``streamcore.retry.RetryPolicy`` in milliseconds.

    ``strategy`` is exponential (``initial_ms * multiplier**attempt``), fixed
    (``initial_ms``) or linear (``initial_ms * (attempt + 1)``), capped at ``max_ms``
    (never below ``initial_ms``). ``jitter`` is the fraction (0..1) of each delay drawn
    at random, so that many clients failing together do not retry in lockstep.
    ``from_config`` builds one from a client's ``retry_*`` settings (which the
    ``retry.*`` properties and ``STREAMCORE_RETRY_*`` variables fill).
    """

    __slots__ = ("policy",)

    def __init__(
        self,
        initial_ms: int = 100,
        max_ms: int = 1000,
        multiplier: float = 2.0,
        jitter: float = 0.2,
        strategy: str = "exponential",
    ):
        initial_ms = int(initial_ms)
        self.policy = RetryPolicy(
            strategy,
            interval=initial_ms,
            multiplier=multiplier,
            max_delay=max(int(max_ms), initial_ms),
            jitter=jitter,
        )

    @classmethod
    def from_config(cls, config: Any) -> Backoff:
        """The backoff a client's settings ask for (``retry_strategy``, ``retry_backoff_ms``,
        ``retry_backoff_max_ms``, ``retry_multiplier``, ``retry_jitter``)."""
        return cls(
            config.retry_backoff_ms,
            config.retry_backoff_max_ms,
            config.retry_multiplier,
            config.retry_jitter,
            config.retry_strategy,
        )

    def delay_us(self, attempt: int) -> int:
        """Delay before retry number ``attempt`` (0 = first retry), in microseconds."""
        return self.policy.delay_us(attempt)

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
