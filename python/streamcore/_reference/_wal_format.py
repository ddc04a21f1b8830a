"""On-disk format pieces of the reference WAL: batch header, file names, index entries, checkpoint.

Everything here is a pure function over bytes or paths, shared by the writer
(``wal.py``), the segment bookkeeping (``_wal_segment.py``) and recovery
(``_wal_recovery.py``). See docs/storage.md for the format itself.
"""

from __future__ import annotations

import os
import struct

from streamcore.errors import CorruptRecordError, StorageError

__all__ = [
    "HEADER_SIZE",
    "LOG_OVERHEAD",
    "HEADER_FIELDS",
    "INDEX_ENTRY",
    "TIME_INDEX_ENTRY",
    "CHECKPOINT_NAME",
    "CLEAN_SHUTDOWN_NAME",
    "segment_path",
    "list_segment_bases",
    "check_append_header",
    "read_checkpoint",
    "write_checkpoint",
    "fsync_dir",
]

#: Size of a v2 record batch header (bytes), up to and including recordsCount.
HEADER_SIZE = 61
#: baseOffset (8) + batchLength (4): the bytes not counted by batchLength.
LOG_OVERHEAD = 12
#: baseOffset, batchLength, partitionLeaderEpoch, magic, crc, attributes,
#: lastOffsetDelta, baseTimestamp, maxTimestamp (the first 43 header bytes).
HEADER_FIELDS = struct.Struct(">qiibIhiqq")
#: Offset index entry: relative offset u32, file position u32.
INDEX_ENTRY = struct.Struct(">II")
#: Time index entry: max timestamp so far i64, relative offset u32.
TIME_INDEX_ENTRY = struct.Struct(">qI")
BASE_OFFSET = struct.Struct(">q")

CHECKPOINT_NAME = "checkpoint"
CHECKPOINT_TMP_NAME = "checkpoint.tmp"
CLEAN_SHUTDOWN_NAME = ".clean_shutdown"
#: Suffixes left behind by a crash mid-deletion, mid-checkpoint or mid-compaction.
STRAY_SUFFIXES = (".deleted", ".tmp", ".cleaned")
SEGMENT_SUFFIXES = (".log", ".index", ".timeindex")


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


def check_append_header(batch: bytes | bytearray | memoryview) -> int:
    """Check the header of a batch handed to append; return its lastOffsetDelta.

    Only the framing is checked (length field, magic); the CRC and the records
    are the caller's job. Raises CorruptRecordError naming what is wrong.
    """
    size = len(batch)
    if size < HEADER_SIZE:
        raise CorruptRecordError(
            f"record batch of {size} bytes is shorter than the {HEADER_SIZE}-byte header"
        )
    _base, length, _epoch, magic, _crc, _attrs, last_delta, _bts, _mts = HEADER_FIELDS.unpack_from(batch, 0)
    if length != size - LOG_OVERHEAD:
        raise CorruptRecordError(
            f"batchLength field at byte 8 is {length} but the buffer holds {size - LOG_OVERHEAD} bytes after it"
        )
    if magic != 2:
        raise CorruptRecordError(
            f"magic byte at byte 16 is {magic}, only record batch v2 (magic 2) is stored"
        )
    if last_delta < 0:
        raise CorruptRecordError(f"lastOffsetDelta at byte 23 is negative ({last_delta})")
    return last_delta


def fsync_dir(directory: str) -> None:
    """fsync a directory so that file creations, renames and unlinks in it are durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_checkpoint(directory: str) -> tuple[int, int] | None:
    """Return (log_start_offset, recovery_point) from ``checkpoint``, or None if there is none.

    A checkpoint that exists but does not parse is a StorageError: it is only
    ever replaced atomically, so a bad one means outside damage.
    """
    path = os.path.join(directory, CHECKPOINT_NAME)
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        return None
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        fields[key] = value
    try:
        if fields.get("version") != "1":
            raise ValueError(f"unknown version {fields.get('version')!r}")
        return int(fields["log_start_offset"]), int(fields["recovery_point"])
    except (KeyError, ValueError) as exc:
        raise StorageError(f"{path}: unreadable checkpoint ({exc}); expected 'version 1' lines") from exc


def write_checkpoint(directory: str, log_start_offset: int, recovery_point: int) -> None:
    """Atomically replace ``checkpoint``: write checkpoint.tmp, fsync, rename, fsync the directory."""
    tmp = os.path.join(directory, CHECKPOINT_TMP_NAME)
    text = f"version 1\nlog_start_offset {log_start_offset}\nrecovery_point {recovery_point}\n"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, text.encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, os.path.join(directory, CHECKPOINT_NAME))
    fsync_dir(directory)
