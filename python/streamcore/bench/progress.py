"""A one-line progress bar for long benchmark loops (stderr, carriage return, no dependency)."""

from __future__ import annotations

import sys
import time
from typing import TextIO

__all__ = ["ProgressBar"]

_WIDTH = 30


class ProgressBar:
    """Redraw ``label [####......]  45%  45,000/100,000  123,456/s`` in place.

    ``update(done)`` is cheap enough to call from a tight loop: it redraws at most
    once every ``min_interval_s`` seconds, so a fast loop is not slowed by terminal
    writes. ``enabled=None`` draws only when ``stream`` is a terminal, so logs and
    captured output do not fill with carriage returns.
    """

    def __init__(
        self,
        total: int,
        label: str,
        *,
        stream: TextIO | None = None,
        enabled: bool | None = None,
        min_interval_s: float = 0.2,
    ) -> None:
        self.total = max(total, 1)
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        if enabled is None:
            isatty = getattr(self.stream, "isatty", None)
            enabled = bool(isatty and isatty())
        self.enabled = enabled
        self.min_interval_s = min_interval_s
        self._start = time.perf_counter()
        self._next_draw = self._start

    def update(self, done: int) -> None:
        """Record that ``done`` of ``total`` units are finished; redraw if due."""
        if not self.enabled:
            return
        now = time.perf_counter()
        if now < self._next_draw:
            return
        self._next_draw = now + self.min_interval_s
        self._draw(done, now)

    def close(self, done: int) -> None:
        """Draw the final state and end the line."""
        if not self.enabled:
            return
        self._draw(done, time.perf_counter())
        self.stream.write("\n")
        self.stream.flush()

    def _draw(self, done: int, now: float) -> None:
        fraction = min(max(done / self.total, 0.0), 1.0)
        filled = int(fraction * _WIDTH)
        rate = done / max(now - self._start, 1e-9)
        self.stream.write(
            f"\r{self.label} [{'#' * filled}{'.' * (_WIDTH - filled)}] {fraction * 100:3.0f}%  "
            f"{done:,}/{self.total:,}  {rate:,.0f}/s "
        )
        self.stream.flush()
