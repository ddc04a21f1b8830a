"""Errors the client raises beyond those in :mod:`streamcore.errors`.

``BufferFullError`` is defined in streamcore.errors and re-exported here.
"""

from __future__ import annotations

from streamcore.errors import BufferFullError, ErrorCode, KafkaError, StreamcoreError

__all__ = [
    "AbortableTransactionError",
    "BufferFullError",
    "ClientClosedError",
    "ConnectionLostError",
    "FatalTransactionError",
    "RequestTimeoutError",
    "TransactionAbortedError",
    "TransactionError",
    "TransactionStateError",
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


class TransactionError(StreamcoreError):
    """A transactional producer's failure.

    ``error`` is the Kafka ``ErrorCode`` that caused it (None when the cause was not a
    broker answer: a timeout, a lost connection); ``__cause__`` is the original
    exception. ``fatal``: the producer can only be closed. ``abortable``: call
    ``abort_transaction()``, then the producer can run new transactions. Neither is
    cured by calling the same method again (``retriable`` is False).
    """

    fatal = False
    abortable = False

    def __init__(self, message: str, error: ErrorCode | None = None) -> None:
        super().__init__(message)
        self.error = error


class FatalTransactionError(TransactionError):
    """The producer cannot go on: fenced by a newer producer with the same transactional id
    (PRODUCER_FENCED, INVALID_PRODUCER_EPOCH from the coordinator), not authorized
    (TRANSACTIONAL_ID_AUTHORIZATION_FAILED), or an answer the protocol does not allow.
    Every later transactional call and ``send`` raise it again; close the producer."""

    fatal = True


class AbortableTransactionError(TransactionError):
    """The current transaction cannot commit (a record failed, the group coordinator refused
    the offsets, TRANSACTION_ABORTABLE ...): only ``abort_transaction()`` is allowed, after
    which new transactions work."""

    abortable = True


class TransactionAbortedError(TransactionError):
    """Set on the futures of records that were still waiting to be sent when their
    transaction was aborted (they were never written)."""


class TransactionStateError(StreamcoreError, RuntimeError):
    """The call is not allowed in the producer's transaction state (``begin_transaction``
    twice, ``send`` outside a transaction, ``commit_transaction`` before
    ``init_transactions`` ...): a mistake in the calling code, the producer is unchanged."""


def broker_error(code: int, context: str = "") -> KafkaError:
    """A KafkaError for an error code a broker answered, with ``.category`` (streamcore.retry.ErrorCategory)."""
    from streamcore.client.retrying import tag

    err = KafkaError(ErrorCode.from_code(code), context)
    tag(err)
    return err
