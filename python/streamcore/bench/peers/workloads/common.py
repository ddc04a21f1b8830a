"""What every workload shares: the sizes of the runs, the broker under test
(:class:`Target`), the run's :class:`Settings`, and the arithmetic of the figures."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from streamcore.bench.processes import cpu_seconds

MB = 1e6
GB = 1e9

TIGHT_RECORDS = 1_000_000
TIGHT_SIZE = 100
JAVA_RECORDS = 1_000_000
JAVA_SIZE = 1024
JAVA_PARTITIONS = 4
#: The producer settings of the Java workload (besides bootstrap.servers).
JAVA_PRODUCER_PROPS = {"acks": "1", "batch.size": 262144, "linger.ms": 5}
LATENCY_PROBE_RECORDS = 200_000
LATENCY_SECONDS = 10.0
LATENCY_SIZE = 1024
LATENCY_PARTITIONS = 4
LATENCY_LINGER_MS = 1
FANOUT_RECORDS = 500_000
FANOUT_SIZE = 1024
FANOUT_PARTITIONS = 16
#: A consumer that receives nothing for this long (a group join included) gives up.
STALL_S = 60.0
#: Topic settings of the latency run under fsync=always: Kafka's flush.messages=1 fsyncs
#: the log after every append, before the produce request is answered (Kafka's
#: log.flush.interval.messages as a topic override), which is what streamcore's
#: storage.fsync=always does for every topic.
FSYNC_ALWAYS_TOPIC_CONFIG = {"flush.messages": "1"}

# The worker script lives beside this package, in streamcore.bench.peers.
WORKER = Path(__file__).resolve().parent.parent / "worker.py"


@dataclass(frozen=True)
class Target:
    """A started broker: where clients connect, and the process whose CPU time is counted."""

    name: str
    bootstrap: str
    pid: int


@dataclass(frozen=True)
class Settings:
    """What every workload of one run shares.

    ``scale`` multiplies record counts and the latency run's duration (1.0 = the
    sizes in this module's docstring); ``timeout_s`` bounds each step;
    ``perf_classpath`` is needed by :func:`java` only; ``latency_rate`` fixes the
    offered load of :func:`latency` (records/s) instead of half the measured maximum.
    """

    scale: float = 1.0
    timeout_s: float = 300.0
    producers: int = 4
    consumers: int = 4
    joins: int = 5
    latency_rate: float | None = None
    latency_seconds: float | None = None
    perf_classpath: str | None = None
    log4j_config: Path | None = None
    progress: bool | None = False
    python: str = sys.executable
    #: streamcore's storage.fsync in this run; "always" makes :func:`latency` ask every
    #: broker for an fsync per append (see :data:`FSYNC_ALWAYS_TOPIC_CONFIG`).
    fsync: str = "interval"


def scaled(count: int, scale: float, minimum: int = 100) -> int:
    """``count`` × ``scale``, rounded, at least ``minimum``."""
    return max(minimum, int(round(count * scale)))


def broker_cpu(target: Target) -> float | None:
    return cpu_seconds(target.pid)


def per_gb(cpu_after: float | None, cpu_before: float | None, nbytes: int) -> float | None:
    if cpu_after is None or cpu_before is None or nbytes <= 0:
        return None
    return (cpu_after - cpu_before) / (nbytes / GB)


def create_topic_with_config(
    bootstrap: str, topic: str, partitions: int, config: Mapping[str, str], timeout_s: float
) -> None:
    """Create ``topic`` (replication 1) with topic-level ``config``; raise if the broker refuses."""
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 3})
    new = NewTopic(topic, num_partitions=partitions, replication_factor=1, config=dict(config))
    admin.create_topics([new], operation_timeout=timeout_s, request_timeout=timeout_s)[topic].result(
        timeout=timeout_s
    )
