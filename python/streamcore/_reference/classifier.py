"""Reference twin of the ``classifier`` capability: error text and Kafka codes to categories.

Categories are plain ints, numbered as ``streamcore.retry.ErrorCategory`` (this module
sits below ``retry`` and cannot import it). The native twin matches the same table with
an aho-corasick automaton; this one compiles the table into one regex alternation. Both
find the same leftmost-first, non-overlapping matches (no pattern is a prefix of
another, so at most one can match at any position), ignore ASCII case only, and answer with the category of the highest-priority pattern matched, so
"Connection timed out" is a timeout although "connection" starts first.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Iterable

from streamcore.errors import ErrorCode

__all__ = ["classify", "classify_many", "classify_code", "PATTERNS", "CATEGORY_COUNT"]

TOPIC_MISSING = 0
NETWORK = 1
TIMEOUT = 2
AUTHORIZATION = 3
BACKPRESSURE = 4
RETRIABLE_BROKER = 5
FATAL = 6
UNKNOWN = 7
CATEGORY_COUNT = 8

# Highest priority first; lowercase ASCII. Keep in step with rust/core/src/classifier.rs
# (the tests compare the two tables). Why this order: authorization or a missing topic
# says what to fix even when the text also says "timed out" (Java's "Topic t not present
# in metadata after 60000 ms" is a TimeoutException about a topic that does not exist);
# a full buffer is often reported as a timeout; explicit fatal and retriable broker
# answers beat the generic timeout and network words.
_TABLE: dict[int, tuple[str, ...]] = {
    AUTHORIZATION: ("authoriz", "authenticat", "sasl", "access denied"),
    TOPIC_MISSING: (
        "unknown topic",
        "unknowntopic",
        "unknown_topic",
        "not present in metadata",
        "does not host this topic",
        "topic not found",
        "topic does not exist",
    ),
    BACKPRESSURE: (
        "throttl",
        "quota exceeded",
        "queue full",
        "queue is full",
        "backpressure",
        "bufferexhausted",
        "buffer exhausted",
        "failed to allocate",
    ),
    FATAL: (
        "message size too large",
        "messagesizetoolarge",
        "message too large",
        "record too large",
        "recordtoolarge",
        "invalid topic",
        "invalidtopic",
        "topic already exists",
        "topicalreadyexists",
        "unsupported version",
        "unsupportedversion",
        "producer fenced",
        "producerfenced",
        "invalid producer epoch",
        "invalidproducerepoch",
        "with an old epoch",
        "invalid session timeout",
        "invalidsessiontimeout",
        "invalid transaction timeout",
        "invalidtransactiontimeout",
        "invalid required acks",
        "invalidrequiredacks",
        "invalid replication factor",
        "invalidreplicationfactor",
        "invalid config",
        "invalidconfig",
        "policy violation",
        "policyviolation",
        "serializ",
        "fatal error",
    ),
    RETRIABLE_BROKER: (
        "not leader",
        "notleader",
        "leader not available",
        "leadernotavailable",
        "no leader",
        "not enough replicas",
        "notenoughreplicas",
        "not enough in-sync replicas",
        "fewer in-sync replicas",
        "coordinator not available",
        "coordinatornotavailable",
        "coordinator load in progress",
        "coordinatorloadinprogress",
        "not coordinator",
        "notcoordinator",
        "not controller",
        "notcontroller",
        "kafkastorage",
        "kafka_storage",
        "disk error",
        "leader epoch",
        "leaderepoch",
    ),
    TIMEOUT: (
        "timed out",
        "timedout",
        "timeout",
        "time out",
        "has passed since batch creation",
        "deadline exceeded",
    ),
    NETWORK: (
        "nobrokersavailable",
        "no brokers available",
        "broker not available",
        "brokernotavailable",
        "broker may not be available",
        "connection",
        "connect to",
        "network",
        "disconnect",
        "transport failure",
        "resolution failure",
        "failed to resolve",
        "name or service not known",
        "no route to host",
        "broken pipe",
        "socket",
    ),
}

#: (pattern, category) in priority order, highest first.
PATTERNS: tuple[tuple[str, int], ...] = tuple((p, cat) for cat, pats in _TABLE.items() for p in pats)

_RANK: dict[str, int] = {p: i for i, (p, _) in enumerate(PATTERNS)}
_CATEGORY_OF_RANK: tuple[int, ...] = tuple(cat for _, cat in PATTERNS)


def _trie_regex(words: Iterable[str]) -> str:
    """One regex matching exactly ``words``, factored as a trie (``a(?:b|c)``).

    The table has no pattern that is a prefix of another (tested), so at any position
    at most one pattern can match and the order of alternatives cannot change which
    match is found; the trie only saves ``re`` from trying every word at every position.
    """
    trie: dict[str, dict] = {}
    for w in words:
        node = trie
        for ch in w:
            node = node.setdefault(ch, {})
        node[""] = {}

    def emit(node: dict[str, dict]) -> str:
        branches = [re.escape(ch) + emit(sub) for ch, sub in sorted(node.items()) if ch]
        if not branches:
            return ""
        if len(branches) == 1 and "" not in node:
            return branches[0]
        return "(?:" + "|".join(branches) + ")" + ("?" if "" in node else "")

    return emit(trie)


# ASCII-only lowercasing, as the native automaton folds case (str.lower() would also
# fold e.g. U+212A KELVIN SIGN to "k"). The patterns are lowercase, so matching the
# folded text case-sensitively is ASCII-case-insensitive matching, and cheaper in `re`.
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_ALTERNATION = re.compile(_trie_regex(p for p, _ in PATTERNS))


def classify(message: str) -> int:
    """Category (int, see ``streamcore.retry.ErrorCategory``) of one error message;
    UNKNOWN (7) when no pattern matches."""
    if not isinstance(message, str):
        raise TypeError(f"classify() takes a str, not {type(message).__name__}")
    best = len(PATTERNS)
    for m in _ALTERNATION.finditer(message.translate(_ASCII_LOWER)):
        rank = _RANK[m.group()]
        if rank < best:
            best = rank
            if _CATEGORY_OF_RANK[rank] == AUTHORIZATION:
                break  # nothing outranks the first category in the table
    return UNKNOWN if best == len(PATTERNS) else _CATEGORY_OF_RANK[best]


def classify_many(messages: Iterable[str]) -> list[int]:
    """Categories of many messages in one call."""
    return [classify(m) for m in messages]


_AUTHORIZATION_CODES = frozenset({29, 30, 31, 53, 65, 58, 33, 34})


def classify_code(code: int) -> int:
    """Category (int) of a Kafka protocol error code.

    UNKNOWN_TOPIC_OR_PARTITION and UNKNOWN_TOPIC_ID are a missing topic, NETWORK_EXCEPTION
    network, REQUEST_TIMED_OUT timeout, the authorization and SASL codes authorization,
    THROTTLING_QUOTA_EXCEEDED backpressure; any other retriable code is a retriable broker
    answer and any other known code fatal. NO_ERROR, UNKNOWN_SERVER_ERROR and codes that
    ``ErrorCode`` does not list are UNKNOWN.
    """
    code = operator.index(code)
    if code in (3, 100):
        return TOPIC_MISSING
    if code == 13:
        return NETWORK
    if code == 7:
        return TIMEOUT
    if code in _AUTHORIZATION_CODES:
        return AUTHORIZATION
    if code == 89:
        return BACKPRESSURE
    try:
        known = ErrorCode(code)  # type: ignore[call-arg]  # lookup by value, not __new__
    except ValueError:
        return UNKNOWN
    if code <= 0:
        return UNKNOWN
    return RETRIABLE_BROKER if known.retriable else FATAL
