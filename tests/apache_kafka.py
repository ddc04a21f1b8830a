"""A real single-node Apache Kafka broker (KRaft, combined broker+controller) for tests.

Its jars come from Maven Central: ``mvn`` resolves interop/kafka-broker/pom.xml into
~/.m2 and writes the classpath; nothing is committed. The broker listens on
127.0.0.1 with free ports and a temporary log directory, and is stopped at the end.
"""

from __future__ import annotations

import base64
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
POM_DIR = ROOT / "interop" / "kafka-broker"

_LOG4J = """\
rootLogger.level=WARN
rootLogger.appenderRef.stdout.ref=STDOUT
appender.stdout.type=Console
appender.stdout.name=STDOUT
appender.stdout.layout.type=PatternLayout
appender.stdout.layout.pattern=[%d] %p %m (%c)%n
"""


class ToolMissing(RuntimeError):
    """A tool the real-Kafka fixture needs (java, mvn) is not installed."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def kafka_classpath() -> str:
    """Resolve the broker's jars with mvn (cached in ~/.m2) and return the classpath."""
    for tool in ("java", "mvn"):
        if shutil.which(tool) is None:
            raise ToolMissing(f"{tool} is required to run a real Apache Kafka broker for interop tests")
    out = POM_DIR / "target" / "classpath.txt"
    if not out.exists() or out.stat().st_mtime < (POM_DIR / "pom.xml").stat().st_mtime:
        subprocess.run(
            ["mvn", "-q", "-B", "dependency:build-classpath", f"-Dmdep.outputFile={out}"],
            cwd=POM_DIR,
            check=True,
            timeout=600,
        )
    return out.read_text().strip()


class ApacheKafka:
    """One KRaft broker process; ``bootstrap_servers`` once ``start()`` returns."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = _free_port()
        self.controller_port = _free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 120.0) -> ApacheKafka:
        cp = kafka_classpath()
        data = self.workdir / "data"
        props = self.workdir / "server.properties"
        props.write_text(
            "\n".join(
                [
                    "process.roles=broker,controller",
                    "node.id=1",
                    f"controller.quorum.voters=1@127.0.0.1:{self.controller_port}",
                    f"listeners=PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
                    f"advertised.listeners=PLAINTEXT://127.0.0.1:{self.port}",
                    "controller.listener.names=CONTROLLER",
                    "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
                    f"log.dirs={data}",
                    "offsets.topic.replication.factor=1",
                    "offsets.topic.num.partitions=1",
                    "transaction.state.log.replication.factor=1",
                    "transaction.state.log.min.isr=1",
                    "group.initial.rebalance.delay.ms=0",
                    "num.partitions=1",
                    "auto.create.topics.enable=true",
                    "",
                ]
            )
        )
        (self.workdir / "log4j2.properties").write_text(_LOG4J)
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        java = ["java", "-Xms256m", "-Xmx768m", "-XX:+UseSerialGC", "-cp", cp]
        subprocess.run(
            [*java, "kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(props)],
            check=True,
            capture_output=True,
            timeout=120,
        )
        log = open(self.workdir / "kafka.log", "wb")
        env = dict(os.environ, LOG_DIR=str(self.workdir))
        self.proc = subprocess.Popen(
            [
                *java,
                f"-Dlog4j2.configurationFile={self.workdir / 'log4j2.properties'}",
                "kafka.Kafka",
                str(props),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"Apache Kafka exited at start: {(self.workdir / 'kafka.log').read_text()[-2000:]}"
                )
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.3)
        self.stop()
        raise TimeoutError(f"Apache Kafka did not listen within {timeout_s} s")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
