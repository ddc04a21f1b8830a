"""The report of ``streamcore bench compare``: the figures of each section, their
medians over rounds, the markdown tables and the matplotlib charts.

Split from :mod:`streamcore.bench.compare`, which runs the rounds; this module only
formats what they recorded (the ``report`` dict that ``--json`` writes).
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from streamcore.bench.peers.workloads import WORKLOADS

__all__ = ["COLUMNS", "markdown_report", "medians", "write_plots"]

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


def _latency_rate_text(p: dict[str, Any]) -> str:
    """How the latency workload's offered rate was chosen, for a table caption."""
    mode = p.get("latency_rate_mode", "fixed" if p.get("latency_rate") else "own")
    if p.get("latency_rate") is None:
        return "half of each broker's own max rate"
    if mode == "common":
        return f"{p['latency_rate']:,.0f} rec/s for every broker, half the lowest max rate"
    return f"{p['latency_rate']:,.0f} rec/s"


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
        rate = _latency_rate_text(p)
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
        "Latency at a fixed offered rate (median), lower is better",
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
