"""``streamcore bench``: the argument definitions and run functions of every benchmark target.

:func:`add_bench_command` is what the ``streamcore`` command wires in; each target is
one ``add_<target>_command(targets)`` function listed in :data:`TARGETS` that adds its
parser and sets ``handler`` (a function taking the parsed arguments and returning the
exit status). The measuring itself lives in :mod:`streamcore.bench.codec`,
:mod:`streamcore.bench.broker`, :mod:`streamcore.bench.compaction` and
:mod:`streamcore.bench.tls`; this module only parses options, starts what a run needs
and prints or writes the figures. The larger targets have command-line modules of their
own: ``transactions_cli``, ``load_cli`` and ``compare``.

Nothing here imports :mod:`streamcore.cli`: the dependency runs one way, from the
command to the bench package.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
from collections.abc import Callable, Iterator
from typing import Any

from streamcore import _impl
from streamcore._version import __version__
from streamcore.bench import broker
from streamcore.bench.arguments import positive_float, positive_int

__all__ = [
    "TARGETS",
    "add_bench_command",
    "add_broker_arguments",
    "add_broker_commands",
    "add_codec_command",
    "add_compaction_command",
    "add_load_command",
    "add_tls_command",
    "add_transactions_command",
    "run_broker_workload",
    "run_codec",
    "run_compaction",
    "run_tls",
]

Subparsers = Any  # argparse's _SubParsersAction is private; only add_parser is used
TargetAdder = Callable[[Subparsers], None]


def add_bench_command(subparsers: Subparsers) -> None:
    """``streamcore bench TARGET``: one parser per target in :data:`TARGETS`."""
    p = subparsers.add_parser("bench", help="run a benchmark", description="Run a benchmark.")
    targets = p.add_subparsers(dest="bench_target", metavar="TARGET", required=True)
    for add in TARGETS:
        add(targets)


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _write_json(path: str, report: dict[str, Any]) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(report, fh, indent=2, sort_keys=True)
        fh.write("\n")


# --- codec ------------------------------------------------------------------------


def add_codec_command(targets: Subparsers) -> None:
    """``streamcore bench codec``: CRC-32C, record batch v2 and varint throughput."""
    p = targets.add_parser(
        "codec",
        help="CRC-32C, record batch encode/decode and varints: native vs reference vs kafka-python",
        description="Time CRC-32C, Kafka record batch v2 encode/decode (each compression codec) and "
        "varints with streamcore's native and reference code, kafka-python and the crc32c "
        "package, and print one comparison table.",
    )
    p.add_argument("--records", type=positive_int, default=1000, help="records per batch (default 1000)")
    p.add_argument(
        "--value-size", type=_non_negative_int, default=100, help="bytes per record value (default 100)"
    )
    p.add_argument(
        "--repeat", type=positive_int, default=None, help="timed runs per figure, best kept (default 5)"
    )
    p.add_argument("--json", metavar="FILE", help="also write the figures as JSON to FILE ('-' for stdout)")
    p.add_argument(
        "--quick", action="store_true", help="very short runs: checks that everything works, noisy figures"
    )
    p.set_defaults(handler=run_codec)


_CODEC_FOOTNOTES = (
    "All columns decode the same bytes (encoded by native, else reference, else kafka-python).",
    "decode (objects) = decode the batch and read every record's value; the kafka-python column also "
    "runs validate_crc(), as its consumer does by default.",
    "gzip uses each library's default level: streamcore 6, kafka-python 9.",
    "kafka-python computes CRC-32C with the crc32c package when it is installed.",
    "- = no such operation in that library.",
)


def run_codec(args: argparse.Namespace) -> int:
    """Run the codec comparison, print the table, optionally write JSON; exit status 0."""
    # The codec cases pull in every implementation and kafka-python: only when this target runs.
    from streamcore.bench import codec, timing
    from streamcore.bench.environment import collect_environment
    from streamcore.bench.table import render_codec_table
    from streamcore.bench.workload import make_codec_workload

    base = timing.QUICK if args.quick else timing.STANDARD
    policy = timing.TimingPolicy(base.min_run_seconds, args.repeat or base.runs)
    workload = make_codec_workload(args.records, args.value_size)
    cases = codec.build_codec_cases(workload)
    to_stdout = args.json == "-"
    print(
        f"timing {len(cases)} operations: best of {policy.runs} run(s) of >= {policy.min_run_seconds:g} s ...",
        file=sys.stderr,
    )
    results = codec.run_codec_benchmark(cases, policy)
    report = {
        "benchmark": "codec",
        "parameters": {
            "records": args.records,
            "value_size": args.value_size,
            "runs": policy.runs,
            "min_run_seconds": policy.min_run_seconds,
            "quick": args.quick,
        },
        "columns": {c: codec.column_title(c) for c in codec.COLUMNS},
        "environment": collect_environment(),
        "rows": results,
    }
    if args.json and not to_stdout:
        _write_json(args.json, report)
    if to_stdout:
        print(json.dumps(report, indent=2, sort_keys=True))
        return 0
    impl = _impl.implementation()
    print(
        f"streamcore {__version__} codec benchmark: {args.records} records x {args.value_size} B "
        f"values (+12 B keys) per batch; best of {policy.runs} run(s) of >= {policy.min_run_seconds:g} s; "
        "higher is faster"
    )
    print(
        "active: " + ", ".join(f"{k}={v}" for k, v in impl.items() if k in ("crc32c", "record_batch", "wire"))
    )
    print()
    print(render_codec_table(results, codec.COLUMNS, codec.RATIOS, codec.column_title))
    print()
    for note in _CODEC_FOOTNOTES:
        print(f"  {note}")
    return 0


# --- produce, consume ---------------------------------------------------------------

#: One-line help of each broker target, for the ``streamcore bench`` parser.
_BROKER_HELP = {
    "produce": "produce throughput and delivery latency against a broker (confluent-kafka as load client)",
    "consume": "consume throughput, group join time and end-to-end latency (confluent-kafka as load client)",
}
_BROKER_DESCRIPTION = {
    "produce": "Produce --messages values of --size bytes with confluent-kafka, flush, and report msgs/s, "
    "MB/s and the p50/p99 delivery latency. Without --bootstrap, a streamcore broker is started "
    "in a subprocess on a temporary directory and stopped afterwards.",
    "consume": "Join a new consumer group and read --messages records with confluent-kafka; report "
    "msgs/s and MB/s from subscribe to the last record (group join included), the time to the "
    "first record, and p50/p99 of receipt time minus record timestamp. Without --topic, a new "
    "topic is filled first. Without --bootstrap, a streamcore broker is started in a subprocess.",
}


def add_broker_arguments(parser: argparse.ArgumentParser, workload: str = "produce") -> None:
    """Add the options of ``streamcore bench <workload>`` (``produce`` or ``consume``) to ``parser``."""
    if workload not in broker.WORKLOADS:
        raise ValueError(f"workload must be one of {broker.WORKLOADS}, got {workload!r}")
    parser.set_defaults(broker_workload=workload)
    parser.add_argument(
        "--bootstrap",
        metavar="HOST:PORT",
        help="broker to load (default: start a streamcore broker in a subprocess on a temporary "
        "directory and stop it afterwards)",
    )
    parser.add_argument("--messages", type=positive_int, default=100_000, help="messages (default 100000)")
    parser.add_argument("--size", type=_non_negative_int, default=100, help="value bytes (default 100)")
    parser.add_argument("--acks", choices=broker.ACKS, default="1", help="producer acks (default 1)")
    parser.add_argument("--linger-ms", type=float, default=5.0, help="producer linger.ms (default 5)")
    parser.add_argument("--compression", choices=broker.COMPRESSIONS, default="none", help="(default none)")
    parser.add_argument(
        "--partitions", type=positive_int, default=1, help="partitions of a new topic (default 1)"
    )
    if workload == "produce":
        parser.add_argument("--topic", help="topic to produce to (default: a new topic bench-<hex>)")
    else:
        parser.add_argument(
            "--topic",
            help="topic to read, holding at least --messages records (default: a new topic, "
            "filled first with --messages records by the producer)",
        )
        parser.add_argument("--group", help="consumer group (default: a new group bench-<hex>)")
    parser.add_argument(
        "--fsync",
        choices=("always", "interval", "never"),
        default="interval",
        help="fsync policy of the broker started when --bootstrap is omitted (default interval)",
    )
    parser.add_argument(
        "--timeout", type=float, default=300.0, help="bound of each phase, seconds (default 300)"
    )
    parser.add_argument(
        "--json", metavar="FILE", help="also write the figures as JSON to FILE ('-' for stdout)"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")


def add_broker_commands(targets: Subparsers) -> None:
    """``streamcore bench produce|consume``: broker throughput and latency (confluent-kafka load).

    Each parser's ``handler`` is :func:`run_broker_workload`.
    """
    for workload in broker.WORKLOADS:
        p = targets.add_parser(
            workload, help=_BROKER_HELP[workload], description=_BROKER_DESCRIPTION[workload]
        )
        add_broker_arguments(p, workload)
        p.set_defaults(handler=run_broker_workload)


@contextlib.contextmanager
def _bootstrap(args: argparse.Namespace, report: dict[str, Any]) -> Iterator[str]:
    """``args.bootstrap``, or that of a streamcore broker process started for this run."""
    if args.bootstrap:
        report["broker"] = {"kind": "external", "bootstrap": args.bootstrap}
        yield args.bootstrap
        return
    from streamcore.bench.processes import temporary_streamcore_broker

    with temporary_streamcore_broker(fsync=args.fsync) as server:
        print(f"started streamcore broker (fsync={args.fsync}) on {server.bootstrap}", file=sys.stderr)
        yield server.bootstrap
        report["broker"] = {
            "kind": "streamcore subprocess",
            "bootstrap": server.bootstrap,
            "fsync": args.fsync,
            "command": server.argv,
            "peak_rss_bytes": server.peak_rss_bytes(),
        }


def run_broker_workload(args: argparse.Namespace) -> int:
    """Run ``streamcore bench produce|consume`` from parsed ``args``; print, write JSON; return 0."""
    from streamcore.bench.environment import collect_environment

    workload = args.broker_workload
    progress = False if args.no_progress else None
    report: dict[str, Any] = {"benchmark": workload, "environment": collect_environment()}
    with _bootstrap(args, report) as bootstrap:
        topic = args.topic
        if topic is None:
            topic = broker.new_name("bench")
            broker.create_topic(bootstrap, topic, args.partitions, min(args.timeout, 60.0))
        produce_args: dict[str, Any] = dict(
            bootstrap=bootstrap,
            messages=args.messages,
            size=args.size,
            acks=args.acks,
            linger_ms=args.linger_ms,
            compression=args.compression,
            topic=topic,
            progress=progress,
            timeout_s=args.timeout,
        )
        if workload == "produce":
            result = broker.run_produce(**produce_args)
        else:
            if args.topic is None:
                report["preload"] = broker.run_produce(delivery_reports=False, **produce_args)
            result = broker.run_consume(
                bootstrap, topic, args.messages, args.group, progress=progress, timeout_s=args.timeout
            )
    report["result"] = result
    if args.json == "-":
        print(json.dumps(report, indent=2, sort_keys=True))
        return 0
    if args.json:
        _write_json(args.json, report)
    what = f"{args.messages:,} x {args.size} B"
    if workload == "produce":
        what += f", acks={args.acks}, linger.ms={args.linger_ms:g}, compression={args.compression}"
    print(f"{workload} {what} on {bootstrap} ({report['broker']['kind']}), topic {topic}")
    print(broker.format_result(result))
    rss = report["broker"].get("peak_rss_bytes")
    if rss:
        print(f"broker peak RSS: {rss / 2**20:.1f} MiB")
    return 0


# --- compaction -------------------------------------------------------------------------


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
        _write_json(args.json, report)
    _print_compaction(report)
    return 0


# --- tls ------------------------------------------------------------------------------------


def add_tls_command(targets: Subparsers) -> None:
    """``streamcore bench tls``: produce and consume MB/s over TLS vs plaintext, broker CPU."""
    p = targets.add_parser(
        "tls",
        help="produce and consume throughput over TLS (and SASL_SSL) vs plaintext on one streamcore broker",
        description="Start a streamcore broker with a PLAINTEXT and an SSL listener (and with --sasl a "
        "SASL_SSL/PLAIN one), its certificate made at run time with `cryptography` in a temporary "
        "directory. Through each listener in turn, for --rounds rounds: produce --messages values of "
        "--size bytes to a new topic with confluent-kafka, then read them back with a new group. "
        "Report MB/s, and the broker's and the load client's CPU seconds, per phase (medians), as a "
        "markdown table.",
    )
    p.add_argument("--messages", type=positive_int, default=100_000, help="messages (default 100000)")
    p.add_argument("--size", type=_non_negative_int, default=1000, help="value bytes (default 1000)")
    p.add_argument("--acks", choices=broker.ACKS, default="1", help="producer acks (default 1)")
    p.add_argument("--linger-ms", type=float, default=5.0, help="producer linger.ms (default 5)")
    p.add_argument("--rounds", type=positive_int, default=3, help="rounds over every listener (default 3)")
    p.add_argument("--sasl", action="store_true", help="also measure a SASL_SSL listener (PLAIN)")
    p.add_argument(
        "--fsync",
        choices=("always", "interval", "never"),
        default="interval",
        help="fsync policy of the broker (default interval)",
    )
    p.add_argument(
        "--timeout", type=positive_float, default=300.0, help="bound of each phase, s (default 300)"
    )
    p.add_argument("--json", metavar="FILE", help="also write the figures as JSON to FILE ('-' for stdout)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    p.set_defaults(handler=run_tls)


def run_tls(args: argparse.Namespace) -> int:
    """Run ``streamcore bench tls`` from parsed ``args``; print, write JSON; return 0."""
    from streamcore.bench import tls
    from streamcore.bench.environment import collect_environment

    report: dict[str, Any] = {
        "benchmark": "tls",
        "parameters": {
            "messages": args.messages,
            "size": args.size,
            "acks": args.acks,
            "linger_ms": args.linger_ms,
            "rounds": args.rounds,
            "sasl": args.sasl,
            "fsync": args.fsync,
            "timeout_s": args.timeout,
        },
        "environment": collect_environment(),
    }
    with tempfile.TemporaryDirectory(prefix="streamcore-bench-tls-") as work:
        certs = tls.make_certificates(f"{work}/certs")
        with tls.tls_broker(work, certs, sasl=args.sasl, fsync=args.fsync) as (server, addresses):
            print(
                "started streamcore broker: " + ", ".join(f"{p} {a}" for p, a in addresses.items()),
                file=sys.stderr,
            )
            report["tls"] = tls.probe_tls(addresses["SSL"], certs)
            result = tls.run_tls_benchmark(
                server,
                addresses,
                certs,
                messages=args.messages,
                size=args.size,
                acks=args.acks,
                linger_ms=args.linger_ms,
                rounds=args.rounds,
                timeout_s=args.timeout,
                progress=False if args.no_progress else None,
            )
            report["broker"] = {"command": server.argv, "peak_rss_bytes": server.peak_rss_bytes()}
    report.update(result)
    if args.json == "-":
        print(json.dumps(report, indent=2, sort_keys=True))
        return 0
    if args.json:
        _write_json(args.json, report)
    print(
        f"streamcore {__version__} TLS benchmark: {args.messages:,} x {args.size} B per phase, "
        f"acks={args.acks}, linger.ms={args.linger_ms:g}, fsync={args.fsync}, confluent-kafka; "
        f"medians of {args.rounds} round(s); consume includes the group join; MB = 10^6 B"
    )
    print(f"TLS chosen for a Python client: {report['tls']['version']} {report['tls']['cipher']}")
    print()
    print(tls.render_tls_rows(report["rows"]))
    return 0


def add_compare_command(targets: Any) -> None:
    """Add ``streamcore bench compare`` (streamcore vs Apache Kafka, noida-db, Tansu);
    its module is imported only here, so the command's start-up does not pay for it."""
    from streamcore.bench.compare import add_compare_command as add

    add(targets)


def add_transactions_command(targets: Any) -> None:
    """Add ``streamcore bench transactions`` (transactional vs idempotent produce, commit
    latency; :mod:`streamcore.bench.transactions_cli`)."""
    from streamcore.bench.transactions_cli import add_transactions_command as add

    add(targets)


def add_load_command(targets: Any) -> None:
    """Add ``streamcore bench load`` (a fixed-rate load generator with live latency figures);
    its module is imported only here, so the command's start-up does not pay for it."""
    from streamcore.bench.load_cli import add_load_command as add

    add(targets)


#: Targets of ``streamcore bench``, in help order.
TARGETS: list[TargetAdder] = [
    add_codec_command,
    add_broker_commands,
    add_load_command,
    add_compaction_command,
    add_transactions_command,
    add_tls_command,
    add_compare_command,
]
