"""One segment of the reference WAL: file names, header walks, files and in-memory indexes (twin of ``segment.rs``).

A segment is ``<base>.log`` plus ``<base>.index`` and ``<base>.timeindex``.
The in-memory index lists mirror the index files; lookups bisect them, then walk
batch headers in the ``.log`` from the entry found. Only the writer
mutates a segment's counters; readers see ``size`` (committed bytes) and the
index lists, which the writer extends under the log's state lock.

A segment holds paths, not descriptors: its files come from the pool's
:class:`~streamcore._reference.wal.files.FileCache` when they are used.
"""

from __future__ import annotations

import errno
import os
from bisect import bisect_right
from collections.abc import Iterator

from streamcore._reference._batch_header import LOG_OVERHEAD, PREFIX, PREFIX_SIZE
from streamcore._reference.wal.files import READ, FileCache

__all__ = ["SEGMENT_SUFFIXES", "Segment", "iter_headers", "list_segment_bases", "pread", "segment_path"]

#: The files of one segment, by suffix.
SEGMENT_SUFFIXES = (".log", ".index", ".timeindex")
# Bytes read per pread while walking headers: a few small batches per call.
_WALK_CHUNK = 16384


def segment_path(directory: str, base_offset: int, suffix: str) -> str:
    """Path of a segment file: ``<base_offset:020d><suffix>`` inside ``directory``."""
    return os.path.join(directory, f"{base_offset:020d}{suffix}")


def list_segment_bases(directory: str) -> list[int]:
    """Base offsets of the ``.log`` segment files in ``directory``, ascending."""
    bases = []
    for name in os.listdir(directory):
        stem, dot, ext = name.partition(".")
        if ext == "log" and dot and len(stem) == 20 and stem.isdigit():
            bases.append(int(stem))
    bases.sort()
    return bases


def pread(fd: int, size: int, pos: int, nowait: bool = False) -> bytes:
    """``os.pread``; with ``nowait``, only from the page cache (Linux's RWF_NOWAIT).

    A nowait read that would wait for the disk raises BlockingIOError; where the flag
    is unknown to this ``os`` module, kernel or file system, OSError (EOPNOTSUPP,
    EINVAL or ENOSYS) says so. Fewer than ``size`` bytes come back only at the end of
    the file: a nowait read that the page cache serves in part reads on, and the rest,
    not cached, raises (a short answer would read as the end of the segment).
    """
    if not nowait:
        return os.pread(fd, size, pos)
    flag = getattr(os, "RWF_NOWAIT", None)
    if flag is None:
        raise OSError(errno.EOPNOTSUPP, "this platform has no RWF_NOWAIT")
    buf = bytearray(size)
    view = memoryview(buf)
    got = 0
    while got < size:
        n = os.preadv(fd, [view[got:]], pos + got, flag)
        if n == 0:
            break
        got += n
    view.release()
    return bytes(buf[:got])


def iter_headers(
    fd: int, pos: int, end: int, nowait: bool = False
) -> Iterator[tuple[int, int, int, int, int]]:
    """Yield (position, base_offset, total_size, last_offset_delta, max_timestamp) from ``pos`` to ``end``.

    Only for committed, already validated bytes (the writer checked framing on
    append, recovery checked CRCs): sizes are trusted. ``nowait``: see :func:`pread`.
    """
    unpack = PREFIX.unpack_from
    while pos < end:
        buf = pread(fd, min(_WALK_CHUNK, end - pos), pos, nowait)
        n = len(buf)
        if n < PREFIX_SIZE:
            return
        off = 0
        while off + PREFIX_SIZE <= n:
            base, length, _e, _m, _c, _a, last_delta, _bts, max_ts = unpack(buf, off)
            total = length + LOG_OVERHEAD
            yield pos + off, base, total, last_delta, max_ts
            off += total
        pos += off


class Segment:
    """Files and indexes of one segment (see module docstring)."""

    __slots__ = (
        "base",
        "directory",
        "log_path",
        "index_path",
        "timeindex_path",
        "files",
        "size",
        "next_offset",
        "idx_rel",
        "idx_pos",
        "t_ts",
        "t_rel",
        "bytes_since_index",
        "last_time_pos",
        "max_ts",
        "first_append_ms",
    )

    def __init__(self, directory: str, base: int, files: FileCache) -> None:
        self.base = base
        self.directory = directory
        self.log_path = segment_path(directory, base, ".log")
        self.index_path = segment_path(directory, base, ".index")
        self.timeindex_path = segment_path(directory, base, ".timeindex")
        self.files = files
        #: Committed size of the .log (bytes): readers never look past it.
        self.size = 0
        #: Offset after the last batch, when known (always for the active segment).
        self.next_offset: int | None = None
        self.idx_rel: list[int] = []
        self.idx_pos: list[int] = []
        self.t_ts: list[int] = []
        self.t_rel: list[int] = []
        self.bytes_since_index = 0
        #: Position of the batch behind the last time index entry (-1: none yet).
        self.last_time_pos = -1
        #: Largest maxTimestamp of the segment's batches; None = not computed yet.
        self.max_ts: int | None = None
        #: Wall time (ms) of the first append since open, for segment_ms rolls.
        self.first_append_ms: float | None = None

    # -- files ---------------------------------------------------------------

    def create_files(self, truncate: bool) -> None:
        """Create the segment's three files (emptied when ``truncate``: a roll over a stale name)."""
        flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if truncate else 0)
        for path in (self.log_path, self.index_path, self.timeindex_path):
            if truncate:
                # A cached handle of an earlier file by this name must not serve the new one.
                self.files.forget(path)
            os.close(os.open(path, flags, 0o644))

    def forget_files(self) -> None:
        """Drop the cached handles of the segment's files (deleted or renamed)."""
        for path in (self.log_path, self.index_path, self.timeindex_path):
            self.files.forget(path)

    # -- index maintenance (writer thread and recovery; rules in index.py) ----

    def commit_entries(self, entries: list) -> None:
        """Make planned entries visible to readers (caller holds the state lock)."""
        for kind, a, b in entries:
            if kind == "i":
                self.idx_rel.append(a)
                self.idx_pos.append(b)
            else:
                self.t_ts.append(a)
                self.t_rel.append(b)

    def reset_indexes(self) -> None:
        """Forget every index entry and counter (before a rebuild)."""
        self.idx_rel.clear()
        self.idx_pos.clear()
        self.t_ts.clear()
        self.t_rel.clear()
        self.bytes_since_index = 0
        self.last_time_pos = -1
        self.max_ts = None

    def restore_writer_state(self) -> None:
        """Derive the writer's counters from the loaded indexes, as if they had just been rebuilt."""
        self.bytes_since_index = self.size - self.idx_pos[-1] if self.idx_pos else 0
        if self.t_rel:
            pos = self.find_batch(self.base + self.t_rel[-1])
            self.last_time_pos = pos if pos is not None else 0
        self.max_ts = None
        self.largest_timestamp()

    # -- lookups (readers) ---------------------------------------------------

    def index_floor(self, offset: int) -> int:
        """File position of the last indexed batch whose base offset is <= ``offset`` (0 if none)."""
        i = bisect_right(self.idx_rel, offset - self.base) - 1
        return self.idx_pos[i] if i >= 0 else 0

    def find_batch(self, offset: int, nowait: bool = False) -> int | None:
        """File position of the committed batch containing ``offset``; None if past the end.

        ``nowait``: headers only from the page cache (see :func:`pread`)."""
        with self.files.use(self.log_path, READ) as fd:
            walk = iter_headers(fd, self.index_floor(offset), self.size, nowait)
            for pos, base, _total, last_delta, _mts in walk:
                if base + last_delta >= offset:
                    return pos
        return None

    def largest_timestamp(self) -> int | None:
        """Largest maxTimestamp among committed batches (walks from the last time entry once)."""
        if self.max_ts is not None:
            return self.max_ts
        if self.size == 0:
            return None
        start = self.index_floor(self.base + self.t_rel[-1]) if self.t_rel else 0
        best = self.t_ts[-1] if self.t_ts else None
        with self.files.use(self.log_path, READ) as fd:
            for _pos, _base, _total, _ld, mts in iter_headers(fd, start, self.size):
                if best is None or mts > best:
                    best = mts
        self.max_ts = best
        return best

    def first_batch_at_or_after_time(self, ts_ms: int) -> tuple[int, int] | None:
        """(base offset, max timestamp) of the first batch whose max timestamp >= ``ts_ms``."""
        # Entries hold the max timestamp so far, so every batch up to the last
        # entry below ts_ms is below it as well: start the walk there.
        i = bisect_right(self.t_ts, ts_ms - 1) - 1
        start = self.index_floor(self.base + self.t_rel[i]) if i >= 0 else 0
        with self.files.use(self.log_path, READ) as fd:
            for _pos, base, _total, _ld, mts in iter_headers(fd, start, self.size):
                if mts >= ts_ms:
                    return base, mts
        return None
