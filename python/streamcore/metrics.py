"""Metrics: counters, gauges and histograms on the native atomics, Prometheus exposition.

The storage cells come from the ``metrics`` capability (lock-free atomics natively, a
lock in the pure-Python twin). This module adds names, help texts, label sets and the
Prometheus text format (version 0.0.4), following Prometheus naming: base units
(``_seconds``, ``_bytes``), ``_total`` once and only on counters, floats printed by
``repr`` (exact, never rounded), and histograms with a fixed set of cumulative ``le``
buckets so that every scrape carries the same series.
"""

from __future__ import annotations

import math
import os
import resource
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from streamcore._impl import metrics as _cells

__all__ = [
    "Counter",
    "Gauge",
    "Histogram",
    "CounterArray",
    "Registry",
    "Family",
    "LabelledCounters",
    "HISTOGRAM_BUCKETS",
    "DEFAULT_BUCKET_EXPONENTS",
    "format_value",
    "render_families",
    "process_families",
]

if TYPE_CHECKING:
    # Both twins have the same classes; the reference one is what the type checker reads.
    from streamcore._reference.metrics import Counter, CounterArray, Gauge, Histogram
else:
    Counter = _cells.Counter
    Gauge = _cells.Gauge
    Histogram = _cells.Histogram
    CounterArray = _cells.CounterArray
HISTOGRAM_BUCKETS: int = _cells.HISTOGRAM_BUCKETS

#: Histogram buckets shown by default: cell bucket ``i`` holds observations ``<= 2**i``,
#: so exponents 4..25 of microsecond observations are ``le`` bounds from 16 µs to about
#: 33.5 s. Observations below the first bound are in it (the buckets are cumulative);
#: those above the last are only in ``+Inf``.
DEFAULT_BUCKET_EXPONENTS = range(4, 26)

Labels = tuple[tuple[str, object], ...]


def format_value(value: float) -> str:
    """A sample value as Prometheus text: integers as they are, floats by ``repr``
    (the shortest string that reads back to the same float), infinities and NaN by
    their Prometheus spellings."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def _escape(text: object) -> str:
    return str(text).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(pairs: Iterable[tuple[str, object]]) -> str:
    inner = ",".join(f'{k}="{_escape(v)}"' for k, v in pairs)
    return "{" + inner + "}" if inner else ""


@dataclass
class Family:
    """One metric family computed at scrape time: name, kind (``counter``, ``gauge``,
    ``untyped``), help text and its samples as (labels, value) pairs."""

    name: str
    kind: str
    help: str
    samples: list[tuple[Labels, float]] = field(default_factory=list)

    def add(self, value: float, **labels: object) -> None:
        """Append one sample with the given label values."""
        self.samples.append((tuple(labels.items()), value))


def render_families(families: Iterable[Family]) -> list[str]:
    """Exposition lines (without a final newline) of computed families."""
    out: list[str] = []
    for fam in families:
        out.append(f"# HELP {fam.name} {_escape_help(fam.help)}")
        out.append(f"# TYPE {fam.name} {fam.kind}")
        for labels, value in fam.samples:
            out.append(f"{fam.name}{_labels(labels)} {format_value(value)}")
    return out


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


class LabelledCounters:
    """Counters of one family told apart by label values (a topic, say), created on
    first use. ``labels(*values)`` is a dict lookup, cheap enough for the hot path."""

    __slots__ = ("_cells", "label_names")

    def __init__(self, label_names: Sequence[str]) -> None:
        self.label_names = tuple(label_names)
        self._cells: dict[tuple[str, ...], Counter] = {}

    def labels(self, *values: str) -> Counter:
        """The counter for these label values (in ``label_names`` order)."""
        cell = self._cells.get(values)
        if cell is None:
            if len(values) != len(self.label_names):
                raise ValueError(f"expected {len(self.label_names)} label values, got {len(values)}")
            cell = self._cells[values] = Counter()
        return cell

    def remove_unless(self, keep: Callable[[tuple[str, ...]], bool]) -> None:
        """Forget the series whose label values ``keep`` refuses (a deleted topic's)."""
        for values in [v for v in self._cells if not keep(v)]:
            del self._cells[values]

    def series(self) -> list[tuple[Labels, int]]:
        """(labels, value) of every series, sorted by label values."""
        return [
            (tuple(zip(self.label_names, values, strict=True)), cell.value)
            for values, cell in sorted(self._cells.items())
        ]


class Registry:
    """Named metrics rendered together in Prometheus text format."""

    def __init__(self) -> None:
        self._families: dict[str, tuple[str, str, list[tuple[Labels, object]]]] = {}
        self._collectors: list[Callable[[], Iterable[Family]]] = []

    def _add(
        self, kind: str, name: str, help_text: str, cell: object, labels: dict[str, object] | None
    ) -> object:
        family = self._families.setdefault(name, (kind, help_text, []))
        if family[0] != kind:
            raise ValueError(f"metric {name} already registered as a {family[0]}")
        family[2].append((tuple(sorted((labels or {}).items())), cell))
        return cell

    def counter(self, name: str, help_text: str, labels: dict[str, object] | None = None) -> Counter:
        """A counter; ``name`` should end in ``_total``."""
        if not name.endswith("_total"):
            raise ValueError(f"counter {name} must end in _total")
        return self._add("counter", name, help_text, Counter(), labels)  # type: ignore[return-value]

    def gauge(self, name: str, help_text: str, labels: dict[str, object] | None = None) -> Gauge:
        """A gauge; its name must not end in ``_total``."""
        if name.endswith("_total"):
            raise ValueError(f"gauge {name} must not end in _total")
        return self._add("gauge", name, help_text, Gauge(), labels)  # type: ignore[return-value]

    def labelled_counters(self, name: str, help_text: str, label_names: Sequence[str]) -> LabelledCounters:
        """A counter family whose series are created on first use of their label values."""
        if not name.endswith("_total"):
            raise ValueError(f"counter {name} must end in _total")
        cells = LabelledCounters(label_names)
        self._add("counter", name, help_text, cells, None)
        return cells

    def histogram(
        self,
        name: str,
        help_text: str,
        labels: dict[str, object] | None = None,
        *,
        divisor: int = 1,
        bucket_exponents: range = DEFAULT_BUCKET_EXPONENTS,
    ) -> Histogram:
        """A histogram of integer observations.

        ``divisor`` converts an observation to the exposed unit (1_000_000 for
        microseconds observed, seconds exposed); bucket bounds and the sum are divided
        exactly, so ``le="0.000512"`` rather than a rounding artefact.
        ``bucket_exponents``: which of the cell's power-of-two bounds are exposed, the
        same at every scrape.
        """
        if divisor < 1:
            raise ValueError("divisor must be a positive integer")
        if not bucket_exponents or bucket_exponents[0] < 0 or bucket_exponents[-1] >= HISTOGRAM_BUCKETS:
            raise ValueError(f"bucket exponents must lie in 0..{HISTOGRAM_BUCKETS - 1}")
        hist = Histogram()
        self._add("histogram", name, help_text, (hist, divisor, bucket_exponents), labels)
        return hist

    def add_collector(self, collect: Callable[[], Iterable[Family]]) -> None:
        """Add a function called at every scrape for families computed then (gauges of
        partition sizes, process figures); rendered after the registered cells."""
        self._collectors.append(collect)

    def render(self) -> str:
        """The whole registry in Prometheus text exposition format."""
        out: list[str] = []
        for name, (kind, help_text, series) in self._families.items():
            out.append(f"# HELP {name} {_escape_help(help_text)}")
            out.append(f"# TYPE {name} {kind}")
            for labels, cell in series:
                if kind == "histogram":
                    out += _histogram_lines(name, labels, *cell)  # type: ignore[misc]
                elif isinstance(cell, LabelledCounters):
                    out += [f"{name}{_labels(lb)} {value}" for lb, value in cell.series()]
                else:
                    out.append(f"{name}{_labels(labels)} {format_value(cell.value)}")  # type: ignore[attr-defined]
        for collect in self._collectors:
            out += render_families(collect())
        return "\n".join(out) + "\n"


def _histogram_lines(name: str, labels: Labels, hist: Histogram, divisor: int, exponents: range) -> list[str]:
    counts, total, sum_ = hist.snapshot()
    out = []
    running = sum(counts[: exponents[0]])
    for i in exponents:
        running += counts[i]
        le = (1 << i) / divisor if divisor != 1 else float(1 << i)
        out.append(f"{name}_bucket{_labels((*labels, ('le', format_value(le))))} {running}")
    out.append(f"{name}_bucket{_labels((*labels, ('le', '+Inf')))} {total}")
    out.append(f"{name}_sum{_labels(labels)} {format_value(sum_ / divisor)}")
    out.append(f"{name}_count{_labels(labels)} {total}")
    return out


# -- the process (the conventional process_* names of Prometheus client libraries) ----------

_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_IMPORTED_AT = time.time()


def _process_start_time() -> float:
    """Seconds since the epoch at which this process started (Linux: from /proc; elsewhere
    the time this module was imported, which a broker does at start)."""
    try:
        with open("/proc/self/stat", "rb") as fh:
            # Field 22 (starttime, clock ticks after boot) follows the parenthesised command,
            # which may itself contain spaces: split after its closing parenthesis.
            fields = fh.read().rsplit(b")", 1)[1].split()
        ticks = int(fields[19])
        with open("/proc/stat", "rb") as fh:
            boot = next(int(line.split()[1]) for line in fh if line.startswith(b"btime "))
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return _IMPORTED_AT


_START_TIME = _process_start_time()


def _resident_bytes() -> int | None:
    try:
        with open("/proc/self/statm", "rb") as fh:
            return int(fh.read().split()[1]) * _PAGE_SIZE
    except (OSError, ValueError, IndexError):
        return None


def _open_fds() -> int | None:
    for directory in ("/proc/self/fd", "/dev/fd"):
        try:
            # listdir itself holds one descriptor open on the directory it reads.
            return len(os.listdir(directory)) - 1
        except OSError:
            continue
    return None


def process_families() -> list[Family]:
    """``process_cpu_seconds_total``, ``process_resident_memory_bytes``,
    ``process_open_fds``, ``process_max_fds`` and ``process_start_time_seconds`` of this
    process; a figure the platform does not give is left out."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    fams = [
        Family(
            "process_cpu_seconds_total",
            "counter",
            "User and system CPU time spent, in seconds",
            [((), usage.ru_utime + usage.ru_stime)],
        )
    ]
    rss = _resident_bytes()
    if rss is not None:
        fams.append(
            Family("process_resident_memory_bytes", "gauge", "Resident memory size in bytes", [((), rss)])
        )
    fds = _open_fds()
    if fds is not None:
        fams.append(Family("process_open_fds", "gauge", "Open file descriptors", [((), fds)]))
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY:
        fams.append(Family("process_max_fds", "gauge", "Open file descriptor limit (soft)", [((), soft)]))
    fams.append(
        Family(
            "process_start_time_seconds",
            "gauge",
            "Start time of the process since the Unix epoch, in seconds",
            [((), _START_TIME)],
        )
    )
    return fams
