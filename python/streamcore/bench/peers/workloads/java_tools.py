"""Kafka's own ProducerPerformance and ConsumerPerformance against the broker."""

from __future__ import annotations

from typing import Any

from streamcore.bench.broker import create_topic, new_name
from streamcore.bench.peers.workloads.common import (
    JAVA_PARTITIONS,
    JAVA_PRODUCER_PROPS,
    JAVA_RECORDS,
    JAVA_SIZE,
    MB,
    Settings,
    Target,
    broker_cpu,
    per_gb,
    scaled,
)


def java(target: Target, settings: Settings) -> dict[str, Any]:
    """ProducerPerformance then ConsumerPerformance (1 KiB, 4 partitions) from kafka-tools."""
    from streamcore.bench.peers.java_perf import run_consumer_performance, run_producer_performance

    if settings.perf_classpath is None:
        raise RuntimeError("the Java workload needs Kafka's perf tools (java, mvn; interop/perf/pom.xml)")
    records = scaled(JAVA_RECORDS, settings.scale, 1000)
    topic = new_name("compare-java")
    create_topic(target.bootstrap, topic, JAVA_PARTITIONS, timeout_s=settings.timeout_s)
    cpu0 = broker_cpu(target)
    produced = run_producer_performance(
        settings.perf_classpath,
        target.bootstrap,
        topic,
        records,
        JAVA_SIZE,
        JAVA_PRODUCER_PROPS,
        log4j_config=settings.log4j_config,
        timeout_s=settings.timeout_s,
    )
    cpu1 = broker_cpu(target)
    consumed = run_consumer_performance(
        settings.perf_classpath,
        target.bootstrap,
        topic,
        records,
        new_name("compare-java"),
        log4j_config=settings.log4j_config,
        timeout_s=settings.timeout_s,
    )
    cpu2 = broker_cpu(target)
    nbytes = records * JAVA_SIZE
    lat = produced["latency_ms"]
    return {
        "records": records,
        "size": JAVA_SIZE,
        "produce_records_per_s": produced["records_per_s"],
        "produce_mb_per_s": produced["records_per_s"] * JAVA_SIZE / MB,
        "produce_p50_ms": lat["p50"],
        "produce_p99_ms": lat["p99"],
        "produce_p999_ms": lat["p999"],
        "produce_avg_ms": lat["avg"],
        "produce_cpu_s": None if cpu1 is None or cpu0 is None else cpu1 - cpu0,
        "produce_cpu_s_per_gb": per_gb(cpu1, cpu0, nbytes),
        # The fetch figures exclude the group join, like the tight loop's consume rate.
        "consume_records_per_s": consumed["fetch_records_per_s"],
        "consume_mb_per_s": consumed["fetch_records_per_s"] * JAVA_SIZE / MB,
        "consume_rebalance_s": consumed["rebalance_ms"] / 1000.0,
        "consume_cpu_s": None if cpu2 is None or cpu1 is None else cpu2 - cpu1,
        "consume_cpu_s_per_gb": per_gb(cpu2, cpu1, nbytes),
    }
