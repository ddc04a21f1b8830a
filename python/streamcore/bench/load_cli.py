"""The command line of ``streamcore bench load``: arguments, the broker it starts when
given no ``--bootstrap``, and the run (:mod:`streamcore.bench.load`) with its output
(:mod:`streamcore.bench.load_report`)."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from typing import Any, TextIO

from streamcore._version import __version__
from streamcore.bench.arguments import positive_float
from streamcore.bench.load import ACKS, FSYNC, PROFILES, LoadSettings, run_load
from streamcore.bench.load import __doc__ as _load_doc
from streamcore.bench.load_report import format_totals, render_profile_table

__all__ = ["add_load_command", "describe_broker", "run_load_command", "settings_from_args"]


def _non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def _int_at_least(minimum: int) -> Any:
    def parse(text: str) -> int:
        value = int(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value

    return parse


def _bootstrap(text: str) -> str:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return text


def _profiles(text: str) -> list[str]:
    names = [p.strip() for p in text.split(",") if p.strip()]
    bad = [p for p in names if p not in PROFILES]
    if bad or not names:
        raise argparse.ArgumentTypeError(f"unknown profile {bad or text!r}; choose from {','.join(PROFILES)}")
    return names


def _key_value(text: str) -> str:
    key, sep, _ = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return text


def add_load_command(targets: Any) -> None:
    """``streamcore bench load``: add the parser to ``targets`` (bench's subparsers)."""
    p = targets.add_parser(
        "load",
        help="load generator: N producers x M consumers at a fixed rate; live throughput and "
        "ack / end-to-end latency percentiles (confluent-kafka processes)",
        description=_load_doc.split("\n\n")[1] + "\n\n" + _load_doc.split("\n\n")[3],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--rate",
        type=_non_negative_float,
        default=0.0,
        help="records/s offered, all producers together (0 = unpaced, the default)",
    )
    p.add_argument("--duration", type=positive_float, default=10.0, help="seconds of sending (default 10)")
    p.add_argument("--producers", type=_int_at_least(1), default=1, help="producer processes (default 1)")
    p.add_argument(
        "--consumers",
        type=_int_at_least(0),
        default=1,
        help="consumer processes, one group (default 1; 0 = none)",
    )
    p.add_argument("--size", type=_int_at_least(0), default=1024, help="value bytes (default 1024)")
    p.add_argument("--topic", help="topic (default: a new topic load-<hex>); created when missing")
    p.add_argument(
        "--partitions", type=_int_at_least(1), default=4, help="partitions of a new topic (default 4)"
    )
    p.add_argument("--acks", choices=ACKS, default="all", help="producer acks (default all)")
    p.add_argument(
        "--linger-ms", type=_non_negative_float, default=5.0, help="producer linger.ms (default 5)"
    )
    p.add_argument(
        "--producer-config",
        metavar="KEY=VALUE",
        type=_key_value,
        action="append",
        default=[],
        help="a librdkafka producer setting (repeatable), e.g. batch.size=262144",
    )
    p.add_argument(
        "--interval", type=positive_float, default=5.0, help="seconds between live lines (default 5)"
    )
    p.add_argument(
        "--bootstrap",
        metavar="HOST:PORT",
        type=_bootstrap,
        help="broker to load (default: start a streamcore broker on 127.0.0.1 for the run)",
    )
    p.add_argument(
        "--fsync",
        choices=FSYNC,
        help="storage.fsync of the broker started here (default interval; not with --bootstrap)",
    )
    p.add_argument(
        "--profile",
        type=_profiles,
        help="storage.profile of the broker started here; a comma-separated list (e.g. "
        "low,medium,high,ultra) runs the same load once per profile, each on a fresh broker, "
        "and prints a table (not with --bootstrap)",
    )
    p.add_argument(
        "--rounds",
        type=_int_at_least(1),
        default=1,
        help="runs of each profile, interleaved; the table shows medians",
    )
    p.add_argument("--dir", help="where a started broker keeps its data (default: the system's temp dir)")
    p.add_argument(
        "--timeout", type=positive_float, default=120.0, help="bound of each wait, s (default 120)"
    )
    p.add_argument("--json", metavar="FILE", help="also write every figure as JSON to FILE ('-' for stdout)")
    p.set_defaults(handler=run_load_command, load_parser=p)


def settings_from_args(args: argparse.Namespace) -> LoadSettings:
    """The :class:`LoadSettings` of parsed ``streamcore bench load`` arguments."""
    return LoadSettings(
        rate=args.rate,
        duration_s=args.duration,
        producers=args.producers,
        consumers=args.consumers,
        size=args.size,
        partitions=args.partitions,
        acks=args.acks,
        linger_ms=args.linger_ms,
        interval_s=args.interval,
        timeout_s=args.timeout,
        topic=args.topic,
        producer_config=tuple(args.producer_config),
    )


def describe_broker(bootstrap: str, timeout_s: float = 30.0) -> dict[str, str]:
    """The broker's own settings (DescribeConfigs on its broker resource), e.g.
    ``streamcore.fsync`` and ``streamcore.profile`` of a streamcore broker: what the run
    really measured, whatever was asked for."""
    from confluent_kafka.admin import AdminClient, ConfigResource, ResourceType

    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 3})
    node = min(admin.list_topics(timeout=timeout_s).brokers)
    resource = ConfigResource(ResourceType.BROKER, str(node))
    entries = admin.describe_configs([resource], request_timeout=timeout_s)[resource].result(
        timeout=timeout_s
    )
    return {name: entry.value for name, entry in entries.items() if entry.value is not None}


def _streamcore_broker(fsync: str, profile: str | None, parent: str | None) -> Any:
    from streamcore.bench.processes import temporary_streamcore_broker

    env = {"STREAMCORE_STORAGE_PROFILE": profile} if profile else {}
    return temporary_streamcore_broker(fsync=fsync, env=env, prefix="streamcore-bench-load-", parent=parent)


def run_load_command(args: argparse.Namespace) -> int:
    """Run ``streamcore bench load`` from parsed ``args``; print, write JSON; exit status."""
    parser: argparse.ArgumentParser | None = getattr(args, "load_parser", None)

    def usage_error(message: str) -> int:
        if parser is not None:
            parser.error(message)  # exits with status 2
        print(f"streamcore bench load: error: {message}", file=sys.stderr)
        return 2

    if args.bootstrap and args.profile:
        return usage_error(
            "--profile sets up the broker this command starts; it cannot be used with --bootstrap"
        )
    if args.bootstrap and args.fsync:
        return usage_error(
            "--fsync sets up the broker this command starts; it cannot be used with --bootstrap"
        )
    settings = settings_from_args(args)
    if settings.consumers > settings.partitions and args.topic is None:
        print(
            f"note: {settings.consumers} consumers share {settings.partitions} partitions; "
            f"{settings.consumers - settings.partitions} will have none",
            file=sys.stderr,
        )
    to_stdout = args.json == "-"
    live: TextIO = sys.stderr if to_stdout else sys.stdout
    fsync = args.fsync or "interval"
    profiles: list[str | None] = list(args.profile) if args.profile else [None]
    header = (
        f"streamcore {__version__} bench load: {settings.producers} producer(s) x {settings.consumers} "
        f"consumer(s), {settings.size:,} B values, "
        + (f"{settings.rate:,.0f} rec/s offered" if settings.rate > 0 else "unpaced")
        + f", {settings.duration_s:g} s, acks={settings.acks}, linger.ms={settings.linger_ms:g}; "
        "confluent-kafka; MB = 10^6 B; ack = produce() to acknowledgement, e2e = produce() to receipt"
    )
    print(header, file=live, flush=True)
    from streamcore.bench.environment import collect_environment

    report: dict[str, Any] = {
        "benchmark": "load",
        "streamcore": __version__,
        "parameters": {
            **asdict(settings),
            "bootstrap": args.bootstrap,
            "fsync": None if args.bootstrap else fsync,
            "profiles": args.profile,
            "rounds": args.rounds,
        },
        "runs": [],
        "environment": collect_environment(),
    }
    for rnd in range(args.rounds):
        # Rotate the order of the profiles from round to round (no profile always first).
        order = profiles[rnd % len(profiles) :] + profiles[: rnd % len(profiles)]
        for profile in order:
            if args.bootstrap:
                print(f"bootstrap {args.bootstrap}", file=live, flush=True)
                result = run_load(args.bootstrap, settings, out=live)
                result["broker"] = {"started": False}
            else:
                with _streamcore_broker(fsync, profile, args.dir) as server:
                    label = f"profile={profile or 'medium (default)'}"
                    print(
                        f"[round {rnd + 1}/{args.rounds}] streamcore broker on {server.bootstrap}, "
                        f"fsync={fsync}, {label}",
                        file=live,
                        flush=True,
                    )
                    described = describe_broker(server.bootstrap, settings.timeout_s)
                    result = run_load(server.bootstrap, settings, broker_pid=server.pid, out=live)
                    result["broker"] = {
                        "started": True,
                        "command": server.argv,
                        "fsync": described.get("streamcore.fsync", fsync),
                        "profile": described.get("streamcore.profile", profile or "medium"),
                        "peak_rss_bytes": server.peak_rss_bytes(),
                    }
            result["round"] = rnd + 1
            report["runs"].append(result)
            print(format_totals(result), file=live, flush=True)
            print(file=live, flush=True)
    if args.profile:
        table = render_profile_table(report["runs"])
        report["profile_table"] = table
        print(
            f"storage.profile comparison, fsync={fsync} (medians of {args.rounds} round(s)):",
            file=live,
        )
        print(table, file=live, flush=True)
    if to_stdout:
        print(json.dumps(report, indent=2, sort_keys=True, default=str))
    elif args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(report, fh, indent=2, sort_keys=True, default=str)
            fh.write("\n")
    return 0
