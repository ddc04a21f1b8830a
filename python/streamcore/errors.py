"""Exception hierarchy and the Kafka error-code table.

Every backend (Rust, Cython, pure Python) raises these classes, so callers can
catch one type whatever implementation is active. ``ErrorCode`` is the full
table of Kafka protocol error codes (-1 .. 127) with whether the protocol
considers each one retriable.
"""

from __future__ import annotations

import enum

__all__ = [
    "StreamcoreError",
    "CorruptRecordError",
    "ProtocolError",
    "StorageError",
    "BackpressureError",
    "BufferFullError",
    "DataDirLockedError",
    "LogOfflineError",
    "ConfigError",
    "AuthenticationError",
    "OffsetOutOfRangeError",
    "KafkaError",
    "ErrorCode",
]


class StreamcoreError(Exception):
    """Base class of every error streamcore raises on purpose."""

    retriable: bool = False


class CorruptRecordError(StreamcoreError, ValueError):
    """A record batch failed validation (length, magic, CRC, varint, compression).

    The message says what was wrong and at which byte offset of the input.
    """


class ProtocolError(StreamcoreError, ValueError):
    """A Kafka wire-protocol frame or field could not be decoded."""


class StorageError(StreamcoreError, OSError):
    """A write, fsync or read of the on-disk log failed."""


class DataDirLockedError(StorageError):
    """A data directory (or a log in it) is already open in another broker or process."""


class LogOfflineError(StorageError):
    """The partition log is offline after an earlier storage failure (until restart)."""


class BackpressureError(StreamcoreError):
    """The write queue is full; retry after ``throttle_time_ms`` milliseconds."""

    retriable = True

    def __init__(self, message: str, throttle_time_ms: int = 0) -> None:
        super().__init__(message)
        self.throttle_time_ms = int(throttle_time_ms)


class OffsetOutOfRangeError(StreamcoreError, LookupError):
    """A read asked for an offset below the log start or above the high watermark."""


class BufferFullError(StreamcoreError):
    """The producer's ``buffer_memory`` stayed full for ``max_block_ms``.

    Records are not being delivered as fast as they are sent (or the brokers are
    unreachable). Slow down, raise ``buffer_memory``, or check the brokers.
    """

    retriable = True


class ConfigError(StreamcoreError, ValueError):
    """A setting is unknown, ill-typed or out of range."""


class AuthenticationError(StreamcoreError):
    """A broker refused the client's credentials, or the TLS handshake failed.

    Never retriable: the same credentials or certificates fail the same way, so the
    client raises it at once instead of reconnecting. ``error`` is the ``ErrorCode``
    the broker answered (SASL_AUTHENTICATION_FAILED, UNSUPPORTED_SASL_MECHANISM,
    ILLEGAL_SASL_STATE ...), or None when the failure was the TLS handshake or a
    check made by the client itself (a SCRAM server signature that does not match).
    """

    retriable = False

    def __init__(self, message: str, error: ErrorCode | None = None) -> None:
        # args keep both, so type(exc)(*exc.args) rebuilds an equal error for each waiter.
        super().__init__(message, error)
        self.message = message
        self.error = error

    def __str__(self) -> str:
        if self.error is None:
            return self.message
        return f"[{self.error.code}] {self.error.name}: {self.message}"


class ErrorCode(enum.Enum):
    """Kafka protocol error codes: ``ErrorCode.X.code`` and ``ErrorCode.X.retriable``."""

    #: The wire value.
    code: int
    #: Whether Kafka clients retry a request answered with this code.
    retriable: bool

    def __new__(cls, code: int, retriable: bool) -> ErrorCode:
        obj = object.__new__(cls)
        obj._value_ = code
        obj.code = code
        obj.retriable = retriable
        return obj

    @classmethod
    def from_code(cls, code: int) -> ErrorCode:
        """Return the member for ``code``; unknown codes map to UNKNOWN_SERVER_ERROR."""
        try:
            # A lookup by value; mypy reads it as a call of the two-argument __new__.
            return cls(code)  # type: ignore[call-arg]
        except ValueError:
            return cls.UNKNOWN_SERVER_ERROR

    UNKNOWN_SERVER_ERROR = (-1, False)
    NO_ERROR = (0, False)
    OFFSET_OUT_OF_RANGE = (1, False)
    CORRUPT_MESSAGE = (2, True)
    UNKNOWN_TOPIC_OR_PARTITION = (3, True)
    INVALID_FETCH_SIZE = (4, False)
    LEADER_NOT_AVAILABLE = (5, True)
    NOT_LEADER_OR_FOLLOWER = (6, True)
    REQUEST_TIMED_OUT = (7, True)
    BROKER_NOT_AVAILABLE = (8, False)
    REPLICA_NOT_AVAILABLE = (9, True)
    MESSAGE_TOO_LARGE = (10, False)
    STALE_CONTROLLER_EPOCH = (11, False)
    OFFSET_METADATA_TOO_LARGE = (12, False)
    NETWORK_EXCEPTION = (13, True)
    COORDINATOR_LOAD_IN_PROGRESS = (14, True)
    COORDINATOR_NOT_AVAILABLE = (15, True)
    NOT_COORDINATOR = (16, True)
    INVALID_TOPIC_EXCEPTION = (17, False)
    RECORD_LIST_TOO_LARGE = (18, False)
    NOT_ENOUGH_REPLICAS = (19, True)
    NOT_ENOUGH_REPLICAS_AFTER_APPEND = (20, True)
    INVALID_REQUIRED_ACKS = (21, False)
    ILLEGAL_GENERATION = (22, False)
    INCONSISTENT_GROUP_PROTOCOL = (23, False)
    INVALID_GROUP_ID = (24, False)
    UNKNOWN_MEMBER_ID = (25, False)
    INVALID_SESSION_TIMEOUT = (26, False)
    REBALANCE_IN_PROGRESS = (27, False)
    INVALID_COMMIT_OFFSET_SIZE = (28, False)
    TOPIC_AUTHORIZATION_FAILED = (29, False)
    GROUP_AUTHORIZATION_FAILED = (30, False)
    CLUSTER_AUTHORIZATION_FAILED = (31, False)
    INVALID_TIMESTAMP = (32, False)
    UNSUPPORTED_SASL_MECHANISM = (33, False)
    ILLEGAL_SASL_STATE = (34, False)
    UNSUPPORTED_VERSION = (35, False)
    TOPIC_ALREADY_EXISTS = (36, False)
    INVALID_PARTITIONS = (37, False)
    INVALID_REPLICATION_FACTOR = (38, False)
    INVALID_REPLICA_ASSIGNMENT = (39, False)
    INVALID_CONFIG = (40, False)
    NOT_CONTROLLER = (41, True)
    INVALID_REQUEST = (42, False)
    UNSUPPORTED_FOR_MESSAGE_FORMAT = (43, False)
    POLICY_VIOLATION = (44, False)
    OUT_OF_ORDER_SEQUENCE_NUMBER = (45, False)
    DUPLICATE_SEQUENCE_NUMBER = (46, False)
    INVALID_PRODUCER_EPOCH = (47, False)
    INVALID_TXN_STATE = (48, False)
    INVALID_PRODUCER_ID_MAPPING = (49, False)
    INVALID_TRANSACTION_TIMEOUT = (50, False)
    CONCURRENT_TRANSACTIONS = (51, True)
    TRANSACTION_COORDINATOR_FENCED = (52, False)
    TRANSACTIONAL_ID_AUTHORIZATION_FAILED = (53, False)
    SECURITY_DISABLED = (54, False)
    OPERATION_NOT_ATTEMPTED = (55, False)
    KAFKA_STORAGE_ERROR = (56, True)
    LOG_DIR_NOT_FOUND = (57, False)
    SASL_AUTHENTICATION_FAILED = (58, False)
    UNKNOWN_PRODUCER_ID = (59, False)
    REASSIGNMENT_IN_PROGRESS = (60, False)
    DELEGATION_TOKEN_AUTH_DISABLED = (61, False)
    DELEGATION_TOKEN_NOT_FOUND = (62, False)
    DELEGATION_TOKEN_OWNER_MISMATCH = (63, False)
    DELEGATION_TOKEN_REQUEST_NOT_ALLOWED = (64, False)
    DELEGATION_TOKEN_AUTHORIZATION_FAILED = (65, False)
    DELEGATION_TOKEN_EXPIRED = (66, False)
    INVALID_PRINCIPAL_TYPE = (67, False)
    NON_EMPTY_GROUP = (68, False)
    GROUP_ID_NOT_FOUND = (69, False)
    FETCH_SESSION_ID_NOT_FOUND = (70, True)
    INVALID_FETCH_SESSION_EPOCH = (71, True)
    LISTENER_NOT_FOUND = (72, True)
    TOPIC_DELETION_DISABLED = (73, False)
    FENCED_LEADER_EPOCH = (74, True)
    UNKNOWN_LEADER_EPOCH = (75, True)
    UNSUPPORTED_COMPRESSION_TYPE = (76, False)
    STALE_BROKER_EPOCH = (77, False)
    OFFSET_NOT_AVAILABLE = (78, True)
    MEMBER_ID_REQUIRED = (79, False)
    PREFERRED_LEADER_NOT_AVAILABLE = (80, True)
    GROUP_MAX_SIZE_REACHED = (81, False)
    FENCED_INSTANCE_ID = (82, False)
    ELIGIBLE_LEADERS_NOT_AVAILABLE = (83, True)
    ELECTION_NOT_NEEDED = (84, True)
    NO_REASSIGNMENT_IN_PROGRESS = (85, False)
    GROUP_SUBSCRIBED_TO_TOPIC = (86, False)
    INVALID_RECORD = (87, False)
    UNSTABLE_OFFSET_COMMIT = (88, True)
    THROTTLING_QUOTA_EXCEEDED = (89, True)
    PRODUCER_FENCED = (90, False)
    RESOURCE_NOT_FOUND = (91, False)
    DUPLICATE_RESOURCE = (92, False)
    UNACCEPTABLE_CREDENTIAL = (93, False)
    INCONSISTENT_VOTER_SET = (94, False)
    INVALID_UPDATE_VERSION = (95, False)
    FEATURE_UPDATE_FAILED = (96, False)
    PRINCIPAL_DESERIALIZATION_FAILURE = (97, False)
    SNAPSHOT_NOT_FOUND = (98, False)
    POSITION_OUT_OF_RANGE = (99, False)
    UNKNOWN_TOPIC_ID = (100, True)
    DUPLICATE_BROKER_REGISTRATION = (101, False)
    BROKER_ID_NOT_REGISTERED = (102, False)
    INCONSISTENT_TOPIC_ID = (103, True)
    INCONSISTENT_CLUSTER_ID = (104, False)
    TRANSACTIONAL_ID_NOT_FOUND = (105, False)
    FETCH_SESSION_TOPIC_ID_ERROR = (106, True)
    INELIGIBLE_REPLICA = (107, False)
    NEW_LEADER_ELECTED = (108, False)
    OFFSET_MOVED_TO_TIERED_STORAGE = (109, False)
    FENCED_MEMBER_EPOCH = (110, False)
    UNRELEASED_INSTANCE_ID = (111, False)
    UNSUPPORTED_ASSIGNOR = (112, False)
    STALE_MEMBER_EPOCH = (113, False)
    MISMATCHED_ENDPOINT_TYPE = (114, False)
    UNSUPPORTED_ENDPOINT_TYPE = (115, False)
    UNKNOWN_CONTROLLER_ID = (116, False)
    UNKNOWN_SUBSCRIPTION_ID = (117, False)
    TELEMETRY_TOO_LARGE = (118, False)
    INVALID_REGISTRATION = (119, False)
    TRANSACTION_ABORTABLE = (120, False)
    INVALID_RECORD_STATE = (121, False)
    SHARE_SESSION_NOT_FOUND = (122, True)
    INVALID_SHARE_SESSION_EPOCH = (123, True)
    FENCED_STATE_EPOCH = (124, False)
    INVALID_VOTER_KEY = (125, False)
    DUPLICATE_VOTER = (126, False)
    VOTER_NOT_FOUND = (127, False)

    # Aliases: the names kafka-python uses where they differ from Kafka's own.
    NOT_LEADER_FOR_PARTITION = (6, True)
    MESSAGE_SIZE_TOO_LARGE = (10, False)
    INVALID_TOPIC = (17, False)
    INVALID_REPLICATION_ASSIGNMENT = (39, False)


class KafkaError(StreamcoreError):
    """An error answered by a broker, carrying its ``ErrorCode``."""

    def __init__(self, error: ErrorCode | int, message: str = "") -> None:
        if not isinstance(error, ErrorCode):
            error = ErrorCode.from_code(int(error))
        self.error = error
        self.retriable = error.retriable
        super().__init__(f"[{error.code}] {error.name}" + (f": {message}" if message else ""))
