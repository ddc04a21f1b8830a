"""Quix Streams: a stateful count per key, at-least-once, exact across a restart from the changelog.

interop/ecosystem/quix_count.py runs in Quix's own venv (see harness.quix_python). Every
input record adds one to its key's count in Quix's RocksDB store, whose changelog topic
Quix creates (compacted); the running count goes to the output topic. The first half of
the input is processed and checked, the app is stopped (SIGTERM: Quix commits its
checkpoint), its state directory deleted, the second half produced and a new instance
started: it must recover the store from the changelog ("Recovery successful" in its log)
and end with the exact counts of the whole input.
"""

from __future__ import annotations

import json
import random
import shutil
import uuid
from collections import Counter
from pathlib import Path

import pytest

from .conftest import APACHE_KAFKA, STREAMCORE, BrokerUnderTest, brokers
from .harness import (
    ECOSYSTEM,
    Proc,
    create_topic,
    latest_per_key,
    produce,
    topic_config,
    topic_names,
    wait_until,
)

pytestmark = pytest.mark.ecosystem

RECORDS = 2000
KEYS = [f"key-{i:02d}" for i in range(40)]
INPUT_PARTITIONS = 2
COUNT_TIMEOUT_S = 120


def make_records(seed: int) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    return [(rng.choice(KEYS), f"event {i}") for i in range(RECORDS)]


def counts(records: list[tuple[str, str]]) -> dict[bytes, int]:
    return {k.encode(): n for k, n in Counter(k for k, _ in records).items()}


def start_app(
    python: str,
    bootstrap: str,
    group: str,
    state_dir: Path,
    topics: tuple[str, str],
    workdir: Path,
    name: str,
    guarantee: str = "at-least-once",
) -> Proc:
    script = ECOSYSTEM / "quix_count.py"
    return Proc(name, [python, str(script), bootstrap, group, str(state_dir), *topics, guarantee], workdir)


def wait_for_counts(proc: Proc, bootstrap: str, output: str, expected: dict[bytes, int]) -> None:
    def current() -> dict[bytes, int] | None:
        assert proc.alive(), f"quix_count exited\n{proc.tail()}"
        got = {k: int(json.loads(v)) for k, v in latest_per_key(bootstrap, output).items() if k and v}
        # At-least-once without failures: a count never passes the expected one.
        over = {k: (n, expected.get(k)) for k, n in got.items() if n > expected.get(k, 0)}
        assert not over, f"counts above expected: {over}"
        return got if got == expected else None

    wait_until(current, COUNT_TIMEOUT_S, lambda: f"the expected counts in {output}\n{proc.tail()}")


@brokers(APACHE_KAFKA, STREAMCORE)
def test_quix_count_per_key_exact_across_a_restart_that_recovers_state_from_its_changelog(
    ecosystem_broker: BrokerUnderTest, quix_interpreter: str, tmp_path: Path
) -> None:
    bootstrap = ecosystem_broker.bootstrap
    run = uuid.uuid4().hex[:8]
    group, source, sink = f"quix-{run}", f"quix-events-{run}", f"quix-counts-{run}"
    create_topic(bootstrap, source, INPUT_PARTITIONS)
    create_topic(bootstrap, sink, 1)
    records = make_records(seed=5)
    first, second = records[: RECORDS // 2], records[RECORDS // 2 :]
    state_dir = tmp_path / "state"
    procs: list[Proc] = []
    try:
        produce(bootstrap, source, first)
        proc = start_app(quix_interpreter, bootstrap, group, state_dir, (source, sink), tmp_path, "quix-1")
        procs.append(proc)
        wait_for_counts(proc, bootstrap, sink, counts(first))
        assert proc.stop() == 0, proc.tail()
        assert "stopped" in proc.lines(), proc.tail()
        changelogs = [t for t in topic_names(bootstrap) if t.startswith("changelog__") and group in t]
        assert len(changelogs) == 1, changelogs
        assert topic_config(bootstrap, changelogs[0], "cleanup.policy") == "compact"
        shutil.rmtree(state_dir)

        produce(bootstrap, source, second)
        proc = start_app(quix_interpreter, bootstrap, group, state_dir, (source, sink), tmp_path, "quix-2")
        procs.append(proc)
        wait_for_counts(proc, bootstrap, sink, counts(records))
        assert "Recovery successful" in proc.stderr_path.read_text(), proc.tail()
        assert proc.stop() == 0, proc.tail()
    finally:
        for p in procs:
            p.kill()
