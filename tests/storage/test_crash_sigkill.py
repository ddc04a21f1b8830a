"""SIGKILL crash loop: every append a killed writer reported complete is on disk after recovery.

A ``python -c`` zygote process (same implementation as this run: the
environment, including STREAMCORE_NO_EXTENSIONS, is inherited) imports
streamcore once, then forks one writer per round, so a round costs a fork
rather than an interpreter start. Each writer opens the log (recovering it),
appends with fsync="always" and reports every completed append as a line in a
report file (os.write: the line survives SIGKILL in the page cache). The parent
SIGKILLs the writer at a random moment (mostly 0-30 ms after it is ready,
sometimes during open/recovery), STREAMCORE_CRASH_KILLS times (default 200),
then reopens the log and checks every reported append is at its offset with its
content and that the offsets are contiguous.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time

import pytest

import streamcore
from streamcore.storage import Log

from .batches import batch_offsets, make_batch, same_but_offset, split_batches

TESTS_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The children import the same streamcore as this process (the installed build in CI,
# the source tree in development), so they exercise the implementation under test.
PYTHON_DIR = os.path.dirname(os.path.dirname(os.path.abspath(streamcore.__file__)))
KILLS = int(os.environ.get("STREAMCORE_CRASH_KILLS", "200"))
SEGMENT_BYTES = 16 * 1024

_ZYGOTE = textwrap.dedent(
    """
    import os, sys
    sys.path[:0] = [sys.argv[1], sys.argv[2]]
    from storage.batches import make_batch
    from streamcore.storage import Log

    def writer(path, round_no, report):
        fd = os.open(report, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        log = Log(path, fsync="always", segment_bytes=int(sys.argv[3]), profile="low")
        os.write(fd, b"ready\\n")
        i = 0
        while True:
            values = [f"{round_no}:{i}:{k}".encode() * 4 for k in range(1 + i % 3)]
            res = log.append(make_batch(values))
            os.write(fd, f"{res.base_offset} {res.last_offset} {round_no} {i}\\n".encode())
            i += 1

    for line in sys.stdin:
        path, round_no, report = line.split()
        pid = os.fork()
        if pid == 0:
            try:
                writer(path, int(round_no), report)
            finally:
                os._exit(1)
        print(pid, flush=True)
        _, status = os.waitpid(pid, 0)
        print(status, flush=True)
    """
)


def _expected_batch(round_no: int, i: int) -> bytes:
    return make_batch([f"{round_no}:{i}:{k}".encode() * 4 for k in range(1 + i % 3)])


def _wait_ready(report: str, pid: int) -> None:
    deadline = time.monotonic() + 60.0
    while time.monotonic() < deadline:
        try:
            with open(report, "rb") as f:
                if f.read(6) == b"ready\n":
                    return
        except FileNotFoundError:
            pass
        time.sleep(0.001)
    os.kill(pid, signal.SIGKILL)
    raise AssertionError("crash writer did not open the log within 60 s")


@pytest.mark.slow
def test_sigkilled_writer_loses_no_reported_append(tmp_path):
    path = str(tmp_path / "p")
    rng = random.Random(int(os.environ.get("STREAMCORE_CRASH_SEED", "12345")))
    reported: dict[int, tuple[int, int, int]] = {}  # base offset -> (last offset, round, i)
    zygote = subprocess.Popen(
        [sys.executable, "-c", _ZYGOTE, TESTS_DIR, PYTHON_DIR, str(SEGMENT_BYTES)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert zygote.stdin is not None and zygote.stdout is not None
    kills = 0
    try:
        for round_no in range(KILLS):
            report = str(tmp_path / f"report-{round_no}")
            zygote.stdin.write(f"{path} {round_no} {report}\n")
            zygote.stdin.flush()
            pid = int(zygote.stdout.readline())
            if rng.random() < 0.15:
                time.sleep(rng.uniform(0.0, 0.02))  # somewhere in open / recovery
            else:
                _wait_ready(report, pid)
                time.sleep(rng.uniform(0.0, 0.03))
            os.kill(pid, signal.SIGKILL)
            status = int(zygote.stdout.readline())
            assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, status
            kills += 1
            if not os.path.exists(report):
                continue
            with open(report, encoding="ascii") as f:
                lines = f.read().splitlines()
            for line in lines:
                if line == "ready":
                    continue
                base, last, r, i = (int(x) for x in line.split())
                assert base not in reported, (
                    f"offset {base} reported twice: {reported[base]} and {(last, r, i)}"
                )
                reported[base] = (last, r, i)
    finally:
        zygote.stdin.close()
        zygote.wait(timeout=60)
    assert kills == KILLS

    with Log(path, fsync="never", segment_bytes=SEGMENT_BYTES) as log:
        assert log.log_start_offset == 0
        stored = split_batches(log.read(0, 1 << 31))
        expected_next = 0
        by_base = {}
        for batch in stored:
            base, last = batch_offsets(batch)
            assert base == expected_next, f"offset gap: batch at {base}, expected {expected_next}"
            expected_next = last + 1
            by_base[base] = batch
        assert expected_next == log.high_watermark
    missing = sorted(base for base in reported if base not in by_base)
    assert not missing, f"{len(missing)} reported appends are missing, first at offset {missing[0]}"
    for base, (last, r, i) in reported.items():
        batch = by_base[base]
        assert batch_offsets(batch) == (base, last)
        assert same_but_offset(batch, _expected_batch(r, i)), f"offset {base} holds other data"
    assert len(reported) > KILLS // 2  # most rounds completed appends before the kill
