"""SIGKILL of a broker process with a transaction open: after the restart the committed
records are all there once, the open transaction's never reach read_committed consumers
(the producer's next incarnation aborts it), and a second kill and restart (index
snapshots written at the previous start) gives the same answer."""

from __future__ import annotations

import os
import re
import selectors
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

import streamcore

pytest.importorskip("confluent_kafka")
from confluent_kafka import Producer

from .test_clients import STEP_TIMEOUT_S, consume, create_topics

pytestmark = pytest.mark.interop

LISTENING = re.compile(r"^listening on 127\.0\.0\.1:(\d+)$")
START_TIMEOUT_S = 60.0
PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(streamcore.__file__)))


@contextmanager
def broker_process(data_dir: Path, port: int = 0) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """A ``streamcore broker`` child (the same build as this process); killed on exit."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [PACKAGE_PARENT, env.get("PYTHONPATH")]))
    cmd = [sys.executable, "-m", "streamcore.cli", "broker", "--data-dir", str(data_dir),
           "--host", "127.0.0.1", "--port", str(port)]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None
        with selectors.DefaultSelector() as sel:
            sel.register(proc.stdout, selectors.EVENT_READ)
            assert sel.select(START_TIMEOUT_S), "the broker did not start"
        match = LISTENING.match(proc.stdout.readline().strip())
        assert match, proc.stderr.read() if proc.stderr else ""
        yield proc, f"127.0.0.1:{match.group(1)}"
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=START_TIMEOUT_S)


def test_sigkill_with_a_transaction_open(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    committed = [b"c%d" % i for i in range(20)]
    with broker_process(data_dir) as (proc, bootstrap):
        create_topics(bootstrap, o=2)
        producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": "k"})
        producer.init_transactions(STEP_TIMEOUT_S)
        producer.begin_transaction()
        for i, value in enumerate(committed):
            producer.produce("o", value=value, partition=i % 2)
        producer.commit_transaction(STEP_TIMEOUT_S)
        producer.begin_transaction()
        for i in range(20):
            producer.produce("o", value=b"x%d" % i, partition=i % 2)
        producer.flush(STEP_TIMEOUT_S)
        proc.kill()
        proc.wait(START_TIMEOUT_S)
    with broker_process(data_dir) as (proc, bootstrap):
        # The producer's next incarnation aborts the transaction the kill left open.
        successor = Producer({"bootstrap.servers": bootstrap, "transactional.id": "k"})
        successor.init_transactions(STEP_TIMEOUT_S)
        successor.begin_transaction()
        successor.produce("o", value=b"new", partition=0)
        successor.commit_transaction(STEP_TIMEOUT_S)
        assert sorted(consume(bootstrap, "o", "read_committed", 21)) == sorted([*committed, b"new"])
        proc.kill()
        proc.wait(START_TIMEOUT_S)
    with broker_process(data_dir) as (_, bootstrap):
        assert sorted(consume(bootstrap, "o", "read_committed", 21)) == sorted([*committed, b"new"])
        # read_uncommitted sees the aborted records too: they were written, then aborted.
        assert len(consume(bootstrap, "o", "read_uncommitted", 41)) == 41
