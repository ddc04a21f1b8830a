"""Kafka Streams 4.1.1 word count with ``processing.guarantee=exactly_once_v2``, its JVM
killed mid-stream and started again while the input keeps coming.

The same WordCount as test_streams.py, under exactly_once_v2: each commit (every 200 ms)
is one transaction holding the output, changelog and repartition records and the
consumed offsets. A third of the input is processed; the rest is then produced in small
chunks, and half-way through the JVM is killed with SIGKILL, so it dies with a
transaction open. A new instance on the same state directory (same process id, so the
same transactional id: its InitProducerId fences the dead one and aborts what it left
open) wipes its uncommitted store, restores it from the changelog read_committed, and
processes the rest.

Read with read_committed, the output topic must then hold, for every word, counts that
only go up and end at the word's number of occurrences: a record processed twice or an
update lost would show as a count repeated, skipped past the total, or short of it.
"""

from __future__ import annotations

import struct
import time
import uuid
from collections import defaultdict
from pathlib import Path

import pytest

from .conftest import APACHE_KAFKA, STREAMCORE, BrokerUnderTest, brokers
from .harness import Proc, create_topic, produce, read_to_end, wait_until
from .test_streams import COUNT_TIMEOUT_S, INPUT_PARTITIONS, make_lines, start_app, word_counts

pytestmark = pytest.mark.ecosystem

LINES = 3000
CHUNK = 50
CHUNK_PAUSE_S = 0.1


def committed_counts(bootstrap: str, output: str) -> dict[bytes, list[int]]:
    """Each word's counts in the output topic as read_committed shows them, in order."""
    seen: dict[bytes, list[int]] = defaultdict(list)
    for key, value in read_to_end(bootstrap, output):
        assert key is not None and value is not None, (key, value)
        seen[key].append(struct.unpack(">q", value)[0])
    return dict(seen)


def check_counts(seen: dict[bytes, list[int]], expected: dict[bytes, int]) -> dict[bytes, int]:
    """Fails on a count that does not go up or passes the expected one; the latest counts."""
    for word, counts in seen.items():
        assert all(a < b for a, b in zip(counts, counts[1:], strict=False)), f"{word!r}: {counts}"
        assert counts[-1] <= expected.get(word, 0), f"{word!r}: {counts}, expected {expected.get(word)}"
    return {word: counts[-1] for word, counts in seen.items()}


def wait_for_exact_counts(
    proc: Proc, log: Path, bootstrap: str, output: str, expected: dict[bytes, int]
) -> None:
    def exact() -> bool:
        assert proc.alive(), f"WordCount exited\n{proc.tail(log)}"
        return check_counts(committed_counts(bootstrap, output), expected) == expected

    wait_until(exact, COUNT_TIMEOUT_S, lambda: f"the expected word counts in {output}\n{proc.tail(log)}")


@brokers(APACHE_KAFKA, STREAMCORE)
def test_streams_exactly_once_word_count_exact_after_a_kill_mid_stream(
    ecosystem_broker: BrokerUnderTest, ecosystem_classpath: str, tmp_path: Path
) -> None:
    bootstrap = ecosystem_broker.bootstrap
    run = uuid.uuid4().hex[:8]
    app_id, source, sink = f"wordcount-eos-{run}", f"wce-lines-{run}", f"wce-counts-{run}"
    create_topic(bootstrap, source, INPUT_PARTITIONS)
    create_topic(bootstrap, sink, 1)
    lines = make_lines(seed=12, count=LINES)
    first, middle, last = lines[: LINES // 3], lines[LINES // 3 : 2 * LINES // 3], lines[2 * LINES // 3 :]
    state_dir = tmp_path / "state"
    topics = (source, sink)
    procs: list[Proc] = []
    try:
        produce(bootstrap, source, first)
        proc, log = start_app(
            ecosystem_classpath, bootstrap, app_id, state_dir, topics, tmp_path, "app-1", "exactly_once_v2"
        )
        procs.append(proc)
        wait_for_exact_counts(proc, log, bootstrap, sink, word_counts(first))

        # The input keeps coming; the JVM dies half-way through it.
        chunks = [middle[i : i + CHUNK] for i in range(0, len(middle), CHUNK)]
        for n, chunk in enumerate(chunks):
            if n == len(chunks) // 2:
                assert proc.alive(), proc.tail(log)
                proc.kill()
            produce(bootstrap, source, chunk)
            time.sleep(CHUNK_PAUSE_S)
        check_counts(committed_counts(bootstrap, sink), word_counts(first + middle))

        proc, log = start_app(
            ecosystem_classpath, bootstrap, app_id, state_dir, topics, tmp_path, "app-2", "exactly_once_v2"
        )
        procs.append(proc)
        produce(bootstrap, source, last)
        wait_for_exact_counts(proc, log, bootstrap, sink, word_counts(lines))
        restored = [line.split() for line in proc.lines() if line.startswith("restored counts ")]
        assert sum(int(n) for *_, n in restored) > 0, f"no records restored\n{proc.tail(log)}"
        assert proc.stop() in (0, 143), proc.tail(log)
    finally:
        for p in procs:
            p.kill()
