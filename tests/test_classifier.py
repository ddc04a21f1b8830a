"""Error classifier: real client error texts fall in the right category, Kafka codes map
as documented, and the native (aho-corasick) and reference (one regex) twins agree.

Fuzz budget: STREAMCORE_FUZZ_EXAMPLES messages per agreement test (2000 by default),
checked in batches through ``classify_many``.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamcore._reference import classifier as ref
from streamcore.errors import BackpressureError, ErrorCode, KafkaError
from streamcore.retry import ErrorCategory, categorize, classify, classify_code, classify_many

FUZZ_MESSAGES = int(os.environ.get("STREAMCORE_FUZZ_EXAMPLES", "2000"))
BATCH = 50
AGREEMENT = settings(
    max_examples=max(20, FUZZ_MESSAGES // BATCH),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# The native twin is addressed directly, so the comparisons also run in the
# pure-Python pass (where the selector picks the reference) whenever it is built.
try:
    from streamcore import _native as _native_pkg  # type: ignore[attr-defined]
except ImportError:
    _native_pkg = None
_native = getattr(_native_pkg, "classifier", None)
needs_native = pytest.mark.skipif(_native is None, reason="streamcore._native (with classifier) is not built")

C = ErrorCategory

# (client, category, text): messages as each client prints them.
REAL_TEXTS: list[tuple[str, ErrorCategory, str]] = [
    # librdkafka (rd_kafka_err2str and log lines)
    ("librdkafka", C.TOPIC_MISSING, "Broker: Unknown topic or partition"),
    ("librdkafka", C.TOPIC_MISSING, "Local: Unknown topic"),
    (
        "librdkafka",
        C.NETWORK,
        "Connect to ipv4#127.0.0.1:9 failed: Connection refused (after 0ms in state CONNECT)",
    ),
    ("librdkafka", C.NETWORK, "Local: Broker transport failure"),
    ("librdkafka", C.NETWORK, "Local: All broker connections are down"),
    ("librdkafka", C.NETWORK, "Failed to resolve 'kafka:9092': Name or service not known"),
    ("librdkafka", C.TIMEOUT, "Local: Timed out"),
    ("librdkafka", C.TIMEOUT, "Local: Message timed out"),
    ("librdkafka", C.TIMEOUT, "Broker: Request timed out"),
    (
        "librdkafka",
        C.TIMEOUT,
        "Connect to ipv4#10.0.0.1:9092 failed: Connection timed out (after 30000ms in state CONNECT)",
    ),
    ("librdkafka", C.AUTHORIZATION, "Broker: Topic authorization failed"),
    ("librdkafka", C.AUTHORIZATION, "Broker: Group authorization failed"),
    (
        "librdkafka",
        C.AUTHORIZATION,
        "SASL authentication error: Authentication failed during authentication due to invalid "
        "credentials with SASL mechanism PLAIN",
    ),
    ("librdkafka", C.BACKPRESSURE, "Local: Queue full"),
    ("librdkafka", C.BACKPRESSURE, "Broker: Throttling quota has been exceeded"),
    ("librdkafka", C.RETRIABLE_BROKER, "Broker: Not leader for partition"),
    ("librdkafka", C.RETRIABLE_BROKER, "Broker: Leader not available"),
    ("librdkafka", C.RETRIABLE_BROKER, "Broker: Not enough in-sync replicas"),
    ("librdkafka", C.RETRIABLE_BROKER, "Broker: Coordinator not available"),
    ("librdkafka", C.FATAL, "Broker: Message size too large"),
    ("librdkafka", C.FATAL, "Broker: Invalid topic"),
    ("librdkafka", C.FATAL, "Broker: Producer attempted an operation with an old epoch"),
    ("librdkafka", C.FATAL, "Local: Fatal error"),
    ("librdkafka", C.UNKNOWN, "Local: Operation in progress"),
    # kafka-python (str() of its exceptions)
    ("kafka-python", C.TOPIC_MISSING, "UnknownTopicOrPartitionError"),
    ("kafka-python", C.TOPIC_MISSING, "[Error 3] UnknownTopicOrPartitionError: my-topic"),
    ("kafka-python", C.NETWORK, "NoBrokersAvailable"),  # kafka-python 2.x
    ("kafka-python", C.NETWORK, "[Error 8] BrokerNotAvailableError"),
    ("kafka-python", C.NETWORK, "KafkaConnectionError: Connection at 127.0.0.1:9092 closed"),
    ("kafka-python", C.NETWORK, "[Error 13] NetworkExceptionError"),
    ("kafka-python", C.TIMEOUT, "KafkaTimeoutError: Failed to update metadata after 60.0 secs."),
    ("kafka-python", C.TIMEOUT, "[Error 7] RequestTimedOutError"),
    ("kafka-python", C.AUTHORIZATION, "[Error 29] TopicAuthorizationFailedError: my-topic"),
    (
        "kafka-python",
        C.AUTHORIZATION,
        "[Error 58] SaslAuthenticationFailedError: Authentication failed: Invalid username or password",
    ),
    ("kafka-python", C.BACKPRESSURE, "[Error 89] ThrottlingQuotaExceededError"),
    (
        "kafka-python",
        C.BACKPRESSURE,
        "KafkaTimeoutError: Failed to allocate memory within the configured max blocking time",
    ),
    ("kafka-python", C.RETRIABLE_BROKER, "[Error 6] NotLeaderForPartitionError"),
    ("kafka-python", C.RETRIABLE_BROKER, "[Error 5] LeaderNotAvailableError"),
    ("kafka-python", C.RETRIABLE_BROKER, "[Error 19] NotEnoughReplicasError"),
    ("kafka-python", C.RETRIABLE_BROKER, "[Error 56] KafkaStorageError"),
    ("kafka-python", C.FATAL, "[Error 10] MessageSizeTooLargeError"),
    (
        "kafka-python",
        C.FATAL,
        "MessageSizeTooLargeError: The message is 2000000 bytes when serialized which is larger than "
        "the maximum request size you have configured with the max_request_size configuration",
    ),
    ("kafka-python", C.FATAL, "[Error 35] UnsupportedVersionError"),
    ("kafka-python", C.UNKNOWN, "IllegalStateError: Offset commit is not allowed"),
    # Java client (exception class and message)
    (
        "java",
        C.TOPIC_MISSING,
        "org.apache.kafka.common.errors.TimeoutException: Topic t not present in metadata after 60000 ms.",
    ),
    (
        "java",
        C.TOPIC_MISSING,
        "org.apache.kafka.common.errors.UnknownTopicOrPartitionException: This server does not host this topic-partition.",
    ),
    (
        "java",
        C.NETWORK,
        "org.apache.kafka.common.errors.NetworkException: The server disconnected before a response was received.",
    ),
    (
        "java",
        C.NETWORK,
        "Connection to node -1 (localhost/127.0.0.1:9092) could not be established. Broker may not be available.",
    ),
    (
        "java",
        C.TIMEOUT,
        "org.apache.kafka.common.errors.TimeoutException: Timeout expired while fetching topic metadata",
    ),
    (
        "java",
        C.TIMEOUT,
        "org.apache.kafka.common.errors.TimeoutException: Expiring 1 record(s) for t-0:120000 ms has passed "
        "since batch creation",
    ),
    (
        "java",
        C.AUTHORIZATION,
        "org.apache.kafka.common.errors.TopicAuthorizationException: Not authorized to access topics: [t]",
    ),
    (
        "java",
        C.AUTHORIZATION,
        "org.apache.kafka.common.errors.SaslAuthenticationException: Authentication failed: Invalid username or password",
    ),
    (
        "java",
        C.BACKPRESSURE,
        "org.apache.kafka.common.errors.ThrottlingQuotaExceededException: The throttling quota has been exceeded.",
    ),
    (
        "java",
        C.BACKPRESSURE,
        "org.apache.kafka.clients.producer.BufferExhaustedException: Failed to allocate 16384 bytes within the "
        "configured max blocking time 60000 ms.",
    ),
    (
        "java",
        C.RETRIABLE_BROKER,
        "org.apache.kafka.common.errors.NotLeaderOrFollowerException: For requests intended only for the leader, "
        "this error indicates that the broker is not the current leader.",
    ),
    (
        "java",
        C.RETRIABLE_BROKER,
        "org.apache.kafka.common.errors.NotEnoughReplicasException: Messages are rejected since there are fewer "
        "in-sync replicas than required.",
    ),
    (
        "java",
        C.RETRIABLE_BROKER,
        "org.apache.kafka.common.errors.LeaderNotAvailableException: There is no leader for this topic-partition "
        "as we are in the middle of a leadership election.",
    ),
    (
        "java",
        C.FATAL,
        "org.apache.kafka.common.errors.RecordTooLargeException: The message is 2000000 bytes when serialized "
        "which is larger than 1048576, which is the value of the max.request.size configuration.",
    ),
    (
        "java",
        C.FATAL,
        "org.apache.kafka.common.errors.ProducerFencedException: There is a newer producer with the same "
        "transactionalId which fences the current one.",
    ),
    ("java", C.FATAL, "org.apache.kafka.common.errors.SerializationException: Can't convert value of class"),
    (
        "java",
        C.UNKNOWN,
        "java.lang.IllegalStateException: Cannot perform operation after producer has been closed",
    ),
    # streamcore's own
    ("streamcore", C.BACKPRESSURE, "/data/t-0: write queue full (10000 appends waiting); retry later"),
]


@pytest.mark.parametrize(
    ("client", "category", "text"), REAL_TEXTS, ids=[f"{c}-{t[:40]}" for c, _, t in REAL_TEXTS]
)
def test_real_client_error_text_gets_its_category(client: str, category: ErrorCategory, text: str) -> None:
    assert classify(text) is category


def test_every_client_has_a_text_for_every_category() -> None:
    for client in ("librdkafka", "kafka-python", "java"):
        covered = {cat for c, cat, _ in REAL_TEXTS if c == client}
        assert covered == set(ErrorCategory), client


def test_pattern_table_is_lowercase_unique_and_prefix_free() -> None:
    # Prefix-free: at most one pattern matches at any position, which is what lets the
    # reference's trie regex find exactly the native automaton's leftmost-first matches.
    patterns = [p for p, _ in ref.PATTERNS]
    assert len(set(patterns)) == len(patterns)
    assert all(p.isascii() and p == p.lower() for p in patterns)
    assert not [(a, b) for a in patterns for b in patterns if a != b and b.startswith(a)]


def test_classify_many_matches_classify_one_by_one() -> None:
    texts = [t for _, _, t in REAL_TEXTS]
    assert classify_many(texts) == [classify(t) for t in texts]
    assert classify_many([]) == []
    assert classify_many(iter(texts[:3])) == [classify(t) for t in texts[:3]]


def test_timed_out_outranks_connection_wherever_it_appears() -> None:
    assert classify("Connection timed out") is C.TIMEOUT
    assert classify("timed out: connection to broker") is C.TIMEOUT
    assert classify("connection refused") is C.NETWORK


def test_matching_ignores_ascii_case_only() -> None:
    assert classify("LOCAL: TIMED OUT") is C.TIMEOUT
    assert classify("BrOkEr: UnKnOwN ToPiC Or PaRtItIoN") is C.TOPIC_MISSING
    # U+212A KELVIN SIGN folds to 'k' under Unicode rules, not under ASCII ones.
    assert classify("\u212aafka unknown topic") is C.TOPIC_MISSING
    assert classify("ba\u212aPRESSURE") is C.UNKNOWN


def test_text_with_no_pattern_is_unknown() -> None:
    assert classify("") is C.UNKNOWN
    assert classify("everything is fine") is C.UNKNOWN


def test_lone_surrogates_are_classified_like_any_other_character() -> None:
    assert classify("\ud800timed out") is C.TIMEOUT
    assert classify("time\udc00d out") is C.UNKNOWN


def test_non_string_message_raises_type_error() -> None:
    with pytest.raises(TypeError):
        classify(b"Local: Timed out")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        classify_many(["ok", 7])  # type: ignore[list-item]


CODE_CASES = [
    (ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, C.TOPIC_MISSING),
    (ErrorCode.UNKNOWN_TOPIC_ID, C.TOPIC_MISSING),
    (ErrorCode.NETWORK_EXCEPTION, C.NETWORK),
    (ErrorCode.REQUEST_TIMED_OUT, C.TIMEOUT),
    (ErrorCode.TOPIC_AUTHORIZATION_FAILED, C.AUTHORIZATION),
    (ErrorCode.GROUP_AUTHORIZATION_FAILED, C.AUTHORIZATION),
    (ErrorCode.CLUSTER_AUTHORIZATION_FAILED, C.AUTHORIZATION),
    (ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED, C.AUTHORIZATION),
    (ErrorCode.DELEGATION_TOKEN_AUTHORIZATION_FAILED, C.AUTHORIZATION),
    (ErrorCode.SASL_AUTHENTICATION_FAILED, C.AUTHORIZATION),
    (ErrorCode.THROTTLING_QUOTA_EXCEEDED, C.BACKPRESSURE),
    (ErrorCode.NOT_LEADER_OR_FOLLOWER, C.RETRIABLE_BROKER),
    (ErrorCode.LEADER_NOT_AVAILABLE, C.RETRIABLE_BROKER),
    (ErrorCode.KAFKA_STORAGE_ERROR, C.RETRIABLE_BROKER),
    (ErrorCode.MESSAGE_TOO_LARGE, C.FATAL),
    (ErrorCode.INVALID_TOPIC_EXCEPTION, C.FATAL),
    (ErrorCode.PRODUCER_FENCED, C.FATAL),
    (ErrorCode.NO_ERROR, C.UNKNOWN),
    (ErrorCode.UNKNOWN_SERVER_ERROR, C.UNKNOWN),
]


@pytest.mark.parametrize(("code", "category"), CODE_CASES, ids=[c.name for c, _ in CODE_CASES])
def test_kafka_error_code_maps_to_its_category(code: ErrorCode, category: ErrorCategory) -> None:
    assert classify_code(code) is category
    assert classify_code(code.code) is category  # type: ignore[attr-defined]


def test_other_codes_split_by_the_protocols_retriable_flag() -> None:
    special = {c.code for c, _ in CODE_CASES[:11]}  # type: ignore[attr-defined]
    special |= {33, 34}  # SASL mechanism / state: authorization too
    for code in ErrorCode:
        if code.code in special or code.code <= 0:  # type: ignore[attr-defined]
            continue
        want = C.RETRIABLE_BROKER if code.retriable else C.FATAL  # type: ignore[attr-defined]
        assert classify_code(code) is want, code


def test_codes_outside_the_table_are_unknown() -> None:
    for code in (-2, 128, 1000, 2**40, 2**80, -(2**80)):
        assert classify_code(code) is C.UNKNOWN


def test_categorize_uses_type_code_then_text() -> None:
    assert categorize(BackpressureError("queue full", 5)) is C.BACKPRESSURE
    assert categorize(KafkaError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)) is C.TOPIC_MISSING
    assert categorize(KafkaError(7, "slow")) is C.TIMEOUT
    assert categorize(TimeoutError()) is C.TIMEOUT
    assert categorize(ConnectionRefusedError(111, "Connection refused")) is C.NETWORK
    assert categorize(ConnectionResetError()) is C.NETWORK
    assert categorize(ValueError("bad")) is C.UNKNOWN


def test_categorize_reads_kafka_python_exception_names() -> None:
    kerr = pytest.importorskip("kafka.errors")
    assert categorize(kerr.KafkaConnectionError()) is C.NETWORK
    assert categorize(kerr.BrokerNotAvailableError()) is C.NETWORK
    assert categorize(kerr.UnknownTopicOrPartitionError()) is C.TOPIC_MISSING
    assert categorize(kerr.KafkaTimeoutError("Failed to update metadata after 60.0 secs.")) is C.TIMEOUT
    assert categorize(kerr.TopicAuthorizationFailedError("t")) is C.AUTHORIZATION


# -- native and reference twins -----------------------------------------------------


@needs_native
def test_native_and_reference_share_one_pattern_table() -> None:
    assert tuple(tuple(p) for p in _native.PATTERNS) == ref.PATTERNS
    assert _native.CATEGORY_COUNT == ref.CATEGORY_COUNT == len(ErrorCategory)


@needs_native
def test_native_and_reference_agree_on_real_texts() -> None:
    texts = [t for _, _, t in REAL_TEXTS]
    assert _native.classify_many(texts) == ref.classify_many(texts)
    assert [_native.classify(t) for t in texts] == [ref.classify(t) for t in texts]


@needs_native
def test_native_and_reference_agree_on_every_code_near_the_table() -> None:
    for code in range(-300, 300):
        assert _native.classify_code(code) == ref.classify_code(code), code


_FRAGMENTS = [p for p, _ in ref.PATTERNS] + ["connect", "time", "out", "topic", "auth", "-", " ", "in-sync"]


def _mixed_case(s: str, flips: list[bool]) -> str:
    return "".join(c.upper() if f else c for c, f in zip(s, flips + [False] * len(s), strict=False))


_fragment_text = st.lists(
    st.one_of(
        st.sampled_from(_FRAGMENTS),
        st.text(max_size=6),
        st.sampled_from(["\u212a", "\u017f", "\u0130", "\ud800", "\xe9"]),
    ),
    max_size=8,
).map("".join)


@needs_native
@AGREEMENT
@given(st.lists(st.text(), min_size=1, max_size=BATCH))
def test_native_and_reference_agree_on_random_text(messages: list[str]) -> None:
    assert _native.classify_many(messages) == ref.classify_many(messages)


@needs_native
@AGREEMENT
@given(st.lists(st.tuples(_fragment_text, st.lists(st.booleans(), max_size=40)), min_size=1, max_size=BATCH))
def test_native_and_reference_agree_on_pattern_soup(items: list[tuple[str, list[bool]]]) -> None:
    messages = [_mixed_case(s, flips) for s, flips in items]
    assert _native.classify_many(messages) == ref.classify_many(messages)
    assert [_native.classify(m) for m in messages[:5]] == [ref.classify(m) for m in messages[:5]]


# -- one enum -----------------------------------------------------------------------


def test_the_classifier_ints_are_the_error_category_members() -> None:
    # The twins answer plain ints (the reference sits below retry and cannot import it);
    # retry turns them into members, so callers only ever see ErrorCategory.
    assert {name: getattr(ref, name) for name in ErrorCategory.__members__} == {
        c.name: c.value for c in ErrorCategory
    }
    texts = [t for _, _, t in REAL_TEXTS] + ["nothing to see"]
    assert all(type(c) is ErrorCategory for c in classify_many(texts))
    assert [int(c) for c in classify_many(texts)] == [ref.classify(t) for t in texts]
    assert type(classify("socket closed")) is ErrorCategory
    assert type(classify_code(ErrorCode.NOT_COORDINATOR)) is ErrorCategory
