"""Swapping a cleaned segment into a live log, and completing a swap at open (twin of ``swap.rs``).

The contract is docs/storage.md, "Swapping cleaned segments into a live log". In short:
the ``.cleaned`` file is checked and indexed first, without the state lock; then
``compacted-offset`` is raised, the file is renamed to ``<base>-<end>.log.swap`` (the
commit point: from then on recovery completes the swap), the replaced segments' files
are renamed to ``*.deleted`` and the ``.swap`` to ``<base>.log`` under the state lock,
and last the new indexes are written and the ``*.deleted`` files unlinked.
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING

from streamcore._atomic_file import fsync_dir, write_atomic
from streamcore._reference.wal import error
from streamcore._reference.wal.index import write_index_file
from streamcore._reference.wal.segment import SEGMENT_SUFFIXES, Segment, segment_path
from streamcore.errors import StorageError

if TYPE_CHECKING:
    from streamcore._reference.wal import WalLog
    from streamcore._reference.wal.files import FileCache

__all__ = [
    "COMPACTED_OFFSET_NAME",
    "complete_swaps",
    "read_compacted_offset",
    "replace_segments",
    "swap_name",
]

#: One decimal line: below this offset compaction may have removed offsets.
COMPACTED_OFFSET_NAME = "compacted-offset"
#: ``<base:020>-<end:020>.log.swap``: a committed swap of the segments in [base, end).
_SWAP_NAME = re.compile(r"^(\d{20})-(\d{20})\.log\.swap$")


def swap_name(base: int, end: int) -> str:
    """File name of the committed swap of the segments in [``base``, ``end``)."""
    return f"{base:020d}-{end:020d}.log.swap"


def read_compacted_offset(directory: str) -> int:
    """The offset below which compaction may have left gaps (0 when the log was never compacted).

    An unreadable file is a StorageError: it is only ever replaced atomically.
    """
    path = os.path.join(directory, COMPACTED_OFFSET_NAME)
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        return 0
    except (OSError, UnicodeDecodeError) as exc:
        raise StorageError(f"{path}: unreadable compacted offset ({exc})") from exc
    try:
        value = int(text.strip())
        if value < 0:
            raise ValueError(f"negative offset {value}")
    except ValueError as exc:
        raise StorageError(f"{path}: unreadable compacted offset ({exc}); expected one decimal line") from exc
    return value


def _write_compacted_offset(directory: str, offset: int) -> None:
    write_atomic(os.path.join(directory, COMPACTED_OFFSET_NAME), f"{offset}\n")


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def complete_swaps(directory: str, files: FileCache) -> int:
    """Finish every committed swap left by a crash; return how many there were.

    For each ``<base>-<end>.log.swap``: the files of every segment with a base in
    [base, end) are deleted and the swap becomes ``<base>.log`` (its indexes are
    rebuilt by the open that follows). The directory is fsynced once at the end.
    An I/O failure is a StorageError naming the directory (the next open retries).
    """
    try:
        return _complete_swaps(directory, files)
    except OSError as exc:
        raise StorageError(f"{directory}: completing a swap of cleaned segments failed: {exc!r}") from exc


def _complete_swaps(directory: str, files: FileCache) -> int:
    swaps = sorted(
        (m for m in (_SWAP_NAME.match(n) for n in os.listdir(directory)) if m is not None),
        key=lambda m: m.group(0),
    )
    if not swaps:
        return 0
    names = os.listdir(directory)
    for match in swaps:
        base, end = int(match.group(1)), int(match.group(2))
        for name in names:
            stem, dot, ext = name.partition(".")
            if dot and len(stem) == 20 and stem.isdigit() and "." + ext in SEGMENT_SUFFIXES:
                if base <= int(stem) < end:
                    path = os.path.join(directory, name)
                    files.forget(path)
                    _unlink_quietly(path)
        target = segment_path(directory, base, ".log")
        files.forget(target)
        os.replace(os.path.join(directory, match.group(0)), target)
    fsync_dir(directory)
    return len(swaps)


def _scan_cleaned(log: WalLog, path: str, base: int, end: int) -> Segment:
    """Check the cleaned file batch by batch and build its indexes (a Segment at ``<base>.log``).

    Raises CorruptRecordError naming the file, byte and reason when the file is not
    a well-formed run of batches with increasing offsets inside [base, end).
    """
    from streamcore._reference.wal.recovery import _scan  # recovery imports this module

    seg = Segment(log._directory, base, log._pool.files)
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        stop, nxt, reason, _idx, _tidx = _scan(seg, fd, base, log._config.index_interval_bytes, end)
    finally:
        os.close(fd)
    if reason is None and stop < size:
        reason = "trailing bytes after the last batch"
    if reason is None and nxt > end:
        reason = f"offsets run to {nxt - 1}, past the replaced range's end {end}"
    if reason is not None:
        raise error.corrupt_batch(f"{path}: cleaned segment is malformed at byte {stop}: {reason}")
    seg.size = size
    seg.next_offset = end
    return seg


def _index_bytes(seg: Segment) -> tuple[bytes, bytes]:
    from streamcore._reference.wal.index import INDEX_ENTRY, TIME_INDEX_ENTRY

    idx = b"".join(INDEX_ENTRY.pack(r, p) for r, p in zip(seg.idx_rel, seg.idx_pos, strict=True))
    tidx = b"".join(TIME_INDEX_ENTRY.pack(t, r) for t, r in zip(seg.t_ts, seg.t_rel, strict=True))
    return idx, tidx


def _go_offline(log: WalLog, exc: OSError) -> StorageError:
    message = (
        f"{log._directory}: storage failure while swapping in a cleaned segment, log is offline: {exc!r}"
    )
    with log._cond:
        if log._offline is None:
            log._offline = message
    failure = StorageError(message)
    failure.__cause__ = exc
    return failure


def replace_segments(log: WalLog, cleaned_path: str, base: int, end: int) -> bool:
    """Swap ``cleaned_path`` in for ``log``'s segments with a base in [``base``, ``end``).

    See the module docstring and docs/storage.md; returns False (the cleaned file
    deleted) when those segments are no longer the log's.
    """
    cleaned_path = os.fspath(cleaned_path)
    if not isinstance(base, int) or not isinstance(end, int) or base < 0 or end <= base:
        raise ValueError(f"replace_segments needs 0 <= base < end, not base={base!r} end={end!r}")
    expected_name = f"{base:020d}.log.cleaned"
    if os.path.basename(cleaned_path) != expected_name or os.path.dirname(
        os.path.abspath(cleaned_path)
    ) != os.path.abspath(log._directory):
        raise ValueError(f"cleaned segment for base {base} must be {log._directory}/{expected_name}")
    directory = log._directory
    with log._retention_lock:
        with log._lock:
            if log._closed:
                _unlink_quietly(cleaned_path)
                return False
            bases = list(log._bases)
            active_base = bases[-1]
        if end > active_base:
            raise ValueError(
                f"end {end} is past the active segment (base {active_base}): only closed segments are replaced"
            )
        if base not in bases or end not in bases:
            # Retention or DeleteRecords removed some of them meanwhile (or the caller is wrong).
            _unlink_quietly(cleaned_path)
            return False
        if not os.path.exists(cleaned_path):
            raise ValueError(f"{cleaned_path}: no such cleaned segment")
        try:
            seg = _scan_cleaned(log, cleaned_path, base, end)
        except OSError as exc:
            # Nothing of the log was touched yet: the log stays online (as in swap.rs).
            _unlink_quietly(cleaned_path)
            raise StorageError(
                f"{cleaned_path}: cannot read the cleaned segment: {exc.strerror or exc}"
            ) from exc
        except BaseException:
            _unlink_quietly(cleaned_path)
            raise
        if log._offline is not None:
            _unlink_quietly(cleaned_path)
            raise error.offline(log._offline)
        swap_path = os.path.join(directory, swap_name(base, end))
        try:
            if end > log._compacted_offset:
                _write_compacted_offset(directory, end)
                log._compacted_offset = end
            os.replace(cleaned_path, swap_path)
            fsync_dir(directory)
        except OSError as exc:
            raise _go_offline(log, exc) from exc
        # Committed: from here on recovery completes the swap whatever happens.
        renamed: list[str] = []
        try:
            with log._lock:
                first = log._bases.index(base)
                last = log._bases.index(end)
                doomed = log._segments[first:last]
                for old in doomed:
                    old.forget_files()
                    for suffix in SEGMENT_SUFFIXES:
                        path = segment_path(directory, old.base, suffix)
                        if os.path.exists(path):
                            os.replace(path, path + ".deleted")
                            renamed.append(path + ".deleted")
                seg.forget_files()
                os.replace(swap_path, seg.log_path)
                log._segments[first:last] = [seg]
                log._bases[first:last] = [base]
            idx, tidx = _index_bytes(seg)
            write_index_file(seg.index_path, idx)
            write_index_file(seg.timeindex_path, tidx)
            fsync_dir(directory)
            for path in renamed:
                _unlink_quietly(path)
        except OSError as exc:
            raise _go_offline(log, exc) from exc
        return True
