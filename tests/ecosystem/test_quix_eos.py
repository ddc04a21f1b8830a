"""Quix Streams count per key with ``processing_guarantee="exactly-once"``, killed mid-way
and started again while the input keeps coming.

The same quix_count.py as test_quix.py, under exactly-once: every checkpoint (200 ms) is
one transaction holding the output and changelog records and the consumed offsets. A
third of the input is processed; the rest is then produced in small chunks, and half-way
through the app is killed with SIGKILL, so it dies with a transaction open. Quix draws a
new transactional id at each start, so nothing fences the dead producer: its transaction
stays open, holding back the last stable offset of the output and changelog partitions,
until the coordinator aborts it at its timeout (10 s). The new instance on the same state
directory recovers its store from the changelog (read_committed, to that offset) and
processes the rest.

Quix writes every count it computes, so read with read_committed the output must hold,
for each key, exactly 1, 2, ..., n in order (n its number of input records): a record
processed twice, or an update lost, breaks that sequence.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from .conftest import APACHE_KAFKA, STREAMCORE, BrokerUnderTest, brokers
from .harness import create_topic, produce, read_to_end, wait_until
from .test_quix import COUNT_TIMEOUT_S, INPUT_PARTITIONS, KEYS, QuixApp

pytestmark = pytest.mark.ecosystem

RECORDS = 3000
CHUNK = 50
CHUNK_PAUSE_S = 0.1
EXACTLY_ONCE = "exactly-once"


def committed_counts(bootstrap: str, output: str) -> dict[bytes, list[int]]:
    """Each key's counts in the output topic as read_committed shows them, in order."""
    seen: dict[bytes, list[int]] = defaultdict(list)
    for key, value in read_to_end(bootstrap, output):
        assert key is not None and value is not None, (key, value)
        seen[key].append(int(json.loads(value)))
    return dict(seen)


def check_counts(seen: dict[bytes, list[int]], expected: dict[bytes, int]) -> dict[bytes, int]:
    """Fails unless each key's counts are 1, 2, ... up to at most its expected count."""
    for key, counts in seen.items():
        assert counts == list(range(1, len(counts) + 1)), f"{key!r}: {counts}"
        assert counts[-1] <= expected.get(key, 0), f"{key!r}: {counts}, expected {expected.get(key)}"
    return {key: counts[-1] for key, counts in seen.items()}


def wait_for_exact_counts(proc: QuixApp, bootstrap: str, output: str, expected: dict[bytes, int]) -> None:
    def exact() -> bool:
        assert proc.alive(), f"quix_count exited\n{proc.tail()}"
        return check_counts(committed_counts(bootstrap, output), expected) == expected

    wait_until(exact, COUNT_TIMEOUT_S, lambda: f"the expected counts in {output}\n{proc.tail()}")


def counts(records: list[tuple[str, str]]) -> dict[bytes, int]:
    return {k.encode(): n for k, n in Counter(k for k, _ in records).items()}


@brokers(APACHE_KAFKA, STREAMCORE)
def test_quix_exactly_once_count_per_key_exact_after_a_kill_mid_stream(
    ecosystem_broker: BrokerUnderTest, quix_interpreter: str, tmp_path: Path
) -> None:
    bootstrap = ecosystem_broker.bootstrap
    run = uuid.uuid4().hex[:8]
    group, source, sink = f"quix-eos-{run}", f"quix-eos-events-{run}", f"quix-eos-counts-{run}"
    create_topic(bootstrap, source, INPUT_PARTITIONS)
    create_topic(bootstrap, sink, 1)
    rng = random.Random(12)
    records = [(rng.choice(KEYS), f"event {i}") for i in range(RECORDS)]
    first, middle, last = (
        records[: RECORDS // 3],
        records[RECORDS // 3 : 2 * RECORDS // 3],
        records[2 * RECORDS // 3 :],
    )
    state_dir = tmp_path / "state"
    topics = (source, sink)
    procs: list[QuixApp] = []
    try:
        produce(bootstrap, source, first)
        proc = QuixApp(
            quix_interpreter, bootstrap, group, state_dir, topics, tmp_path, "quix-1", EXACTLY_ONCE
        )
        procs.append(proc)
        wait_for_exact_counts(proc, bootstrap, sink, counts(first))

        # The input keeps coming; the app dies half-way through it.
        chunks = [middle[i : i + CHUNK] for i in range(0, len(middle), CHUNK)]
        for n, chunk in enumerate(chunks):
            if n == len(chunks) // 2:
                # The process that processed the first third, killed mid-stream as it is:
                # no restart here, whatever it died of.
                assert proc.running(), proc.tail()
                proc.kill()
            produce(bootstrap, source, chunk)
            time.sleep(CHUNK_PAUSE_S)

        proc = QuixApp(
            quix_interpreter, bootstrap, group, state_dir, topics, tmp_path, "quix-2", EXACTLY_ONCE
        )
        procs.append(proc)
        produce(bootstrap, source, last)
        wait_for_exact_counts(proc, bootstrap, sink, counts(records))
        assert proc.stop() == 0, proc.tail()
        assert "stopped" in proc.lines(), proc.tail()
    finally:
        for p in procs:
            p.kill()
