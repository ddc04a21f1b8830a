"""What the ecosystem cases share: the tools' builds, processes, and a neutral Kafka client.

The Java pieces (Kafka Connect, Kafka Streams) run from ONE classpath resolved by mvn from
interop/ecosystem/pom.xml and cached by the pom's mtime; the small Java programs under
interop/ecosystem/src are compiled with javac against it. Quix Streams runs in its own
venv (interop/ecosystem/target/quix-venv) because it pins confluent-kafka below the
version the rest of the test suite uses. Both are set up once per run under a file lock,
so pytest processes started side by side (CI) share one setup.

The tests read and check topics with confluent-kafka, a client independent of streamcore's,
so the same checks hold against both brokers.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest

REPO = Path(__file__).resolve().parents[2]
ECOSYSTEM = REPO / "interop" / "ecosystem"
TARGET = ECOSYSTEM / "target"
MVN_TIMEOUT_S = 600
PIP_TIMEOUT_S = 600
# C1 only and the serial collector: these JVMs run for tens of seconds on a 2-core machine.
JVM_FLAGS = ["-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", "-Xms64m", "-Xmx512m"]
# Kafka's own log4j2 layout, INFO to a file per process: the evidence when a case fails.
LOG4J2 = """\
rootLogger.level=INFO
rootLogger.appenderRef.file.ref=FILE
appender.file.type=File
appender.file.name=FILE
appender.file.fileName={path}
appender.file.layout.type=PatternLayout
appender.file.layout.pattern=[%d] %p %m (%c)%n
logger.reflections.name=org.reflections
logger.reflections.level=ERROR
"""

T = TypeVar("T")


def require_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"`{name}` is not installed or not on PATH; the ecosystem tests need it", pytrace=False)
    return path


@contextmanager
def setup_lock() -> Iterator[None]:
    """Serialise the one-time setup between pytest processes sharing this checkout."""
    TARGET.mkdir(parents=True, exist_ok=True)
    with open(TARGET / ".setup.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def java_classpath() -> str:
    """The resolved classpath plus the compiled programs; resolves and compiles when stale."""
    mvn = require_tool("mvn")
    require_tool("java")
    javac = require_tool("javac")
    pom = ECOSYSTEM / "pom.xml"
    cp_file = TARGET / "classpath.txt"
    classes = TARGET / "classes"
    stamp = classes / ".compiled"
    sources = sorted((ECOSYSTEM / "src").rglob("*.java"))
    with setup_lock():
        if not cp_file.exists() or cp_file.stat().st_mtime < pom.stat().st_mtime:
            run_checked(
                [
                    mvn,
                    "-q",
                    "-B",
                    "-f",
                    str(pom),
                    "dependency:build-classpath",
                    f"-Dmdep.outputFile={cp_file}",
                ],
                MVN_TIMEOUT_S,
                "resolving interop/ecosystem/pom.xml",
            )
        classpath = cp_file.read_text().strip()
        newest = max([cp_file.stat().st_mtime, *(s.stat().st_mtime for s in sources)])
        if not stamp.exists() or stamp.stat().st_mtime < newest:
            shutil.rmtree(classes, ignore_errors=True)
            classes.mkdir(parents=True)
            run_checked(
                [javac, "-Xlint:all", "-Werror", "-d", str(classes), "-cp", classpath, *map(str, sources)],
                MVN_TIMEOUT_S,
                "compiling interop/ecosystem/src",
            )
            stamp.touch()
    return f"{classes}:{classpath}"


def quix_python() -> str:
    """The Python of Quix Streams' venv; built from requirements-quix.txt when stale."""
    requirements = ECOSYSTEM / "requirements-quix.txt"
    venv = TARGET / "quix-venv"
    python = venv / "bin" / "python"
    stamp = venv / ".installed"
    with setup_lock():
        if not stamp.exists() or stamp.stat().st_mtime < requirements.stat().st_mtime:
            shutil.rmtree(venv, ignore_errors=True)
            run_checked([sys.executable, "-m", "venv", str(venv)], 120, "creating the Quix Streams venv")
            run_checked(
                [
                    str(python),
                    "-m",
                    "pip",
                    "install",
                    "-q",
                    "--disable-pip-version-check",
                    "-r",
                    str(requirements),
                ],
                PIP_TIMEOUT_S,
                "installing interop/ecosystem/requirements-quix.txt",
            )
            stamp.touch()
    return str(python)


def run_checked(cmd: Sequence[str], timeout_s: float, what: str) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
    if proc.returncode != 0:
        pytest.fail(f"{what} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(check: Callable[[], T | None], timeout_s: float, what: Callable[[], str] | str) -> T:
    """Poll ``check`` until it returns something other than None/False; fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if result is not None and result is not False:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s:.0f} s waiting for {what() if callable(what) else what}")
        time.sleep(0.25)


class Proc:
    """A tool's process in its own session; stdout and stderr to files in ``workdir``."""

    def __init__(
        self, name: str, cmd: Sequence[str], workdir: Path, env: dict[str, str] | None = None
    ) -> None:
        self.name = name
        self.stdout_path = workdir / f"{name}.out"
        self.stderr_path = workdir / f"{name}.err"
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(
                list(cmd),
                stdout=out,
                stderr=err,
                stdin=subprocess.DEVNULL,
                cwd=workdir,
                env={**os.environ, **(env or {})},
                start_new_session=True,
            )

    def lines(self) -> list[str]:
        return self.stdout_path.read_text(errors="replace").splitlines()

    def tail(self, extra: Path | None = None, chars: int = 4000) -> str:
        """The ends of stdout and stderr, and of ``extra`` (a log) its first errors and its end."""
        parts = [f"--- {self.name} stdout ---\n{self.stdout_path.read_text(errors='replace')[-chars:]}"]
        parts.append(f"--- {self.name} stderr ---\n{self.stderr_path.read_text(errors='replace')[-chars:]}")
        if extra is not None and extra.exists():
            text = extra.read_text(errors="replace")
            parts.append(f"--- {extra.name}: first errors ---\n{first_errors(text)}")
            parts.append(f"--- {extra.name}: end ---\n{text[-chars:]}")
        return "\n".join(parts)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait_for_line(self, prefix: str, timeout_s: float, fail_on: Sequence[str] = ()) -> str:
        """The first stdout line starting with ``prefix``; fails at once on a ``fail_on`` line or an exit."""

        def seen() -> str | None:
            for line in self.lines():
                if line.startswith(prefix):
                    return line
                if any(line.startswith(bad) for bad in fail_on):
                    pytest.fail(f"{self.name} reported {line!r}\n{self.tail()}")
            if not self.alive():
                pytest.fail(f"{self.name} exited {self.proc.returncode} before {prefix!r}\n{self.tail()}")
            return None

        return wait_until(seen, timeout_s, lambda: f"{self.name} to print {prefix!r}\n{self.tail()}")

    def stop(self, timeout_s: float = 60.0) -> int:
        """SIGTERM (each tool's graceful stop), SIGKILL after ``timeout_s``; returns the exit code."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


def first_errors(log: str, limit: int = 40) -> str:
    """ERROR lines of a Kafka log with their exception and cause lines (no stack frames).

    The root cause of a tool's failure is near its first error; the end of the log is
    mostly the shutdown that followed.
    """
    out: list[str] = []
    in_error = False
    for line in log.splitlines():
        if line.startswith("["):
            in_error = "] ERROR " in line
            if in_error:
                out.append(line)
        elif in_error and not line.startswith("\tat ") and not line.lstrip().startswith("..."):
            out.append(line)
        if len(out) >= limit:
            break
    return "\n".join(out)


def java(classpath: str, main: str, args: Sequence[str], workdir: Path, name: str) -> tuple[Proc, Path]:
    """Start a JVM whose Kafka logs go to ``workdir/<name>.log``; returns the process and that log."""
    log = workdir / f"{name}.log"
    config = workdir / f"{name}-log4j2.properties"
    config.write_text(LOG4J2.format(path=log))
    cmd = ["java", *JVM_FLAGS, f"-Dlog4j2.configurationFile={config}", "-cp", classpath, main, *args]
    return Proc(name, cmd, workdir), log


# --- a neutral Kafka client (confluent-kafka) for setting up and checking topics ---------------


def admin(bootstrap: str) -> Any:
    from confluent_kafka.admin import AdminClient

    return AdminClient({"bootstrap.servers": bootstrap})


def create_topic(bootstrap: str, name: str, partitions: int) -> None:
    from confluent_kafka.admin import NewTopic

    client = admin(bootstrap)  # must outlive the future: a destroyed handle fails it
    futures = client.create_topics([NewTopic(name, partitions, 1)], request_timeout=30)
    futures[name].result(timeout=60)


def topic_names(bootstrap: str) -> set[str]:
    return set(admin(bootstrap).list_topics(timeout=30).topics)


def topic_config(bootstrap: str, topic: str, name: str) -> str | None:
    from confluent_kafka.admin import ConfigResource

    resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
    client = admin(bootstrap)
    entries = client.describe_configs([resource], request_timeout=30)[resource].result(timeout=60)
    entry = entries.get(name)
    return None if entry is None else entry.value


def produce(bootstrap: str, topic: str, records: Sequence[tuple[str, str]]) -> None:
    """Produce (key, value) strings with acks=all; fails unless every record is acknowledged."""
    from confluent_kafka import Producer

    errors: list[str] = []

    def delivered(err: Any, _msg: Any) -> None:
        if err is not None:
            errors.append(str(err))

    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5})
    for key, value in records:
        producer.produce(topic, value.encode(), key.encode(), on_delivery=delivered)
        producer.poll(0)
    remaining = producer.flush(60)
    assert remaining == 0 and not errors, f"{remaining} records unacknowledged, errors {errors[:3]}"


def offsets(bootstrap: str, topic: str) -> dict[int, tuple[int, int]]:
    """Per partition: (log start offset, high watermark)."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "ecosystem-check", "enable.auto.commit": False}
    )
    try:
        metadata = consumer.list_topics(topic, timeout=30).topics[topic]
        return {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)
            for p in sorted(metadata.partitions)
        }
    finally:
        consumer.close()


def read_all(bootstrap: str, topic: str, timeout_s: float = 60.0) -> list[tuple[bytes | None, bytes | None]]:
    """Every record of ``topic`` from its start to the high watermarks of now, in partition order."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    ends = offsets(bootstrap, topic)
    out: dict[int, list[tuple[bytes | None, bytes | None]]] = {p: [] for p in ends}
    pending = {p for p, (start, end) in ends.items() if end > start}
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "ecosystem-check",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    try:
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in pending])
        deadline = time.monotonic() + timeout_s
        while pending:
            assert time.monotonic() < deadline, f"could not read {topic} to {ends} in {timeout_s} s"
            for msg in consumer.consume(1000, timeout=0.5):
                assert msg.error() is None, f"reading {topic}: {msg.error()}"
                p = msg.partition()
                if p in pending:
                    out[p].append((msg.key(), msg.value()))
                    if msg.offset() + 1 >= ends[p][1]:
                        pending.discard(p)
    finally:
        consumer.close()
    return [record for p in sorted(out) for record in out[p]]


def latest_per_key(bootstrap: str, topic: str) -> dict[bytes | None, bytes | None]:
    latest: dict[bytes | None, bytes | None] = {}
    for key, value in read_all(bootstrap, topic):
        latest[key] = value
    return latest


def read_to_end(
    bootstrap: str, topic: str, isolation: str = "read_committed", timeout_s: float = 60.0
) -> list[tuple[bytes | None, bytes | None]]:
    """Every record of ``topic`` that ``isolation`` shows, to each partition's end of now.

    The end is where the consumer reports end of partition: the last stable offset under
    read_committed (control batches and aborted records skipped, so no offset to wait
    for), the high watermark under read_uncommitted.
    """
    from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

    partitions = sorted(offsets(bootstrap, topic))
    out: dict[int, list[tuple[bytes | None, bytes | None]]] = {p: [] for p in partitions}
    pending = set(partitions)
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "ecosystem-check",
            "enable.auto.commit": False,
            "isolation.level": isolation,
            "enable.partition.eof": True,
        }
    )
    try:
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        deadline = time.monotonic() + timeout_s
        while pending:
            assert time.monotonic() < deadline, (
                f"could not read {topic} ({isolation}) to its end in {timeout_s} s"
            )
            for msg in consumer.consume(1000, timeout=0.5):
                error = msg.error()
                if error is not None and error.code() == KafkaError._PARTITION_EOF:
                    pending.discard(msg.partition())
                    continue
                assert error is None, f"reading {topic}: {error}"
                out[msg.partition()].append((msg.key(), msg.value()))
    finally:
        consumer.close()
    return [record for p in sorted(out) for record in out[p]]


def committed_offsets(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    """The group's committed offset per partition of ``topic`` (stable: pending transactional
    commits are waited for, as a read_committed consumer does)."""
    from confluent_kafka import Consumer, TopicPartition

    partitions = sorted(offsets(bootstrap, topic))
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        got = consumer.committed([TopicPartition(topic, p) for p in partitions], timeout=30)
        return {tp.partition: tp.offset for tp in got}
    finally:
        consumer.close()
