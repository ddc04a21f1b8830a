"""Metrics: counters, gauges and histograms on the native atomics, Prometheus exposition.

The storage cells come from the ``metrics`` capability (lock-free atomics natively, a
lock in the pure-Python twin). This module adds names, help texts, label sets and the
Prometheus text format (version 0.0.4).
"""

from __future__ import annotations

from collections.abc import Iterable

from streamcore._impl import metrics as _cells

__all__ = ["Counter", "Gauge", "Histogram", "CounterArray", "Registry", "HISTOGRAM_BUCKETS"]

Counter = _cells.Counter
Gauge = _cells.Gauge
Histogram = _cells.Histogram
CounterArray = _cells.CounterArray
HISTOGRAM_BUCKETS: int = _cells.HISTOGRAM_BUCKETS


def _labels(pairs: Iterable[tuple[str, object]]) -> str:
    inner = ",".join(
        f'{k}="{str(v).replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"' for k, v in pairs
    )
    return "{" + inner + "}" if inner else ""


class Registry:
    """Named metrics rendered together in Prometheus text format."""

    def __init__(self) -> None:
        self._families: dict[str, tuple[str, str, list[tuple[tuple[tuple[str, object], ...], object]]]] = {}

    def _add(
        self, kind: str, name: str, help_text: str, cell: object, labels: dict[str, object] | None
    ) -> object:
        family = self._families.setdefault(name, (kind, help_text, []))
        if family[0] != kind:
            raise ValueError(f"metric {name} already registered as a {family[0]}")
        family[2].append((tuple(sorted((labels or {}).items())), cell))
        return cell

    def counter(self, name: str, help_text: str, labels: dict[str, object] | None = None) -> Counter:
        return self._add("counter", name, help_text, Counter(), labels)  # type: ignore[return-value]

    def gauge(self, name: str, help_text: str, labels: dict[str, object] | None = None) -> Gauge:
        return self._add("gauge", name, help_text, Gauge(), labels)  # type: ignore[return-value]

    def histogram(
        self, name: str, help_text: str, labels: dict[str, object] | None = None, *, scale: float = 1.0
    ) -> Histogram:
        """A histogram of integer observations; ``scale`` converts them to the exposed unit
        (e.g. 1e-6 for microseconds observed, seconds exposed)."""
        hist = Histogram()
        self._add("histogram", name, help_text, (hist, scale), labels)
        return hist

    def render(self) -> str:
        """The whole registry in Prometheus text exposition format."""
        out: list[str] = []
        for name, (kind, help_text, series) in self._families.items():
            out.append(f"# HELP {name} {help_text}")
            out.append(f"# TYPE {name} {kind}")
            for labels, cell in series:
                if kind == "histogram":
                    hist, scale = cell  # type: ignore[misc]
                    counts, total, sum_ = hist.snapshot()
                    running = 0
                    last_nonzero = max((i for i, c in enumerate(counts) if c), default=0)
                    for i in range(last_nonzero + 1):
                        running += counts[i]
                        le = (1 << i) * scale
                        out.append(f"{name}_bucket{_labels((*labels, ('le', f'{le:g}')))} {running}")
                    out.append(f"{name}_bucket{_labels((*labels, ('le', '+Inf')))} {total}")
                    out.append(f"{name}_sum{_labels(labels)} {sum_ * scale:g}")
                    out.append(f"{name}_count{_labels(labels)} {total}")
                else:
                    out.append(f"{name}{_labels(labels)} {cell.value}")  # type: ignore[attr-defined]
        return "\n".join(out) + "\n"
