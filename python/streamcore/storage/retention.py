"""Periodic retention: call ``Log.apply_retention()`` on a set of logs every ``interval_ms``.

The broker's retention loop: ``storage.log_manager.LogManager.start_retention`` runs
one over the broker's partition logs.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable

from streamcore.storage.log import Log

__all__ = ["RetentionScheduler"]

logger = logging.getLogger("streamcore.storage")


class RetentionScheduler:
    """A daemon thread applying each log's configured retention every ``interval_ms``.

    ``logs`` is either a fixed iterable of Log or a callable returning the
    current ones (a broker's partitions come and go). One failing log is logged
    and skipped; the others are still cleaned. Use as a context manager, or
    ``start()`` / ``stop()``.
    """

    def __init__(self, logs: Iterable[Log] | Callable[[], Iterable[Log]], interval_ms: int) -> None:
        if interval_ms < 1:
            raise ValueError(f"interval_ms must be >= 1, not {interval_ms}")
        self._logs = logs
        self.interval_ms = interval_ms
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        #: Segments deleted since start (count).
        self.deleted_segments = 0

    def _current(self) -> list[Log]:
        source = self._logs
        return list(source() if callable(source) else source)

    def run_once(self, now_ms: int | None = None) -> int:
        """Apply retention to every log now; return the number of segments deleted."""
        deleted = 0
        for log in self._current():
            try:
                deleted += log.apply_retention(now_ms)
            except Exception:
                logger.exception("retention failed for %s", getattr(log, "directory", log))
        self.deleted_segments += deleted
        return deleted

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_ms / 1000.0):
            deleted = self.run_once()
            if deleted:
                logger.info("retention deleted %d segment(s)", deleted)

    def start(self) -> None:
        """Start the background thread (once)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="streamcore-retention", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop the thread and wait for a pass in progress to finish."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def __enter__(self) -> RetentionScheduler:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
