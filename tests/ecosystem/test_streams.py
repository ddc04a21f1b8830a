"""Kafka Streams 4.1.1: a word count with a state store, at-least-once, and a restart mid-stream.

interop/ecosystem's WordCount splits lines into words, re-keys them by word (Streams
creates ``<app>-words-repartition``), counts them in the persistent store ``counts``
(Streams creates the compacted ``<app>-counts-changelog``) and writes running counts to
the output topic. The first half of the input is processed and checked, the app is
stopped, its local state directory deleted, the second half produced, and a new instance
started: it must rebuild the store from the changelog (its restore listener reports the
records restored) and end with the exact counts of the whole input. Streams purges the
records it has consumed from the repartition topic with DeleteRecords, so that topic's
log start offsets must advance.
"""

from __future__ import annotations

import random
import shutil
import struct
import uuid
from collections import Counter
from pathlib import Path

import pytest

from .conftest import APACHE_KAFKA, STREAMCORE, BrokerUnderTest, brokers
from .harness import Proc, create_topic, java, latest_per_key, offsets, produce, topic_config, wait_until

pytestmark = pytest.mark.ecosystem

LINES = 2000
WORDS_PER_LINE = 6
VOCABULARY = [f"w{i:02d}" for i in range(60)]
INPUT_PARTITIONS = 3
START_TIMEOUT_S = 120
COUNT_TIMEOUT_S = 120


def make_lines(seed: int, count: int = LINES) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    return [(f"k{i}", " ".join(rng.choices(VOCABULARY, k=WORDS_PER_LINE)).upper()) for i in range(count)]


def word_counts(lines: list[tuple[str, str]]) -> dict[bytes, int]:
    return {w.encode(): n for w, n in Counter(w for _, line in lines for w in line.lower().split()).items()}


def start_app(
    classpath: str,
    bootstrap: str,
    app_id: str,
    state_dir: Path,
    topics: tuple[str, str],
    workdir: Path,
    name: str,
    guarantee: str = "at_least_once",
) -> tuple[Proc, Path]:
    proc, log = java(
        classpath,
        "streamcore.ecosystem.WordCount",
        [bootstrap, app_id, str(state_dir), *topics, guarantee],
        workdir,
        name,
    )
    proc.wait_for_line("state RUNNING", START_TIMEOUT_S, fail_on=("state ERROR", "state PENDING_ERROR"))
    return proc, log


def wait_for_counts(proc: Proc, log: Path, bootstrap: str, output: str, expected: dict[bytes, int]) -> None:
    def counts() -> dict[bytes, int] | None:
        assert proc.alive(), f"WordCount exited\n{proc.tail(log)}"
        got = {k: struct.unpack(">q", v)[0] for k, v in latest_per_key(bootstrap, output).items() if k and v}
        # At-least-once without failures: a count never passes the expected one.
        over = {k: (n, expected.get(k)) for k, n in got.items() if n > expected.get(k, 0)}
        assert not over, f"counts above expected: {over}"
        return got if got == expected else None

    wait_until(counts, COUNT_TIMEOUT_S, lambda: f"the expected word counts in {output}\n{proc.tail(log)}")


@brokers(APACHE_KAFKA, STREAMCORE)
def test_streams_word_count_exact_across_a_restart_that_restores_the_store_from_its_changelog(
    ecosystem_broker: BrokerUnderTest, ecosystem_classpath: str, tmp_path: Path
) -> None:
    bootstrap = ecosystem_broker.bootstrap
    run = uuid.uuid4().hex[:8]
    app_id, source, sink = f"wordcount-{run}", f"wc-lines-{run}", f"wc-counts-{run}"
    changelog, repartition = f"{app_id}-counts-changelog", f"{app_id}-words-repartition"
    create_topic(bootstrap, source, INPUT_PARTITIONS)
    create_topic(bootstrap, sink, 1)
    lines = make_lines(seed=11)
    first, second = lines[: LINES // 2], lines[LINES // 2 :]
    state_dir = tmp_path / "state"
    procs: list[Proc] = []
    try:
        produce(bootstrap, source, first)
        proc, log = start_app(
            ecosystem_classpath, bootstrap, app_id, state_dir, (source, sink), tmp_path, "app-1"
        )
        procs.append(proc)
        wait_for_counts(proc, log, bootstrap, sink, word_counts(first))
        # Streams purges what it consumed from its repartition topic (DeleteRecords).
        wait_until(
            lambda: any(start > 0 for start, _ in offsets(bootstrap, repartition).values()),
            COUNT_TIMEOUT_S,
            lambda: f"a purge of {repartition}: {offsets(bootstrap, repartition)}\n{proc.tail(log)}",
        )
        assert proc.stop() in (0, 143), proc.tail(log)
        assert "closed" in proc.lines(), proc.tail(log)
        assert topic_config(bootstrap, changelog, "cleanup.policy") == "compact"
        shutil.rmtree(state_dir)

        produce(bootstrap, source, second)
        proc, log = start_app(
            ecosystem_classpath, bootstrap, app_id, state_dir, (source, sink), tmp_path, "app-2"
        )
        procs.append(proc)
        wait_for_counts(proc, log, bootstrap, sink, word_counts(lines))
        restored = [line.split() for line in proc.lines() if line.startswith("restored counts ")]
        assert sum(int(n) for *_, n in restored) > 0, (
            f"no records restored from {changelog}\n{proc.tail(log)}"
        )
        assert proc.stop() in (0, 143), proc.tail(log)
    finally:
        for p in procs:
            p.kill()
