"""Apache Kafka's own load generators, run as subprocesses, and the parsing of what they print.

``org.apache.kafka.tools.ProducerPerformance`` and ``ConsumerPerformance`` (the classes
behind ``kafka-producer-perf-test.sh`` and ``kafka-consumer-perf-test.sh``) from the
``kafka-tools`` jar on :func:`streamcore.bench.peers.apache_kafka.perf_classpath`. Both
print their own figures; the parsers below read them and check that every record was
sent or received, so a broker that drops records fails the workload instead of
reporting a rate.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "parse_consumer_performance",
    "parse_producer_performance",
    "run_consumer_performance",
    "run_producer_performance",
]

# "50000 records sent, 71225.1 records/sec (69.56 MB/sec), 10.61 ms avg latency,
#  290.00 ms max latency, 10 ms 50th, 18 ms 95th, 31 ms 99th, 46 ms 99.9th."
_PRODUCER_FINAL = re.compile(
    r"(?P<records>\d+) records sent, (?P<rate>[\d.]+) records/sec \((?P<mib>[\d.]+) MB/sec\), "
    r"(?P<avg>[\d.]+) ms avg latency, (?P<max>[\d.]+) ms max latency, (?P<p50>\d+) ms 50th, "
    r"(?P<p95>\d+) ms 95th, (?P<p99>\d+) ms 99th, (?P<p999>\d+) ms 99\.9th"
)

_CONSUMER_HEADER = "start.time, end.time, data.consumed.in.MB"


def parse_producer_performance(text: str) -> dict[str, Any]:
    """Figures of ProducerPerformance's final summary line in ``text``.

    Keys: ``records``, ``records_per_s``, ``latency_ms`` (``avg``, ``max``, ``p50``,
    ``p95``, ``p99``, ``p999``; the tool reports whole milliseconds for percentiles).
    The tool's "MB/sec" is MiB/s and is not used; callers compute MB/s themselves.
    Raises ValueError when there is no summary line.
    """
    matches = list(_PRODUCER_FINAL.finditer(text))
    if not matches:
        raise ValueError(f"no ProducerPerformance summary in output: {text[-800:]!r}")
    m = matches[-1]  # the interim lines have another shape; the summary is last
    return {
        "records": int(m["records"]),
        "records_per_s": float(m["rate"]),
        "latency_ms": {key: float(m[key]) for key in ("avg", "max", "p50", "p95", "p99", "p999")},
    }


def parse_consumer_performance(text: str) -> dict[str, Any]:
    """Figures of ConsumerPerformance's CSV summary in ``text``.

    Keys: ``records``, ``records_per_s`` and ``mib`` over the whole run (including
    the group join), ``rebalance_ms``, ``fetch_ms``, ``fetch_records_per_s`` (after
    the join). Raises ValueError when there is no summary.
    """
    lines = [line.strip() for line in text.splitlines()]
    for i, line in enumerate(lines):
        if not line.startswith(_CONSUMER_HEADER):
            continue
        names = [n.strip() for n in line.split(",")]
        # A warning (such as the idle timeout's) may stand between the header and the row.
        for following in lines[i + 1 :]:
            values = [v.strip() for v in following.split(",")]
            if len(values) != len(names):
                continue
            row = dict(zip(names, values, strict=True))
            return {
                "records": int(row["data.consumed.in.nMsg"]),
                "records_per_s": float(row["nMsg.sec"]),
                "mib": float(row["data.consumed.in.MB"]),
                "rebalance_ms": float(row["rebalance.time.ms"]),
                "fetch_ms": float(row["fetch.time.ms"]),
                "fetch_records_per_s": float(row["fetch.nMsg.sec"]),
            }
    raise ValueError(f"no ConsumerPerformance summary in output: {text[-800:]!r}")


def _java() -> str:
    java = shutil.which("java")
    if java is None:
        raise RuntimeError("java not found (the Java workloads need a JDK 17+)")
    return java


def _run(argv: list[str], timeout_s: float, what: str) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired as exc:
        raise TimeoutError(f"{what} did not finish within {timeout_s:.0f} s") from exc
    text = (done.stdout + done.stderr).decode("utf-8", "replace")
    if done.returncode != 0:
        raise RuntimeError(f"{what} exited with {done.returncode}: {text[-1500:]}")
    return text


def run_producer_performance(
    classpath: str,
    bootstrap: str,
    topic: str,
    records: int,
    size: int,
    producer_props: Mapping[str, Any],
    *,
    log4j_config: Path | None = None,
    timeout_s: float = 600.0,
) -> dict[str, Any]:
    """Run ProducerPerformance unthrottled; return :func:`parse_producer_performance`'s figures.

    Raises RuntimeError if the tool fails or reports fewer than ``records`` sent, and
    TimeoutError after ``timeout_s``.
    """
    props = [f"bootstrap.servers={bootstrap}", *(f"{k}={v}" for k, v in producer_props.items())]
    argv = [_java()]
    if log4j_config is not None:
        argv.append(f"-Dlog4j2.configurationFile={log4j_config}")
    argv += ["-cp", classpath, "org.apache.kafka.tools.ProducerPerformance", "--topic", topic]
    argv += ["--num-records", str(records), "--record-size", str(size), "--throughput", "-1"]
    argv += ["--producer-props", *props]
    text = _run(argv, timeout_s, "ProducerPerformance")
    figures = parse_producer_performance(text)
    if figures["records"] != records:
        raise RuntimeError(f"ProducerPerformance sent {figures['records']} of {records} records")
    return figures


def run_consumer_performance(
    classpath: str,
    bootstrap: str,
    topic: str,
    records: int,
    group: str,
    *,
    log4j_config: Path | None = None,
    idle_timeout_ms: int = 60_000,
    timeout_s: float = 600.0,
) -> dict[str, Any]:
    """Run ConsumerPerformance for ``records`` records in a new ``group``; return its figures.

    ``idle_timeout_ms``: the tool gives up after this long without a record (its own
    default, 10 s, is shorter than some brokers' group join). Raises
    RuntimeError if it fails or reads fewer than ``records``, TimeoutError after ``timeout_s``.
    """
    argv = [_java()]
    if log4j_config is not None:
        argv.append(f"-Dlog4j2.configurationFile={log4j_config}")
    argv += ["-cp", classpath, "org.apache.kafka.tools.ConsumerPerformance"]
    argv += ["--bootstrap-server", bootstrap, "--topic", topic, "--messages", str(records)]
    argv += ["--group", group, "--timeout", str(idle_timeout_ms)]
    text = _run(argv, timeout_s, "ConsumerPerformance")
    figures = parse_consumer_performance(text)
    if figures["records"] < records:
        raise RuntimeError(f"ConsumerPerformance read {figures['records']} of {records} records")
    return figures
