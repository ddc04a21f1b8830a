"""Retry hot paths, each beside the naive version it replaces.

* delays: 1000 ``RetryPolicy.delay_ms`` calls (precomputed exact table) vs float
  ``interval * multiplier ** attempt`` per call;
* durations: 3000 ``parse_duration`` calls (LRU cache) vs the regex parse every call;
* metrics: 2000 ``CounterArray.inc_pair`` calls vs two separately locked increments;
* categorization: 1000 real client error texts through ``classify`` (one pass) vs
  lowercasing and testing each pattern with ``in``.

Metrics and categorization are parametrized over the implementation (``native``: the
Rust ``streamcore._native`` submodule; ``reference``: the pure-Python twin); a native
module that is not built makes ``setup`` raise NotImplementedError, which asv reports
as skipped.
"""

from __future__ import annotations

import importlib
import threading
from types import ModuleType

from streamcore import _units, retry
from streamcore._reference import classifier as _ref_classifier

IMPLEMENTATIONS = ["native", "reference"]

REAL_TEXTS = [
    "Broker: Unknown topic or partition",
    "Local: Timed out",
    "Connect to ipv4#127.0.0.1:9 failed: Connection refused (after 0ms in state CONNECT)",
    "Broker: Topic authorization failed",
    "Local: Queue full",
    "Broker: Not leader for partition",
    "KafkaTimeoutError: Failed to update metadata after 60.0 secs.",
    "NoBrokersAvailable",
    "UnknownTopicOrPartitionError",
    "[Error 6] NotLeaderForPartitionError",
    "org.apache.kafka.common.errors.TimeoutException: Topic t not present in metadata after 60000 ms.",
    "org.apache.kafka.common.errors.TopicAuthorizationException: Not authorized to access topics: [t]",
    "org.apache.kafka.common.errors.NetworkException: The server disconnected before a response was received.",
    "Local: Operation in progress",
]
MESSAGES = [REAL_TEXTS[i % len(REAL_TEXTS)] for i in range(1000)]
ATTEMPTS = [i % 16 for i in range(1000)]
DURATIONS = ["30s", "5m", "1h"] * 1000
CATEGORIES = [i % 8 for i in range(2000)]


def _capability(implementation: str, name: str) -> ModuleType:
    if implementation == "reference":
        return importlib.import_module(f"streamcore._reference.{name}")
    try:
        native = importlib.import_module("streamcore._native")
    except ImportError as exc:
        raise NotImplementedError(f"native {name} not built: {exc}") from exc
    sub = getattr(native, name, None)
    if sub is None:
        raise NotImplementedError(f"streamcore._native has no {name}")
    return sub


class Delays:
    """1000 delay calculations."""

    params = [2.0, 1.5, 1.7]
    param_names = ["multiplier"]

    def setup(self, multiplier: float) -> None:
        self.policy = retry.RetryPolicy("exponential", "1s", multiplier, "120s")

    def time_policy_delay_ms(self, multiplier: float) -> None:
        d = self.policy.delay_ms
        for k in ATTEMPTS:
            d(k)

    def time_naive_float_pow(self, multiplier: float) -> None:
        for k in ATTEMPTS:
            int(min(120.0, 1.0 * multiplier**k) * 1000)


class Durations:
    """3000 duration parses of "30s", "5m", "1h"."""

    def time_parse_duration_cached(self) -> None:
        pd = retry.parse_duration
        for t in DURATIONS:
            pd(t)

    def time_naive_parse_every_call(self) -> None:
        parse = _units._duration_text_ms.__wrapped__
        for t in DURATIONS:
            parse(t)


class Metrics:
    """2000 attempt-with-category records."""

    params = IMPLEMENTATIONS
    param_names = ["implementation"]

    def setup(self, implementation: str) -> None:
        self.cells = _capability(implementation, "metrics").CounterArray(10)
        self.lock = threading.Lock()
        self.attempts = 0
        self.by_category = [0] * 8

    def time_inc_pair(self, implementation: str) -> None:
        pair = self.cells.inc_pair
        for c in CATEGORIES:
            pair(0, 2 + c)

    def time_naive_two_locked_increments(self, implementation: str) -> None:
        # Independent of the implementation; measured in each run for the ratio.
        for c in CATEGORIES:
            with self.lock:
                self.attempts += 1
            with self.lock:
                self.by_category[c] += 1


def _naive_classify(message: str) -> int:
    lower = message.lower()
    for pattern, category in _ref_classifier.PATTERNS:
        if pattern in lower:
            return category
    return _ref_classifier.UNKNOWN


class Categorization:
    """1000 categorizations of real client error texts."""

    params = IMPLEMENTATIONS
    param_names = ["implementation"]

    def setup(self, implementation: str) -> None:
        self.classifier = _capability(implementation, "classifier")

    def time_classify(self, implementation: str) -> None:
        cl = self.classifier.classify
        for m in MESSAGES:
            cl(m)

    def time_classify_many(self, implementation: str) -> None:
        self.classifier.classify_many(MESSAGES)

    def time_naive_lowercase_in(self, implementation: str) -> None:
        for m in MESSAGES:
            _naive_classify(m)
