"""The indexer (``storage/indexer.py``): it follows a log from its checkpoint, commits in
batches, backs off under WAL pressure, follows retention, replays without duplicates,
and catches up after being killed mid-indexing."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from typing import Any

import pytest

import streamcore
from streamcore import _impl
from streamcore.codec import encode_batch
from streamcore.storage import Log
from streamcore.storage.indexer import CHECKPOINT_FILE, Indexer, PartitionIndex, index_directory

from .workload import random_docs, random_query, scan

PYTHON_DIR = os.path.dirname(os.path.dirname(os.path.abspath(streamcore.__file__)))


def fill(log: Log, docs: list[Any], rng: random.Random) -> None:
    """Append ``docs`` (their offsets must follow the log's end) in batches of 1-20."""
    i = 0
    while i < len(docs):
        chunk = docs[i : i + rng.randint(1, 20)]
        log.append(
            encode_batch([d[4] for d in chunk], [d[3] for d in chunk], timestamps_ms=[d[2] for d in chunk])
        )
        i += len(chunk)


def check_queries(part: PartitionIndex, docs: list[Any], rng: random.Random, n: int = 60) -> None:
    for _ in range(n):
        query = random_query(rng)
        assert part.index.search(query, limit=1000) == scan(docs, query, None, 1000), query


def read_checkpoint(partition_dir: str) -> dict[str, str]:
    with open(os.path.join(index_directory(partition_dir), CHECKPOINT_FILE), encoding="utf-8") as f:
        return dict(line.split(" ", 1) for line in f.read().splitlines())


def test_indexer_follows_the_log_in_batches(tmp_path: Any) -> None:
    rng = random.Random(1)
    docs = random_docs(rng, 250, partition=0)
    with Log(tmp_path / "t-0", fsync="never") as log:
        fill(log, docs[:120], rng)
        # One batch per read: a round reads until 50 records are pending, then commits.
        indexer = Indexer(lambda: [(("t", 0), log)], batch_records=50, batch_ms=60_000, read_bytes=1)
        while indexer.run_once():
            pass
        part = indexer._parts[("t", 0)]
        committed = part.committed_offset
        assert 50 <= committed < 120
        assert part.pending == 120 - committed, "the tail waits for a full batch or batch_ms"
        assert indexer.lag()[("t", 0)].records == 120 - committed
        assert indexer.lag()[("t", 0)].seconds > 0
        assert read_checkpoint(log.directory)["next_offset"] == str(committed)
        assert part.index.doc_count == committed
        fill(log, docs[120:], rng)
        part.catch_up()
        assert indexer.lag()[("t", 0)] == (0, 0.0)
        assert part.index.doc_count == 250
        check_queries(part, docs, rng)
        indexer.stop()
        assert read_checkpoint(log.directory) == {
            "version": "1",
            "engine": _impl.search.ENGINE,
            "next_offset": "250",
            "cleaned": "0",  # never compacted
        }


def test_replay_from_an_old_checkpoint_adds_no_duplicates(tmp_path: Any) -> None:
    rng = random.Random(2)
    docs = random_docs(rng, 150)
    with Log(tmp_path / "t-0", fsync="never") as log:
        fill(log, docs, rng)
        part = PartitionIndex(("t", 0), log)
        part.catch_up()
        part.close()
        # As if the process died after the index commit and before the checkpoint.
        with open(os.path.join(index_directory(log.directory), CHECKPOINT_FILE), "w") as f:
            f.write(f"version 1\nengine {_impl.search.ENGINE}\nnext_offset 37\n")
        part = PartitionIndex(("t", 0), log)
        assert part.committed_offset == 37
        assert part.catch_up() == 150 - 37
        assert part.index.doc_count == 150
        assert part.index.search("", limit=1000) == scan(docs, "", None, 1000)
        check_queries(part, docs, rng)
        part.close()


def test_retention_and_delete_records_remove_hits(tmp_path: Any) -> None:
    rng = random.Random(3)
    docs = random_docs(rng, 100)
    with Log(tmp_path / "t-0", fsync="never") as log:
        fill(log, docs, rng)
        part = PartitionIndex(("t", 0), log)
        part.catch_up()
        assert part.index.doc_count == 100
        start = log.delete_records(60)
        assert start >= 1
        part.catch_up()
        live = [d for d in docs if d[1] >= log.log_start_offset]
        assert part.index.doc_count == len(live)
        assert part.index.search("", limit=1000) == scan(live, "", None, 1000)
        check_queries(part, live, rng, 30)
        part.close()


def test_an_index_of_the_other_engine_is_rebuilt(tmp_path: Any) -> None:
    rng = random.Random(4)
    docs = random_docs(rng, 40)
    with Log(tmp_path / "t-0", fsync="never") as log:
        fill(log, docs, rng)
        directory = index_directory(log.directory)
        os.makedirs(directory)
        other = "reference" if _impl.search.ENGINE == "native" else "native"
        with open(os.path.join(directory, CHECKPOINT_FILE), "w") as f:
            f.write(f"version 1\nengine {other}\nnext_offset 40\n")
        with open(os.path.join(directory, "foreign-file"), "w") as f:
            f.write("not ours")
        part = PartitionIndex(("t", 0), log)
        assert part.committed_offset == 0
        assert not os.path.exists(os.path.join(directory, "foreign-file"))
        part.catch_up()
        assert part.index.search("", limit=100) == scan(docs, "", None, 100)
        part.close()


class _PressedLog:
    """A log whose WAL reports a queue as full as the test says."""

    def __init__(self, log: Log) -> None:
        self._log = log
        self.profile = log.profile
        self.queued = 0
        self.rejections = 0

    def stats(self) -> dict[str, int]:
        return {**self._log.stats(), "queue_depth": self.queued, "backpressure_rejections": self.rejections}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._log, name)


def test_backs_off_exponentially_under_wal_pressure_and_catches_up(tmp_path: Any) -> None:
    rng = random.Random(5)
    docs = random_docs(rng, 30)
    with Log(tmp_path / "t-0", fsync="never") as real:
        fill(real, docs, rng)
        log = _PressedLog(real)
        indexer = Indexer(lambda: [(("t", 0), log)], batch_records=10, backoff_ms=10, backoff_max_ms=40)
        log.queued = real.profile.queue_depth // 2
        delays = []
        for _ in range(4):
            assert indexer.run_once() is False
            delays.append(indexer.stats.backoff_ms)
        assert delays == [10, 20, 40, 40]
        assert indexer.stats.records_indexed == 0
        # Refused appends count as pressure even with an empty queue.
        log.queued = 0
        log.rejections = 1
        assert indexer.run_once() is False
        assert indexer.stats.backoffs == 5
        assert indexer.stats.backoff_ms == 40
        # Pressure gone: the indexer catches up and the delay resets.
        assert indexer.run_once() is True
        assert indexer.stats.backoff_ms == 0
        while indexer.run_once():
            pass
        assert indexer.stats.records_indexed == 30
        indexer.stop()


def test_thread_indexes_what_is_appended(tmp_path: Any) -> None:
    rng = random.Random(6)
    docs = random_docs(rng, 60)
    with Log(tmp_path / "t-0", fsync="never") as log:
        indexer = Indexer(lambda: [(("t", 0), log)], batch_records=7, batch_ms=5, poll_ms=5)
        indexer.start()
        try:
            fill(log, docs, rng)
            deadline = time.monotonic() + 60
            while indexer.lag().get(("t", 0), (1, 0))[0] and time.monotonic() < deadline:
                time.sleep(0.01)
            assert indexer.lag()[("t", 0)].records == 0
        finally:
            indexer.stop()
        part = PartitionIndex(("t", 0), log)
        assert part.index.search("", limit=100) == scan(docs, "", None, 100)
        part.close()


_CHILD = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {python_dir!r})
    from streamcore.storage import Log
    from streamcore.storage.indexer import Indexer
    log = Log({directory!r}, fsync="never")
    indexer = Indexer(lambda: [(("t", 0), log)], batch_records=25, batch_ms=0, read_bytes=1)
    print("ready", flush=True)
    while True:
        indexer.run_once()
    """
)


@pytest.mark.parametrize("seed", range(3))
def test_killed_mid_indexing_the_index_catches_up_without_gaps_or_duplicates(
    tmp_path: Any, seed: int
) -> None:
    rng = random.Random(seed)
    docs = random_docs(rng, 1500)
    directory = str(tmp_path / "t-0")
    with Log(directory, fsync="never") as log:
        fill(log, docs, rng)
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD.format(python_dir=PYTHON_DIR, directory=directory)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None and child.stdout.readline() == "ready\n"
        # Kill it once some batches are checkpointed (and most likely while it writes more).
        checkpoint = os.path.join(index_directory(directory), CHECKPOINT_FILE)
        deadline = time.monotonic() + 120
        target = rng.randint(100, 900)
        while time.monotonic() < deadline:
            try:
                with open(checkpoint, encoding="utf-8") as f:
                    fields = dict(line.split(" ", 1) for line in f.read().splitlines())
                if int(fields.get("next_offset", 0)) >= target:
                    break
            except (FileNotFoundError, ValueError):
                pass
            time.sleep(0.001)
        child.send_signal(signal.SIGKILL)
    finally:
        child.kill()
        child.wait()
    with Log(directory, fsync="never") as log:
        part = PartitionIndex(("t", 0), log)
        killed_at = part.committed_offset
        assert 0 < killed_at <= len(docs), killed_at
        part.catch_up()
        assert part.index.doc_count == len(docs)
        hits = part.index.search("", limit=10_000)
        assert [h[1] for h in hits] == list(range(len(docs)))
        check_queries(part, docs, rng, 40)
        part.close()
