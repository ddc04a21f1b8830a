"""Locating what a read returns (twin of ``read.rs``).

Pure lookups over the segment list: the log calls them under its state lock,
so the segments, the log start and the high watermark they see are consistent.
"""

from __future__ import annotations

from bisect import bisect_right

from streamcore._reference.wal import error
from streamcore._reference.wal.files import READ
from streamcore._reference.wal.segment import Segment, iter_headers

__all__ = ["Span", "find_spans", "offset_for_timestamp"]

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
) -> list[Span]:
    """Runs of whole batches from the one holding ``offset``: at least one, more while <= ``max_bytes``.

    Empty at the high watermark; OffsetOutOfRangeError below the log start or
    above the high watermark. ``bases`` is the segments' base offsets, for bisecting.
    """
    if offset < log_start or offset > high_watermark:
        raise error.out_of_range(offset, log_start, high_watermark, directory)
    if offset == high_watermark:
        return []
    i = bisect_right(bases, offset) - 1
    pos = segments[i].find_batch(offset)
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
            for p, _base, size, _ld, _mts in iter_headers(fd, pos, seg.size):
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
