"""``streamcore bench``: the argument definitions and run functions of every benchmark target.

:func:`add_bench_command` is what the ``streamcore`` command wires in; each target is
one ``add_<target>_command(targets)`` function listed in :data:`TARGETS` that adds its
parser and sets ``handler`` (a function taking the parsed arguments and returning the
exit status). The measuring itself lives in :mod:`streamcore.bench.codec`,
:mod:`streamcore.bench.broker` and :mod:`streamcore.bench.tls`; this module only parses
options, starts what a run needs and prints or writes the figures. The larger targets have command-line modules of their
own: ``compaction_cli``, ``transactions_cli``, ``load_cli`` and ``compare``; the argument
types and the JSON writer they share are in :mod:`streamcore.bench.arguments`.

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
from streamcore.bench.arguments import non_negative_int, positive_float, positive_int, write_json

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
        "--value-size", type=non_negative_int, default=100, help="bytes per record value (default 100)"
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
        write_json(args.json, report)
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
    parser.add_argument("--size", type=non_negative_int, default=100, help="value bytes (default 100)")
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
        write_json(args.json, report)
    what = f"{args.messages:,} x {args.size} B"
    if workload == "produce":
        what += f", acks={args.acks}, linger.ms={args.linger_ms:g}, compression={args.compression}"
    print(f"{workload} {what} on {bootstrap} ({report['broker']['kind']}), topic {topic}")
    print(broker.format_result(result))
    rss = report["broker"].get("peak_rss_bytes")
    if rss:
        print(f"broker peak RSS: {rss / 2**20:.1f} MiB")
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
    p.add_argument("--size", type=non_negative_int, default=1000, help="value bytes (default 1000)")
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
        write_json(args.json, report)
    print(
        f"streamcore {__version__} TLS benchmark: {args.messages:,} x {args.size} B per phase, "
        f"acks={args.acks}, linger.ms={args.linger_ms:g}, fsync={args.fsync}, confluent-kafka; "
        f"medians of {args.rounds} round(s); consume includes the group join; MB = 10^6 B"
    )
    print(f"TLS chosen for a Python client: {report['tls']['version']} {report['tls']['cipher']}")
    print()
    print(tls.render_tls_rows(report["rows"]))
    return 0


def add_compaction_command(targets: Any) -> None:
    """Add ``streamcore bench compaction`` (cleaner throughput, produce while cleaning;
    :mod:`streamcore.bench.compaction_cli`)."""
    from streamcore.bench.compaction_cli import add_compaction_command as add

    add(targets)


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
