"""A Fetch response's record sets, and which batches the broker has checked.

A partition's records leave the frame the encoder builds (``headers.OutOfLine``) and go
to the socket on their own: as open segment-file ranges sent with ``os.sendfile``
(:class:`FileRecords`, no user-space copy; only for batches this process has checked,
:class:`_Verified`) or as the one buffer a read filled (:class:`BufferRecords`). The
Fetch handler (``broker/handlers/fetch.py``) decides which, and :func:`open_files`
finds the ranges, on the event loop with ``RWF_NOWAIT`` when the page cache holds the
batch headers (:class:`WouldBlock` when it does not).
"""

from __future__ import annotations

import errno
import os
import struct
import threading
import weakref
from typing import Any

from streamcore.codec.batch_header import (
    BASE_OFFSET_AT,
    BATCH_LENGTH_AT,
    HEADER_SIZE,
    LAST_OFFSET_DELTA_AT,
    LOG_OVERHEAD,
)
from streamcore.errors import StorageError
from streamcore.protocol.headers import OutOfLine

__all__ = [
    "BufferRecords",
    "FileRecords",
    "WouldBlock",
    "note_checked",
    "open_files",
    "trusted",
]

_I64 = struct.Struct(">q")
_I32 = struct.Struct(">i")

# Linux's RWF_NOWAIT: a read that would wait for the disk fails with EAGAIN instead.
# Cleared the first time the kernel or file system refuses the flag itself.
_RWF_NOWAIT: int | None = getattr(os, "RWF_NOWAIT", None)


class WouldBlock(Exception):
    """A header is not in the page cache: the read belongs on a read thread."""


class FileRecords(OutOfLine):
    """A partition's record set as ranges of open segment files, for ``os.sendfile``.

    ``ranges`` is a list of (file descriptor, byte position, length in bytes); the
    descriptors belong to this object and are closed by :meth:`close` (or when it is
    collected). A descriptor keeps its file readable even when retention deletes the
    segment meanwhile. ``records`` is the number of records, ``end_offset`` the offset
    after the last batch.
    """

    __slots__ = ("_length", "end_offset", "ranges", "records")

    def __init__(self, ranges: list[tuple[int, int, int]], records: int, end_offset: int) -> None:
        self.ranges = ranges
        self._length = ranges[0][2] if len(ranges) == 1 else sum(length for _, _, length in ranges)
        self.records = records
        self.end_offset = end_offset

    def __len__(self) -> int:
        return self._length

    def __bool__(self) -> bool:
        return self._length > 0

    def materialize(self) -> bytes:
        """The bytes, read with pread (for a sender that cannot use sendfile).

        Raises StorageError when a file is shorter than its range (cut under the broker).
        """
        pieces = []
        for fd, position, length in self.ranges:
            data = os.pread(fd, length, position)
            if len(data) != length:
                raise StorageError(
                    f"a segment file ended {length - len(data)} bytes early at byte {position}"
                )
            pieces.append(data)
        return pieces[0] if len(pieces) == 1 else b"".join(pieces)

    def close(self) -> None:
        ranges, self.ranges = self.ranges, []
        for fd, _, _ in ranges:
            try:
                os.close(fd)
            except OSError:
                pass

    def __del__(self) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<FileRecords {self._length} bytes in {len(self.ranges)} range(s)>"


class BufferRecords(OutOfLine):
    """A partition's record set as the buffer one read filled (sent without a copy into the frame)."""

    __slots__ = ("data",)

    def __init__(self, data: bytes | memoryview) -> None:
        self.data = data

    def __len__(self) -> int:
        return len(self.data)

    def __bool__(self) -> bool:
        return len(self.data) > 0

    def materialize(self) -> bytes | memoryview:
        return self.data

    def __repr__(self) -> str:
        return f"<BufferRecords {len(self.data)} bytes>"


class _Verified:
    """The offsets of one log whose batches this process has checked.

    Everything from ``low`` up: batches appended through this broker since the log was
    opened (the produce path validated each, CRC32C included; the coordinators and the
    cleaner wrote theirs), and below that, batches a fetch read and checked once their
    checked reads reach up to ``low``. ``runs`` (end offset -> first offset) holds
    checked reads not yet joined to ``low``, so a consumer catching up from the start
    joins them as it goes; only the newest ``_MAX_RUNS`` are kept.
    """

    __slots__ = ("low", "runs")
    _MAX_RUNS = 32

    def __init__(self, low: int) -> None:
        self.low = low
        self.runs: dict[int, int] = {}

    def add(self, first: int, end: int) -> None:
        """Batches from offset ``first`` up to ``end`` (exclusive) were read and checked."""
        start = self.runs.pop(first, first)
        if end >= self.low:
            if start < self.low:
                self.low = start
                # Runs now inside [low, ...) say nothing more.
                for run_end in [e for e in self.runs if e >= start]:
                    del self.runs[run_end]
            return
        self.runs[end] = start
        if len(self.runs) > self._MAX_RUNS:
            del self.runs[next(iter(self.runs))]


_verified_lock = threading.Lock()
_verified: weakref.WeakKeyDictionary[Any, _Verified] = weakref.WeakKeyDictionary()


def _verified_of(plog: Any) -> _Verified:
    with _verified_lock:
        found = _verified.get(plog)
        if found is None:
            # A log that does not say where it was opened trusts nothing it did not check.
            found = _verified[plog] = _Verified(getattr(plog, "opened_end_offset", 1 << 62))
        return found


def trusted(plog: Any, offset: int) -> bool:
    v = _verified_of(plog)
    with _verified_lock:
        return offset >= v.low


def note_checked(plog: Any, data: bytes | memoryview) -> int:
    """Record the batches of ``data`` (whole, checked) as verified; returns the offset
    after the last of them (-1 when ``data`` holds none)."""
    if len(data) < HEADER_SIZE:
        return -1
    view = memoryview(data)
    first = _I64.unpack_from(view, BASE_OFFSET_AT)[0]
    pos, end, n = 0, first, len(view)
    while pos + HEADER_SIZE <= n:
        end = (
            _I64.unpack_from(view, pos + BASE_OFFSET_AT)[0]
            + _I32.unpack_from(view, pos + LAST_OFFSET_DELTA_AT)[0]
            + 1
        )
        pos += _I32.unpack_from(view, pos + BATCH_LENGTH_AT)[0] + LOG_OVERHEAD
    v = _verified_of(plog)
    with _verified_lock:
        v.add(first, end)
    return end


def open_files(
    plog: Any, offset: int, max_bytes: int, nowait: bool = False, stop_before: int | None = None
) -> FileRecords | None:
    """The batches ``plog.read(offset, max_bytes)`` would return, as open file ranges.

    ``stop_before`` (read_committed: the last stable offset) ends the ranges before the
    first batch starting at or above it, as :func:`committed_prefix` cuts a buffer.

    The log finds the batches, counts their records and opens descriptors of their
    files in one walk under its lock (``Log.file_ranges``), so a compaction swap or
    retention cannot come in between. None when that cannot be done (no data, a
    header that does not parse, a storage error): the caller reads by copying, which
    reports whatever is wrong. Runs on a read thread, or with ``nowait`` on the event
    loop, where a header not in the page cache raises :class:`WouldBlock`.
    """
    global _RWF_NOWAIT
    if nowait and _RWF_NOWAIT is None:
        raise WouldBlock
    try:
        found = plog.file_ranges(offset, max_bytes, stop_before, nowait)
    except BlockingIOError:
        raise WouldBlock from None
    except StorageError:
        return None  # the copying read meets the same and reports it with its place
    except OSError as exc:
        if nowait and exc.errno in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
            _RWF_NOWAIT = None  # not supported here: every read goes to the pool
            raise WouldBlock from None
        return None
    if found is None:
        return None
    ranges, records, end_offset = found
    return FileRecords(ranges, records, end_offset)
