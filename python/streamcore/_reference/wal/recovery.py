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
* a recovery point below the end of a cleanly closed log (an operator lowered
  it) is honoured: the log is scanned from there as after a crash.

What opening did is summed up in a report (``Recovered.report``, the same
fields as the native ``RecoveryReport``), which ``WalLog.recovery_report`` serves.
"""

from __future__ import annotations

import mmap
import os
from dataclasses import dataclass, field
from typing import Any

from streamcore._atomic_file import fsync_dir
from streamcore._reference._batch_header import (
    CRC_START,
    HEADER_SIZE,
    LOG_OVERHEAD,
    MAGIC,
    MIN_BATCH_LENGTH,
    PREFIX,
    parse_header,
)
from streamcore._reference.crc32c import crc32c
from streamcore._reference.wal.checkpoint import CLEAN_SHUTDOWN_NAME, read_checkpoint
from streamcore._reference.wal.files import READ, FileCache
from streamcore._reference.wal.index import load_indexes, plan_batch, write_index_file
from streamcore._reference.wal.segment import (
    SEGMENT_SUFFIXES,
    Segment,
    iter_headers,
    list_segment_bases,
    segment_path,
)
from streamcore._reference.wal.swap import complete_swaps, read_compacted_offset
from streamcore.errors import StorageError

__all__ = ["Recovered", "new_report", "open_directory"]

#: Suffixes left behind by a crash mid-deletion, mid-checkpoint or mid-compaction.
STRAY_SUFFIXES = (".deleted", ".tmp", ".cleaned")


@dataclass
class Recovered:
    """What open() found: segments (last = active), offsets and the recovery report."""

    segments: list[Segment]
    log_start_offset: int
    high_watermark: int
    report: dict[str, Any] = field(default_factory=dict)
    #: offsets below it may be missing (removed by compaction); see swap.py
    compacted_offset: int = 0

    @property
    def scanned_segments(self) -> int:
        return int(self.report["scanned_segments"])

    @property
    def truncated_bytes(self) -> int:
        return int(self.report["truncated_bytes"])


def new_report(directory: str, clean: bool) -> dict[str, Any]:
    """An empty recovery report (keys and meaning as the native ``WalLog.recovery_report``)."""
    return {
        "directory": directory,
        "clean": clean,
        "scanned_segments": 0,
        "truncated_bytes": 0,
        "segments_deleted": 0,
        "first_dropped_offset": None,
        "old_end_offset": 0,
        "end_offset": 0,
        "cut_file": None,
        "cut_position": None,
        "reason": None,
        "swaps_completed": 0,
    }


def _way_out(directory: str) -> str:
    return f"; to drop the damaged data and everything after it, run: streamcore log recover --truncate {directory}"


def _header_chain_end(fd: int, pos: int, size: int, expected: int) -> int:
    """Next offset after the chain of well-formed headers with consecutive offsets from byte ``pos``.

    For bytes about to be dropped: nothing in them is trusted, so each header is
    checked before it is followed (twin of ``header_chain_end``).
    """
    while pos + HEADER_SIZE <= size:
        head = os.pread(fd, HEADER_SIZE, pos)
        if len(head) < HEADER_SIZE:
            break
        h = parse_header(head)
        if h.batch_length < MIN_BATCH_LENGTH or h.magic != MAGIC or h.base_offset != expected:
            break
        if h.last_offset_delta < 0:
            break
        expected = h.base_offset + h.last_offset_delta + 1
        pos += h.batch_length + LOG_OVERHEAD
    return expected


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


def _scan(
    seg: Segment, fd: int, expected: int, interval: int, gaps_below: int = 0
) -> tuple[int, int, str | None, bytes, bytes]:
    """Validate every batch of ``seg`` (open as ``fd``) from byte 0, rebuilding its index entries on the way.

    A batch must start at ``expected`` (the next offset), or above it when it starts
    below ``gaps_below`` (the compacted offset: compaction removes offsets).
    Returns (end position of the last good batch, next offset, reason the scan
    stopped early or None, offset index bytes, time index bytes).
    """
    seg.reset_indexes()
    size = os.fstat(fd).st_size
    idx_out = bytearray()
    tidx_out = bytearray()
    entries: list = []
    if size == 0:
        return 0, expected, None, b"", b""
    mm = mmap.mmap(fd, size, prot=mmap.PROT_READ)
    view = memoryview(mm)
    pos = 0
    reason = None
    unpack = PREFIX.unpack_from
    try:
        # The reasons are word for word the native twin's: the report carries them.
        while pos < size:
            if size - pos < HEADER_SIZE:
                reason = "batch header cut short by the end of the file"
                break
            base, length, _e, magic, crc, _a, last_delta, _bts, max_ts = unpack(view, pos)
            if length < MIN_BATCH_LENGTH:
                reason = f"batchLength {length} cannot frame a batch"
                break
            if magic != MAGIC:
                reason = f"magic {magic} is not 2"
                break
            end = pos + LOG_OVERHEAD + length
            if end > size:
                reason = f"batch of {end - pos} bytes runs past the end of the file"
                break
            computed = crc32c(view[pos + CRC_START : end])
            if computed != crc:
                reason = f"CRC32C mismatch (stored {crc:#010x}, computed {computed:#010x})"
                break
            if base != expected and not (expected < base < gaps_below):
                reason = f"baseOffset {base} where {expected} was expected"
                break
            if last_delta < 0:
                reason = f"negative lastOffsetDelta {last_delta}"
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


def _delete_segment_files(directory: str, base: int, files: FileCache) -> None:
    for suffix in SEGMENT_SUFFIXES:
        path = segment_path(directory, base, suffix)
        files.forget(path)
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


def _clean_tail(seg: Segment) -> int | None:
    """Walk the last segment from its last index entry; its next offset if it ends on a whole batch."""
    start = seg.idx_pos[-1] if seg.idx_pos else 0
    expected = seg.base + seg.idx_rel[-1] if seg.idx_rel else seg.base
    pos = start
    with seg.files.use(seg.log_path, READ) as fd:
        for p, base, total, last_delta, _mts in iter_headers(fd, start, seg.size):
            if p != pos or base != expected or total < HEADER_SIZE or last_delta < 0:
                return None
            pos = p + total
            expected = base + last_delta + 1
    return expected if pos == seg.size else None


def _try_clean_open(directory: str, bases: list[int], files: FileCache) -> list[Segment] | None:
    segments: list[Segment] = []
    try:
        for i, base in enumerate(bases):
            seg = Segment(directory, base, files)
            segments.append(seg)
            seg.size = os.stat(seg.log_path).st_size
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
        return None


def open_directory(directory: str, interval: int, files: FileCache) -> Recovered:
    """Open (creating if needed) and recover a partition directory; see the module docstring.

    Segment files are opened through ``files`` when read; recovery's own scans and
    truncations use descriptors it closes before returning.
    """
    os.makedirs(directory, exist_ok=True)
    # A committed swap is finished before anything is listed; an uncommitted one
    # (a .cleaned file) is rolled back with the other strays.
    swaps = complete_swaps(directory, files)
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
    compacted = read_compacted_offset(directory)
    report = new_report(directory, clean)
    report["swaps_completed"] = swaps

    if not bases:
        seg = Segment(directory, log_start, files)
        seg.create_files(truncate=False)
        seg.next_offset = log_start
        fsync_dir(directory)
        segments = [seg]
    else:
        trusted = _try_clean_open(directory, bases, files) if clean else None
        if trusted is not None and checkpoint is not None:
            end = trusted[-1].next_offset
            # A clean close leaves the recovery point at the end; one below it was
            # lowered by an operator asking for a scan (and truncation) from there.
            if end is not None and max(recovery_point, log_start, bases[0]) < end:
                trusted = None
        if trusted is not None:
            segments = trusted
        else:
            segments = _recover(
                directory, bases, max(recovery_point, log_start), interval, report, files, compacted
            )

    active = segments[-1]
    hw = active.next_offset if active.next_offset is not None else active.base
    log_start = min(max(log_start, segments[0].base), hw)
    active.create_files(truncate=False)
    active.restore_writer_state()
    report["end_offset"] = hw
    report["old_end_offset"] = max(report["old_end_offset"], hw)
    if report["truncated_bytes"] > 0:
        report["first_dropped_offset"] = hw
    return Recovered(segments, log_start, hw, report, compacted)


def _recover(
    directory: str,
    bases: list[int],
    recovery_point: int,
    interval: int,
    report: dict[str, Any],
    files: FileCache,
    compacted: int,
) -> list[Segment]:
    # The segment holding the recovery point: the last one starting at or below it.
    first_scan = 0
    for i, base in enumerate(bases):
        if base <= recovery_point:
            first_scan = i
    segments: list[Segment] = []
    try:
        for i, base in enumerate(bases[:first_scan]):
            seg = Segment(directory, base, files)
            segments.append(seg)
            seg.size = os.stat(seg.log_path).st_size
            seg.next_offset = bases[i + 1]
            if not load_indexes(seg, bases[i + 1]):
                fd = os.open(seg.log_path, os.O_RDONLY)
                try:
                    end, nxt, reason, idx, tidx = _scan(seg, fd, base, interval, compacted)
                finally:
                    os.close(fd)
                # Compaction may leave a segment ending before the next one starts.
                ends_early = nxt < bases[i + 1] <= compacted
                if reason is not None or (nxt != bases[i + 1] and not ends_early):
                    why = reason or f"segment ends at offset {nxt}, next segment starts at {bases[i + 1]}"
                    raise StorageError(
                        f"{seg.log_path}: corrupt data at byte {end} below the recovery point "
                        f"{recovery_point}: {why}{_way_out(directory)}"
                    )
                write_index_file(seg.index_path, idx)
                write_index_file(seg.timeindex_path, tidx)
        expected = bases[first_scan]
        stop_at = len(bases)
        for i in range(first_scan, len(bases)):
            base = bases[i]
            if base != expected and not (expected < base <= compacted):
                # A gap or overlap between segments ends the log at the previous segment.
                path = segment_path(directory, base, ".log")
                if expected < recovery_point:
                    raise StorageError(
                        f"{path}: segment starts at offset {base} but the log before it ends at {expected}, "
                        f"below the recovery point {recovery_point}: fsynced data is missing"
                        f"{_way_out(directory)}"
                    )
                report["cut_file"] = path
                report["cut_position"] = 0
                report["reason"] = f"segment starts at offset {base} where {expected} was expected"
                stop_at = i
                break
            seg = Segment(directory, base, files)
            segments.append(seg)
            fd = os.open(seg.log_path, os.O_RDWR)
            try:
                end, nxt, reason, idx, tidx = _scan(seg, fd, expected, interval, compacted)
                report["scanned_segments"] += 1
                if reason is not None and nxt < recovery_point:
                    raise StorageError(
                        f"{seg.log_path}: corrupt record batch at byte {end} (offset {nxt}: {reason}) below "
                        f"the recovery point {recovery_point}: data that was fsynced is damaged; refusing "
                        f"to truncate it{_way_out(directory)}"
                    )
                file_size = os.fstat(fd).st_size
                if end < file_size:
                    report["old_end_offset"] = _header_chain_end(fd, end, file_size, nxt)
                    report["truncated_bytes"] += file_size - end
                    report["cut_file"] = seg.log_path
                    report["cut_position"] = end
                    report["reason"] = reason
                    os.ftruncate(fd, end)
                os.fsync(fd)
            finally:
                os.close(fd)
            seg.size = end
            seg.next_offset = nxt
            write_index_file(seg.index_path, idx)
            write_index_file(seg.timeindex_path, tidx)
            expected = nxt
            if reason is not None:
                stop_at = i + 1
                break
            if i + 1 < len(bases) and nxt < bases[i + 1] <= compacted:
                expected = bases[i + 1]
        if expected < recovery_point:
            raise StorageError(
                f"{directory}: the log ends at offset {expected}, below the recovery point {recovery_point}: "
                f"data that was fsynced is missing{_way_out(directory)}"
            )
        for base in bases[stop_at:]:
            path = segment_path(directory, base, ".log")
            fd = os.open(path, os.O_RDONLY)
            try:
                size = os.fstat(fd).st_size
                chain_end = _header_chain_end(fd, 0, size, base)
            finally:
                os.close(fd)
            report["old_end_offset"] = max(report["old_end_offset"], chain_end)
            report["truncated_bytes"] += size
            report["segments_deleted"] += 1
            _delete_segment_files(directory, base, files)
        fsync_dir(directory)
    except BaseException:
        for seg in segments:
            seg.forget_files()
        raise
    return segments
