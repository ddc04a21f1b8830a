"""Cleaner benchmark: compaction throughput on a dirty log with 10% live keys.

Run:  PYTHONPATH=python python benchmarks/cleaner_bench.py [--mb 64] [--impl native,reference]
      [--codec none] [--json out.json] [--dir DIR]

The log is ``--mb`` MiB of 1 KiB-valued records in 16 KiB batches over 64 MiB
segments, keys drawn so that the latest record of each key is 10% of all records
(every key written ten times, in random order). Figures per twin: seconds and MB/s
of input for the offset-map pass and for the cleaning pass, and their total; the
output size. The reference twin runs on at most ``--reference-mb`` of it (default
16), being pure Python. Not a test: nothing is asserted about speed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import sys
import tempfile
import time
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "python"))

from streamcore._reference import cleaner as reference_cleaner  # noqa: E402
from streamcore._reference.record_batch import encode_batch  # noqa: E402

VALUE_BYTES = 1000
RECORDS_PER_BATCH = 16
SEGMENT_BYTES = 64 << 20
LIVE_FRACTION = 0.10


def write_log(d: str, total_bytes: int, codec: str, seed: int = 7) -> tuple[list[str], int]:
    """Segments of about ``total_bytes`` where 10% of the records are the latest of their key."""
    per_record = VALUE_BYTES + 30
    n = max(RECORDS_PER_BATCH, total_bytes // per_record)
    keys = int(n * LIVE_FRACTION)
    rnd = random.Random(seed)
    order = [i % keys for i in range(n)]
    rnd.shuffle(order)
    value = bytes(rnd.getrandbits(8) for _ in range(VALUE_BYTES))
    paths: list[str] = []
    f = None
    size = 0
    off = 0
    while off < n:
        if f is None or size >= SEGMENT_BYTES:
            if f is not None:
                f.close()
            p = os.path.join(d, f"{off:020d}.log")
            paths.append(p)
            f = open(p, "wb")
            size = 0
        chunk = order[off : off + RECORDS_PER_BATCH]
        b = encode_batch(
            [value] * len(chunk),
            [b"key-%08d" % k for k in chunk],
            None,
            [1_700_000_000_000 + off] * len(chunk),
            base_offset=off,
            compression=codec,
        )
        f.write(b)
        size += len(b)
        off += len(chunk)
    assert f is not None
    f.close()
    return paths, off


def bench(name: str, mod: Any, paths: list[str], end: int, out: str) -> dict[str, Any]:
    total = sum(os.path.getsize(p) for p in paths)
    t0 = time.perf_counter()
    m = mod.build_offset_map(paths, 0, end, memory_bytes=128 << 20)
    t1 = time.perf_counter()
    r = mod.clean_segments(paths, m, out_dir=out, now_ms=0, segment_bytes=1 << 30)
    t2 = time.perf_counter()
    mb = total / (1 << 20)
    return {
        "impl": name,
        "input_mb": round(mb, 1),
        "records": end,
        "map_entries": len(m),
        "map_s": round(t1 - t0, 3),
        "map_mb_s": round(mb / (t1 - t0), 1),
        "clean_s": round(t2 - t1, 3),
        "clean_mb_s": round(mb / (t2 - t1), 1),
        "total_mb_s": round(mb / (t2 - t0), 1),
        "output_mb": round(r.stats.bytes_written / (1 << 20), 1),
        "records_kept": r.stats.records_kept,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mb", type=int, default=64, help="dirty log size (MiB); the issue's figure is 1024")
    parser.add_argument("--reference-mb", type=int, default=16, help="log size for the reference twin (MiB)")
    parser.add_argument("--impl", default="native,reference")
    parser.add_argument("--codec", default="none", choices=["none", "gzip", "snappy", "lz4", "zstd"])
    parser.add_argument("--dir", default=None, help="where the logs go (default: a temporary directory)")
    parser.add_argument("--json", default=None, help="write the results here too")
    args = parser.parse_args()
    root = tempfile.mkdtemp(prefix="streamcore-cleaner-bench-", dir=args.dir)
    results = []
    try:
        for name in args.impl.split(","):
            if name == "native":
                from streamcore import _native  # type: ignore[attr-defined]

                mod = _native.cleaner
                size = args.mb
            else:
                mod = reference_cleaner
                size = min(args.mb, args.reference_mb)
            d = os.path.join(root, f"{name}-log")
            out = os.path.join(root, f"{name}-out")
            os.makedirs(d)
            os.makedirs(out)
            paths, end = write_log(d, size << 20, args.codec)
            res = bench(name, mod, paths, end, out)
            print(json.dumps(res))
            results.append(res)
            shutil.rmtree(d)
            shutil.rmtree(out)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": platform.platform(), "codec": args.codec, "results": results}, f, indent=2)


if __name__ == "__main__":
    main()
