"""The command line of ``streamcore bench transactions``: its arguments, the brokers a
run starts (streamcore's, and Apache Kafka when its jars are resolvable) and the report
(the measuring is :mod:`streamcore.bench.transactions`)."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
from collections.abc import Iterator
from typing import Any

from streamcore._version import __version__
from streamcore.bench.arguments import non_negative_int, positive_float, positive_int, write_json
from streamcore.bench.cli import Subparsers

__all__ = ["add_transactions_command", "run_transactions"]


def _sizes(text: str) -> list[int]:
    try:
        sizes = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"expected integers >= 1, got {text!r}")
    return sizes


def add_transactions_command(targets: Subparsers) -> None:
    """``streamcore bench transactions``: transactional vs idempotent produce, commit latency."""
    p = targets.add_parser(
        "transactions",
        help="transactional produce throughput vs idempotent, and commit latency p50/p99 "
        "(streamcore's broker, and Apache Kafka when its jars are resolvable)",
        description="With confluent-kafka, produce --records values of --size bytes to a new "
        "one-partition topic: (1) idempotent with one flush at the end; for each size in "
        "--txn-sizes, (2) idempotent with a flush every SIZE records and (3) transactional, SIZE "
        "records per transaction, timing each commit_transaction(). Report records/s, MB/s, "
        "commit (flush) latency p50/p99 and broker CPU seconds, as a markdown table. Runs "
        "against a streamcore broker started in a subprocess (or --bootstrap) and, with --apache "
        "or when the jars of interop/kafka-broker are already resolved, a real Apache Kafka broker.",
    )
    p.add_argument("--records", type=positive_int, default=200_000, help="records per run (default 200000)")
    p.add_argument("--size", type=non_negative_int, default=100, help="value bytes (default 100)")
    p.add_argument(
        "--txn-sizes",
        type=_sizes,
        default=[100, 10_000],
        help="records per transaction, comma-separated (default 100,10000)",
    )
    p.add_argument("--linger-ms", type=float, default=5.0, help="producer linger.ms (default 5)")
    p.add_argument(
        "--rounds", type=positive_int, default=1, help="rounds of every case, interleaved (default 1)"
    )
    p.add_argument(
        "--warmup-rounds",
        type=non_negative_int,
        default=0,
        help="rounds run first and not kept, per broker (default 0; 1 lets a JVM broker compile)",
    )
    p.add_argument(
        "--bootstrap",
        metavar="HOST:PORT",
        help="load this broker instead of starting a streamcore broker (it must serve transactions)",
    )
    apache = p.add_mutually_exclusive_group()
    apache.add_argument(
        "--apache",
        action="store_true",
        help="also run against Apache Kafka; fail if it cannot start (mvn may download its jars)",
    )
    apache.add_argument("--no-apache", action="store_true", help="never run Apache Kafka")
    p.add_argument(
        "--kafka-classpath",
        metavar="CP",
        help="jars of the Apache Kafka broker (default: $STREAMCORE_KAFKA_CLASSPATH, else the "
        "checkout's interop/kafka-broker)",
    )
    p.add_argument(
        "--fsync",
        choices=("always", "interval", "never"),
        default="interval",
        help="fsync policy of the streamcore broker started (default interval)",
    )
    p.add_argument("--timeout", type=positive_float, default=300.0, help="bound of each run, s (default 300)")
    p.add_argument("--json", metavar="FILE", help="also write the figures as JSON to FILE ('-' for stdout)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    p.set_defaults(handler=run_transactions)


@contextlib.contextmanager
def _apache_broker(classpath: str) -> Iterator[Any]:
    from streamcore.bench.apache import apache_kafka_process

    with tempfile.TemporaryDirectory(prefix="streamcore-bench-kafka-") as work:
        server = apache_kafka_process(work, classpath).start()
        print(f"started Apache Kafka on {server.bootstrap}", file=sys.stderr)
        try:
            yield server
        finally:
            server.stop()


def _apache_classpath(args: argparse.Namespace, report: dict[str, Any]) -> str | None:
    """The Apache Kafka classpath when this run includes it, else None (the reason in ``report``)."""
    from streamcore.bench.apache import ApacheKafkaUnavailable, resolve_classpath

    if args.no_apache:
        report["apache_kafka"] = {"skipped": "--no-apache"}
        return None
    try:
        # Without --apache, only jars already on this machine: a plain run never downloads.
        return resolve_classpath(args.kafka_classpath, allow_mvn=args.apache)
    except ApacheKafkaUnavailable as exc:
        if args.apache:
            raise
        report["apache_kafka"] = {"skipped": str(exc)}
        print(f"Apache Kafka skipped: {exc}", file=sys.stderr)
        return None


def run_transactions(args: argparse.Namespace) -> int:
    """Run ``streamcore bench transactions`` from parsed ``args``; print, write JSON; return 0."""
    from streamcore.bench import transactions
    from streamcore.bench.environment import collect_environment
    from streamcore.bench.processes import cpu_seconds, temporary_streamcore_broker

    report: dict[str, Any] = {
        "benchmark": "transactions",
        "parameters": {
            "records": args.records,
            "size": args.size,
            "txn_sizes": args.txn_sizes,
            "linger_ms": args.linger_ms,
            "rounds": args.rounds,
            "warmup_rounds": args.warmup_rounds,
            "fsync": args.fsync,
            "timeout_s": args.timeout,
        },
        "environment": collect_environment(),
        "brokers": [],
        "rows": [],
        "runs": [],
    }
    progress = False if args.no_progress else None
    classpath = _apache_classpath(args, report)
    common: dict[str, Any] = dict(
        records=args.records,
        size=args.size,
        txn_sizes=args.txn_sizes,
        rounds=args.rounds,
        warmup_rounds=args.warmup_rounds,
        linger_ms=args.linger_ms,
        timeout_s=args.timeout,
        progress=progress,
    )

    def measure(name: str, bootstrap: str, pid: int | None) -> None:
        clock = (lambda: cpu_seconds(pid)) if pid is not None else None
        print(
            f"{name}: {len(args.txn_sizes) * 2 + 1} case(s) x {args.rounds} round(s)"
            + (f" after {args.warmup_rounds} warm-up round(s)" if args.warmup_rounds else "")
            + " ...",
            file=sys.stderr,
        )
        result = transactions.run_transaction_benchmark(bootstrap, name, broker_cpu=clock, **common)
        report["rows"] += result["rows"]
        report["runs"] += result["runs"]

    if args.bootstrap:
        report["brokers"].append({"name": "external", "bootstrap": args.bootstrap})
        measure("external", args.bootstrap, None)
    else:
        with temporary_streamcore_broker(fsync=args.fsync) as server:
            print(f"started streamcore broker (fsync={args.fsync}) on {server.bootstrap}", file=sys.stderr)
            measure("streamcore", server.bootstrap, server.pid)
            report["brokers"].append(
                {
                    "name": "streamcore",
                    "command": server.argv,
                    "fsync": args.fsync,
                    "peak_rss_bytes": server.peak_rss_bytes(),
                }
            )
    if classpath is not None:
        with _apache_broker(classpath) as kafka:
            measure("apache-kafka", kafka.bootstrap, kafka.pid)
            report["brokers"].append(
                {"name": "apache-kafka", "command": kafka.argv, "peak_rss_bytes": kafka.peak_rss_bytes()}
            )
    if args.json == "-":
        print(json.dumps(report, indent=2, sort_keys=True))
        return 0
    if args.json:
        write_json(args.json, report)
    print(
        f"streamcore {__version__} transactions benchmark: {args.records:,} records x {args.size} B per "
        f"run, linger.ms={args.linger_ms:g}, confluent-kafka; medians of {args.rounds} round(s)"
        + (f" after {args.warmup_rounds} warm-up round(s)" if args.warmup_rounds else "")
        + "; "
        "p50/p99 = commit_transaction() (or flush()) durations; MB = 10^6 B"
    )
    print()
    print(transactions.render_transaction_rows(report["rows"]))
    if "apache_kafka" in report:
        print()
        print(f"Apache Kafka not run: {report['apache_kafka']['skipped']}")
    failed = sum(r["failed"] for r in report["rows"])
    if failed:
        print(f"warning: {failed} record(s) failed delivery (see --json)")
    return 0
