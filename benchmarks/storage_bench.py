"""Storage benchmarks: append throughput per fsync policy and concurrency, group commit, reads, recovery.

Run:  PYTHONPATH=python python benchmarks/storage_bench.py --json out.json
      (--impl reference,native picks the WAL twins; default: every one present.
       --quick for a short smoke run; --dir for where the logs go, default a
       temporary directory under the current directory: fsync must hit a real disk.)

Figures:
* append MB/s and batches/s for fsync never / interval / always x 1 / 8 / 64
  appender threads x 16 KiB batches;
* fsync=always with 1 KiB batches: 1 appender vs 64 threads vs 64 asyncio tasks
  (append_async), and the group-commit gain (64 / 1, goal >= 20x);
* sequential read MB/s (1 MiB reads);
* recovery time of a log after a crash (no clean marker, recovery point 0),
  default 1 GiB.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import struct
import sys
import tempfile
import threading
import time
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
    t0 = time.perf_counter()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    return _rates(sum(counts), len(batch), elapsed, before, wal.stats())


def run_tasks(wal: Any, batch: bytes, tasks: int, seconds: float) -> dict[str, float]:
    """``tasks`` asyncio tasks append through submit + call_soon_threadsafe (as Log.append_async)."""

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

    before = dict(wal.stats())
    t0 = time.perf_counter()
    count = asyncio.run(main())
    return _rates(count, len(batch), time.perf_counter() - t0, before, wal.stats())


def _rates(count: int, size: int, elapsed: float, before: dict, after: dict) -> dict[str, float]:
    groups = after["groups"] - before["groups"]
    return {
        "batches": count,
        "seconds": round(elapsed, 3),
        "batches_per_s": round(count / elapsed, 1),
        "mb_per_s": round(count * size / elapsed / 1e6, 2),
        "fsyncs": after["fsyncs"] - before["fsyncs"],
        "groups": groups,
        "batches_per_group": round(count / groups, 1) if groups else 0.0,
    }


def bench_impl(name: str, cls: Any, root: str, args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {}
    secs = args.seconds

    def fresh(tag: str, **kw: Any) -> Any:
        path = os.path.join(root, f"{name}-{tag}")
        shutil.rmtree(path, ignore_errors=True)
        return cls(path, queue_depth=100_000, **kw)

    big = make_batch(16 * 1024)
    append = {}
    for fsync in ("never", "interval", "always"):
        for appenders in (1, 8, 64):
            wal = fresh(f"append-{fsync}-{appenders}", fsync=fsync)
            try:
                append[f"{fsync}/{appenders}"] = run_threads(wal, big, appenders, secs)
            finally:
                wal.close()
            print(
                f"[{name}] append 16KiB fsync={fsync} appenders={appenders}: {append[f'{fsync}/{appenders}']}"
            )
    results["append_16k"] = append

    small = make_batch(1024)
    gc = {}
    for label, runner, n in (
        ("threads_1", run_threads, 1),
        ("threads_64", run_threads, 64),
        ("tasks_64", run_tasks, 64),
    ):
        wal = fresh(f"gc-{label}", fsync="always")
        try:
            gc[label] = runner(wal, small, n, secs)
        finally:
            wal.close()
        print(f"[{name}] fsync=always 1KiB {label}: {gc[label]}")
    single = gc["threads_1"]["batches_per_s"] or 1.0
    gc["gain_threads_64_over_1"] = round(gc["threads_64"]["batches_per_s"] / single, 1)
    gc["gain_tasks_64_over_1"] = round(gc["tasks_64"]["batches_per_s"] / single, 1)
    print(
        f"[{name}] group commit gain: threads {gc['gain_threads_64_over_1']}x, tasks {gc['gain_tasks_64_over_1']}x"
    )
    results["group_commit_1k"] = gc

    # Sequential reads of a log written once (page cache warm: this measures the read path).
    read_mb = args.read_mb
    wal = fresh("read", fsync="never", segment_bytes=256 << 20)
    try:
        for _ in range(read_mb * 1024 * 1024 // len(big)):
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
        results["read_1mib"] = {"mb": round(total / 1e6, 1), "mb_per_s": round(total / elapsed / 1e6, 1)}
        print(f"[{name}] read 1 MiB chunks: {results['read_1mib']}")
    finally:
        wal.close()

    # Recovery of a crashed log: no clean marker, recovery point 0, every segment scanned.
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
    results["recovery"] = {
        "mb": round(size / 1e6, 1),
        "seconds": round(elapsed, 3),
        "mb_per_s": round(size / elapsed / 1e6, 1),
    }
    print(f"[{name}] recovery: {results['recovery']}")
    return results


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
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.read_mb, args.recovery_mb = 0.5, 32, 32
    root = tempfile.mkdtemp(prefix="streamcore-bench-", dir=args.dir or os.getcwd())
    out: dict[str, Any] = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "settings": {k: v for k, v in vars(args).items() if k != "json"},
        "results": {},
    }
    try:
        for name, cls in wal_classes(args.impl.split(",")).items():
            out["results"][name] = bench_impl(name, cls, root, args)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(out, f, indent=2)
    print(json.dumps(out["results"], indent=2))


if __name__ == "__main__":
    main()
