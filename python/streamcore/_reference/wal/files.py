"""A bounded cache of open segment files, shared by every log of a pool (twin of ``files.rs``).

Logs keep paths, not descriptors: a segment file is opened when it is read, written
or fsynced and stays open while it is among the ``capacity`` most recently used, so
a process with thousands of idle logs holds a bounded number of descriptors.

A descriptor in use is pinned (:meth:`FileCache.use`): evicting it only takes it out
of the cache, and the last user closes it. Closing a file with unsynced data loses
nothing: the page cache belongs to the inode, and the next fsync reopens the file and
fsyncs it (Linux reports a writeback error nobody has seen yet to a descriptor opened
after it, so a failure while the file was closed still fails that fsync).
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["APPEND", "READ", "SYNC", "WRITE", "FileCache"]

#: How a caller uses a file; decides how a missing one is opened.
READ = "read"  # pread (readers, header walks)
WRITE = "write"  # pread and appends: the active segment's .log
APPEND = "append"  # appends only: the active segment's .index and .timeindex
SYNC = "sync"  # only fsync: any open handle will do

_FLAGS = {
    READ: os.O_RDONLY,
    SYNC: os.O_RDONLY,
    # O_APPEND: a fresh handle from the cache writes where the committed data ends,
    # with no position to restore (recovery truncated the file to that end).
    WRITE: os.O_RDWR | os.O_APPEND,
    APPEND: os.O_WRONLY | os.O_APPEND | os.O_CREAT,
}


def _serves(have: str, want: str) -> bool:
    """True when a handle opened for ``have`` serves a caller that wants ``want``."""
    if want == SYNC:
        return True
    if want == READ:
        return have in (READ, WRITE)
    return have == want


class _Handle:
    __slots__ = ("fd", "access", "pins", "cached")

    def __init__(self, fd: int, access: str) -> None:
        self.fd = fd
        self.access = access
        #: Users holding the descriptor now; the last one closes an evicted handle.
        self.pins = 0
        self.cached = True


class FileCache:
    """A least-recently-used set of open files, keyed by path (see the module docstring).

    Args:
        capacity: most files held open by the cache (>= 1); pinned handles that were
            evicted stay open until their users release them.
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"max_open_files must be >= 1, not {capacity}")
        self.capacity = capacity
        self._lock = threading.Lock()
        self._map: OrderedDict[str, _Handle] = OrderedDict()
        self._opened = 0
        self._evicted = 0

    def _drop(self, handle: _Handle) -> None:
        # Called with the lock held: out of the cache, closed now unless someone uses it.
        handle.cached = False
        if handle.pins == 0:
            os.close(handle.fd)

    def acquire(self, path: str, access: str) -> _Handle:
        """The pinned handle of ``path``, opening it for ``access`` when no cached one serves it.

        Raises OSError from ``open`` (FileNotFoundError for a missing file). Every
        acquire needs one :meth:`release`.
        """
        with self._lock:
            handle = self._map.get(path)
            if handle is not None and _serves(handle.access, access):
                self._map.move_to_end(path)
                handle.pins += 1
                return handle
        # Opened outside the lock: other logs' lookups do not wait for this syscall.
        fresh = _Handle(os.open(path, _FLAGS[access], 0o644), access)
        fresh.pins = 1
        with self._lock:
            self._opened += 1
            old = self._map.pop(path, None)
            if old is not None:
                self._drop(old)
            self._map[path] = fresh
            while len(self._map) > self.capacity:
                _path, victim = self._map.popitem(last=False)
                self._evicted += 1
                self._drop(victim)
        return fresh

    def release(self, handle: _Handle) -> None:
        """Unpin ``handle``; an evicted or forgotten handle is closed by its last user."""
        with self._lock:
            handle.pins -= 1
            if handle.pins == 0 and not handle.cached:
                os.close(handle.fd)

    @contextmanager
    def use(self, path: str, access: str) -> Iterator[int]:
        """``with cache.use(path, access) as fd:`` the descriptor, pinned for the block."""
        handle = self.acquire(path, access)
        try:
            yield handle.fd
        finally:
            self.release(handle)

    def forget(self, path: str) -> None:
        """Drop the cached handle of ``path`` (its file was deleted, truncated or replaced)."""
        with self._lock:
            handle = self._map.pop(path, None)
            if handle is not None:
                self._drop(handle)

    def forget_dir(self, directory: str) -> None:
        """Drop every cached handle of a file directly inside ``directory`` (a log closing or opening)."""
        with self._lock:
            prefix = os.path.join(directory, "")
            doomed = [p for p in self._map if p.startswith(prefix) and os.sep not in p[len(prefix) :]]
            for path in doomed:
                self._drop(self._map.pop(path))

    def close_all(self) -> None:
        """Drop every cached handle (the pool shutting down)."""
        with self._lock:
            while self._map:
                self._drop(self._map.popitem()[1])

    def stats(self) -> dict[str, int]:
        """open (held by the cache now), capacity, opened (since the start), evicted (to make room)."""
        with self._lock:
            return {
                "open": len(self._map),
                "capacity": self.capacity,
                "opened": self._opened,
                "evicted": self._evicted,
            }
