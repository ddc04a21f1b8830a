"""Text output of ``streamcore bench load``: the live interval lines, the totals of a
run and the table comparing WAL profiles (:mod:`streamcore.bench.load` runs the load)."""

from __future__ import annotations

import os
import statistics
from collections.abc import Sequence
from typing import Any

__all__ = ["format_interval", "format_totals", "render_profile_table"]


def _ms(value: float | int | None) -> str:
    if value is None:
        return "-"
    return f"{value:.1f}" if value >= 10 else f"{value:.2f}"


def _percentiles(summary: dict[str, Any]) -> str:
    return f"p50 {_ms(summary['p50'])} p99 {_ms(summary['p99'])} p99.9 {_ms(summary['p999'])} ms"


def format_interval(row: dict[str, Any]) -> str:
    """One live line: the interval's produce and consume rates and latency percentiles."""
    text = (
        f"{row['t_s']:7.1f} s  produced {row['produce_records_per_s']:>10,.0f} rec/s "
        f"{row['produce_mb_per_s']:7.1f} MB/s  ack {_percentiles(row['ack_ms'])}"
    )
    if row["failed"]:
        text += f"  ({row['failed']:,} failed)"
    if row["e2e_ms"]["count"] or row["received"]:
        text += (
            f" | consumed {row['consume_records_per_s']:>10,.0f} rec/s "
            f"{row['consume_mb_per_s']:7.1f} MB/s  e2e {_percentiles(row['e2e_ms'])}"
        )
    return text


def format_totals(result: dict[str, Any]) -> str:
    """The end-of-run lines: counts, rates, latency percentiles, broker CPU and memory."""
    t = result["totals"]
    lines = [
        f"records: sent {t['sent']:,}, acknowledged {t['acked']:,}, failed {t['failed']:,}, "
        f"received {t['received']:,}",
    ]
    rate = "-" if t["produce_records_per_s"] is None else f"{t['produce_records_per_s']:,.0f}"
    mbs = "-" if t["produce_mb_per_s"] is None else f"{t['produce_mb_per_s']:,.1f}"
    lines.append(
        f"produce: {rate} rec/s, {mbs} MB/s over {t['produce_seconds']:.1f} s; ack {_latency(t['ack_ms'])}"
    )
    if t["received"] or t["consume_seconds"]:
        rate = "-" if t["consume_records_per_s"] is None else f"{t['consume_records_per_s']:,.0f}"
        mbs = "-" if t["consume_mb_per_s"] is None else f"{t['consume_mb_per_s']:,.1f}"
        lines.append(f"consume: {rate} rec/s, {mbs} MB/s; end-to-end {_latency(t['e2e_ms'])}")
    broker = result.get("broker")
    if t["broker_cpu_s"] is not None:
        per_gb = "-" if t["broker_cpu_s_per_gb"] is None else f"{t['broker_cpu_s_per_gb']:.2f}"
        rss = broker.get("peak_rss_bytes") if broker else None
        lines.append(
            f"broker: CPU {t['broker_cpu_s']:.2f} s ({per_gb} s per GB acknowledged)"
            + ("" if rss is None else f", peak RSS {rss / 2**20:,.0f} MiB")
        )
    la, lb = result["load_average"]["before"], result["load_average"]["after"]
    lines.append(f"load average (1 min) {la[0]:.2f} before, {lb[0]:.2f} after, on {os.cpu_count()} CPU(s)")
    if result["unflushed"]:
        lines.append(f"warning: {result['unflushed']:,} record(s) never acknowledged (flush timed out)")
    if result["producer_errors"]:
        lines.append(f"producer errors: {result['producer_errors'][0]}")
    return "\n".join(lines)


def _latency(summary: dict[str, Any]) -> str:
    return _percentiles(summary) + f" (max {_ms(summary['max'])} ms)"


def render_profile_table(runs: Sequence[dict[str, Any]]) -> str:
    """Markdown table of per-profile medians (over rounds) of a ``--profile`` run."""
    by_profile: dict[str, list[dict[str, Any]]] = {}
    for r in runs:
        by_profile.setdefault(r["broker"]["profile"], []).append(r)

    def med(rs: list[dict[str, Any]], *path: str) -> float | None:
        values = []
        for r in rs:
            v: Any = r["totals"]
            for p in path:
                v = v.get(p) if isinstance(v, dict) else None
            if isinstance(v, (int, float)):
                values.append(float(v))
        return statistics.median(values) if values else None

    def cell(value: float | None, kind: str) -> str:
        if value is None:
            return "-"
        if kind == "rate":
            return f"{value:,.0f}"
        if kind == "mbs":
            return f"{value:,.1f}"
        if kind == "mib":
            return f"{value / 2**20:,.0f}"
        return _ms(value)

    header = [
        "profile", "rec/s", "MB/s", "ack p50 ms", "ack p99 ms", "ack p99.9 ms",
        "e2e p50 ms", "e2e p99 ms", "e2e p99.9 ms", "broker CPU s/GB", "peak RSS MiB",
    ]  # fmt: skip
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    for profile, rs in by_profile.items():
        rss = [r["broker"]["peak_rss_bytes"] for r in rs if r["broker"].get("peak_rss_bytes")]
        cells = [
            cell(med(rs, "produce_records_per_s"), "rate"),
            cell(med(rs, "produce_mb_per_s"), "mbs"),
            cell(med(rs, "ack_ms", "p50"), "ms"),
            cell(med(rs, "ack_ms", "p99"), "ms"),
            cell(med(rs, "ack_ms", "p999"), "ms"),
            cell(med(rs, "e2e_ms", "p50"), "ms"),
            cell(med(rs, "e2e_ms", "p99"), "ms"),
            cell(med(rs, "e2e_ms", "p999"), "ms"),
            cell(med(rs, "broker_cpu_s_per_gb"), "s"),
            cell(statistics.median(rss) if rss else None, "mib"),
        ]
        lines.append(f"| {profile} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
