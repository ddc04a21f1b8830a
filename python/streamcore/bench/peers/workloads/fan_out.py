"""N producer processes and M consumer processes over 16 partitions."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from streamcore.bench.broker import create_topic, histogram_percentiles, new_name
from streamcore.bench.peers.workloads.common import (
    FANOUT_PARTITIONS,
    FANOUT_RECORDS,
    FANOUT_SIZE,
    MB,
    Settings,
    Target,
    broker_cpu,
    per_gb,
    scaled,
)
from streamcore.bench.peers.workloads.workers import Worker, consumer_worker, wait_assigned


def fanout(target: Target, settings: Settings) -> dict[str, Any]:
    """N producer processes and M consumer processes over 16 partitions, all at once."""
    producers_n, consumers_n = max(1, settings.producers), max(1, settings.consumers)
    total = scaled(FANOUT_RECORDS, settings.scale, 100 * producers_n)
    shares = [total // producers_n + (1 if i < total % producers_n else 0) for i in range(producers_n)]
    topic = new_name("compare-fanout")
    group = new_name("compare-fanout")
    create_topic(target.bootstrap, topic, FANOUT_PARTITIONS, timeout_s=settings.timeout_s)
    deadline = time.monotonic() + settings.timeout_s
    workers: list[Worker] = []
    try:
        consumers = [
            consumer_worker(settings, target, topic, group, f"consumer {i + 1}") for i in range(consumers_n)
        ]
        workers += consumers
        wait_assigned(consumers, FANOUT_PARTITIONS, deadline)
        producers = []
        for i, share in enumerate(shares):
            args = ["produce", "--bootstrap", target.bootstrap, "--topic", topic]
            args += ["--messages", str(share), "--size", str(FANOUT_SIZE), "--acks", "1", "--linger-ms", "5"]
            args += ["--timeout", str(settings.timeout_s)]
            producers.append(Worker(settings.python, args, f"producer {i + 1}"))
        workers += producers
        for worker in producers:
            worker.wait_for("ready", deadline)
        cpu0 = broker_cpu(target)
        for worker in producers:
            worker.send("go")
        deadline = time.monotonic() + settings.timeout_s
        produced = [worker.wait_for("done", deadline) for worker in producers]
        for worker in consumers:
            worker.send("stop")
        consumed = [worker.wait_for("done", deadline) for worker in consumers]
        cpu1 = broker_cpu(target)
    finally:
        for worker in workers:
            worker.stop()
    sent = sum(p["records"] for p in produced)
    received = sum(c["records"] for c in consumed)
    if received < sent:
        raise RuntimeError(f"fanout: consumers read {received} of {sent} records")
    start = min(p["start"] for p in produced)
    produce_s = max(p["end"] for p in produced) - start
    consume_s = max(c["last"] for c in consumed if c["last"] is not None) - start
    histogram: Counter[int] = Counter()
    for c in consumed:
        histogram.update({int(k): v for k, v in c["latency_tenths_ms"].items()})
    e2e = histogram_percentiles(histogram)
    return {
        "producers": producers_n,
        "consumers": consumers_n,
        "partitions": FANOUT_PARTITIONS,
        "records": sent,
        "received": received,
        "size": FANOUT_SIZE,
        "produce_records_per_s": sent / produce_s,
        "produce_mb_per_s": sent * FANOUT_SIZE / produce_s / MB,
        "consume_records_per_s": received / consume_s,
        "consume_mb_per_s": received * FANOUT_SIZE / consume_s / MB,
        "e2e_p50_ms": e2e["p50"],
        "e2e_p99_ms": e2e["p99"],
        "e2e_p999_ms": e2e["p999"],
        "cpu_s": None if cpu1 is None or cpu0 is None else cpu1 - cpu0,
        "cpu_s_per_gb": per_gb(cpu1, cpu0, sent * FANOUT_SIZE),
    }
