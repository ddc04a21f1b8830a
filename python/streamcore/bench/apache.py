"""A real single-node Apache Kafka broker (KRaft) as a benchmark peer.

The jars are the ones the interop tests use: ``mvn`` resolves
``interop/kafka-broker/pom.xml`` of a source checkout into ~/.m2 and writes the
classpath file beside it; nothing is downloaded when that file is fresh. An
installed package has no such pom, so ``--kafka-classpath`` (or the environment
variable ``STREAMCORE_KAFKA_CLASSPATH``) can name the jars instead.

This module lives in the bench package, not in tests/, so that ``streamcore bench``
never needs the test tree on its path. It finds the jars; the broker itself is started
by :mod:`streamcore.bench.peers.apache_kafka` (one combined broker+controller node,
PLAINTEXT on 127.0.0.1 at a free port, a temporary log directory, Kafka's own
``server.properties`` and the heap settings of its start script), the one launcher
of the benchmarks.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from streamcore.bench.processes import ServerProcess

__all__ = [
    "KAFKA_CLASSPATH_ENV",
    "SOURCE_DIR_ENV",
    "ApacheKafkaUnavailable",
    "apache_kafka_process",
    "broker_pom",
    "resolve_classpath",
    "source_checkout",
]

#: Environment variable naming the broker's classpath (``:``-separated jars).
KAFKA_CLASSPATH_ENV = "STREAMCORE_KAFKA_CLASSPATH"

#: Environment variable naming a source checkout of streamcore (the directory holding ``interop/``).
SOURCE_DIR_ENV = "STREAMCORE_SOURCE_DIR"

_BROKER_POM = Path("interop") / "kafka-broker" / "pom.xml"

#: Set over the distribution's server.properties for the transactions benchmark: one
#: partition for each internal topic (the transactions bench's coordinators start
#: sooner) and topics created on first use.
_BENCH_OVERRIDES = {
    "offsets.topic.num.partitions": "1",
    "transaction.state.log.num.partitions": "1",
    "auto.create.topics.enable": "true",
}


class ApacheKafkaUnavailable(RuntimeError):
    """java is missing, or the broker's jars cannot be found or resolved."""


def source_checkout() -> Path | None:
    """The streamcore source checkout whose ``interop/`` poms the Apache Kafka side uses, if any.

    Looked for in order: ``$STREAMCORE_SOURCE_DIR``; the checkout this module runs from
    (``PYTHONPATH=python``); the current directory and its parents. The last matters when
    the package is installed into a virtualenv (as ``make test`` does) and run from the
    checkout: the module's own path then points into site-packages.
    """
    given = os.environ.get(SOURCE_DIR_ENV)
    here = Path(__file__).resolve().parents[3]
    cwd = Path.cwd().resolve()
    candidates = [Path(given)] if given else []
    candidates += [here, cwd, *cwd.parents]
    for root in candidates:
        if (root / _BROKER_POM).is_file():
            return root
    return None


def broker_pom() -> Path | None:
    """``interop/kafka-broker/pom.xml`` of the source checkout (:func:`source_checkout`), if any."""
    root = source_checkout()
    return root / _BROKER_POM if root is not None else None


def _usable(classpath: str) -> bool:
    jars = [p for p in classpath.split(os.pathsep) if p]
    return bool(jars) and all(Path(p).exists() for p in jars)


def resolve_classpath(classpath: str | None = None, *, allow_mvn: bool = True) -> str:
    """The Apache Kafka broker's classpath; raise :class:`ApacheKafkaUnavailable` if there is none.

    In order: ``classpath``, ``$STREAMCORE_KAFKA_CLASSPATH``, the checkout's resolved
    ``interop/kafka-broker/target/classpath.txt`` when no older than its pom, then (with
    ``allow_mvn``) ``mvn dependency:build-classpath`` on that pom, which may download
    the jars into ~/.m2 (bounded by 10 minutes).
    """
    if shutil.which("java") is None:
        raise ApacheKafkaUnavailable("java is not on PATH")
    for given in (classpath, os.environ.get(KAFKA_CLASSPATH_ENV)):
        if given:
            if not _usable(given):
                raise ApacheKafkaUnavailable("the given Apache Kafka classpath names missing files")
            return given
    pom = broker_pom()
    if pom is None:
        raise ApacheKafkaUnavailable(
            f"no interop/kafka-broker/pom.xml (not a source checkout): set {KAFKA_CLASSPATH_ENV} "
            "or --kafka-classpath"
        )
    out = pom.parent / "target" / "classpath.txt"
    if out.exists() and out.stat().st_mtime >= pom.stat().st_mtime:
        cached = out.read_text().strip()
        if _usable(cached):
            return cached
    if not allow_mvn:
        raise ApacheKafkaUnavailable(f"{out} is missing or stale and mvn was not allowed to resolve it")
    if shutil.which("mvn") is None:
        raise ApacheKafkaUnavailable("mvn is not on PATH and the broker's classpath is not resolved yet")
    proc = subprocess.run(
        ["mvn", "-q", "-B", "dependency:build-classpath", f"-Dmdep.outputFile={out}"],
        cwd=pom.parent,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if proc.returncode != 0 or not out.exists():
        raise ApacheKafkaUnavailable(f"mvn could not resolve the broker's jars: {proc.stdout[-1000:]}")
    return out.read_text().strip()


def apache_kafka_process(workdir: str | os.PathLike[str], classpath: str) -> ServerProcess:
    """A :class:`ServerProcess` (not started) running Apache Kafka on 127.0.0.1, free ports.

    The launcher of ``streamcore bench compare``
    (:func:`streamcore.bench.peers.apache_kafka.apache_kafka_process`: Kafka's own
    ``server.properties`` and JVM options, storage formatted first, about 2-5 s) with
    one partition per internal topic. Readiness is the PLAINTEXT port accepting
    connections; ``bootstrap`` is then ``127.0.0.1:PORT``. No fsync of its own
    (``log.flush.interval.*`` unset): it leaves flushing to the page cache. Raises
    ApacheKafkaUnavailable when java is missing or formatting fails.
    """
    from streamcore.bench.peers.apache_kafka import apache_kafka_process as launch

    try:
        return launch(Path(workdir), classpath, overrides=_BENCH_OVERRIDES)
    except RuntimeError as exc:  # ToolMissing (no java) or a failed format
        raise ApacheKafkaUnavailable(str(exc)) from exc
