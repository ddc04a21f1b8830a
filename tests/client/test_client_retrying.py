"""What the client does about an error before retrying it (client/retrying.py).

The routing decisions (refresh metadata, find the coordinator again, reconnect,
give up) are predicates over the error; what kind of failure an error *is* has one
enum in the project, streamcore.retry.ErrorCategory, carried as ``.category``.
"""

from __future__ import annotations

import asyncio

import pytest

from streamcore.client import retrying
from streamcore.client.retrying import (
    connection_failed,
    coordinator_moved,
    is_retriable,
    metadata_is_stale,
    tag,
)
from streamcore.errors import BackpressureError, ErrorCode, KafkaError
from streamcore.retry import ErrorCategory

E = ErrorCode


@pytest.mark.parametrize(
    "code",
    [E.UNKNOWN_TOPIC_OR_PARTITION, E.UNKNOWN_TOPIC_ID, E.NOT_LEADER_OR_FOLLOWER, E.LEADER_NOT_AVAILABLE,
     E.FENCED_LEADER_EPOCH, E.NOT_ENOUGH_REPLICAS, E.OFFSET_NOT_AVAILABLE],
)  # fmt: skip
def test_missing_topics_and_moved_leaders_ask_for_fresh_metadata(code: ErrorCode) -> None:
    exc = KafkaError(code)
    assert metadata_is_stale(exc)
    assert not coordinator_moved(exc) and not connection_failed(exc)
    assert is_retriable(exc)


@pytest.mark.parametrize(
    "code", [E.COORDINATOR_NOT_AVAILABLE, E.NOT_COORDINATOR, E.COORDINATOR_LOAD_IN_PROGRESS]
)
def test_coordinator_errors_ask_for_the_coordinator_again(code: ErrorCode) -> None:
    exc = KafkaError(code)
    assert coordinator_moved(exc)
    assert not metadata_is_stale(exc) and not connection_failed(exc)


@pytest.mark.parametrize(
    "exc",
    [KafkaError(E.REQUEST_TIMED_OUT), KafkaError(E.NETWORK_EXCEPTION), ConnectionResetError(), TimeoutError(),
     asyncio.TimeoutError(), OSError("unreachable")],
)  # fmt: skip
def test_lost_connections_and_timeouts_reconnect_and_retry(exc: BaseException) -> None:
    assert connection_failed(exc)
    assert not metadata_is_stale(exc) and not coordinator_moved(exc)
    assert is_retriable(exc)


@pytest.mark.parametrize(
    "code",
    [E.THROTTLING_QUOTA_EXCEEDED, E.KAFKA_STORAGE_ERROR, E.TOPIC_AUTHORIZATION_FAILED, E.MESSAGE_TOO_LARGE,
     E.INVALID_REQUEST, E.UNSUPPORTED_VERSION],
)  # fmt: skip
def test_throttling_authorization_and_bad_requests_need_no_routing_action(code: ErrorCode) -> None:
    exc = KafkaError(code)
    assert not metadata_is_stale(exc) and not coordinator_moved(exc) and not connection_failed(exc)
    assert is_retriable(exc) == code.retriable


def test_every_error_code_gets_at_most_one_routing_action() -> None:
    for code in ErrorCode:
        exc = KafkaError(code)
        actions = [metadata_is_stale(exc), coordinator_moved(exc), connection_failed(exc)]
        assert sum(actions) <= 1, code
        # A retriable code is always routed somewhere or cured by waiting.
        if code.retriable and not any(actions):
            assert (
                code in (E.THROTTLING_QUOTA_EXCEEDED, E.KAFKA_STORAGE_ERROR)
                or code in retrying._NOT_LEADERSHIP
            )


def test_other_exceptions_are_retriable_only_when_they_say_so() -> None:
    class Busy(Exception):
        retriable = True

    assert is_retriable(Busy()) and not metadata_is_stale(Busy()) and not connection_failed(Busy())
    assert not is_retriable(ValueError("bad"))
    assert not is_retriable(KafkaError(E.INVALID_CONFIG))


def test_tag_attaches_the_one_error_category() -> None:
    assert tag(KafkaError(E.UNKNOWN_TOPIC_OR_PARTITION)).category is ErrorCategory.TOPIC_MISSING  # type: ignore[attr-defined]
    assert tag(BackpressureError("queue full")).category is ErrorCategory.BACKPRESSURE  # type: ignore[attr-defined]
    already = KafkaError(E.MESSAGE_TOO_LARGE)
    already.category = ErrorCategory.NETWORK  # type: ignore[attr-defined]
    assert tag(already).category is ErrorCategory.NETWORK  # type: ignore[attr-defined]


def test_the_client_has_no_second_category_enum() -> None:
    assert not hasattr(retrying, "Category")
    assert retrying.ErrorCategory is ErrorCategory
