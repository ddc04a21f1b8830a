"""Storage benchmarks: append throughput per fsync policy and concurrency, group commit, reads, recovery.

Run:  PYTHONPATH=python python benchmarks/storage_bench.py --json out.json
      (--impl reference,native picks the WAL twins; default: every one present.
       --quick for a short smoke run; --dir for where the logs go, default a
       temporary directory under the current directory: fsync must hit a real disk.
       --rounds N runs every append case N times, interleaved, and reports the
       median round: use it on a shared machine. --parts picks what runs.)

Figures:
* append MB/s and batches/s for fsync never / interval / always x 1 / 8 / 64
  appender threads x 16 KiB batches (goal: one appender >= 1 GB/s at fsync=never);
* fsync=always with 1 KiB batches: 1 appender vs 64 threads vs 64 asyncio tasks
  (``submit`` with a thread-safe callback per append, and ``submit_to`` with a
  ``CompletionQueue``, the broker's path: one loop wake-up per group), and the
  group-commit gain (64 / 1, goal >= 20x), as the ratio of the medians and per round;
* sequential read MB/s (1 MiB reads);
* recovery time of a log after a crash (no clean marker, recovery point 0),
  default 1 GiB.

Every append case also reports the process CPU time per batch (``cpu_us_per_batch``,
all threads: what the WAL costs, whatever else the machine runs) and the mean fsync
time; the run records the load average before and after, since the machine may be
shared.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import shutil
import struct
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "python"))

from streamcore._reference import wal as reference_wal  # noqa: E402
from streamcore.codec import encode_batch  # noqa: E402


def make_batch(total: int) -> bytes:
    """A valid one-record v2 batch of about ``total`` bytes (uncompressed, keyless)."""
    return encode_batch([b"x" * max(0, total - 61 - 12)])


def wal_classes(wanted: list[str]) -> dict[str, Any]:
    out = {}
    for name in wanted:
        if name == "reference":
            out[name] = reference_wal.WalLog
        elif name == "native":
            try:
                from streamcore import _native  # type: ignore[attr-defined]
            except ImportError:
                continue
            mod = getattr(_native, "wal", None)
            if mod is not None:
                out[name] = mod.WalLog
    return out


def run_threads(wal: Any, batch: bytes, appenders: int, seconds: float) -> dict[str, float]:
    """``appenders`` threads append ``batch`` in a loop for ``seconds``; return rates."""
    stop = threading.Event()
    counts = [0] * appenders
    start_gate = threading.Barrier(appenders + 1)

    def worker(i: int) -> None:
        start_gate.wait()
        n = 0
        while not stop.is_set():
            wal.append(batch)
            n += 1
        counts[i] = n

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(appenders)]
    for t in threads:
        t.start()
    before = dict(wal.stats())
    start_gate.wait()
    cpu0 = _cpu_seconds()
    t0 = time.perf_counter()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    cpu = _cpu_seconds() - cpu0
    return _rates(sum(counts), len(batch), elapsed, before, wal.stats(), cpu)


def run_tasks(wal: Any, batch: bytes, tasks: int, seconds: float) -> dict[str, float]:
    """``tasks`` asyncio tasks append through ``submit`` + ``call_soon_threadsafe``: one loop wake-up per append."""

    async def main() -> int:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        done = 0

        def settle(fut: asyncio.Future, result: Any, exc: BaseException | None) -> None:
            if exc is not None:
                fut.set_exception(exc)
            else:
                fut.set_result(result)

        async def append_async() -> Any:
            fut = loop.create_future()
            wal.submit(batch, lambda r, e: loop.call_soon_threadsafe(settle, fut, r, e))
            return await fut

        async def task() -> None:
            nonlocal done
            while loop.time() < deadline:
                await append_async()
                done += 1

        await asyncio.gather(*(task() for _ in range(tasks)))
        return done

    return _run_loop(wal, batch, main)


def run_queue_tasks(wal: Any, batch: bytes, tasks: int, seconds: float) -> dict[str, float]:
    """``tasks`` asyncio tasks append through ``submit_to`` and a ``CompletionQueue``, as
    the broker's ``Log.append_async`` does: the writer wakes the loop once per group."""
    queue = completion_queue_for(wal)

    async def main() -> int:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        done = 0

        def drain() -> None:
            for fut, result, exc in queue.drain():
                if exc is not None:
                    fut.set_exception(exc)
                else:
                    fut.set_result(result)

        loop.add_reader(queue.fileno(), drain)

        async def task() -> None:
            nonlocal done
            while loop.time() < deadline:
                fut = loop.create_future()
                wal.submit_to(batch, queue, fut)
                await fut
                done += 1

        try:
            await asyncio.gather(*(task() for _ in range(tasks)))
        finally:
            loop.remove_reader(queue.fileno())
        return done

    return _run_loop(wal, batch, main)


def _run_loop(wal: Any, batch: bytes, main: Callable[[], Awaitable[int]]) -> dict[str, float]:
    """Run ``main`` (which returns the appends it made) on a new event loop; return rates."""
    before = dict(wal.stats())
    cpu0 = _cpu_seconds()
    t0 = time.perf_counter()
    count = asyncio.run(main())
    elapsed = time.perf_counter() - t0
    return _rates(count, len(batch), elapsed, before, wal.stats(), _cpu_seconds() - cpu0)


def completion_queue_for(wal: Any) -> Any:
    """A ``CompletionQueue`` of the same twin as ``wal`` (native or reference)."""
    if isinstance(wal, reference_wal.WalLog):
        return reference_wal.CompletionQueue()
    from streamcore import _native  # type: ignore[attr-defined]

    return _native.wal.CompletionQueue()


def _cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _rates(count: int, size: int, elapsed: float, before: dict, after: dict, cpu: float) -> dict[str, float]:
    groups = after["groups"] - before["groups"]
    fsyncs = after["fsyncs"] - before["fsyncs"]
    fsync_us = after["fsync_total_us"] - before["fsync_total_us"]
    return {
        "batches": count,
        "seconds": round(elapsed, 3),
        "batches_per_s": round(count / elapsed, 1),
        "mb_per_s": round(count * size / elapsed / 1e6, 2),
        "fsyncs": fsyncs,
        "fsync_avg_us": round(fsync_us / fsyncs, 1) if fsyncs else 0.0,
        "groups": groups,
        "batches_per_group": round(count / groups, 1) if groups else 0.0,
        "cpu_us_per_batch": round(cpu / count * 1e6, 2) if count else 0.0,
    }


def _median_round(rounds: list[dict[str, float]]) -> dict[str, Any]:
    """The round with the median rate (the lower middle one for an even count), plus every round's rate."""
    ordered = sorted(rounds, key=lambda r: r["batches_per_s"])
    out: dict[str, Any] = dict(ordered[(len(ordered) - 1) // 2])
    if len(rounds) > 1:
        out["rounds_batches_per_s"] = [r["batches_per_s"] for r in rounds]
    return out


def bench_impl(name: str, cls: Any, root: str, args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {}
    secs = args.seconds

    def fresh(tag: str, **kw: Any) -> Any:
        path = os.path.join(root, f"{name}-{tag}")
        shutil.rmtree(path, ignore_errors=True)
        return cls(path, queue_depth=100_000, **kw)

    big = make_batch(16 * 1024)
    parts = set(args.parts.split(","))
    if "append" in parts:
        rounds: dict[str, list[dict[str, float]]] = {}
        for r in range(args.rounds):
            for fsync in ("never", "interval", "always"):
                for appenders in (1, 8, 64):
                    key = f"{fsync}/{appenders}"
                    wal = fresh(f"append-{fsync}-{appenders}", fsync=fsync)
                    try:
                        got = run_threads(wal, big, appenders, secs)
                    finally:
                        wal.close()
                    rounds.setdefault(key, []).append(got)
                    print(f"[{name}] round {r + 1} append 16KiB fsync={fsync} appenders={appenders}: {got}")
        append = {key: _median_round(runs) for key, runs in rounds.items()}
        results["append_16k"] = append
        print(
            f"[{name}] one appender, fsync=never, 16 KiB: {append['never/1']['mb_per_s']} MB/s "
            f"(median of {args.rounds}; goal >= 1000)"
        )

    if "group_commit" in parts:
        small = make_batch(1024)
        gc_rounds: dict[str, list[dict[str, float]]] = {}
        gains: dict[str, list[float]] = {"threads": [], "tasks": [], "queue_tasks": []}
        for r in range(args.rounds):
            this: dict[str, dict[str, float]] = {}
            for label, runner, n in (
                ("threads_1", run_threads, 1),
                ("threads_64", run_threads, 64),
                ("tasks_64", run_tasks, 64),
                ("queue_tasks_64", run_queue_tasks, 64),
            ):
                wal = fresh(f"gc-{label}", fsync="always")
                try:
                    this[label] = runner(wal, small, n, secs)
                finally:
                    wal.close()
                gc_rounds.setdefault(label, []).append(this[label])
                print(f"[{name}] round {r + 1} fsync=always 1KiB {label}: {this[label]}")
            one = this["threads_1"]["batches_per_s"] or 1.0
            gains["threads"].append(round(this["threads_64"]["batches_per_s"] / one, 1))
            gains["tasks"].append(round(this["tasks_64"]["batches_per_s"] / one, 1))
            gains["queue_tasks"].append(round(this["queue_tasks_64"]["batches_per_s"] / one, 1))
        gc: dict[str, Any] = {label: _median_round(runs) for label, runs in gc_rounds.items()}
        single = gc["threads_1"]["batches_per_s"] or 1.0
        gc["gain_threads_64_over_1"] = round(gc["threads_64"]["batches_per_s"] / single, 1)
        gc["gain_tasks_64_over_1"] = round(gc["tasks_64"]["batches_per_s"] / single, 1)
        gc["gain_queue_tasks_64_over_1"] = round(gc["queue_tasks_64"]["batches_per_s"] / single, 1)
        if args.rounds > 1:
            gc["gain_threads_64_over_1_rounds"] = gains["threads"]
            gc["gain_tasks_64_over_1_rounds"] = gains["tasks"]
            gc["gain_queue_tasks_64_over_1_rounds"] = gains["queue_tasks"]
        print(
            f"[{name}] group commit gain: threads {gc['gain_threads_64_over_1']}x, "
            f"tasks {gc['gain_tasks_64_over_1']}x, broker path (submit_to) "
            f"{gc['gain_queue_tasks_64_over_1']}x (goal >= 20x); per round: threads {gains['threads']}, "
            f"tasks {gains['tasks']}, broker path {gains['queue_tasks']}"
        )
        results["group_commit_1k"] = gc

    if "read" in parts:
        results["read_1mib"] = bench_read(
            name, fresh("read", fsync="never", segment_bytes=256 << 20), big, args
        )
    if "recovery" in parts:
        results["recovery"] = bench_recovery(name, cls, root, args)
    return results


def bench_read(name: str, wal: Any, big: bytes, args: argparse.Namespace) -> dict[str, float]:
    """Sequential reads of a log written once (page cache warm: this measures the read path)."""
    try:
        for _ in range(args.read_mb * 1024 * 1024 // len(big)):
            wal.append(big)
        hw = wal.high_watermark
        t0 = time.perf_counter()
        offset = 0
        total = 0
        while offset < hw:
            data = wal.read(offset, 1 << 20)
            total += len(data)
            last_delta = struct.unpack_from(">i", data, len(data) - len(big) + 23)[0]
            offset = struct.unpack_from(">q", data, len(data) - len(big))[0] + last_delta + 1
        elapsed = time.perf_counter() - t0
    finally:
        wal.close()
    out = {"mb": round(total / 1e6, 1), "mb_per_s": round(total / elapsed / 1e6, 1)}
    print(f"[{name}] read 1 MiB chunks: {out}")
    return out


def bench_recovery(name: str, cls: Any, root: str, args: argparse.Namespace) -> dict[str, float]:
    """Recovery of a crashed log: no clean marker, recovery point 0, every segment scanned."""
    rec_path = os.path.join(root, f"{name}-recovery")
    shutil.rmtree(rec_path, ignore_errors=True)
    wal = cls(rec_path, fsync="never", queue_depth=100_000)
    chunk = make_batch(64 * 1024)
    for _ in range(args.recovery_mb * 1024 * 1024 // len(chunk)):
        wal.append(chunk)
    size = wal.size_bytes
    wal.close()
    os.unlink(os.path.join(rec_path, ".clean_shutdown"))
    with open(os.path.join(rec_path, "checkpoint"), "w", encoding="utf-8") as f:
        f.write("version 1\nlog_start_offset 0\nrecovery_point 0\n")
    t0 = time.perf_counter()
    wal = cls(rec_path, fsync="never")
    elapsed = time.perf_counter() - t0
    wal.close()
    shutil.rmtree(rec_path, ignore_errors=True)
    out = {
        "mb": round(size / 1e6, 1),
        "seconds": round(elapsed, 3),
        "mb_per_s": round(size / elapsed / 1e6, 1),
    }
    print(f"[{name}] recovery: {out}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--json", help="write results to this file")
    parser.add_argument("--impl", default="reference,native", help="comma-separated: reference, native")
    parser.add_argument("--dir", default=None, help="directory for the logs (a real disk: fsync is measured)")
    parser.add_argument("--seconds", type=float, default=2.0, help="duration of each append case (s)")
    parser.add_argument("--read-mb", type=int, default=256, help="size of the log read back (MiB)")
    parser.add_argument("--recovery-mb", type=int, default=1024, help="size of the recovered log (MiB)")
    parser.add_argument(
        "--quick", action="store_true", help="short run: 0.5 s cases, 32 MiB read and recovery"
    )
    parser.add_argument(
        "--rounds", type=int, default=1, help="runs of every append case, interleaved; the median is reported"
    )
    parser.add_argument(
        "--parts",
        default="append,group_commit,read,recovery",
        help="comma-separated: append, group_commit, read, recovery",
    )
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.read_mb, args.recovery_mb = 0.5, 32, 32
    if args.rounds < 1:
        parser.error("--rounds must be >= 1")
    unknown = set(args.parts.split(",")) - {"append", "group_commit", "read", "recovery"}
    if unknown:
        parser.error(f"unknown --parts: {', '.join(sorted(unknown))}")
    root = tempfile.mkdtemp(prefix="streamcore-bench-", dir=args.dir or os.getcwd())
    out: dict[str, Any] = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "settings": {k: v for k, v in vars(args).items() if k != "json"},
        "load_average_before": [round(x, 2) for x in os.getloadavg()],
        "results": {},
    }
    try:
        for name, cls in wal_classes(args.impl.split(",")).items():
            out["results"][name] = bench_impl(name, cls, root, args)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    out["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    print(
        f"load average (1, 5, 15 min): before {out['load_average_before']}, after {out['load_average_after']}"
    )
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(out, f, indent=2)
    print(json.dumps(out["results"], indent=2))


if __name__ == "__main__":
    main()
