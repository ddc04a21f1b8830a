"""Opening a partition directory for the reference WAL: clean-shutdown fast path and crash recovery.

Twin of ``recovery.rs``. The rules (docs/storage.md, identical in the native twin):

* stray ``*.deleted`` / ``*.tmp`` / ``*.cleaned`` files are removed;
* with ``.clean_shutdown`` present, index files are trusted and only the tail of
  the last segment is walked to check it ends on a whole batch;
* otherwise every segment from the one holding the recovery point on is
  scanned batch by batch (length, magic, CRC32C, expected base offset); the
  first bad batch ends the log: its file is truncated there and later segments
  are deleted. A bad batch *below* the recovery point is a StorageError.
* indexes of scanned segments are rebuilt; indexes of other segments are
  loaded and, if implausible, rebuilt from the ``.log``.
"""

from __future__ import annotations

import mmap
import os
from dataclasses import dataclass

from streamcore._atomic_file import fsync_dir
from streamcore._reference._batch_header import (
    CRC_START,
    HEADER_SIZE,
    LOG_OVERHEAD,
    MAGIC,
    MIN_BATCH_LENGTH,
    PREFIX,
)
from streamcore._reference.crc32c import crc32c
from streamcore._reference.wal.checkpoint import CLEAN_SHUTDOWN_NAME, read_checkpoint
from streamcore._reference.wal.index import load_indexes, plan_batch, write_index_file
from streamcore._reference.wal.segment import (
    SEGMENT_SUFFIXES,
    Segment,
    iter_headers,
    list_segment_bases,
    segment_path,
)
from streamcore.errors import StorageError

__all__ = ["Recovered", "open_directory"]

#: Suffixes left behind by a crash mid-deletion, mid-checkpoint or mid-compaction.
STRAY_SUFFIXES = (".deleted", ".tmp", ".cleaned")


@dataclass
class Recovered:
    """What open() found: segments (last = active, all opened), offsets and whether it scanned."""

    segments: list[Segment]
    log_start_offset: int
    high_watermark: int
    scanned_segments: int
    truncated_bytes: int


def _remove_strays(directory: str) -> bool:
    removed = False
    bases = set(list_segment_bases(directory))
    for name in os.listdir(directory):
        path = os.path.join(directory, name)
        stray = name.endswith(STRAY_SUFFIXES)
        if not stray and name.endswith((".index", ".timeindex")):
            # An index without its .log is left from a deletion that got as far as the .log.
            stem = name.partition(".")[0]
            stray = len(stem) == 20 and stem.isdigit() and int(stem) not in bases
        if stray and os.path.isfile(path):
            os.unlink(path)
            removed = True
    return removed


def _scan(seg: Segment, expected: int, interval: int) -> tuple[int, int, str | None, bytes, bytes]:
    """Validate every batch of ``seg`` from byte 0, rebuilding its index entries on the way.

    Returns (end position of the last good batch, next offset, reason the scan
    stopped early or None, offset index bytes, time index bytes).
    """
    seg.reset_indexes()
    size = os.fstat(seg.fd).st_size
    idx_out = bytearray()
    tidx_out = bytearray()
    entries: list = []
    if size == 0:
        return 0, expected, None, b"", b""
    mm = mmap.mmap(seg.fd, size, prot=mmap.PROT_READ)
    view = memoryview(mm)
    pos = 0
    reason = None
    unpack = PREFIX.unpack_from
    try:
        while pos < size:
            if size - pos < HEADER_SIZE:
                reason = f"short batch header ({size - pos} bytes before end of file)"
                break
            base, length, _e, magic, crc, _a, last_delta, _bts, max_ts = unpack(view, pos)
            if length <= 0 or magic != MAGIC:
                reason = f"zeroed or invalid batch (batchLength {length}, magic {magic})"
                break
            end = pos + LOG_OVERHEAD + length
            if length < MIN_BATCH_LENGTH or end > size:
                reason = f"batchLength {length} runs past end of file ({size} bytes)"
                break
            if crc32c(view[pos + CRC_START : end]) != crc:
                reason = "CRC32C mismatch"
                break
            if base != expected or last_delta < 0:
                reason = (
                    f"baseOffset {base} (lastOffsetDelta {last_delta}) where offset {expected} was expected"
                )
                break
            idx, tidx = plan_batch(seg, base, pos, end - pos, max_ts, interval, entries)
            idx_out += idx
            tidx_out += tidx
            expected = base + last_delta + 1
            pos = end
    finally:
        view.release()
        mm.close()
    seg.commit_entries(entries)
    return pos, expected, reason, bytes(idx_out), bytes(tidx_out)


def _delete_segment_files(directory: str, base: int) -> None:
    for suffix in SEGMENT_SUFFIXES:
        try:
            os.unlink(segment_path(directory, base, suffix))
        except FileNotFoundError:
            pass


def _clean_tail(seg: Segment) -> int | None:
    """Walk the last segment from its last index entry; its next offset if it ends on a whole batch."""
    start = seg.idx_pos[-1] if seg.idx_pos else 0
    expected = seg.base + seg.idx_rel[-1] if seg.idx_rel else seg.base
    pos = start
    for p, base, total, last_delta, _mts in iter_headers(seg.fd, start, seg.size):
        if p != pos or base != expected or total < HEADER_SIZE or last_delta < 0:
            return None
        pos = p + total
        expected = base + last_delta + 1
    return expected if pos == seg.size else None


def _try_clean_open(directory: str, bases: list[int]) -> list[Segment] | None:
    segments: list[Segment] = []
    try:
        for i, base in enumerate(bases):
            seg = Segment(directory, base)
            segments.append(seg)
            seg.open_log(create=False)
            seg.size = os.fstat(seg.fd).st_size
            limit = bases[i + 1] if i + 1 < len(bases) else None
            if not load_indexes(seg, limit):
                raise LookupError(seg.index_path)
            seg.next_offset = limit
        last = segments[-1]
        nxt = _clean_tail(last)
        if nxt is None:
            raise LookupError(last.log_path)
        last.next_offset = nxt
        return segments
    except LookupError:
        for seg in segments:
            seg.close()
        return None


def open_directory(directory: str, interval: int) -> Recovered:
    """Open (creating if needed) and recover a partition directory; see the module docstring."""
    os.makedirs(directory, exist_ok=True)
    dirty_dir = _remove_strays(directory)
    marker = os.path.join(directory, CLEAN_SHUTDOWN_NAME)
    clean = os.path.exists(marker)
    if clean:
        # Gone before any append: a crash from here on must not look clean.
        os.unlink(marker)
        dirty_dir = True
    if dirty_dir:
        fsync_dir(directory)
    checkpoint = read_checkpoint(directory)
    log_start, recovery_point = checkpoint if checkpoint is not None else (0, 0)
    bases = list_segment_bases(directory)
    scanned = 0
    truncated = 0

    if not bases:
        seg = Segment(directory, log_start)
        seg.open_log(create=True)
        seg.next_offset = log_start
        fsync_dir(directory)
        segments = [seg]
    else:
        trusted = _try_clean_open(directory, bases) if clean else None
        if trusted is not None:
            segments = trusted
        else:
            segments, scanned, truncated = _recover(directory, bases, recovery_point, interval)

    active = segments[-1]
    hw = active.next_offset if active.next_offset is not None else active.base
    log_start = min(max(log_start, segments[0].base), hw)
    active.open_index_writers()
    active.restore_writer_state()
    return Recovered(segments, log_start, hw, scanned, truncated)


def _recover(
    directory: str, bases: list[int], recovery_point: int, interval: int
) -> tuple[list[Segment], int, int]:
    # The segment holding the recovery point: the last one starting at or below it.
    first_scan = 0
    for i, base in enumerate(bases):
        if base <= recovery_point:
            first_scan = i
    segments: list[Segment] = []
    scanned = 0
    truncated = 0
    try:
        for i, base in enumerate(bases[:first_scan]):
            seg = Segment(directory, base)
            segments.append(seg)
            seg.open_log(create=False)
            seg.size = os.fstat(seg.fd).st_size
            seg.next_offset = bases[i + 1]
            if not load_indexes(seg, bases[i + 1]):
                end, nxt, reason, idx, tidx = _scan(seg, base, interval)
                if reason is not None or nxt != bases[i + 1]:
                    raise StorageError(
                        f"{seg.log_path}: corrupt data at byte {end} below the recovery point "
                        f"{recovery_point}: {reason or f'segment ends at offset {nxt}, next segment starts at {bases[i + 1]}'}"
                    )
                write_index_file(seg.index_path, idx)
                write_index_file(seg.timeindex_path, tidx)
        expected = bases[first_scan]
        stop_at = len(bases)
        for i in range(first_scan, len(bases)):
            base = bases[i]
            if base != expected:
                # A gap or overlap between segments ends the log at the previous segment.
                if expected < recovery_point:
                    raise StorageError(
                        f"{segment_path(directory, base, '.log')}: starts at offset {base} but the previous "
                        f"segment ends at {expected}, below the recovery point {recovery_point}"
                    )
                stop_at = i
                break
            seg = Segment(directory, base)
            segments.append(seg)
            seg.open_log(create=False)
            end, nxt, reason, idx, tidx = _scan(seg, expected, interval)
            scanned += 1
            if reason is not None and nxt < recovery_point:
                raise StorageError(
                    f"{seg.log_path}: corrupt batch at byte {end} (offset {nxt}) below the recovery point "
                    f"{recovery_point}: {reason}; fsynced data was damaged, refusing to drop it"
                )
            file_size = os.fstat(seg.fd).st_size
            if end < file_size:
                truncated += file_size - end
                os.ftruncate(seg.fd, end)
            os.fsync(seg.fd)
            seg.size = end
            seg.next_offset = nxt
            write_index_file(seg.index_path, idx)
            write_index_file(seg.timeindex_path, tidx)
            expected = nxt
            if reason is not None:
                stop_at = i + 1
                break
        for base in bases[stop_at:]:
            _delete_segment_files(directory, base)
        if expected < recovery_point:
            raise StorageError(
                f"{directory}: the log ends at offset {expected}, below the recovery point {recovery_point}; "
                "fsynced data is missing"
            )
        fsync_dir(directory)
    except BaseException:
        for seg in segments:
            seg.close()
        raise
    return segments, scanned, truncated
