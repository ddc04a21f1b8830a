"""A real Apache Kafka broker (KRaft, one combined broker+controller node) for benchmarks.

The jars come from Maven Central: ``mvn dependency:build-classpath`` resolves
``interop/kafka-broker/pom.xml`` into ~/.m2 once and writes the classpath to a file next
to it, reused until the pom changes (by modification time). That one classpath serves
the broker (``kafka_2.13``) and Kafka's perf tools (``kafka-tools``: ProducerPerformance,
ConsumerPerformance); it is shared with the tests and ``streamcore bench transactions``
(:mod:`streamcore.bench.apache` resolves it; ``$STREAMCORE_KAFKA_CLASSPATH`` names the
jars instead where there is no checkout, ``$STREAMCORE_SOURCE_DIR`` names the checkout).

The broker is configured like the ``server.properties`` Kafka ships (thread counts,
socket buffers, 1 GiB segments, ``group.initial.rebalance.delay.ms=0``) and started
with the JVM options of ``kafka-server-start.sh`` (1 GiB heap, G1), so the figures are
those of an out-of-the-box broker. Only a source checkout has the pom; anything
missing is reported as a :class:`ToolMissing` with what to install.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

from streamcore._cluster_id import new_cluster_id
from streamcore.bench.processes import ServerProcess, free_port

__all__ = [
    "KAFKA_VERSION",
    "ToolMissing",
    "apache_kafka_process",
    "kafka_broker_classpath",
    "perf_classpath",
]

#: The version interop/kafka-broker/pom.xml pins.
KAFKA_VERSION = "4.1.1"

#: kafka-server-start.sh's defaults (KAFKA_HEAP_OPTS and KAFKA_JVM_PERFORMANCE_OPTS).
JVM_OPTIONS = (
    "-Xmx1G",
    "-Xms1G",
    "-server",
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:InitiatingHeapOccupancyPercent=35",
    "-XX:+ExplicitGCInvokesConcurrent",
    "-Djava.awt.headless=true",
)

_LOG4J2 = """\
rootLogger.level=WARN
rootLogger.appenderRef.stderr.ref=STDERR
appender.stderr.type=Console
appender.stderr.name=STDERR
appender.stderr.target=SYSTEM_ERR
appender.stderr.layout.type=PatternLayout
appender.stderr.layout.pattern=[%d] %p %m (%c)%n
"""


class ToolMissing(RuntimeError):
    """Something the Apache Kafka side needs (java, mvn, a pom) is not there; the message says what."""


def _require(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise ToolMissing(
            f"{tool} not found (Apache Kafka needs a JDK 17+ and Maven: apt-get install {tool})"
        )
    return path


def kafka_broker_classpath() -> str:
    """Classpath of the Apache Kafka broker: ``$STREAMCORE_KAFKA_CLASSPATH`` or ``interop/kafka-broker/pom.xml``.

    Resolved by :func:`streamcore.bench.apache.resolve_classpath` (shared with
    ``streamcore bench transactions``); its failures become :class:`ToolMissing`.
    """
    from streamcore.bench.apache import ApacheKafkaUnavailable, resolve_classpath

    try:
        return resolve_classpath()
    except ApacheKafkaUnavailable as exc:
        raise ToolMissing(str(exc)) from exc


def perf_classpath() -> str:
    """Classpath of Kafka's perf tools: the broker's, whose pom lists ``kafka-tools`` too.

    One resolved classpath for the broker and the tools, so a fresh machine runs mvn once.
    """
    return kafka_broker_classpath()


def log4j2_config(directory: Path) -> Path:
    """Write a log4j2 configuration (WARN and above, to stderr) into ``directory``; return its path."""
    path = directory / "log4j2.properties"
    path.write_text(_LOG4J2)
    return path


def _server_properties(
    data: Path, port: int, controller_port: int, overrides: Mapping[str, str] | None = None
) -> str:
    lines = [
        "process.roles=broker,controller",
        "node.id=1",
        f"controller.quorum.voters=1@127.0.0.1:{controller_port}",
        f"listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
        f"advertised.listeners=PLAINTEXT://127.0.0.1:{port}",
        "controller.listener.names=CONTROLLER",
        "inter.broker.listener.name=PLAINTEXT",
        "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        # The rest as in the server.properties of Kafka's distribution.
        "num.network.threads=3",
        "num.io.threads=8",
        "socket.send.buffer.bytes=102400",
        "socket.receive.buffer.bytes=102400",
        "socket.request.max.bytes=104857600",
        f"log.dirs={data}",
        "num.partitions=1",
        "num.recovery.threads.per.data.dir=1",
        "offsets.topic.replication.factor=1",
        "share.coordinator.state.topic.replication.factor=1",
        "share.coordinator.state.topic.min.isr=1",
        "transaction.state.log.replication.factor=1",
        "transaction.state.log.min.isr=1",
        "log.retention.hours=168",
        "log.segment.bytes=1073741824",
        "log.retention.check.interval.ms=300000",
        "group.initial.rebalance.delay.ms=0",
    ]
    # Later lines win (java.util.Properties keeps the last value of a key).
    lines += [f"{k}={v}" for k, v in (overrides or {}).items()]
    return "\n".join(lines) + "\n"


def apache_kafka_process(
    scratch: Path,
    classpath: str,
    *,
    start_timeout_s: float = 120.0,
    overrides: Mapping[str, str] | None = None,
) -> ServerProcess:
    """An Apache Kafka broker in ``scratch``, its storage formatted, ready to ``start()``.

    ``overrides``: broker properties set over the distribution's ``server.properties``
    (e.g. fewer internal-topic partitions for a benchmark that is not a comparison).

    Formatting (``kafka-storage format``, a JVM run of its own) happens here, before
    the returned process is started, so a caller timing ``start()`` measures the
    broker's start-up alone. Listens on 127.0.0.1 (a free port; the controller on
    another). Raises RuntimeError if formatting fails.
    """
    scratch.mkdir(parents=True, exist_ok=True)
    port, controller_port = free_port(), free_port()
    props = scratch / "server.properties"
    props.write_text(_server_properties(scratch / "data", port, controller_port, overrides))
    log4j = log4j2_config(scratch)
    java = [_require("java"), *JVM_OPTIONS, f"-Dlog4j2.configurationFile={log4j}", "-cp", classpath]
    cluster_id = new_cluster_id()
    done = subprocess.run(
        [*java, "kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(props)],
        capture_output=True,
        timeout=180,
        check=False,
    )
    if done.returncode != 0:
        tail = (done.stdout + done.stderr).decode("utf-8", "replace")[-1500:]
        raise RuntimeError(f"kafka-storage format failed (exit {done.returncode}): {tail}")
    env = dict(os.environ, LOG_DIR=str(scratch))
    return ServerProcess(
        "kafka",
        [*java, "kafka.Kafka", str(props)],
        env=env,
        ready_port=port,
        start_timeout_s=start_timeout_s,
        log_path=scratch / "kafka.log",
    )
