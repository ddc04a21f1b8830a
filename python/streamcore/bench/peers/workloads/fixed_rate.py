"""The fixed-rate latency workload: a paced producer and a consumer process."""

from __future__ import annotations

import time
from typing import Any

from streamcore.bench.broker import histogram_percentiles, new_name, percentile, run_produce
from streamcore.bench.peers.workloads.common import (
    FSYNC_ALWAYS_TOPIC_CONFIG,
    LATENCY_LINGER_MS,
    LATENCY_PARTITIONS,
    LATENCY_PROBE_RECORDS,
    LATENCY_SECONDS,
    LATENCY_SIZE,
    Settings,
    Target,
    create_topic_with_config,
    scaled,
)
from streamcore.bench.peers.workloads.workers import consumer_worker, wait_assigned


def _paced_produce(
    bootstrap: str, topic: str, rate: float, seconds: float, timeout_s: float
) -> dict[str, Any]:
    """Offer ``rate`` records/s of 1 KiB for ``seconds``; per-record produce latency."""
    import confluent_kafka as ck

    latencies: list[float] = []
    failures = [0]

    def on_delivery(err: Any, msg: Any) -> None:
        if err is not None:
            failures[0] += 1
            return
        lat = msg.latency()
        if lat is not None:
            latencies.append(lat * 1000.0)

    producer = ck.Producer(
        {
            "bootstrap.servers": bootstrap,
            "acks": "all",
            "linger.ms": LATENCY_LINGER_MS,
            "on_delivery": on_delivery,
            "log_level": 3,
        }
    )
    producer.list_topics(topic, timeout=min(30.0, timeout_s))  # connect before the clock starts
    value = bytes(range(256)) * (LATENCY_SIZE // 256) + b"\0" * (LATENCY_SIZE % 256)
    total = max(1, int(rate * seconds))
    produce, poll = producer.produce, producer.poll
    sent = 0
    start = time.perf_counter()
    deadline = start + timeout_s
    while sent < total:
        now = time.perf_counter()
        if now > deadline:
            raise TimeoutError(f"latency: {sent} of {total} records offered within {timeout_s} s")
        due = min(total, int((now - start) * rate) + 1)
        while sent < due:
            try:
                produce(topic, value)
            except BufferError:
                poll(0.001)
                break
            sent += 1
        poll(0)
        wait = start + sent / rate - time.perf_counter()
        if wait > 0:
            time.sleep(min(wait, 0.002))
    offered_s = time.perf_counter() - start
    remaining = producer.flush(max(0.0, deadline - time.perf_counter()))
    if remaining:
        raise TimeoutError(f"latency: {remaining} records not delivered within {timeout_s} s")
    ordered = sorted(latencies)
    return {
        "records": total,
        "achieved_records_per_s": total / offered_s,
        "failed": failures[0],
        "p50": percentile(ordered, 50),
        "p99": percentile(ordered, 99),
        "p999": percentile(ordered, 99.9),
        "max": ordered[-1] if ordered else None,
    }


def latency_max_rate(target: Target, settings: Settings) -> float:
    """The maximum delivery-report rate of 1 KiB records (acks=all), in records/s.

    Measured on a fresh topic shaped like the one :func:`latency` measures (4
    partitions, the same topic settings), so half of it is half of what that topic takes.
    """
    topic_config = FSYNC_ALWAYS_TOPIC_CONFIG if settings.fsync == "always" else {}
    probe_topic = new_name("compare-probe")
    create_topic_with_config(
        target.bootstrap, probe_topic, LATENCY_PARTITIONS, topic_config, settings.timeout_s
    )
    probe = run_produce(
        target.bootstrap,
        scaled(LATENCY_PROBE_RECORDS, settings.scale, 1000),
        LATENCY_SIZE,
        acks="all",
        linger_ms=LATENCY_LINGER_MS,
        topic=probe_topic,
        progress=settings.progress,
        timeout_s=settings.timeout_s,
    )
    return float(probe["msgs_per_s"])


def latency(target: Target, settings: Settings) -> dict[str, Any]:
    """A fixed offered rate: produce and end-to-end percentiles.

    The rate is ``settings.latency_rate`` (``bench compare`` sets it to half of the
    lowest maximum among the brokers it runs, so that all are offered the same load),
    or else half of this broker's own maximum (:func:`latency_max_rate`).
    """
    topic_config = FSYNC_ALWAYS_TOPIC_CONFIG if settings.fsync == "always" else {}
    topic = new_name("compare-latency")
    create_topic_with_config(target.bootstrap, topic, LATENCY_PARTITIONS, topic_config, settings.timeout_s)
    max_rate = None
    if settings.latency_rate is None:
        max_rate = latency_max_rate(target, settings)
        rate = max_rate / 2
    else:
        rate = settings.latency_rate
    seconds = settings.latency_seconds or max(1.0, LATENCY_SECONDS * settings.scale)
    deadline = time.monotonic() + settings.timeout_s
    consumer = consumer_worker(settings, target, topic, new_name("compare-latency"), "latency consumer")
    try:
        wait_assigned([consumer], LATENCY_PARTITIONS, deadline)
        produced = _paced_produce(target.bootstrap, topic, rate, seconds, settings.timeout_s)
        consumer.send(f"stop {produced['records']}")
        done = consumer.wait_for("done", time.monotonic() + settings.timeout_s)
    finally:
        consumer.stop()
    if done["records"] < produced["records"]:
        errors = "; ".join(done.get("client_errors", [])[-3:]) or "none"
        raise RuntimeError(
            f"latency: the consumer read {done['records']} of {produced['records']} records "
            f"(its last client errors: {errors})"
        )
    e2e = histogram_percentiles({int(k): v for k, v in done["latency_tenths_ms"].items()})
    return {
        "max_records_per_s": max_rate,
        "offered_records_per_s": rate,
        "topic_config": dict(topic_config),
        "achieved_records_per_s": produced["achieved_records_per_s"],
        "seconds": seconds,
        "records": produced["records"],
        "size": LATENCY_SIZE,
        "produce_p50_ms": produced["p50"],
        "produce_p99_ms": produced["p99"],
        "produce_p999_ms": produced["p999"],
        "produce_max_ms": produced["max"],
        "e2e_p50_ms": e2e["p50"],
        "e2e_p99_ms": e2e["p99"],
        "e2e_p999_ms": e2e["p999"],
        "e2e_max_ms": e2e["max"],
    }
