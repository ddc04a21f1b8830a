"""kcat 1.7 (Debian's librdkafka 2.0.2, which checks exact ApiVersions ranges) against the broker.

kcat has no admin API: topics are auto-created with the broker's default of 3 partitions.
It cannot give each record its own header, so every record carries ``src=kcat``.
"""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from streamcore import Broker

from .log_check import assert_compressed_with
from .records import MESSAGES, MORE, Consumed, check_consumed, partitions_used

pytestmark = pytest.mark.interop

CODECS = ("none", "gzip", "snappy", "lz4", "zstd")
TIMEOUT_S = 90


@pytest.fixture(scope="module")
def kcat() -> str:
    path = shutil.which("kcat")
    if path is None:
        pytest.fail("`kcat` is not installed or not on PATH (Debian package kcat)", pytrace=False)
    return path


def _run(args: list[str], stdin: str | None = None) -> str:
    proc = subprocess.run(args, input=stdin, capture_output=True, text=True, timeout=TIMEOUT_S)
    assert proc.returncode == 0, f"{' '.join(args)} exited {proc.returncode}:\n{proc.stderr[-3000:]}"
    return proc.stdout


def kcat_features(kcat: str) -> set[str]:
    out = _run([kcat, "-X", "list"])
    for line in out.splitlines():
        if line.startswith("builtin.features"):
            return {f.strip() for f in line.split("|")[3].split(",")}
    return set()


def produce(kcat: str, bootstrap: str, topic: str, seqs: range, codec: str) -> None:
    lines = "".join(f"k-{i}:v-{i}\n" for i in seqs)
    _run(
        [
            kcat,
            "-b",
            bootstrap,
            "-P",
            "-t",
            topic,
            "-K",
            ":",
            "-z",
            codec,
            "-H",
            "src=kcat",
            "-X",
            "linger.ms=20",
        ],
        stdin=lines,
    )


def consume(kcat: str, bootstrap: str, topic: str, group: str, count: int) -> list[Consumed]:
    """Balanced-consumer mode; kcat exits after ``count`` records and commits on close."""
    out = _run(
        [kcat, "-b", bootstrap, "-G", group, topic, "-c", str(count), "-q",
         "-f", "%p %o %k %s %h\\n", "-X", "auto.offset.reset=earliest"]
    )  # fmt: skip
    records: list[Consumed] = []
    for line in out.splitlines():
        partition, offset, k, v, headers = line.split(" ")
        assert headers == "src=kcat", line
        records.append((int(partition), int(offset), k.encode(), v.encode(), None))
    return records


@pytest.mark.parametrize("codec", CODECS)
def test_kcat_round_trip_and_group_resume(interop_broker: Broker, kcat: str, codec: str) -> None:
    if codec != "none" and codec not in kcat_features(kcat):
        pytest.skip(f"this kcat's librdkafka was built without {codec}")
    bootstrap = interop_broker.bootstrap_servers
    topic = f"kcat-{codec}"
    produce(kcat, bootstrap, topic, range(MESSAGES), codec)
    meta = json.loads(_run([kcat, "-b", bootstrap, "-L", "-t", topic, "-J"]))
    [described] = meta["topics"]
    assert len(described["partitions"]) == 3

    first = consume(kcat, bootstrap, topic, "kcat-group", MESSAGES)
    check_consumed(first, range(MESSAGES), what=f"kcat {codec}")
    assert partitions_used(first) == {0, 1, 2}
    assert_compressed_with(bootstrap, topic, codec)

    produce(kcat, bootstrap, topic, range(MESSAGES, MESSAGES + MORE), codec)
    resumed = consume(kcat, bootstrap, topic, "kcat-group", MORE)
    check_consumed(resumed, range(MESSAGES, MESSAGES + MORE), what=f"kcat {codec} after restart")
