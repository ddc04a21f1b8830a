"""Sparse ``.index`` / ``.timeindex`` files and the rule that picks their entries (twin of ``index.rs``).

The writer and recovery both decide entries through :func:`plan_batch`, so a
rebuilt index equals the one written live, and both equal the native twin's.
"""

from __future__ import annotations

import os
import struct
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from streamcore._reference.wal.segment import Segment

__all__ = ["INDEX_ENTRY", "TIME_INDEX_ENTRY", "load_indexes", "plan_batch", "write_index_file"]

#: Offset index entry: relative offset u32, file position u32.
INDEX_ENTRY = struct.Struct(">II")
#: Time index entry: max timestamp so far i64, relative offset u32.
TIME_INDEX_ENTRY = struct.Struct(">qI")


def plan_batch(
    seg: Segment, base_offset: int, pos: int, total: int, max_ts: int, interval: int, out: list
) -> tuple[bytes, bytes]:
    """Account one batch of ``total`` bytes written at ``pos`` of ``seg`` and decide its index entries.

    Rules (identical in the native twin):
    * offset index: an entry for the segment's first batch, and for any batch
      that starts when at least ``interval`` bytes were written since the
      position of the last entry;
    * time index: an entry for the first batch, and for a batch that raises
      the segment's max timestamp when at least ``interval`` bytes were
      written since the position of the last time entry.

    Entries are appended to ``out`` as ("i", rel, pos) / ("t", ts, rel) for
    ``Segment.commit_entries``; the encoded bytes for the two files are returned.
    """
    rel = base_offset - seg.base
    idx = b""
    tidx = b""
    if pos == 0 or seg.bytes_since_index >= interval:
        idx = INDEX_ENTRY.pack(rel, pos)
        out.append(("i", rel, pos))
        seg.bytes_since_index = 0
    seg.bytes_since_index += total
    cur_max = seg.max_ts
    if pos == 0:
        tidx = TIME_INDEX_ENTRY.pack(max_ts, rel)
        out.append(("t", max_ts, rel))
        seg.last_time_pos = pos
        seg.max_ts = max_ts
    elif cur_max is None or max_ts > cur_max:
        seg.max_ts = max_ts
        if pos - seg.last_time_pos >= interval:
            tidx = TIME_INDEX_ENTRY.pack(max_ts, rel)
            out.append(("t", max_ts, rel))
            seg.last_time_pos = pos
    return idx, tidx


def load_indexes(seg: Segment, limit_offset: int | None) -> bool:
    """Load both index files into ``seg``; False when they are missing or implausible.

    Plausible: whole entries, strictly increasing, positions inside the
    committed ``.log``, offsets below ``limit_offset`` (the next segment's
    base), and a first entry of each kind for the segment's first batch (at byte 0).
    """
    seg.reset_indexes()
    try:
        with open(seg.index_path, "rb") as f:
            idx = f.read()
        with open(seg.timeindex_path, "rb") as f:
            tidx = f.read()
    except FileNotFoundError:
        return seg.size == 0
    if len(idx) % INDEX_ENTRY.size or len(tidx) % TIME_INDEX_ENTRY.size:
        return False
    if seg.size == 0:
        return not idx and not tidx
    prev_rel = prev_pos = -1
    for rel, pos in INDEX_ENTRY.iter_unpack(idx):
        if rel <= prev_rel or pos <= prev_pos or pos >= seg.size:
            return False
        if limit_offset is not None and seg.base + rel >= limit_offset:
            return False
        seg.idx_rel.append(rel)
        seg.idx_pos.append(pos)
        prev_rel, prev_pos = rel, pos
    prev_ts = None
    prev_rel = -1
    for ts, rel in TIME_INDEX_ENTRY.iter_unpack(tidx):
        if rel <= prev_rel or (prev_ts is not None and ts <= prev_ts):
            return False
        if limit_offset is not None and seg.base + rel >= limit_offset:
            return False
        seg.t_ts.append(ts)
        seg.t_rel.append(rel)
        prev_ts, prev_rel = ts, rel
    # The first batch may start above the segment's base once compaction removed offsets.
    if not seg.idx_rel or seg.idx_pos[0] != 0 or not seg.t_rel or seg.t_rel[0] != seg.idx_rel[0]:
        return False
    return True


def write_index_file(path: str, data: bytes) -> None:
    """Replace an index file with ``data`` and fsync it.

    Not atomic on purpose: an index is derived data that recovery checks and
    rebuilds, so a torn one costs a rebuild, never a wrong answer.
    """
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
