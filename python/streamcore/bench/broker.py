"""Broker benchmarks: produce and consume throughput and latency over the Kafka wire.

The load client is confluent-kafka (librdkafka), imported only when a benchmark runs:
it is a test and benchmark dependency, not a runtime one. Being written in C, it can
offer more load than a Python client, so the figures describe the broker rather than
the client; the same client drives every broker that is compared.

- :func:`run_produce`: ``messages`` values of ``size`` bytes, then flush. With delivery
  reports on, per-message latency is librdkafka's own measure from ``produce()`` to the
  delivery report (``Message.latency()``).
- :func:`run_consume`: a new consumer group subscribes and reads ``messages`` records;
  the clock starts before ``subscribe`` so the figures include the group join.
  Latency is "now minus the record's timestamp" on receipt: end-to-end latency while
  a producer is running, the records' age when the topic was filled beforehand.

``streamcore bench produce|consume`` (options, broker process, printing) is in
:mod:`streamcore.bench.cli`; this module only measures.
"""

from __future__ import annotations

import time
import uuid
from array import array
from collections.abc import Mapping, Sequence
from typing import Any

from streamcore.bench.progress import ProgressBar
from streamcore.bench.table import format_figure, render_table
from streamcore.bench.workload import make_codec_workload

__all__ = [
    "ACKS",
    "COMPRESSIONS",
    "WORKLOADS",
    "create_topic",
    "format_result",
    "histogram_percentiles",
    "message_values",
    "new_name",
    "percentile",
    "run_consume",
    "run_produce",
]

#: The workloads this module measures; each is also a ``streamcore bench`` target.
WORKLOADS = ("produce", "consume")
#: ``acks`` values accepted (``all`` is the same as ``-1``).
ACKS = ("0", "1", "-1", "all")
COMPRESSIONS = ("none", "gzip", "snappy", "lz4", "zstd")

# How many distinct values a run cycles through: enough that compressed runs do not
# see one repeated record, few enough to build in milliseconds.
_DISTINCT_VALUES = 1000
# Progress and deadline checks every this many messages keeps the loops tight.
_CHECK_EVERY = 1024
_MB = 1e6


def _confluent_kafka() -> Any:
    try:
        import confluent_kafka
    except ImportError as exc:
        raise RuntimeError(
            "the broker benchmarks use confluent-kafka as load client: pip install confluent-kafka"
        ) from exc
    return confluent_kafka


def message_values(messages: int, size: int) -> list[bytes]:
    """Up to 1000 distinct JSON-like values of exactly ``size`` bytes, cycled by the producer."""
    if size == 0:
        return [b""]
    return make_codec_workload(records=max(1, min(messages, _DISTINCT_VALUES)), value_size=size).values


def percentile(sorted_values: Sequence[float], q: float) -> float | None:
    """The nearest-rank ``q``-th percentile (0 < q <= 100) of ascending values; None if empty."""
    if not sorted_values:
        return None
    rank = max(1, min(len(sorted_values), int(-(-q * len(sorted_values) // 100))))
    return float(sorted_values[rank - 1])


def histogram_percentiles(histogram: Mapping[int, int], scale: float = 0.1) -> dict[str, float | None]:
    """Nearest-rank p50/p99/p999 and max of a histogram ``{bucket: count}``; bucket × ``scale`` = value.

    Values are computed as bucket / (1 / ``scale``), so that buckets of whole units give
    exact decimals (µs buckets with ``scale`` 0.001: 99 -> 0.099 ms).
    """
    per_unit = 1.0 / scale
    total = sum(histogram.values())
    out: dict[str, float | None] = {"p50": None, "p99": None, "p999": None, "max": None}
    if total == 0:
        return out
    buckets = sorted(histogram.items())
    for key, q in (("p50", 50.0), ("p99", 99.0), ("p999", 99.9)):
        rank = max(1, min(total, -int(-q * total // 100)))
        seen = 0
        for bucket, count in buckets:
            seen += count
            if seen >= rank:
                out[key] = bucket / per_unit
                break
    out["max"] = buckets[-1][0] / per_unit
    return out


def _latency_summary(values_ms: array[float]) -> dict[str, float | None] | None:
    if not values_ms:
        return None
    ordered = sorted(values_ms)
    return {
        "p50": percentile(ordered, 50),
        "p99": percentile(ordered, 99),
        "max": float(ordered[-1]),
    }


def new_name(prefix: str) -> str:
    """``prefix-`` plus 12 random hex digits: a topic or group name no earlier run used."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def create_topic(bootstrap: str, topic: str, partitions: int = 1, timeout_s: float = 30.0) -> None:
    """Create ``topic`` with ``partitions`` partitions (replication 1); fine if it exists."""
    ck = _confluent_kafka()
    from confluent_kafka.admin import AdminClient, NewTopic

    # log_level 3: keep librdkafka's informational shutdown notes off stderr.
    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 3})
    future = admin.create_topics(
        [NewTopic(topic, num_partitions=partitions, replication_factor=1)],
        operation_timeout=timeout_s,
        request_timeout=timeout_s,
    )[topic]
    try:
        future.result(timeout=timeout_s)
    except ck.KafkaException as exc:
        if exc.args[0].code() != ck.KafkaError.TOPIC_ALREADY_EXISTS:
            raise


def run_produce(
    bootstrap: str,
    messages: int,
    size: int,
    acks: int | str,
    linger_ms: float = 5,
    compression: str = "none",
    topic: str | None = None,
    *,
    delivery_reports: bool = True,
    progress: bool | None = None,
    timeout_s: float = 300.0,
    client_config: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Produce ``messages`` values of ``size`` bytes to ``topic``, flush, and return the figures.

    ``acks``: 0, 1 or -1/"all"; ``linger_ms``: librdkafka's batching delay in
    milliseconds; ``topic`` None = a new auto-created topic named ``bench-<hex>``.
    ``delivery_reports=False`` runs the tightest loop (no callback; latency and the
    delivered count are then None). ``timeout_s`` bounds the whole run (TimeoutError).

    Returned keys: ``messages``, ``delivered``, ``failed``, ``seconds`` (first produce
    to flush done), ``enqueue_seconds`` (the produce() loop alone: the client's share), ``msgs_per_s``, ``mb_per_s`` (value bytes, 1 MB = 1e6 B),
    ``latency_ms`` (``p50``/``p99``/``max`` or None), and the parameters.
    """
    if messages < 1:
        raise ValueError(f"messages must be >= 1, got {messages}")
    ck = _confluent_kafka()
    topic = topic or new_name("bench")
    values = message_values(messages, size)
    latencies: array[float] = array("d")
    failures: list[str] = []

    def on_delivery(err: Any, msg: Any) -> None:
        if err is not None:
            if len(failures) < 10:  # keep a few for the report, count them all
                failures.append(str(err))
            else:
                failures.append("")
            return
        lat = msg.latency()
        if lat is not None:
            latencies.append(lat * 1000.0)

    config: dict[str, Any] = {
        "bootstrap.servers": bootstrap,
        "acks": str(acks),
        "linger.ms": linger_ms,
        "compression.type": compression,
    }
    if delivery_reports:
        config["on_delivery"] = on_delivery
    config.update(client_config or {})
    producer = ck.Producer(config)
    produce, poll = producer.produce, producer.poll
    bar = ProgressBar(messages, "produce", enabled=progress)
    nvalues = len(values)
    start = time.perf_counter()
    deadline = start + timeout_s
    i = 0
    while i < messages:
        try:
            produce(topic, values[i % nvalues])
        except BufferError:
            # librdkafka's queue is full: serve delivery reports until there is room.
            poll(0.005)
            if time.perf_counter() > deadline:
                raise TimeoutError(f"produce: {i} of {messages} queued after {timeout_s} s") from None
            continue
        i += 1
        if i % _CHECK_EVERY == 0:
            if delivery_reports:
                poll(0)
            bar.update(i)
            if time.perf_counter() > deadline:
                raise TimeoutError(f"produce: {i} of {messages} queued after {timeout_s} s")
    enqueue_seconds = time.perf_counter() - start
    remaining = producer.flush(max(0.0, deadline - time.perf_counter()))
    seconds = time.perf_counter() - start
    bar.close(messages - remaining)
    if remaining:
        raise TimeoutError(f"produce: {remaining} of {messages} not delivered after {timeout_s} s")
    value_bytes = messages * size  # every value is exactly ``size`` bytes
    return {
        "workload": "produce",
        "bootstrap": bootstrap,
        "topic": topic,
        "messages": messages,
        "size": size,
        "acks": str(acks),
        "linger_ms": linger_ms,
        "compression": compression,
        "delivery_reports": delivery_reports,
        "delivered": len(latencies) if delivery_reports else None,
        "failed": len(failures) if delivery_reports else None,
        "failure_examples": [f for f in failures if f][:10],
        "seconds": seconds,
        "enqueue_seconds": enqueue_seconds,
        "msgs_per_s": messages / seconds,
        "mb_per_s": value_bytes / seconds / _MB,
        "latency_ms": _latency_summary(latencies),
    }


def run_consume(
    bootstrap: str,
    topic: str,
    messages: int,
    group: str | None = None,
    *,
    latency: bool = True,
    progress: bool | None = None,
    timeout_s: float = 300.0,
    client_config: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Join a new consumer group on ``topic``, read ``messages`` records, return the figures.

    ``group`` None = a fresh group ``bench-<hex>`` reading from the earliest offset.
    The clock starts just before ``subscribe``: ``first_message_s`` is the time to the
    first record including the group join, and ``msgs_per_s``/``mb_per_s`` cover
    subscribe to last record. ``latency_ms``: receipt time minus record timestamp
    (``p50``/``p99``/``max``, ms resolution); ``latency=False`` skips it. Raises
    TimeoutError if fewer than ``messages`` records arrive within ``timeout_s``.
    """
    if messages < 1:
        raise ValueError(f"messages must be >= 1, got {messages}")
    ck = _confluent_kafka()
    group = group or new_name("bench")
    config: dict[str, Any] = {
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "auto.offset.reset": "earliest",
    }
    config.update(client_config or {})
    consumer = ck.Consumer(config)
    latencies: array[float] = array("d")
    bar = ProgressBar(messages, "consume", enabled=progress)
    received = 0
    value_bytes = 0
    errors: list[str] = []
    first: float | None = None
    try:
        start = time.perf_counter()
        deadline = start + timeout_s
        consumer.subscribe([topic])
        while received < messages:
            now = time.perf_counter()
            if now > deadline:
                raise TimeoutError(f"consume: {received} of {messages} received after {timeout_s} s")
            batch = consumer.consume(min(10_000, messages - received), min(0.5, max(deadline - now, 0.001)))
            now_ms = time.time() * 1000.0
            for msg in batch:
                err = msg.error()
                if err is not None:
                    if err.fatal():
                        raise RuntimeError(f"consume: fatal error {err}")
                    errors.append(str(err))
                    continue
                received += 1
                value_bytes += len(msg.value() or b"")
                if latency:
                    latencies.append(now_ms - msg.timestamp()[1])
            if first is None and received:
                first = time.perf_counter() - start
            bar.update(received)
        seconds = time.perf_counter() - start
        bar.close(received)
    finally:
        consumer.close()
    return {
        "workload": "consume",
        "bootstrap": bootstrap,
        "topic": topic,
        "group": group,
        "messages": messages,
        "received": received,
        "errors": len(errors),
        "error_examples": errors[:10],
        "bytes": value_bytes,
        "seconds": seconds,
        "first_message_s": first,
        "msgs_per_s": received / seconds,
        "mb_per_s": value_bytes / seconds / _MB,
        "latency_ms": _latency_summary(latencies),
    }


# --- reporting --------------------------------------------------------------------


def _ms(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


def format_result(result: dict[str, Any]) -> str:
    """A two-column table of one run's figures."""
    rows = [
        ["msgs/s", format_figure(result["msgs_per_s"])],
        ["MB/s", format_figure(result["mb_per_s"])],
        ["seconds", f"{result['seconds']:.3f}"],
    ]
    if result["workload"] == "consume":
        rows.insert(2, ["first message (incl. join), s", _ms(result["first_message_s"])])
        rows.append(["received", f"{result['received']:,}"])
    else:
        delivered = result["delivered"]
        rows.append(["delivered", "-" if delivered is None else f"{delivered:,}"])
    lat = result["latency_ms"] or {}
    kind = "delivery" if result["workload"] == "produce" else "end-to-end"
    rows += [
        [f"p50 {kind} latency, ms", _ms(lat.get("p50"))],
        [f"p99 {kind} latency, ms", _ms(lat.get("p99"))],
    ]
    return render_table(["figure", "value"], rows)
