"""SIGKILL a writer whose log is being compacted: after recovery no acknowledged record is lost.

A zygote process (the same streamcore as this run, STREAMCORE_NO_EXTENSIONS included)
forks one writer per round. The writer opens the log (recovering it, which completes or
rolls back any swap the previous round was killed in), starts a ``LogCleaner`` thread
that cleans as often as it can, and appends keyed records with fsync="always",
reporting each acknowledged one. The parent SIGKILLs it at a random moment, so kills land
in every step of a cleaning pass: building the map, writing ``.cleaned`` files, between
the commit point and the renames, while indexes are written. After each kill the
parent reopens the log and checks: for every key, the latest record in the log is at or
after the latest acknowledged one (equal offset: equal value); offsets increase; the high
watermark covers every acknowledged record; no swap leftovers remain; and the directory
passes the broker's missing-offsets check.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time

import streamcore
from streamcore.codec import decode_batches
from streamcore.storage import Log
from streamcore.storage.log_manager import find_missing_offsets

PYTHON_DIR = os.path.dirname(os.path.dirname(os.path.abspath(streamcore.__file__)))
KILLS = int(os.environ.get("STREAMCORE_CLEANER_KILLS", "40"))
SEGMENT_BYTES = 8 * 1024
KEYS = 40

_ZYGOTE = textwrap.dedent(
    """
    import os, sys
    sys.path[:0] = [sys.argv[1]]
    from streamcore.codec import encode_batch
    from streamcore.storage import Log
    from streamcore.storage.cleaner import CompactionSettings, LogCleaner

    def writer(path, round_no, report):
        fd = os.open(report, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        log = Log(path, fsync="always", segment_bytes=int(sys.argv[2]), profile="low", index_interval_bytes=512)
        settings = CompactionSettings(min_cleanable_dirty_ratio=0.0, segment_bytes=int(sys.argv[2]) * 4)
        cleaner = LogCleaner(lambda: [("p", log)], lambda _k: settings, backoff_ms=1)
        cleaner.start()
        os.write(fd, b"ready\\n")
        i = 0
        while True:
            key = b"k%d" % ((i * 7 + round_no) % int(sys.argv[3]))
            value = b"%d:%d:" % (round_no, i) + b"x" * 60
            res = log.append(encode_batch([value], keys=[key], timestamps_ms=[1_700_000_000_000 + i]))
            os.write(fd, b"%d %s %s\\n" % (res.base_offset, key, value))
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


def _wait_ready(report: str) -> None:
    deadline = time.monotonic() + 60.0
    while time.monotonic() < deadline:
        try:
            with open(report, "rb") as f:
                if f.readline() == b"ready\n":
                    return
        except FileNotFoundError:
            pass
        time.sleep(0.002)
    raise AssertionError("the writer did not get ready within 60 s")


def _acknowledged(report: str) -> list[tuple[int, bytes, bytes]]:
    out = []
    with open(report, "rb") as f:
        for line in f.read().split(b"\n"):
            parts = line.split(b" ")
            if len(parts) == 3:
                out.append((int(parts[0]), parts[1], parts[2]))
    return out


def _read_all(log: Log) -> list[tuple[int, bytes | None, bytes | None]]:
    out = []
    offset = log.log_start_offset
    while offset < log.high_watermark:
        batches = decode_batches(log.read(offset, 1 << 20))
        assert batches, f"nothing readable at {offset} below the high watermark {log.high_watermark}"
        for batch in batches:
            out.extend((r.offset, r.key, r.value) for r in batch.records)
        offset = batches[-1].last_offset + 1
    return out


def test_sigkill_during_compaction_loses_no_acknowledged_record(tmp_path):
    path = str(tmp_path / "log")
    rng = random.Random(int.from_bytes(os.urandom(4), "big"))
    latest: dict[bytes, tuple[int, bytes]] = {}
    appended: dict[int, tuple[bytes, bytes]] = {}
    zygote = subprocess.Popen(
        [sys.executable, "-c", _ZYGOTE, PYTHON_DIR, str(SEGMENT_BYTES), str(KEYS)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert zygote.stdin is not None and zygote.stdout is not None
    swaps_completed = 0
    try:
        for round_no in range(KILLS):
            report = str(tmp_path / f"report-{round_no}")
            zygote.stdin.write(f"{path} {round_no} {report}\n")
            zygote.stdin.flush()
            pid = int(zygote.stdout.readline())
            _wait_ready(report)
            time.sleep(rng.uniform(0.02, 0.25))
            os.kill(pid, signal.SIGKILL)
            status = int(zygote.stdout.readline())
            assert os.WIFSIGNALED(status), f"round {round_no}: the writer exited on its own ({status})"
            for offset, key, value in _acknowledged(report):
                appended[offset] = (key, value)
                if key not in latest or latest[key][0] < offset:
                    latest[key] = (offset, value)
            with Log(path, fsync="never") as log:
                swaps_completed += log.recovery_report.get("swaps_completed", 0)
                records = _read_all(log)
                hw = log.high_watermark
            offsets = [o for o, _, _ in records]
            assert offsets == sorted(set(offsets)), f"round {round_no}: offsets out of order"
            assert not appended or hw > max(appended), f"round {round_no}: acknowledged records beyond {hw}"
            in_log: dict[bytes | None, tuple[int, bytes | None]] = {}
            for offset, key, value in records:
                in_log[key] = (offset, value)
                if offset in appended:
                    assert appended[offset] == (key, value), f"round {round_no}: offset {offset} changed"
            for key, (offset, value) in latest.items():
                assert key in in_log, f"round {round_no}: key {key!r} vanished"
                found_offset, found_value = in_log[key]
                # A later record of the key (written, killed before it was reported) may
                # rightly have replaced the acknowledged one; an earlier one may not.
                assert found_offset >= offset, (
                    f"round {round_no}: {key!r} went back to {found_offset} < {offset}"
                )
                if found_offset == offset:
                    assert found_value == value
            leftovers = [n for n in os.listdir(path) if n.endswith((".cleaned", ".swap", ".deleted"))]
            assert leftovers == [], f"round {round_no}: {leftovers} left after recovery"
            assert find_missing_offsets(path) is None
    finally:
        zygote.stdin.close()
        zygote.wait(timeout=30)
    # The cleaner really ran: far fewer records than were appended survive.
    with Log(path, fsync="never") as log:
        assert len(_read_all(log)) < len(appended) / 2
        assert log.compacted_offset > 0
    print(
        f"{KILLS} kills, {len(appended)} acknowledged appends, {swaps_completed} swaps completed at recovery"
    )
