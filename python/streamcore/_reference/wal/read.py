"""Locating what a read returns (twin of ``read.rs``).

Pure lookups over the segment list: the log calls them under its state lock,
so the segments, the log start and the high watermark they see are consistent.
"""

from __future__ import annotations

import os
import struct
from bisect import bisect_right

from streamcore._reference._batch_header import (
    BASE_OFFSET_AT,
    BATCH_LENGTH_AT,
    HEADER_SIZE,
    LAST_OFFSET_DELTA_AT,
    LOG_OVERHEAD,
    MAGIC,
    MAGIC_AT,
    RECORDS_COUNT_AT,
)
from streamcore._reference.wal import error
from streamcore._reference.wal.files import READ
from streamcore._reference.wal.segment import Segment, iter_headers, pread

__all__ = ["Span", "file_ranges", "find_spans", "offset_for_timestamp"]

_I64 = struct.Struct(">q")
_I32 = struct.Struct(">i")

#: (segment, file position, length in bytes) of one contiguous run of whole batches.
Span = tuple[Segment, int, int]


def find_spans(
    segments: list[Segment],
    bases: list[int],
    log_start: int,
    high_watermark: int,
    directory: str,
    offset: int,
    max_bytes: int,
    nowait: bool = False,
) -> list[Span]:
    """Runs of whole batches from the one holding ``offset``: at least one, more while <= ``max_bytes``.

    Empty at the high watermark; OffsetOutOfRangeError below the log start or
    above the high watermark. ``bases`` is the segments' base offsets, for bisecting.
    ``nowait``: headers only from the page cache (see ``segment.pread``).
    """
    if offset < log_start or offset > high_watermark:
        raise error.out_of_range(offset, log_start, high_watermark, directory)
    if offset == high_watermark:
        return []
    i = bisect_right(bases, offset) - 1
    pos = segments[i].find_batch(offset, nowait)
    if pos is None:  # offset in a later segment than its base suggests: start there
        i += 1
        pos = 0
    spans = []
    total = 0
    first = True
    while i < len(segments):
        seg = segments[i]
        start = pos
        full = False
        with seg.files.use(seg.log_path, READ) as fd:
            for p, _base, size, _ld, _mts in iter_headers(fd, pos, seg.size, nowait):
                if not first and total + size > max_bytes:
                    full = True
                    break
                first = False
                total += size
                pos = p + size
        if pos > start:
            spans.append((seg, start, pos - start))
        if full:
            break
        i += 1
        pos = 0
    return spans


def file_ranges(
    spans: list[Span], stop_before: int | None, nowait: bool
) -> tuple[list[tuple[int, int, int]], int, int] | None:
    """``spans`` as (descriptor of its own, position, length) ranges, with the record count
    and the offset after the last batch (twin of ``Wal::file_ranges``).

    Called under the log's state lock, so the files are the ones the spans name.
    ``stop_before`` ends the ranges before the first batch whose base offset is at or
    above it. None when nothing is left to send from files (no spans, nothing below
    ``stop_before``, a header that is not a v2 batch's, or a file shorter than the
    log's record of it).
    """
    ranges: list[tuple[int, int, int]] = []
    records = 0
    end_offset = 0
    done = False
    try:
        for seg, position, length in spans:
            with seg.files.use(seg.log_path, READ) as fd:
                at, stop = position, position + length
                while at < stop:
                    head = pread(fd, HEADER_SIZE, at, nowait)
                    if len(head) < HEADER_SIZE:
                        _closing(ranges)  # cut short under the log
                        return None
                    base = _I64.unpack_from(head, BASE_OFFSET_AT)[0]
                    if stop_before is not None and base >= stop_before:
                        done = True
                        break
                    if head[MAGIC_AT] != MAGIC:
                        _closing(ranges)
                        return None
                    records += _I32.unpack_from(head, RECORDS_COUNT_AT)[0]
                    end_offset = base + _I32.unpack_from(head, LAST_OFFSET_DELTA_AT)[0] + 1
                    at += _I32.unpack_from(head, BATCH_LENGTH_AT)[0] + LOG_OVERHEAD
                if at > position:
                    ranges.append((os.dup(fd), position, at - position))
                    if os.fstat(fd).st_size < at:
                        _closing(ranges)  # cut short under the log
                        return None
            if done:
                break
    except BaseException:
        _closing(ranges)
        raise
    if not ranges:
        return None
    return ranges, records, end_offset


def _closing(ranges: list[tuple[int, int, int]]) -> None:
    """Close the descriptors :func:`file_ranges` took so far (before it answers None:
    the copying read reports what is wrong, where it is)."""
    for fd, _, _ in ranges:
        os.close(fd)


def offset_for_timestamp(segments: list[Segment], ts_ms: int) -> tuple[int, int] | None:
    """(base offset, max timestamp) of the first batch whose max timestamp >= ``ts_ms``; None if none."""
    for seg in segments:
        if seg.size == 0:
            continue
        largest = seg.largest_timestamp()
        if largest is None or largest < ts_ms:
            continue
        found = seg.first_batch_at_or_after_time(ts_ms)
        if found is not None:
            return found
    return None
