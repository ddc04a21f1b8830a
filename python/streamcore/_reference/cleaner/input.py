"""Reading the segment files the cleaner is given: base offsets from file names,
batches one at a time, and a header-only pre-pass."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import BinaryIO, NamedTuple

from streamcore._reference._batch_header import (
    CONTROL_FLAG,
    HEADER_SIZE,
    LOG_OVERHEAD,
    MIN_BATCH_LENGTH,
    batch_length,
    parse_header,
)
from streamcore.errors import CorruptRecordError, StorageError

__all__ = ["HeaderInfo", "SegmentFile", "modified_ms", "read_batches", "segment_files", "walk_headers"]

#: Bytes buffered per read.
_READ_BUFFER = 1 << 20


class SegmentFile(NamedTuple):
    path: str
    base_offset: int


def _storage(path: str, what: str, exc: OSError) -> StorageError:
    return StorageError(f"cleaner: {what} {path}: {exc.strerror or exc}")


def segment_files(paths: Sequence[str | os.PathLike[str]]) -> list[SegmentFile]:
    """Check that ``paths`` name ``<base:020d>.log`` segments in increasing base order."""
    if isinstance(paths, (str, bytes, os.PathLike)):
        raise TypeError("segment_paths must be a sequence of paths, not one path")
    out: list[SegmentFile] = []
    for p in paths:
        path = os.fspath(p)
        name = os.path.basename(path)
        stem = name[:-4] if name.endswith(".log") else ""
        if len(stem) != 20 or not stem.isascii() or not stem.isdigit() or int(stem) >= 1 << 63:
            raise ValueError(f"cleaner: {path} is not a segment file (expected <20-digit base offset>.log)")
        base = int(stem)
        if out and base <= out[-1].base_offset:
            raise ValueError(
                f"cleaner: segments must be given in increasing base offset order: {path} follows {out[-1].path}"
            )
        out.append(SegmentFile(path, base))
    return out


def modified_ms(path: str) -> int:
    """Last-modified time of a file (ms since the epoch)."""
    try:
        ns = os.stat(path).st_mtime_ns
    except OSError as exc:
        raise _storage(path, "cannot stat", exc) from None
    return ns // 1_000_000 if ns >= 0 else -((-ns) // 1_000_000)


def _open(path: str) -> tuple[BinaryIO, int]:
    try:
        f = open(path, "rb", buffering=_READ_BUFFER)
        return f, os.fstat(f.fileno()).st_size
    except OSError as exc:
        raise _storage(path, "cannot open", exc) from None


def read_batches(path: str) -> Iterator[tuple[int, bytes]]:
    """(file position, whole batch bytes) of every batch of a closed segment.

    A torn or unframeable tail is corruption: recovery has already cut closed segments
    at their last whole batch.
    """
    f, size = _open(path)
    with f:
        pos = 0
        while pos < size:
            left = size - pos
            if left < HEADER_SIZE:
                raise CorruptRecordError(
                    f"cleaner: {path} at byte {pos}: {left} bytes left, less than a batch header"
                )
            try:
                head = f.read(LOG_OVERHEAD)
                length = batch_length(head)
                if length < MIN_BATCH_LENGTH or LOG_OVERHEAD + length > left:
                    raise CorruptRecordError(
                        f"cleaner: {path} at byte {pos}: batchLength {length} cannot frame a batch "
                        f"in the {left} bytes left"
                    )
                rest = f.read(length)
            except OSError as exc:
                raise _storage(path, "cannot read", exc) from None
            yield pos, head + rest
            pos += LOG_OVERHEAD + length


class HeaderInfo(NamedTuple):
    last_offset: int
    producer_id: int
    producer_epoch: int
    control: bool


def walk_headers(path: str) -> list[HeaderInfo]:
    """Headers of every batch of ``path``, reading only the 61 header bytes of each."""
    f, size = _open(path)
    out: list[HeaderInfo] = []
    with f:
        pos = 0
        while pos < size:
            if size - pos < HEADER_SIZE:
                raise CorruptRecordError(
                    f"cleaner: {path} at byte {pos}: {size - pos} bytes left, less than a batch header"
                )
            try:
                f.seek(pos)
                h = parse_header(f.read(HEADER_SIZE))
            except OSError as exc:
                raise _storage(path, "cannot read", exc) from None
            total = h.batch_length + LOG_OVERHEAD
            if h.batch_length < MIN_BATCH_LENGTH or total > size - pos:
                raise CorruptRecordError(
                    f"cleaner: {path} at byte {pos}: batchLength {h.batch_length} cannot frame a batch"
                )
            last = h.base_offset + h.last_offset_delta
            last = ((last + (1 << 63)) & ((1 << 64) - 1)) - (1 << 63)
            out.append(HeaderInfo(last, h.producer_id, h.producer_epoch, bool(h.attributes & CONTROL_FLAG)))
            pos += total
    return out
