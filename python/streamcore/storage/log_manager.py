"""``LogManager``: the partition logs of one data directory, opened, retained and closed together.

The broker decides what a partition's settings are (topic configs over broker
defaults); this module does everything with the logs themselves: opening (and so
recovering) ``<data_dir>/<topic>-<partition>/``, the periodic retention pass, the
crash-safe removal of deleted partitions and closing every log at shutdown.

Retention runs on its own daemon thread (:class:`~streamcore.storage.retention.RetentionScheduler`)
once :meth:`LogManager.start_retention` is called: it only deletes closed segment
files, which the WAL does safely alongside appends and reads.

Thread safety: every method may be called from any thread.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from streamcore._atomic_file import fsync_dir
from streamcore.storage.log import Log
from streamcore.storage.retention import RetentionScheduler

__all__ = ["LogManager", "PartitionKey"]

logger = logging.getLogger("streamcore.storage")

#: (topic, partition)
PartitionKey = tuple[str, int]

_DELETED_SUFFIX = "-delete"
_ONE_OFF_INTERVAL_MS = 60_000  # unused by a single pass; any valid interval


class LogManager:
    """Partition logs under ``data_dir``, keyed by (topic, partition).

    ``log_factory(directory, **kwargs)`` builds a log (default :class:`Log`; kwargs
    are those of ``Log``). Directories left by an interrupted deletion are removed
    when the manager is created.
    """

    def __init__(
        self, data_dir: str | os.PathLike[str], *, log_factory: Callable[..., Any] | None = None
    ) -> None:
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._log_factory: Callable[..., Any] = Log if log_factory is None else log_factory
        self._lock = threading.RLock()
        self._logs: dict[PartitionKey, Any] = {}
        self._no_retention: set[PartitionKey] = set()
        self._retention: RetentionScheduler | None = None
        self._closed = False
        self._remove_deleted_leftovers()

    def directory(self, key: PartitionKey) -> Path:
        """Where the partition's log lives."""
        return self.data_dir / f"{key[0]}-{key[1]}"

    # ------------------------------------------------------------------ opening

    def get(self, key: PartitionKey) -> Any | None:
        """The open log of ``key``, or None."""
        return self._logs.get(key)

    def open(self, key: PartitionKey, *, retention: bool = True, **log_settings: Any) -> Any:
        """The log of ``key``, opened (and recovered) with ``log_settings`` if it is not open yet.

        ``retention=False`` leaves it out of the retention pass (a log whose owner
        reclaims space itself). Raises RuntimeError once the manager is closed.
        """
        log = self._logs.get(key)
        if log is not None:
            return log
        with self._lock:
            if self._closed:
                raise RuntimeError("the log manager is closed")
            log = self._logs.get(key)
            if log is None:
                log = self._log_factory(self.directory(key), **log_settings)
                self._logs[key] = log
                if not retention:
                    self._no_retention.add(key)
            return log

    def items(self) -> list[tuple[PartitionKey, Any]]:
        """Open logs as (key, log) pairs."""
        with self._lock:
            return list(self._logs.items())

    def set_retention(
        self, keys: Iterable[PartitionKey], retention_ms: int | None, retention_bytes: int | None
    ) -> None:
        """Change the retention limits of the open logs among ``keys`` (ms, bytes; None = keep)."""
        with self._lock:
            for key in keys:
                log = self._logs.get(key)
                if log is not None:
                    log.retention_ms = retention_ms
                    log.retention_bytes = retention_bytes

    # ------------------------------------------------------------------ retention

    def _retained(self) -> list[Any]:
        with self._lock:
            return [log for key, log in self._logs.items() if key not in self._no_retention]

    def apply_retention(self, now_ms: int | None = None) -> int:
        """Apply each retained log's retention now; returns segments deleted.

        ``now_ms`` (ms since the epoch) defaults to the wall clock. A failing log is
        logged and skipped.
        """
        scheduler = self._retention or RetentionScheduler(self._retained, _ONE_OFF_INTERVAL_MS)
        return scheduler.run_once(now_ms)

    def start_retention(self, interval_ms: int) -> None:
        """Run the retention pass every ``interval_ms`` on a daemon thread until :meth:`close`."""
        with self._lock:
            if self._closed:
                raise RuntimeError("the log manager is closed")
            if self._retention is not None:
                raise RuntimeError("retention is already running")
            self._retention = RetentionScheduler(self._retained, interval_ms)
            self._retention.start()

    # ------------------------------------------------------------------ removal and closing

    def delete(self, keys: Iterable[PartitionKey], tag: str) -> None:
        """Close the logs of ``keys`` and remove their directories.

        Each directory is first renamed ``<name>.<tag>-delete`` and the rename made
        durable, so a crash mid-way cannot bring the partition back; the renamed
        directories are then removed (and any left over are removed at the next start).
        """
        keys = list(keys)
        with self._lock:
            for key in keys:
                self._no_retention.discard(key)
                log = self._logs.pop(key, None)
                if log is not None:
                    try:
                        log.close()
                    except Exception:
                        logger.exception("closing %s-%d before deletion failed", *key)
            doomed = []
            for key in keys:
                directory = self.directory(key)
                if directory.exists():
                    target = directory.with_name(f"{directory.name}.{tag}{_DELETED_SUFFIX}")
                    os.replace(directory, target)
                    doomed.append(target)
            if doomed:
                fsync_dir(self.data_dir)
        for target in doomed:
            shutil.rmtree(target, ignore_errors=True)

    def _remove_deleted_leftovers(self) -> None:
        for entry in self.data_dir.iterdir():
            if entry.is_dir() and entry.name.endswith(_DELETED_SUFFIX):
                shutil.rmtree(entry, ignore_errors=True)

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Stop the retention thread, then close every log (each drains, fsyncs and
        checkpoints); idempotent."""
        with self._lock:
            self._closed = True
            scheduler, self._retention = self._retention, None
        if scheduler is not None:
            # Outside the lock: a pass in progress takes it to list the logs.
            scheduler.stop()
        with self._lock:
            logs, self._logs = list(self._logs.items()), {}
            self._no_retention.clear()
        for key, log in logs:
            try:
                log.close()
            except Exception:
                logger.exception("closing %s-%d failed", *key)
