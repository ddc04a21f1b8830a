"""SIGKILL of the broker at named points of a transaction (STREAMCORE_TEST_CRASH_AT, see
broker/transactions/crash_points.py), and under a running consume-transform-produce loop
at random times; confluent-kafka as the client, each broker a child process.

After a restart on the same data directory and port, each transaction ends as its logged
state says: one whose PrepareCommit was logged is committed (its records visible to
read_committed exactly once, its offsets committed); one that never got that far is
aborted by the producer's successor (records written but invisible) or, when the
producer itself reconnects and retries, finished by it, exactly once. The producer or
its successor then commits again, and a further clean restart shows the same
read_committed view and offsets.

Every wait is bounded; a case takes about 5-9 s here (three broker starts of ~1.5 s
each on a loaded 2-core machine), the loop 19-32 s; the file about 75 s.
"""

from __future__ import annotations

import os
import queue
import random
import re
import selectors
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import IO

import pytest

import streamcore
from streamcore.broker.transactions.crash_points import ENV_VAR, POINTS

pytest.importorskip("confluent_kafka")
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

pytestmark = pytest.mark.interop

HERE = Path(__file__).resolve().parent
LISTENING = re.compile(r"^listening on 127\.0\.0\.1:(\d+)$")
PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(streamcore.__file__)))
START_TIMEOUT_S = 60.0
DEATH_TIMEOUT_S = 60.0
STEP_TIMEOUT_S = 60.0
PARTITIONS = 3
#: librdkafka settings for clients that outlive a broker: reconnect quickly (the default
#: backoff grows to 10 s), and no re-bootstrap when the only broker goes away: librdkafka
#: 2.16 then decommissions the broker it knew, and a group coordinator cached on it leaves
#: send_offsets_to_transaction hanging (confluentinc/librdkafka#5511, not fixed yet).
FAST = {
    "reconnect.backoff.ms": 50,
    "reconnect.backoff.max.ms": 300,
    "retry.backoff.ms": 50,
    "metadata.recovery.strategy": "none",
}


class BrokerProcess:
    """A ``streamcore broker`` child (the build under test); stderr goes to a file, as a
    long run's logs would fill a pipe nobody reads."""

    def __init__(self, data_dir: Path, port: int = 0, crash_at: str | None = None) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [PACKAGE_PARENT, env.get("PYTHONPATH")]))
        env.pop(ENV_VAR, None)
        if crash_at is not None:
            env[ENV_VAR] = crash_at
        self.stderr_path = data_dir.parent / f"broker-{uuid.uuid4().hex[:8]}.stderr"
        cmd = [sys.executable, "-m", "streamcore.cli", "broker", "--data-dir", str(data_dir),
               "--host", "127.0.0.1", "--port", str(port)]  # fmt: skip
        with open(self.stderr_path, "w") as err:
            self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True, env=env)
        assert self.proc.stdout is not None
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            ready = sel.select(START_TIMEOUT_S)
        line = self.proc.stdout.readline().strip() if ready else ""
        match = LISTENING.match(line)
        if match is None:
            self.kill()
            pytest.fail(f"the broker did not start ({line!r}): {self.stderr()[-2000:]}")
        self.port = int(match.group(1))
        self.bootstrap = f"127.0.0.1:{self.port}"

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def wait_crash(self, point: str) -> None:
        """Wait for the process to SIGKILL itself at ``point``."""
        try:
            code = self.proc.wait(DEATH_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"the broker did not reach {point}: {self.stderr()[-2000:]}")
        assert code == -signal.SIGKILL, self.stderr()[-2000:]
        assert f"test crash point {point} reached" in self.stderr()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(START_TIMEOUT_S)
        if self.proc.stdout is not None:
            self.proc.stdout.close()

    def stop(self) -> None:
        """A clean stop (SIGTERM), exit 0."""
        self.proc.terminate()
        assert self.proc.wait(START_TIMEOUT_S) == 0, self.stderr()[-2000:]
        if self.proc.stdout is not None:
            self.proc.stdout.close()


class Child:
    """A client script child whose stdout lines arrive on a queue."""

    def __init__(self, args: list[str], log: Path) -> None:
        self.log = log
        with open(log, "w") as err:
            self.proc = subprocess.Popen(
                [sys.executable, *args], stdout=subprocess.PIPE, stderr=err, text=True, bufsize=1
            )
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._pump, args=(self.proc.stdout,), daemon=True).start()

    def _pump(self, stream: IO[str]) -> None:
        for line in stream:
            self.lines.put(line.rstrip("\n"))

    def expect(self, prefix: str | tuple[str, ...], timeout_s: float = STEP_TIMEOUT_S) -> str:
        """The next line starting with ``prefix`` (or one of them), all kept in ``seen``."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                pytest.fail(f"no {prefix!r} line in {timeout_s} s; got {self.seen}; {self.tail()}")
            self.seen.append(line)
            if line.startswith(prefix):
                return line
            if line.startswith(("error", "fatal")):
                pytest.fail(f"{line}; {self.tail()}")

    def seen_done(self) -> bool:
        """Has the child printed "done" (lines read so far and queued)?"""
        while True:
            try:
                line = self.lines.get_nowait()
            except queue.Empty:
                return "done" in self.seen
            self.seen.append(line)
            if line.startswith("error"):
                pytest.fail(f"{line}; {self.tail()}")

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(STEP_TIMEOUT_S)


def create_topics(bootstrap: str, **partitions: int) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(n, p, 1) for n, p in partitions.items()]).values():
        future.result(STEP_TIMEOUT_S)


def wait_stable(bootstrap: str, topic: str, partitions: int) -> list[int]:
    """Wait until no transaction is open in ``topic`` (last stable offset = high
    watermark in every partition); returns the high watermarks."""
    committed = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "probe", "isolation.level": "read_committed"}
    )
    uncommitted = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "probe", "isolation.level": "read_uncommitted"}
    )
    try:
        deadline = time.monotonic() + STEP_TIMEOUT_S
        while True:
            tps = [TopicPartition(topic, p) for p in range(partitions)]
            lso = [committed.get_watermark_offsets(tp, STEP_TIMEOUT_S, cached=False)[1] for tp in tps]
            hw = [uncommitted.get_watermark_offsets(tp, STEP_TIMEOUT_S, cached=False)[1] for tp in tps]
            if lso == hw:
                return hw
            assert time.monotonic() < deadline, f"{topic}: transactions still open (LSO {lso}, HW {hw})"
            time.sleep(0.1)
    finally:
        committed.close()
        uncommitted.close()


def read_all(bootstrap: str, topic: str, partitions: int, isolation: str = "read_committed") -> list[bytes]:
    """Every value of ``topic`` an ``isolation`` consumer gets from the start to the end
    (the last stable offset for read_committed), sorted; call :func:`wait_stable` first."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "reader",
            "isolation.level": isolation,
            "enable.partition.eof": True,
            "enable.auto.commit": False,
        }
    )
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    values: list[bytes] = []
    at_end: set[int] = set()
    deadline = time.monotonic() + STEP_TIMEOUT_S
    try:
        while len(at_end) < partitions:
            assert time.monotonic() < deadline, f"{topic}: end not reached ({len(values)} read)"
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            if msg.error() is not None:
                assert msg.error().code() == -191, msg.error()  # _PARTITION_EOF
                at_end.add(msg.partition())
                continue
            values.append(msg.value())
    finally:
        consumer.close()
    return sorted(values)


def group_offsets(bootstrap: str, group: str, topic: str, partitions: int) -> list[int]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        got = consumer.committed([TopicPartition(topic, p) for p in range(partitions)], STEP_TIMEOUT_S)
        return [tp.offset for tp in got]
    finally:
        consumer.close()


def values(n: int) -> list[bytes]:
    """What transaction ``n`` of txn_steps.py writes."""
    return [b"t%d-%d" % (n, i) for i in range(2 * PARTITIONS)]


def successor_transaction(bootstrap: str, n: int) -> None:
    """The producer's successor: fences it (aborting what it left open), then commits
    transaction ``n`` as txn_steps.py would."""
    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": "tx", **FAST})
    group = Consumer({"bootstrap.servers": bootstrap, "group.id": "g", "enable.auto.commit": False})
    try:
        producer.init_transactions(STEP_TIMEOUT_S)
        producer.begin_transaction()
        for i, value in enumerate(values(n)):
            producer.produce("out", value=value, partition=i % PARTITIONS)
        offsets = [TopicPartition("in", p, n + 1) for p in range(PARTITIONS)]
        producer.send_offsets_to_transaction(offsets, group.consumer_group_metadata(), STEP_TIMEOUT_S)
        producer.commit_transaction(STEP_TIMEOUT_S)
    finally:
        group.close()


# (crash point, its count, first transaction of txn_steps.py, who finishes, the outcome
# of transaction 1, its records surely written before the crash)
#
# "reconnect": the producer stays alive; its calls caught by the crash go on against the
# restarted broker (same port). "successor": the producer is killed with the broker and
# a new producer of the same transactional.id takes over.
CASES = [
    ("after_add_partitions_logged", 1, 1, "reconnect", "committed", False),
    ("after_add_partitions_logged", 1, 1, "successor", "aborted", False),
    ("after_txn_offset_commit", 2, 0, "successor", "aborted", False),
    ("before_prepare_logged", 2, 0, "successor", "aborted", True),
    ("after_prepare_commit_logged", 2, 0, "reconnect", "committed", True),
    ("after_prepare_abort_logged", 1, 0, "reconnect", "aborted", True),
    ("between_markers", 2, 0, "successor", "committed", True),
    ("after_markers_before_complete", 2, 0, "reconnect", "committed", True),
]


@pytest.mark.parametrize(("point", "nth", "first", "finisher", "outcome", "written"), CASES)
def test_crash_point(
    tmp_path: Path, point: str, nth: int, first: int, finisher: str, outcome: str, written: bool
) -> None:
    data_dir = tmp_path / "data"
    broker = BrokerProcess(data_dir, crash_at=f"{point}:{nth}")
    port = broker.port
    abort_first = point == "after_prepare_abort_logged"
    writer = None
    try:
        create_topics(broker.bootstrap, **{"in": PARTITIONS, "out": PARTITIONS})
        args = [str(HERE / "txn_steps.py"), broker.bootstrap, "tx", str(first), "-2" if abort_first else "2"]
        writer = Child(args, tmp_path / "writer.stderr")
        writer.expect("ready")
        if first == 0:
            assert writer.expect("t0 ") == "t0 committed 1,1,1"
        broker.wait_crash(point)
        if finisher == "successor":
            writer.kill()
        broker = BrokerProcess(data_dir, port=port)
        bootstrap = broker.bootstrap
        before = values(0) if first == 0 else []
        after_t1 = before + (values(1) if outcome == "committed" else [])
        t1_offsets = [2] * PARTITIONS if outcome == "committed" else [1 if first == 0 else -1001] * PARTITIONS
        if finisher == "reconnect":
            assert writer.expect("t1 ") == f"t1 {outcome} " + ",".join(map(str, t1_offsets))
            assert writer.expect("t2 ") == "t2 committed 3,3,3"
            assert writer.proc.wait(STEP_TIMEOUT_S) == 0
        else:
            # What recovery alone decided: a logged PrepareCommit is completed at start,
            # an open transaction stays open (its producer may still come back) ...
            if outcome == "committed":
                wait_stable(bootstrap, "out", PARTITIONS)
                assert read_all(bootstrap, "out", PARTITIONS) == sorted(after_t1)
                assert group_offsets(bootstrap, "g", "in", PARTITIONS) == t1_offsets
            # ... until the successor's InitProducerId aborts it.
            successor_transaction(bootstrap, 2)
        wait_stable(bootstrap, "out", PARTITIONS)
        final = sorted(after_t1 + values(2))
        assert read_all(bootstrap, "out", PARTITIONS) == final
        assert group_offsets(bootstrap, "g", "in", PARTITIONS) == [3] * PARTITIONS
        if written and outcome == "aborted":
            # The aborted records are in the log, hidden from read_committed.
            assert set(values(1)) <= set(read_all(bootstrap, "out", PARTITIONS, "read_uncommitted"))
        broker.stop()
        broker = BrokerProcess(data_dir, port=port)
        wait_stable(broker.bootstrap, "out", PARTITIONS)
        assert read_all(broker.bootstrap, "out", PARTITIONS) == final
        assert group_offsets(broker.bootstrap, "g", "in", PARTITIONS) == [3] * PARTITIONS
    finally:
        if writer is not None:
            writer.kill()
        broker.kill()


RECORDS = 2_000
KEYS = 50
LOOP_BATCH = 40
ABORT_PERCENT = 15
#: The points a restarted broker may be armed with in the loop test, with their count.
LOOP_POINTS = sorted(POINTS)


def test_loop_under_random_kills(tmp_path: Path) -> None:
    """The loop (ctp_loop.py) over RECORDS input records while the broker is killed 3-5
    times: at a random moment (SIGKILL from here) or, chosen by the same seeded generator,
    at a crash point with a random count. The read_committed output must hold every
    input record exactly once and the group's offsets must be the input's ends, then as
    well after a clean restart. STREAMCORE_TEST_SEED replays a seed (the kill times
    still vary with the machine's speed)."""
    seed = int(os.environ.get("STREAMCORE_TEST_SEED") or random.SystemRandom().randrange(2**32))
    print(f"seed {seed} (STREAMCORE_TEST_SEED={seed} replays it)")
    rng = random.Random(seed)
    data_dir = tmp_path / "data"
    broker = BrokerProcess(data_dir)
    port = broker.port
    loop = None
    history: list[str] = []
    try:
        create_topics(broker.bootstrap, **{"in": PARTITIONS, "out": PARTITIONS})
        source = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 20})
        for i in range(RECORDS):
            source.produce("in", key=b"k%d" % (i % KEYS), value=b"r%d" % i, partition=i % PARTITIONS)
        assert source.flush(STEP_TIMEOUT_S) == 0
        ends = [len(range(p, RECORDS, PARTITIONS)) for p in range(PARTITIONS)]
        args = [str(HERE / "ctp_loop.py"), broker.bootstrap, "loop", "g", "in", "out", str(LOOP_BATCH),
                str(seed), str(ABORT_PERCENT), ",".join(map(str, ends))]  # fmt: skip
        loop = Child(args, tmp_path / "loop.stderr")
        loop.expect("ready")
        kills = rng.randint(3, 5)
        crash_at: str | None = None
        done = False
        for round_ in range(kills):
            if crash_at is None:
                # Let the loop commit on this broker, then kill it at a random moment.
                done = loop.expect(("committed", "done")) == "done"
                if done:
                    break
                time.sleep(rng.uniform(0.0, 0.5))
                broker.kill()
                history.append(f"killed after {loop.seen[-1]!r}")
            else:
                point = crash_at.split(":")[0]
                done = broker_dies_or_loop_ends(broker, loop)
                if done:
                    history.append(f"{crash_at} not reached: the loop ended")
                    broker.kill()
                    break
                broker.wait_crash(point)
                history.append(f"died at {crash_at} after {loop.seen[-1] if loop.seen else 'start'!r}")
            last = round_ == kills - 1
            crash_at = None
            if not last and rng.random() < 0.5:
                crash_at = f"{rng.choice(LOOP_POINTS)}:{rng.randint(1, 3)}"
            broker = BrokerProcess(data_dir, port=port, crash_at=crash_at)
        print("seed", seed, "history", history)
        assert len(history) >= 3 or done, history
        if not done:
            loop.expect("done", timeout_s=180.0)
        assert loop.proc.wait(STEP_TIMEOUT_S) == 0, loop.tail()
        expected = Counter(b"out-r%d" % i for i in range(RECORDS))
        wait_stable(broker.bootstrap, "out", PARTITIONS)
        output = read_all(broker.bootstrap, "out", PARTITIONS)
        assert Counter(output) == expected, (seed, history, _difference(Counter(output), expected))
        assert group_offsets(broker.bootstrap, "g", "in", PARTITIONS) == ends
        broker.stop()
        broker = BrokerProcess(data_dir, port=port)
        wait_stable(broker.bootstrap, "out", PARTITIONS)
        assert read_all(broker.bootstrap, "out", PARTITIONS) == output
        assert group_offsets(broker.bootstrap, "g", "in", PARTITIONS) == ends
    finally:
        if loop is not None:
            loop.kill()
        broker.kill()


def broker_dies_or_loop_ends(broker: BrokerProcess, loop: Child) -> bool:
    """Wait (bounded) until the armed broker has died (False) or the loop printed "done"
    first (True)."""
    deadline = time.monotonic() + DEATH_TIMEOUT_S
    while broker.proc.poll() is None:
        if loop.seen_done():
            return True
        assert time.monotonic() < deadline, f"the broker neither died nor did the loop end; {loop.tail()}"
        time.sleep(0.05)
    return False


def _difference(got: Counter[bytes], expected: Counter[bytes]) -> str:
    missing = expected - got
    extra = got - expected
    return f"missing {sorted(missing)[:10]} ({sum(missing.values())}), extra {sorted(extra)[:10]} ({sum(extra.values())})"
