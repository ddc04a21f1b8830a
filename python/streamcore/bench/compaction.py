"""``streamcore bench compaction``: cleaner throughput, and produce throughput while it cleans.

Two measurements (docs/benchmarks.md, "Compaction"):

* :func:`run_cleaner_throughput` writes a dirty log where every key was written
  ten times in random order (so 10% of the records are the latest of their key) and
  times the two passes of the cleaner core (``build_offset_map`` and
  ``clean_segments``, the active implementation unless another is given), in MB/s of
  input;
* :func:`run_produce_while_cleaning` appends the same kind of keyed batches to a
  :class:`~streamcore.storage.log.Log` once without and once with a
  :class:`~streamcore.storage.cleaner.LogCleaner` thread compacting it, for a few
  alternating rounds, and reports the median append rates and their ratio.

Both write the same records: :func:`iter_dirty_batches` is the only generator of them.
MB here is 10^6 bytes. Every loop is bounded by a count and the produce loop also by
a deadline.
"""

from __future__ import annotations

import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from types import ModuleType
from typing import Any, NamedTuple

from streamcore import _impl
from streamcore.codec import encode_batch

__all__ = [
    "LIVE_FRACTION",
    "RECORDS_PER_BATCH",
    "VALUE_BYTES",
    "DirtyLogShape",
    "dirty_log_shape",
    "iter_dirty_batches",
    "run_cleaner_throughput",
    "run_produce_while_cleaning",
    "write_dirty_log",
]

#: Bytes of every record value.
VALUE_BYTES = 1024
#: Records per batch.
RECORDS_PER_BATCH = 16
#: Share of the records that are the latest of their key (every key written 1/x times).
LIVE_FRACTION = 0.10
#: Bytes a record takes in an uncompressed batch (value, 12-byte key, record framing, header share).
_RECORD_BYTES_ESTIMATE = VALUE_BYTES + 12 + 10 + 61 // RECORDS_PER_BATCH
#: Segment size of the log written for the cleaner throughput figure (bytes).
THROUGHPUT_SEGMENT_BYTES = 64 << 20
#: First record timestamp of the generated batches (ms since the epoch); +1 per offset.
_BASE_TIMESTAMP_MS = 1_700_000_000_000
_MB = 1e6


class DirtyLogShape(NamedTuple):
    """How many records and distinct keys a dirty log of some size holds."""

    records: int
    #: Distinct keys: the records left after a full compaction.
    live_keys: int


def dirty_log_shape(total_bytes: int) -> DirtyLogShape:
    """The record and key counts :func:`iter_dirty_batches` uses for about ``total_bytes`` bytes."""
    if total_bytes < 1:
        raise ValueError(f"total_bytes must be >= 1, not {total_bytes}")
    records = max(RECORDS_PER_BATCH, total_bytes // _RECORD_BYTES_ESTIMATE)
    return DirtyLogShape(records, max(1, int(records * LIVE_FRACTION)))


def iter_dirty_batches(
    total_bytes: int, *, codec: str = "none", seed: int = 7
) -> Iterator[tuple[int, bytes]]:
    """(base offset, batch) pairs of about ``total_bytes`` of keyed records, 10% of them live.

    Keys ``key-%08d`` are each written ``1 / LIVE_FRACTION`` times (a few once more to
    round up), shuffled with ``seed``; every value is the same ``VALUE_BYTES`` random
    bytes (so compressed codecs see highly compressible data); batches of
    ``RECORDS_PER_BATCH`` records with base offsets 0, 16, 32, ... and timestamps
    ``1_700_000_000_000 + offset`` ms.
    """
    records, keys = dirty_log_shape(total_bytes)
    rnd = random.Random(seed)
    order = [i % keys for i in range(records)]
    rnd.shuffle(order)
    value = rnd.randbytes(VALUE_BYTES)
    for offset in range(0, records, RECORDS_PER_BATCH):
        chunk = order[offset : offset + RECORDS_PER_BATCH]
        batch = encode_batch(
            [value] * len(chunk),
            [b"key-%08d" % k for k in chunk],
            None,
            [_BASE_TIMESTAMP_MS + offset + i for i in range(len(chunk))],
            base_offset=offset,
            compression=codec,
        )
        yield offset, batch


def write_dirty_log(
    directory: str | os.PathLike[str],
    total_bytes: int,
    *,
    codec: str = "none",
    segment_bytes: int = THROUGHPUT_SEGMENT_BYTES,
    seed: int = 7,
) -> tuple[list[str], int]:
    """Write :func:`iter_dirty_batches` as ``<base:020>.log`` segment files of at most about ``segment_bytes``.

    Returns the segment paths in offset order and the end offset (last offset + 1).
    No indexes are written: the cleaner core reads only the ``.log`` files.
    """
    directory = os.fspath(directory)
    os.makedirs(directory, exist_ok=True)
    paths: list[str] = []
    fh = None
    size = 0
    try:
        for offset, batch in iter_dirty_batches(total_bytes, codec=codec, seed=seed):
            if fh is None or size >= segment_bytes:
                if fh is not None:
                    fh.close()
                paths.append(os.path.join(directory, f"{offset:020d}.log"))
                fh = open(paths[-1], "wb")  # closed at the next roll or in finally
                size = 0
            fh.write(batch)
            size += len(batch)
    finally:
        if fh is not None:
            fh.close()
    return paths, dirty_log_shape(total_bytes).records


def _impl_name(cleaner: ModuleType) -> str:
    return "reference" if cleaner.__name__.startswith("streamcore._reference") else "native"


def run_cleaner_throughput(
    directory: str | os.PathLike[str],
    total_bytes: int,
    *,
    codec: str = "none",
    cleaner: ModuleType | None = None,
    memory_bytes: int = 128 << 20,
    seed: int = 7,
) -> dict[str, Any]:
    """Write a dirty log of about ``total_bytes`` under ``directory`` and time one full cleaning of it.

    ``cleaner`` is a cleaner core module (default ``streamcore._impl.cleaner``);
    ``memory_bytes`` its offset map's size. The files are deleted afterwards. Returns
    seconds and MB/s of input for the map pass, the cleaning pass and both, the input
    and output sizes (bytes), and the record, key and kept-record counts.
    """
    mod = cleaner if cleaner is not None else _impl.cleaner
    work = tempfile.mkdtemp(prefix="cleaner-throughput-", dir=directory)
    try:
        log_dir = os.path.join(work, "log")
        out_dir = os.path.join(work, "out")
        os.makedirs(out_dir)
        t_write = time.perf_counter()
        paths, end = write_dirty_log(log_dir, total_bytes, codec=codec, seed=seed)
        write_s = time.perf_counter() - t_write
        bytes_in = sum(os.path.getsize(p) for p in paths)
        t0 = time.perf_counter()
        offset_map = mod.build_offset_map(paths, 0, end, memory_bytes=memory_bytes)
        t1 = time.perf_counter()
        result = mod.clean_segments(paths, offset_map, out_dir=out_dir, now_ms=0, segment_bytes=1 << 30)
        t2 = time.perf_counter()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    map_s, clean_s = t1 - t0, t2 - t1
    stats = result.stats
    return {
        "impl": _impl_name(mod),
        "codec": codec,
        "segments": len(paths),
        "bytes_in": bytes_in,
        "bytes_out": stats.bytes_written,
        "records": end,
        "live_keys": dirty_log_shape(total_bytes).live_keys,
        "map_entries": len(offset_map),
        "map_full": bool(offset_map.full),
        "records_read": stats.records_read,
        "records_kept": stats.records_kept,
        "write_s": write_s,
        "map_s": map_s,
        "clean_s": clean_s,
        "total_s": map_s + clean_s,
        "map_mb_per_s": bytes_in / _MB / map_s if map_s > 0 else None,
        "clean_mb_per_s": bytes_in / _MB / clean_s if clean_s > 0 else None,
        "total_mb_per_s": bytes_in / _MB / (map_s + clean_s) if map_s + clean_s > 0 else None,
    }


def _machine_busy_cpu_s() -> float | None:
    """CPU seconds all processors have spent busy since boot (Linux ``/proc/stat``); None elsewhere."""
    try:
        with open("/proc/stat", encoding="ascii") as fh:
            fields = fh.readline().split()
        ticks = [int(x) for x in fields[1:]]
        # user nice system idle iowait irq softirq steal ...: idle and iowait are not busy.
        busy = sum(ticks[:8]) - ticks[3] - ticks[4]
        return busy / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def _produce_once(
    directory: str,
    batches: list[bytes],
    *,
    with_cleaner: bool,
    segment_bytes: int,
    min_dirty_ratio: float,
    backoff_ms: int,
    dedupe_bytes: int,
    io_max_bytes_per_second: float | None,
    timeout_s: float,
) -> dict[str, Any]:
    """Append ``batches`` to a new Log in ``directory`` (a cleaner thread running or not); then delete it."""
    from streamcore.storage.cleaner import CompactionSettings, LogCleaner
    from streamcore.storage.log import Log

    log = Log(directory, fsync="never", segment_bytes=segment_bytes, lock=False)
    cleaner = None
    settings = CompactionSettings(min_cleanable_dirty_ratio=min_dirty_ratio, segment_bytes=segment_bytes)
    total = sum(map(len, batches))
    appended = 0
    try:
        if with_cleaner:
            cleaner = LogCleaner(
                lambda: [("bench", log)],
                lambda _key: settings,
                dedupe_buffer_bytes=dedupe_bytes,
                io_max_bytes_per_second=io_max_bytes_per_second,
                backoff_ms=backoff_ms,
            )
            cleaner.start()
        deadline = time.monotonic() + timeout_s
        cpu0 = time.process_time()
        busy0 = _machine_busy_cpu_s()
        t0 = time.perf_counter()
        for batch in batches:
            log.append(batch)
            appended += len(batch)
            if time.monotonic() > deadline:
                break
        elapsed = time.perf_counter() - t0
        cpu_s = time.process_time() - cpu0
        busy1 = _machine_busy_cpu_s()
        segments_at_end = log.segment_count
        during = None
        if cleaner is not None:
            s = cleaner.stats
            during = (s.passes, s.bytes_read, s.bytes_written, s.segments_replaced)
    finally:
        stop_s = 0.0
        if cleaner is not None:
            t_stop = time.perf_counter()
            cleaner.stop()
            stop_s = time.perf_counter() - t_stop
        log.close()
    run: dict[str, Any] = {
        "with_cleaner": with_cleaner,
        "bytes": appended,
        "seconds": elapsed,
        "mb_per_s": appended / _MB / elapsed if elapsed > 0 else None,
        "truncated_by_timeout": appended < total,
        # CPU of every thread of this process (appender, WAL writer, cleaner) over the run.
        "process_cpu_s": cpu_s,
        # Busy CPU of everything else on the machine meanwhile: on a shared machine, the
        # sign that a run competed with other work (None where /proc/stat is missing).
        "other_cpu_s": None if busy0 is None or busy1 is None else max(0.0, busy1 - busy0 - cpu_s),
        "segments_at_end": segments_at_end,
    }
    if cleaner is not None and during is not None:
        s = cleaner.stats
        run.update(
            cleaner_passes=during[0],
            cleaner_bytes_read=during[1],
            cleaner_bytes_written=during[2],
            cleaner_segments_replaced=during[3],
            cleaner_passes_abandoned=s.passes_abandoned,
            cleaner_failures=s.failures,
            cleaner_stop_s=stop_s,
        )
    return run


def _median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def run_produce_while_cleaning(
    directory: str | os.PathLike[str],
    produce_bytes: int,
    *,
    rounds: int = 3,
    segment_bytes: int = 8 << 20,
    min_dirty_ratio: float = 0.1,
    backoff_ms: int = 20,
    dedupe_bytes: int = 128 << 20,
    io_max_bytes_per_second: float | None = None,
    codec: str = "none",
    timeout_s: float = 120.0,
    progress: bool = False,
) -> dict[str, Any]:
    """Append rate of a Log without and with a LogCleaner compacting it, medians over ``rounds``.

    Each run appends the same pre-encoded batches (about ``produce_bytes``, from
    :func:`iter_dirty_batches`, held in memory) one ``Log.append`` at a time to a new
    Log (fsync="never", ``segment_bytes`` segments) under ``directory``, which is
    deleted afterwards. With the cleaner, a :class:`LogCleaner` thread polls every
    ``backoff_ms`` and cleans when the dirty ratio reaches ``min_dirty_ratio``, with an
    offset map of ``dedupe_bytes`` and its reads and writes limited to
    ``io_max_bytes_per_second`` (bytes/s; None: unlimited). The two runs alternate,
    the order swapping each round; between runs the log is deleted and ``os.sync()``
    called, untimed. A run stops early after ``timeout_s`` seconds
    (``truncated_by_timeout``).

    Returns the per-run figures (``runs``: MB/s, seconds, process CPU seconds, busy CPU
    seconds of the rest of the machine (``other_cpu_s``), and for
    the cleaner runs its passes and bytes read and written while the appends ran), the
    median MB/s, seconds and CPU seconds of each kind, their MB/s ratio (with /
    without), and the median cleaner passes and bytes read and written during a run.
    """
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, not {rounds}")
    if not hasattr(_impl.wal.WalLog, "replace_segments"):
        raise RuntimeError(
            "the active WAL has no replace_segments (rebuild the native extension with "
            "tools/dev_build.sh rust, or set STREAMCORE_NO_EXTENSIONS=1)"
        )
    batches = [batch for _, batch in iter_dirty_batches(produce_bytes, codec=codec)]
    runs: list[dict[str, Any]] = []
    for round_no in range(rounds):
        order = (False, True) if round_no % 2 == 0 else (True, False)
        for with_cleaner in order:
            path = tempfile.mkdtemp(prefix="produce-", dir=directory)
            try:
                run = _produce_once(
                    path,
                    batches,
                    with_cleaner=with_cleaner,
                    segment_bytes=segment_bytes,
                    min_dirty_ratio=min_dirty_ratio,
                    backoff_ms=backoff_ms,
                    dedupe_bytes=dedupe_bytes,
                    io_max_bytes_per_second=io_max_bytes_per_second,
                    timeout_s=timeout_s,
                )
            finally:
                shutil.rmtree(path, ignore_errors=True)
                # Outside the timed window: the next run starts without this one's
                # writeback (and, on a discard-mounted file system, its discards) pending.
                os.sync()
            run["round"] = round_no
            runs.append(run)
            if progress:
                what = "with cleaner   " if with_cleaner else "without cleaner"
                extra = f", {run['cleaner_passes']} pass(es)" if with_cleaner else ""
                mb_s = run["mb_per_s"] or 0.0
                print(f"  round {round_no + 1}/{rounds} {what}: {mb_s:,.0f} MB/s{extra}", file=sys.stderr)
    without = [r for r in runs if not r["with_cleaner"]]
    with_ = [r for r in runs if r["with_cleaner"]]
    median_without = _median([r["mb_per_s"] for r in without])
    median_with = _median([r["mb_per_s"] for r in with_])
    return {
        "produce_bytes": sum(map(len, batches)),
        "batches": len(batches),
        "rounds": rounds,
        "segment_bytes": segment_bytes,
        "runs": runs,
        "without_cleaner_mb_per_s": median_without,
        "with_cleaner_mb_per_s": median_with,
        "ratio": median_with / median_without if median_with and median_without else None,
        "without_cleaner_cpu_s": _median([r["process_cpu_s"] for r in without]),
        "with_cleaner_cpu_s": _median([r["process_cpu_s"] for r in with_]),
        "without_cleaner_other_cpu_s": _median([r["other_cpu_s"] for r in without]),
        "with_cleaner_other_cpu_s": _median([r["other_cpu_s"] for r in with_]),
        "without_cleaner_seconds": _median([r["seconds"] for r in without]),
        "with_cleaner_seconds": _median([r["seconds"] for r in with_]),
        "cleaner_passes": _median([r["cleaner_passes"] for r in with_]),
        "cleaner_bytes_read": _median([r["cleaner_bytes_read"] for r in with_]),
        "cleaner_bytes_written": _median([r["cleaner_bytes_written"] for r in with_]),
        "cleaner_failures": sum(r["cleaner_failures"] for r in with_),
        "cleaner_passes_abandoned": sum(r["cleaner_passes_abandoned"] for r in with_),
    }
