"""Thousands of partitions on bounded resources: a broker's threads, descriptors, RSS and start times.

A broker runs as a separate process on 127.0.0.1 and a free port. The script creates
``--partitions`` partitions across ``--partitions / --per-topic`` topics (default
10,000 across 100), produces one record to every partition, fetches every record
back, stops the broker (SIGTERM), starts it again on the same data directory and
fetches every record once more. Figures come from ``/proc/<pid>`` of the broker:
threads (``Threads:``), open descriptors (entries of ``fd/``), RSS (``VmRSS``) and
peak RSS (``VmHWM``), sampled every 50 ms; the highest sample of each phase is
printed. Start and restart times run from spawning the process to its
``listening on`` line.

The goal (issue 10): at most 32 threads and at most 1,100 descriptors while it
starts, serves produce and fetch on all partitions and restarts.

    PYTHONPATH=python .venv/bin/python benchmarks/many_partitions.py --partitions 10000

Linux only (``/proc``). Bounded: every wait has a deadline (``--timeout-s``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass

from streamcore.client import AdminClient, Consumer, NewTopic, Producer, TopicPartition

GOAL_THREADS = 32
GOAL_FDS = 1100


@dataclass
class Peak:
    """Highest /proc figures of the broker seen during one phase."""

    threads: int = 0
    fds: int = 0
    rss_mib: float = 0.0
    hwm_mib: float = 0.0


def _proc_figures(pid: int) -> tuple[int, int, float, float]:
    """(threads, open descriptors, RSS MiB, peak RSS MiB) of ``pid`` now."""
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            name, _, value = line.partition(":")
            fields[name] = value.split()
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    return (
        int(fields["Threads"][0]),
        fds,
        int(fields["VmRSS"][0]) / 1024.0,
        int(fields["VmHWM"][0]) / 1024.0,
    )


class Sampler:
    """Samples the broker's /proc figures every ``interval_s`` and keeps the peak per phase."""

    def __init__(self, pid: int, interval_s: float = 0.05) -> None:
        self.pid = pid
        self.interval_s = interval_s
        self.peak = Peak()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        try:
            threads, fds, rss, hwm = _proc_figures(self.pid)
        except (FileNotFoundError, ProcessLookupError, KeyError):
            # Gone, or a zombie (its status has no memory lines any more).
            return
        with self._lock:
            p = self.peak
            p.threads, p.fds = max(p.threads, threads), max(p.fds, fds)
            p.rss_mib, p.hwm_mib = max(p.rss_mib, rss), max(p.hwm_mib, hwm)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._sample()

    def phase(self) -> Peak:
        """The peak since the last call (one last sample included), then start afresh."""
        self._sample()
        with self._lock:
            peak, self.peak = self.peak, Peak()
        return peak

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_broker(data_dir: str, port: int, timeout_s: float) -> tuple[subprocess.Popen[str], float]:
    """Spawn ``streamcore broker``; returns it and the seconds until it printed ``listening on``."""
    env = dict(os.environ)
    env.setdefault("PYTHONPATH", os.pathsep.join(p for p in sys.path if p))
    started = time.monotonic()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamcore",
            "broker",
            "--data-dir",
            data_dir,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "WARNING",
        ],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    deadline = started + timeout_s
    line = ""
    # readline blocks; a timer kills a broker that never gets ready so that it returns.
    killer = threading.Timer(timeout_s, proc.kill)
    killer.start()
    try:
        while "listening on" not in line:
            line = proc.stdout.readline()
            if not line or time.monotonic() > deadline:
                raise RuntimeError(f"the broker did not start within {timeout_s} s (exit {proc.poll()})")
    finally:
        killer.cancel()
    return proc, time.monotonic() - started


def stop_broker(proc: subprocess.Popen[str], timeout_s: float) -> float:
    """SIGTERM and wait; returns the seconds the broker took to exit."""
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        code = proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise RuntimeError(f"the broker did not stop within {timeout_s} s") from None
    if code != 0:
        raise RuntimeError(f"the broker exited with {code}")
    return time.monotonic() - started


def fetch_all(bootstrap: str, tps: list[TopicPartition], timeout_s: float) -> int:
    """Fetch every partition from offset 0; returns how many records came back (one expected each)."""
    seen: set[tuple[str, int]] = set()
    with Consumer(bootstrap, group_id=None, enable_auto_commit=False, auto_offset_reset="earliest") as c:
        c.assign(tps)
        deadline = time.monotonic() + timeout_s
        while len(seen) < len(tps) and time.monotonic() < deadline:
            for record in c.poll(timeout_ms=500):
                seen.add((record.topic, record.partition))
    return len(seen)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--partitions", type=int, default=10_000, help="partitions in all (default 10,000)")
    ap.add_argument("--per-topic", type=int, default=100, help="partitions per topic (default 100)")
    ap.add_argument("--data-dir", help="data directory (default: a new temporary one, removed at the end)")
    ap.add_argument("--timeout-s", type=float, default=600.0, help="deadline of each phase (s)")
    args = ap.parse_args()
    if args.partitions < 1 or args.per_topic < 1 or args.partitions % args.per_topic:
        ap.error("--partitions must be a positive multiple of --per-topic")
    topics = [f"mp-{i:04d}" for i in range(args.partitions // args.per_topic)]
    tps = [TopicPartition(t, p) for t in topics for p in range(args.per_topic)]
    data_dir = args.data_dir or tempfile.mkdtemp(prefix="streamcore-many-partitions-")
    port = _free_port()
    bootstrap = f"127.0.0.1:{port}"
    rows: list[tuple[str, float, Peak]] = []

    proc, start_s = start_broker(data_dir, port, args.timeout_s)
    sampler = Sampler(proc.pid)
    try:
        rows.append(("start (empty)", start_s, sampler.phase()))
        t = time.monotonic()
        with AdminClient(bootstrap, request_timeout_ms=int(args.timeout_s * 1000)) as admin:
            for i in range(0, len(topics), 10):
                result = admin.create_topics([NewTopic(name, args.per_topic) for name in topics[i : i + 10]])
                failed = {name: err for name, err in result.items() if err is not None}
                if failed:
                    raise RuntimeError(f"create_topics failed: {failed}")
        rows.append((f"create {len(topics)} topics", time.monotonic() - t, sampler.phase()))
        t = time.monotonic()
        with Producer(bootstrap, linger_ms=20, acks=-1) as producer:
            futures = [producer.send(tp.topic, b"v", partition=tp.partition) for tp in tps]
            producer.flush(args.timeout_s)
            for f in futures:
                f.result(args.timeout_s)
        rows.append((f"produce 1 record x {len(tps)}", time.monotonic() - t, sampler.phase()))
        t = time.monotonic()
        got = fetch_all(bootstrap, tps, args.timeout_s)
        if got != len(tps):
            raise RuntimeError(f"fetched {got} of {len(tps)} partitions' records")
        rows.append((f"fetch {len(tps)} partitions", time.monotonic() - t, sampler.phase()))
        stop_s = stop_broker(proc, args.timeout_s)
        rows.append(("stop (SIGTERM)", stop_s, sampler.phase()))
        sampler.stop()

        proc, restart_s = start_broker(data_dir, port, args.timeout_s)
        sampler = Sampler(proc.pid)
        rows.append(("restart", restart_s, sampler.phase()))
        t = time.monotonic()
        got = fetch_all(bootstrap, tps, args.timeout_s)
        if got != len(tps):
            raise RuntimeError(f"after the restart, fetched {got} of {len(tps)} partitions' records")
        rows.append((f"fetch {len(tps)} after restart", time.monotonic() - t, sampler.phase()))
        stop_broker(proc, args.timeout_s)
    finally:
        sampler.stop()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if args.data_dir is None:
            shutil.rmtree(data_dir, ignore_errors=True)

    print(f"{args.partitions} partitions across {len(topics)} topics; broker peaks per phase (from /proc)")
    print(f"{'phase':<32} {'seconds':>8} {'threads':>8} {'fds':>6} {'RSS MiB':>8} {'peak RSS':>9}")
    for name, seconds, p in rows:
        print(f"{name:<32} {seconds:>8.2f} {p.threads:>8} {p.fds:>6} {p.rss_mib:>8.1f} {p.hwm_mib:>9.1f}")
    worst_threads = max(p.threads for _, _, p in rows)
    worst_fds = max(p.fds for _, _, p in rows)
    ok = worst_threads <= GOAL_THREADS and worst_fds <= GOAL_FDS
    print(
        f"goal <= {GOAL_THREADS} threads and <= {GOAL_FDS} fds: threads {worst_threads}, fds {worst_fds} -> "
        f"{'met' if ok else 'NOT met'}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
