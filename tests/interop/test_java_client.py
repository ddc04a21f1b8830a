"""The Java client (kafka-clients 3.9.1 and 4.1.1) against the broker, through interop/java's ClientCheck.

One JVM per step keeps the harness simple, so per version the test creates one topic with
the admin API, then for each codec produces 10,000 records (idempotent producer, acks at
its default) and consumes them in one group: from the second codec on, each consumer is a
restart that must resume exactly where the previous one committed. ClientCheck sets
``enable.idempotence=true`` explicitly, which is the client's default since 3.0.
"""

from __future__ import annotations

import subprocess

import pytest

from streamcore import Broker

from .conftest import JAVA_VERSIONS, JavaBuilds
from .log_check import check_exactly_once_log, stored_codecs
from .records import MESSAGES, Consumed, check_consumed, key, partitions_used

pytestmark = pytest.mark.interop

CODECS = ("none", "gzip", "snappy", "lz4", "zstd")
JVM_TIMEOUT_S = 180
CONSUME_TIMEOUT_MS = 90_000
# C1 only and the serial collector: these JVMs live a few seconds on a small machine.
JVM_FLAGS = ["-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", "-Xss1m"]


def client_check(classpath: str, *args: str) -> list[str]:
    """Run ClientCheck; returns its stdout lines (the test fails on a non-zero exit)."""
    cmd = ["java", *JVM_FLAGS, "-cp", classpath, "streamcore.interop.ClientCheck", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=JVM_TIMEOUT_S)
    assert proc.returncode == 0, f"ClientCheck {args[0]} exited {proc.returncode}:\n{proc.stderr[-4000:]}"
    return proc.stdout.splitlines()


def parse_consumed(lines: list[str]) -> list[Consumed]:
    out: list[Consumed] = []
    for line in lines:
        if line.startswith("R "):
            _, partition, offset, k, v, seq = line.split(" ")
            out.append(
                (int(partition), int(offset), k.encode(), v.encode(), None if seq == "-" else int(seq))
            )
    return out


@pytest.mark.parametrize("version", JAVA_VERSIONS)
def test_java_client_every_codec_with_group_resume_and_idempotence(
    interop_broker: Broker, java_builds: JavaBuilds, version: str
) -> None:
    classpath = java_builds.classpath(version)
    bootstrap = interop_broker.bootstrap_servers
    topic = "java-" + version.replace(".", "-")
    assert client_check(classpath, "create", bootstrap, topic, "3")[-1] == f"created {topic} 3"

    last_offsets: dict[int, int] = {}
    for codec in CODECS:
        produced = client_check(classpath, "produce", bootstrap, topic, str(MESSAGES), codec, "true")
        assert produced[-1] == f"produced {MESSAGES}"
        lines = client_check(
            classpath, "consume", bootstrap, topic, "java-group", str(MESSAGES), str(CONSUME_TIMEOUT_MS)
        )
        assert lines[-1] == f"consumed {MESSAGES}", f"{codec}: {lines[-1]}"
        records = parse_consumed(lines)
        check_consumed(records, range(MESSAGES), what=f"Java {version} {codec}")
        assert partitions_used(records) == {0, 1, 2}
        # A restarted member of the group starts right after what the previous one committed.
        firsts: dict[int, int] = {}
        for partition, offset, *_ in records:
            firsts.setdefault(partition, offset)
        resumed_at = {p: last_offsets.get(p, -1) + 1 for p in firsts}
        assert firsts == resumed_at, f"{codec}: first offsets {firsts}, committed {resumed_at}"
        for partition, offset, *_ in records:
            last_offsets[partition] = offset  # records are in offset order per partition

    # Per codec round 10,000 records; a few may go uncompressed (see assert_compressed_with).
    counts = stored_codecs(bootstrap, topic)
    assert set(counts) == set(CODECS), dict(counts)
    assert all(counts[c] >= 0.9 * MESSAGES for c in CODECS if c != "none"), dict(counts)
    # Five idempotent producers, each record once, sequences without gaps.
    check_exactly_once_log(
        bootstrap, topic, [key(i) for i in range(MESSAGES)] * len(CODECS), producers=len(CODECS)
    )
