"""The workloads of ``streamcore bench compare``, each run against one started broker.

Every workload takes a :class:`Target` (the broker's bootstrap address and process
id) and the run's :class:`Settings`, creates its own topics with fresh names, and
returns a flat dict of figures (None where a figure could not be measured). Rates
use 1 MB = 1e6 bytes of record values; "broker CPU s/GB" is the broker process
tree's user+system CPU time during the workload divided by the gigabytes (1e9 bytes)
of values produced. Every loop is bounded in count and in time (``timeout_s``).

* :func:`join` — a new consumer group's time from ``subscribe`` to its first record,
  ``joins`` times on a one-record topic (the first is the broker's first group ever);
* :func:`tight` — confluent-kafka's tight produce loop of 100 B values (acks=1,
  linger 5 ms, no delivery callbacks) into one partition, then one consumer reads
  them all back;
* :func:`java` — Kafka's ProducerPerformance (1 KiB, 4 partitions, acks=1, batch.size
  256 KiB, linger 5 ms) then ConsumerPerformance over the same records;
* :func:`latency` — a fixed rate of 1 KiB records (acks=all, 4 partitions; by
  default half of the maximum delivery-report rate, :func:`latency_max_rate`)
  offered for a few seconds while a consumer process reads: produce latency (librdkafka's produce() to delivery
  report) and end-to-end latency (receipt minus record timestamp) percentiles. With
  ``Settings.fsync == "always"`` its topics get ``flush.messages=1``, so that Apache
  Kafka too fsyncs each append before answering (streamcore's broker runs with
  ``--fsync always``; the topic setting is stored and has no effect there);
* :func:`fanout` — N producer processes and M consumer processes (one group) over a
  16-partition topic of 1 KiB records, all at once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from streamcore.bench.broker import histogram_percentiles
from streamcore.bench.peers.workloads.common import (
    FANOUT_PARTITIONS,
    FANOUT_RECORDS,
    FSYNC_ALWAYS_TOPIC_CONFIG,
    JAVA_PRODUCER_PROPS,
    JAVA_RECORDS,
    TIGHT_RECORDS,
    Settings,
    Target,
    create_topic_with_config,
    scaled,
)
from streamcore.bench.peers.workloads.fan_out import fanout
from streamcore.bench.peers.workloads.fixed_rate import latency, latency_max_rate
from streamcore.bench.peers.workloads.java_tools import java
from streamcore.bench.peers.workloads.join_time import join
from streamcore.bench.peers.workloads.tight_loop import tight

__all__ = [
    "FANOUT_PARTITIONS",
    "FANOUT_RECORDS",
    "FSYNC_ALWAYS_TOPIC_CONFIG",
    "JAVA_PRODUCER_PROPS",
    "JAVA_RECORDS",
    "TIGHT_RECORDS",
    "WORKLOADS",
    "Settings",
    "Target",
    "create_topic_with_config",
    "fanout",
    "histogram_percentiles",
    "java",
    "join",
    "latency",
    "latency_max_rate",
    "scaled",
    "tight",
]

#: Workload name -> function, in the order a round runs them.
WORKLOADS: dict[str, Callable[[Target, Settings], dict[str, Any]]] = {
    "join": join,
    "tight": tight,
    "java": java,
    "latency": latency,
    "fanout": fanout,
}
