"""Retry hot paths from Python, each beside the naive version it replaces, in one run.

Run:  PYTHONPATH=python .venv/bin/python benchmarks/retry_bench.py [--json out.json] [--quick]

Batches (the sizes the retry-system guide quotes, with its Rust figures for scale):
* 1000 delay calculations   naive: float ``interval * multiplier ** attempt`` per call;
                            ours: a policy's precomputed exact table (``delay_ms``) and
                            the exact formula itself (``backoff_us``)        guide 27.08 µs
* 3000 duration parses      naive: the regex parse on every call; ours: the LRU cache
                                                                             guide 1.35 ms
* 2000 metric operations    naive: two separately locked increments (attempt, then
                            category); ours: one ``inc_pair`` (native atomics, or the
                            reference twin's single lock), and ``RetryMetrics.record``
                                                                             guide 37.46 µs
* 1000 categorizations      naive: lowercase, then ``pattern in text`` one by one;
                            ours: one regex pass (reference), one aho-corasick pass
                            (native) per call, and ``classify_many`` (one native call
                            for the batch)                                   guide 8.79 µs

Each figure is the best of several repeats of the whole batch; ratio = naive / ours.
The machine is shared, so absolute numbers move; ratios within one run are the point.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import timeit
from collections.abc import Callable

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "python"))

from streamcore import _impl, _units, retry  # noqa: E402
from streamcore._reference import classifier as ref_classifier  # noqa: E402
from streamcore._reference import metrics as ref_metrics  # noqa: E402

native_classifier = None
native_metrics = None
if not _impl.NO_EXTENSIONS:
    try:
        from streamcore import _native  # type: ignore[attr-defined]
    except ImportError:
        _native = None
    native_classifier = getattr(_native, "classifier", None)
    native_metrics = getattr(_native, "metrics", None)

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
    "org.apache.kafka.common.errors.RecordTooLargeException: The message is 2000000 bytes when serialized "
    "which is larger than 1048576, which is the value of the max.request.size configuration.",
    "Local: Operation in progress",
    "java.lang.IllegalStateException: Cannot perform operation after producer has been closed",
]
MESSAGES = [REAL_TEXTS[i % len(REAL_TEXTS)] for i in range(1000)]
ATTEMPTS = [i % 16 for i in range(1000)]
DURATIONS = ["30s", "5m", "1h"] * 1000


def best_seconds(fn: Callable[[], object], repeat: int) -> float:
    """Best time of one call of ``fn`` (one whole batch), in seconds."""
    timer = timeit.Timer(fn)
    number, _ = timer.autorange()
    return min(timer.repeat(repeat=repeat, number=number)) / number


# -- the naive versions -------------------------------------------------------------


def naive_delays(multiplier: float) -> Callable[[], object]:
    interval_s, max_s = 1.0, 120.0

    def run() -> int:
        s = 0
        for k in ATTEMPTS:
            s += int(min(max_s, interval_s * multiplier**k) * 1000)
        return s

    return run


def naive_durations() -> Callable[[], object]:
    parse = _units._duration_text_ms.__wrapped__  # the regex parse, no cache

    def run() -> int:
        return sum(parse(t) for t in DURATIONS)

    return run


class NaiveLockedMetrics:
    """Attempts and categories in two separately locked steps."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.attempts = 0
        self.categories = [0] * 8

    def record_attempt(self) -> None:
        with self._lock:
            self.attempts += 1

    def record_category(self, category: int) -> None:
        with self._lock:
            self.categories[category] += 1


def naive_classify(message: str) -> int:
    lower = message.lower()
    for pattern, category in ref_classifier.PATTERNS:
        if pattern in lower:
            return category
    return ref_classifier.UNKNOWN


# -- the run ------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", help="also write the figures to this file")
    ap.add_argument("--quick", action="store_true", help="fewer repeats")
    args = ap.parse_args()
    repeat = 3 if args.quick else 7
    rows: list[dict[str, object]] = []

    def row(group: str, name: str, fn: Callable[[], object], naive_s: float | None, ops: int) -> float:
        s = best_seconds(fn, repeat)
        rows.append(
            {
                "group": group,
                "name": name,
                "batch_us": s * 1e6,
                "per_op_ns": s * 1e9 / ops,
                "naive_over_this": (naive_s / s) if naive_s else None,
            }
        )
        return s

    # 1000 delay calculations
    for m in (2.0, 1.5, 1.7):
        policy = retry.RetryPolicy("exponential", "1s", m, "120s")
        naive = row("delay_1000", f"naive float pow x{m}", naive_delays(m), None, 1000)
        delay_ms = policy.delay_ms
        row(
            "delay_1000",
            f"RetryPolicy.delay_ms x{m} (table)",
            lambda d=delay_ms: [d(k) for k in ATTEMPTS],
            naive,
            1000,
        )
        bo = retry.backoff_us
        row(
            "delay_1000",
            f"backoff_us x{m} (exact formula)",
            lambda m=m, bo=bo: [bo("exponential", 1_000_000, m, 120_000_000, k) for k in ATTEMPTS],
            naive,
            1000,
        )

    # 3000 duration parses
    naive = row("duration_3000", "naive regex parse every call", naive_durations(), None, 3000)
    pd = retry.parse_duration
    row("duration_3000", "parse_duration (LRU cached)", lambda: [pd(t) for t in DURATIONS], naive, 3000)

    # 2000 metric operations
    cats = [i % 8 for i in range(2000)]
    nm = NaiveLockedMetrics()

    def naive_metrics_run() -> None:
        for c in cats:
            nm.record_attempt()
            nm.record_category(c)

    naive = row("metrics_2000", "naive two locked increments", naive_metrics_run, None, 2000)
    twins = [("reference", ref_metrics)] + ([("native", native_metrics)] if native_metrics else [])
    for label, mod in twins:
        arr = mod.CounterArray(10)
        pair = arr.inc_pair
        row(
            "metrics_2000",
            f"CounterArray.inc_pair ({label})",
            lambda p=pair: [p(0, 2 + c) for c in cats],
            naive,
            2000,
        )
    rm = retry.RetryMetrics()
    record = rm.record
    row(
        "metrics_2000",
        f"RetryMetrics.record ({_impl.implementation()['metrics']})",
        lambda: [record(c) for c in cats],
        naive,
        2000,
    )

    # 1000 categorizations
    naive = row(
        "categorize_1000",
        "naive lowercase + `in` per pattern",
        lambda: [naive_classify(m) for m in MESSAGES],
        None,
        1000,
    )
    rc = ref_classifier.classify
    row(
        "categorize_1000",
        "reference classify (one regex pass)",
        lambda: [rc(m) for m in MESSAGES],
        naive,
        1000,
    )
    if native_classifier is not None:
        nc = native_classifier.classify
        row(
            "categorize_1000",
            "native classify (aho-corasick, per call)",
            lambda: [nc(m) for m in MESSAGES],
            naive,
            1000,
        )
        ncm = native_classifier.classify_many
        row("categorize_1000", "native classify_many (one call)", lambda: ncm(MESSAGES), naive, 1000)
    cl = retry.classify
    row(
        "categorize_1000",
        f"retry.classify -> ErrorCategory ({_impl.implementation()['classifier']})",
        lambda: [cl(m) for m in MESSAGES],
        naive,
        1000,
    )

    print(f"python {sys.version.split()[0]}  implementations: {_impl.implementation()}")
    print(f"{'group':16} {'benchmark':58} {'batch':>12} {'per op':>10} {'naive/this':>10}")
    for r in rows:
        ratio = f"{r['naive_over_this']:.2f}x" if r["naive_over_this"] else "-"
        print(f"{r['group']:16} {r['name']:58} {r['batch_us']:10.1f}µs {r['per_op_ns']:8.0f}ns {ratio:>10}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"implementation": _impl.implementation(), "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
