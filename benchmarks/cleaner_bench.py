"""Cleaner benchmark: compaction throughput of each cleaner twin on a dirty log with 10% live keys.

Run:  PYTHONPATH=python python benchmarks/cleaner_bench.py [--mb 64] [--impl native,reference]
      [--reference-mb 16] [--codec none] [--json out.json] [--dir DIR]

A thin wrapper over ``streamcore.bench.compaction.run_cleaner_throughput`` (which
``streamcore bench compaction`` runs for the active twin only): here each twin named
in ``--impl`` is timed, the reference one on at most ``--reference-mb`` MiB, being
pure Python. The log: 1 KiB values in 16-record batches over 64 MiB segments, every
key written ten times in random order. Figures per twin: seconds and MB/s (10^6 B)
of input for the offset-map pass, the cleaning pass and both; input and output
bytes. Not a test: nothing is asserted about speed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
from types import ModuleType

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "python"))

from streamcore.bench.compaction import run_cleaner_throughput  # noqa: E402


def _module(name: str) -> ModuleType:
    if name == "native":
        from streamcore import _native  # type: ignore[attr-defined]

        return _native.cleaner  # type: ignore[no-any-return]
    if name == "reference":
        from streamcore._reference import cleaner

        return cleaner
    raise SystemExit(f"unknown --impl {name!r}: native or reference")


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
    results = []
    with tempfile.TemporaryDirectory(prefix="streamcore-cleaner-bench-", dir=args.dir) as root:
        for name in args.impl.split(","):
            size = args.mb if name == "native" else min(args.mb, args.reference_mb)
            res = run_cleaner_throughput(root, size << 20, codec=args.codec, cleaner=_module(name))
            res["input_mib"] = size
            print(json.dumps(res))
            results.append(res)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": platform.platform(), "codec": args.codec, "results": results}, f, indent=2)


if __name__ == "__main__":
    main()
