"""Plain-text tables for benchmark results (fixed-width, no third-party dependency)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["format_figure", "format_ratio", "render_codec_table", "render_table"]


def format_figure(x: float) -> str:
    """A throughput with three significant figures, thousands separated when large."""
    if x >= 1000:
        return f"{x:,.0f}"
    if x >= 100:
        return f"{x:.0f}"
    if x >= 10:
        return f"{x:.1f}"
    if x >= 1:
        return f"{x:.2f}"
    return f"{x:.3g}"


def format_ratio(x: float | None) -> str:
    """A speed ratio such as ``12.3x``; ``-`` when either side has no figure."""
    if x is None:
        return "-"
    return f"{x:.1f}x" if x >= 1 else f"{x:.2f}x"


def render_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Left-align the first column, right-align the others; a rule under the header."""
    widths = [len(h) for h in header]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))

    def line(cells: Sequence[str]) -> str:
        parts = [cells[0].ljust(widths[0])]
        parts += [cell.rjust(widths[i + 1]) for i, cell in enumerate(cells[1:])]
        return "  ".join(parts).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(header), rule, *(line(r) for r in rows)])


def render_codec_table(
    results: Sequence[dict[str, Any]],
    columns: Sequence[str],
    ratios: Sequence[tuple[str, str]],
    title: Callable[[str], str] = str,
) -> str:
    """Render rows as produced by ``streamcore.bench.codec.run_codec_benchmark``."""
    header = ["operation (unit)", *(title(c) for c in columns)]
    header += [f"{a}/{b}" for a, b in ratios]
    body = []
    for row in results:
        cells = [f"{row['label']} ({row['unit']})"]
        for column in columns:
            value = row["results"].get(column)
            cells.append(format_figure(value) if value is not None else row["notes"].get(column, "-"))
        cells += [format_ratio(row["ratios"].get(f"{a}/{b}")) for a, b in ratios]
        body.append(cells)
    return render_table(header, body)
