"""Compaction: the cleaner core's passes on a dirty log with 10% live keys, and Log
append throughput with and without a LogCleaner thread compacting the log.

``CleanerThroughput`` is parametrized over the cleaner twins (``native``:
``streamcore._native.cleaner``; ``reference``: the pure-Python one); a native module
that is not built makes ``setup`` raise NotImplementedError, which asv reports as
skipped. ``ProduceWhileCleaning`` uses the active implementations (set
STREAMCORE_NO_EXTENSIONS=1 for the reference ones). The full-size figures of the
issue (1 GiB dirty log, a longer produce) come from ``streamcore bench compaction``
(docs/benchmarks.md); these are the same measurements at sizes an asv run can repeat.
"""

from __future__ import annotations

import importlib
import os
import shutil
import tempfile
from types import ModuleType
from typing import Any

from streamcore.bench.compaction import run_produce_while_cleaning, write_dirty_log

IMPLEMENTATIONS = ["native", "reference"]
#: Dirty log size per twin (MiB): the reference twin is pure Python.
LOG_MIB = {"native": 64, "reference": 8}


def _cleaner(impl: str) -> ModuleType:
    if impl == "reference":
        return importlib.import_module("streamcore._reference.cleaner")
    try:
        native = importlib.import_module("streamcore._native")
    except ImportError as exc:
        raise NotImplementedError("streamcore._native is not built") from exc
    module = getattr(native, "cleaner", None)
    if module is None:
        raise NotImplementedError("streamcore._native has no cleaner")
    return module


class CleanerThroughput:
    """Offset map and cleaning pass over 64 MiB (native) / 8 MiB (reference) of 1 KiB records."""

    params = IMPLEMENTATIONS
    param_names = ["impl"]
    timeout = 300
    number = 1
    repeat = 3

    def setup(self, impl: str) -> None:
        self.cleaner = _cleaner(impl)
        self.path = tempfile.mkdtemp(prefix="asv-cleaner-", dir=os.getcwd())
        self.paths, self.end = write_dirty_log(os.path.join(self.path, "log"), LOG_MIB[impl] << 20)
        self.bytes_in = sum(os.path.getsize(p) for p in self.paths)
        self.offset_map = self.cleaner.build_offset_map(self.paths, 0, self.end)
        self.runs = 0

    def teardown(self, impl: str) -> None:
        shutil.rmtree(self.path, ignore_errors=True)

    def _out_dir(self) -> str:
        # A fresh output directory per call: no run overwrites another's files.
        self.runs += 1
        out = os.path.join(self.path, f"out-{self.runs}")
        os.makedirs(out)
        return out

    def time_build_offset_map(self, impl: str) -> None:
        self.cleaner.build_offset_map(self.paths, 0, self.end)

    def time_clean_segments(self, impl: str) -> None:
        self.cleaner.clean_segments(self.paths, self.offset_map, out_dir=self._out_dir(), now_ms=0)

    def track_mb_per_s(self, impl: str) -> float:
        """Both passes, MB (10^6 B) of input per second."""
        import time

        t0 = time.perf_counter()
        offset_map = self.cleaner.build_offset_map(self.paths, 0, self.end)
        self.cleaner.clean_segments(self.paths, offset_map, out_dir=self._out_dir(), now_ms=0)
        return self.bytes_in / 1e6 / (time.perf_counter() - t0)

    track_mb_per_s.unit = "MB/s"  # type: ignore[attr-defined]


class ProduceWhileCleaning:
    """64 MiB appended to a Log (fsync=never, 4 MiB segments) without and with a LogCleaner
    running; two alternating rounds, medians. One measurement feeds the three figures."""

    timeout = 600

    def setup_cache(self) -> dict[str, Any]:
        path = tempfile.mkdtemp(prefix="asv-produce-", dir=os.getcwd())
        try:
            return run_produce_while_cleaning(
                path, 64 << 20, rounds=2, segment_bytes=4 << 20, timeout_s=120.0
            )
        finally:
            shutil.rmtree(path, ignore_errors=True)

    def track_without_cleaner_mb_per_s(self, report: dict[str, Any]) -> float:
        return float(report["without_cleaner_mb_per_s"])

    track_without_cleaner_mb_per_s.unit = "MB/s"  # type: ignore[attr-defined]

    def track_with_cleaner_mb_per_s(self, report: dict[str, Any]) -> float:
        return float(report["with_cleaner_mb_per_s"])

    track_with_cleaner_mb_per_s.unit = "MB/s"  # type: ignore[attr-defined]

    def track_ratio_with_to_without(self, report: dict[str, Any]) -> float:
        return float(report["ratio"])

    track_ratio_with_to_without.unit = "ratio"  # type: ignore[attr-defined]

    def track_cleaner_passes(self, report: dict[str, Any]) -> float:
        return float(report["cleaner_passes"])

    track_cleaner_passes.unit = "passes"  # type: ignore[attr-defined]
