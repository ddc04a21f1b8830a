"""confluent-kafka's tight produce loop, then one consumer reading it back."""

from __future__ import annotations

import logging
import time
from typing import Any

from streamcore.bench.broker import create_topic, new_name, run_produce
from streamcore.bench.peers.workloads.common import (
    MB,
    STALL_S,
    TIGHT_RECORDS,
    TIGHT_SIZE,
    Settings,
    Target,
    broker_cpu,
    per_gb,
    scaled,
)
from streamcore.bench.progress import ProgressBar


def tight(target: Target, settings: Settings) -> dict[str, Any]:
    """confluent-kafka's tight produce loop (100 B, 1 partition), then one consumer reads it back."""
    records = scaled(TIGHT_RECORDS, settings.scale, 1000)
    topic = new_name("compare-tight")
    create_topic(target.bootstrap, topic, 1, timeout_s=settings.timeout_s)
    cpu0 = broker_cpu(target)
    produced = run_produce(
        target.bootstrap,
        records,
        TIGHT_SIZE,
        acks=1,
        linger_ms=5,
        topic=topic,
        delivery_reports=False,
        progress=settings.progress,
        timeout_s=settings.timeout_s,
    )
    cpu1 = broker_cpu(target)
    nbytes = records * TIGHT_SIZE
    figures: dict[str, Any] = {
        "records": records,
        "size": TIGHT_SIZE,
        "produce_records_per_s": produced["msgs_per_s"],
        "produce_mb_per_s": produced["mb_per_s"],
        "produce_cpu_s": None if cpu1 is None or cpu0 is None else cpu1 - cpu0,
        "produce_cpu_s_per_gb": per_gb(cpu1, cpu0, nbytes),
    }
    try:
        consumed = _consume_all(target.bootstrap, topic, records, settings)
    except (TimeoutError, RuntimeError) as exc:
        # Keep the produce figures: the consume half failing says nothing about them.
        figures["consume_error"] = f"{type(exc).__name__}: {exc}"[:600]
        return figures
    cpu2 = broker_cpu(target)
    consume_rate = consumed["received"] / consumed["fetch_seconds"]
    return {
        **figures,
        "consume_records_per_s": consume_rate,
        "consume_mb_per_s": consume_rate * TIGHT_SIZE / MB,
        "consume_cpu_s": None if cpu2 is None or cpu1 is None else cpu2 - cpu1,
        "consume_cpu_s_per_gb": per_gb(cpu2, cpu1, nbytes),
        "consume_join_s": consumed["join_seconds"],
        "received": consumed["received"],
    }


class _Keep(logging.Handler):
    """Appends each record's message to a list (at most 100 kept)."""

    def __init__(self, into: list[str]) -> None:
        super().__init__()
        self.into = into

    def emit(self, record: logging.LogRecord) -> None:
        self.into.append(record.getMessage()[-300:])
        del self.into[:-100]


def _consume_all(bootstrap: str, topic: str, records: int, settings: Settings) -> dict[str, Any]:
    """A new group reads ``records`` records of ``topic``; the join and the reading timed apart.

    Like ConsumerPerformance, the reading time starts when the group assigns the
    partitions (the join has a workload of its own), so it covers fetching only.
    """
    import confluent_kafka as ck

    assigned: list[float] = []
    client_errors: list[str] = []
    # librdkafka's log lines name causes its error callback does not (such as a Fetch
    # answer over receive.message.max.bytes): keep the last few for the report, off stderr.
    log = logging.getLogger(f"streamcore.bench.compare.{topic}")
    log.propagate = False
    log.addHandler(_Keep(client_errors))

    def on_assign(consumer: Any, partitions: list[Any]) -> None:
        assigned.append(time.perf_counter())

    consumer = ck.Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": new_name("compare-tight"),
            "auto.offset.reset": "earliest",
            "logger": log,
            "log_level": 3,
            "error_cb": lambda err: client_errors.append(str(err)),
        }
    )
    received = 0
    bar = ProgressBar(records, "consume", enabled=settings.progress)
    try:
        start = time.perf_counter()
        deadline = start + settings.timeout_s
        progressed = start
        consumer.subscribe([topic], on_assign=on_assign)
        while received < records:
            now = time.perf_counter()
            if now > deadline or now - progressed > STALL_S:
                last = "; ".join(dict.fromkeys(client_errors[-4:])) or "none"
                raise TimeoutError(
                    f"consume: {received} of {records} received, none in the last "
                    f"{now - progressed:.0f} s; last client errors: {last}"
                )
            before = received
            for msg in consumer.consume(min(10_000, records - received), 0.2):
                if msg.error() is None:
                    received += 1
            if received > before:
                progressed = time.perf_counter()
            bar.update(received)
        end = time.perf_counter()
        bar.close(received)
    finally:
        consumer.close()
    joined = assigned[0] if assigned else start
    return {
        "received": received,
        "seconds": end - start,
        "join_seconds": joined - start,
        "fetch_seconds": max(end - joined, 1e-9),
    }
