"""The command line of ``streamcore bench compaction``: its arguments and the report
(the measuring is :mod:`streamcore.bench.compaction`)."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from typing import Any

from streamcore import _impl
from streamcore._version import __version__
from streamcore.bench.arguments import positive_float, positive_int, write_json

__all__ = ["add_compaction_command", "run_compaction"]

Subparsers = Any  # argparse's _SubParsersAction is private; only add_parser is used


def _ratio(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1], got {value}")
    return value


def add_compaction_command(targets: Subparsers) -> None:
    """``streamcore bench compaction``: cleaner MB/s, and produce MB/s with and without the cleaner."""
    p = targets.add_parser(
        "compaction",
        help="log cleaner throughput on a dirty log, and produce throughput while the cleaner runs",
        description="(1) Write a dirty log of --mb MiB (1 KiB values, 16-record batches, every key "
        "written ten times in random order, so 10%% of the records are live) and time the active "
        "cleaner core's offset-map and cleaning passes (MB/s of input). (2) Append --produce-mb MiB of "
        "the same kind of batches to a storage Log (fsync=never, --segment-mb segments) without and with "
        "a LogCleaner thread compacting it, alternating over --rounds rounds; report median MB/s of each "
        "and their ratio. MB = 10^6 bytes.",
    )
    p.add_argument(
        "--mb", type=positive_int, default=256, help="dirty log size, MiB (default 256; the issue's is 1024)"
    )
    p.add_argument(
        "--produce-mb",
        type=positive_int,
        default=256,
        help="MiB appended per produce run, held in memory (default 256)",
    )
    p.add_argument(
        "--segment-mb",
        type=positive_int,
        default=8,
        help="segment size of the produce runs, MiB (default 8)",
    )
    p.add_argument(
        "--rounds", type=positive_int, default=3, help="produce rounds, each without + with (default 3)"
    )
    p.add_argument("--codec", choices=("none", "gzip", "snappy", "lz4", "zstd"), default="none")
    p.add_argument(
        "--min-dirty-ratio",
        type=_ratio,
        default=0.1,
        help="the cleaner's min.cleanable.dirty.ratio in the produce runs (default 0.1)",
    )
    p.add_argument(
        "--backoff-ms",
        type=positive_int,
        default=20,
        help="the cleaner's wait between rounds in the produce runs, ms (default 20)",
    )
    p.add_argument("--dedupe-mb", type=positive_int, default=128, help="offset map memory, MiB (default 128)")
    p.add_argument(
        "--cleaner-io-mb-s",
        type=positive_float,
        default=None,
        help="the cleaner's io.max.bytes.per.second in the produce runs, MB/s (default unlimited)",
    )
    p.add_argument("--only", choices=("cleaner", "produce"), help="run one of the two measurements")
    p.add_argument("--dir", help="where the logs go (default: a temporary directory)")
    p.add_argument(
        "--timeout",
        type=positive_float,
        default=120.0,
        help="bound of each produce run, seconds (default 120)",
    )
    p.add_argument("--json", metavar="FILE", help="also write the figures as JSON to FILE ('-' for stdout)")
    p.set_defaults(handler=run_compaction)


def _mb_s(value: float | None) -> str:
    from streamcore.bench.table import format_figure

    return "-" if value is None else format_figure(value)


def _cpu(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _print_compaction(report: dict[str, Any]) -> None:
    from streamcore.bench.table import render_table

    impl = _impl.implementation()
    print(
        f"streamcore {__version__} compaction benchmark (cleaner: {impl.get('cleaner')}, "
        f"wal: {impl.get('wal')}); MB = 10^6 B; higher is faster"
    )
    c = report.get("cleaner")
    if c is not None:
        p = report["parameters"]
        print()
        print(
            f"cleaner throughput: {p['mb']} MiB dirty log ({c['segments']} segment(s), codec {c['codec']}), "
            f"{c['records']:,} records, {c['live_keys']:,} keys"
        )
        rows = [
            ["offset map", f"{c['map_s']:.3f}", _mb_s(c["map_mb_per_s"])],
            ["cleaning", f"{c['clean_s']:.3f}", _mb_s(c["clean_mb_per_s"])],
            ["both", f"{c['total_s']:.3f}", _mb_s(c["total_mb_per_s"])],
        ]
        print(render_table(["pass", "seconds", "MB/s of input"], rows))
        print(
            f"in {c['bytes_in'] / 1e6:,.1f} MB, out {c['bytes_out'] / 1e6:,.1f} MB; "
            f"{c['records_kept']:,} of {c['records_read']:,} records kept"
            + (" (offset map full: a partial pass)" if c["map_full"] else "")
        )
    r = report.get("produce")
    if r is not None:
        print()
        print(
            f"produce while cleaning: {r['produce_bytes'] / 1e6:,.1f} MB per run, "
            f"{r['segment_bytes'] >> 20} MiB segments, fsync=never, one appender; "
            f"medians of {r['rounds']} round(s); CPU s = all threads of this process, "
            "other CPU s = the rest of the machine meanwhile"
        )
        rows = [
            [
                "without cleaner",
                _mb_s(r["without_cleaner_mb_per_s"]),
                f"{r['without_cleaner_seconds']:.2f}",
                f"{r['without_cleaner_cpu_s']:.2f}",
                _cpu(r["without_cleaner_other_cpu_s"]),
                "",
                "",
            ],
            [
                "with cleaner",
                _mb_s(r["with_cleaner_mb_per_s"]),
                f"{r['with_cleaner_seconds']:.2f}",
                f"{r['with_cleaner_cpu_s']:.2f}",
                _cpu(r["with_cleaner_other_cpu_s"]),
                f"{r['cleaner_passes']:g}",
                f"{r['cleaner_bytes_read'] / 1e6:,.1f}",
            ],
        ]
        header = ["run", "MB/s", "seconds", "CPU s", "other CPU s", "cleaner passes", "MB cleaned"]
        print(render_table(header, rows))
        ratio = r["ratio"]
        print(f"with / without: {'-' if ratio is None else f'{ratio:.2f}'} (goal >= 0.90)")
        if any(run["truncated_by_timeout"] for run in r["runs"]):
            print("note: some runs stopped at --timeout before appending everything")
        if r["cleaner_failures"]:
            print(f"warning: {r['cleaner_failures']} cleaner pass(es) failed (see the log messages above)")


def run_compaction(args: argparse.Namespace) -> int:
    """Run ``streamcore bench compaction`` from parsed ``args``; print, write JSON; return 0."""
    from streamcore.bench import compaction
    from streamcore.bench.environment import collect_environment

    report: dict[str, Any] = {
        "benchmark": "compaction",
        "parameters": {
            "mb": args.mb,
            "produce_mb": args.produce_mb,
            "segment_mb": args.segment_mb,
            "rounds": args.rounds,
            "codec": args.codec,
            "min_dirty_ratio": args.min_dirty_ratio,
            "backoff_ms": args.backoff_ms,
            "dedupe_mb": args.dedupe_mb,
            "cleaner_io_mb_s": args.cleaner_io_mb_s,
            "only": args.only,
            "timeout_s": args.timeout,
        },
        "environment": collect_environment(),
    }
    with tempfile.TemporaryDirectory(prefix="streamcore-bench-compaction-", dir=args.dir) as root:
        if args.only in (None, "cleaner"):
            print(f"cleaner throughput on a {args.mb} MiB dirty log ...", file=sys.stderr)
            report["cleaner"] = compaction.run_cleaner_throughput(
                root, args.mb << 20, codec=args.codec, memory_bytes=args.dedupe_mb << 20
            )
        if args.only in (None, "produce"):
            print(
                f"produce {args.produce_mb} MiB without / with the cleaner, {args.rounds} round(s) ...",
                file=sys.stderr,
            )
            report["produce"] = compaction.run_produce_while_cleaning(
                root,
                args.produce_mb << 20,
                rounds=args.rounds,
                segment_bytes=args.segment_mb << 20,
                min_dirty_ratio=args.min_dirty_ratio,
                backoff_ms=args.backoff_ms,
                dedupe_bytes=args.dedupe_mb << 20,
                io_max_bytes_per_second=None if args.cleaner_io_mb_s is None else args.cleaner_io_mb_s * 1e6,
                codec=args.codec,
                timeout_s=args.timeout,
                progress=True,
            )
    if args.json == "-":
        print(json.dumps(report, indent=2, sort_keys=True))
        return 0
    if args.json:
        write_json(args.json, report)
    _print_compaction(report)
    return 0
