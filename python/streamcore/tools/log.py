"""``streamcore log dump|verify|recover``: look into a partition log on disk, check it, repair it.

These work on the files alone, never through a broker (like Kafka's ``kafka-dump-log``):

* ``dump DIR|FILE`` prints every batch of a partition directory or of one segment
  file: base and last offset, record count, byte position and size, whether its CRC
  is valid, compression, producer id/epoch/sequence and timestamps; ``--records``
  adds each record (offset, timestamp, key, value, headers), ``--json`` prints one
  JSON object per batch per line instead.
* ``verify DIR`` checks the CRC and framing of every batch, that offsets run on
  without gaps from segment to segment, the checkpoint, and the offset and time
  indexes against the segments. It exits 0 when the log is sound, else 1 with one
  line per problem. DIR is a partition directory or a data directory (every
  partition directory in it is checked).
* ``recover --truncate DIR`` cuts a damaged partition log at its first damaged batch
  (deleting the segments after it), so that it opens again with everything below
  the damage. It shows what it will drop and asks for confirmation (``--yes`` when
  stdin is not a terminal). It holds the data-directory lock while it works and
  refuses while a broker or another process has the directory open.

Batches are decoded with :mod:`streamcore.codec`; the header layout is
:mod:`streamcore.codec.batch_header`'s. The cut itself is made by the storage
layer's own recovery: the checkpoint's recovery point is lowered to the first
damaged offset and the log is opened, so the tool and a crash recovery can never
disagree about what a truncation leaves.
"""

from __future__ import annotations

import argparse
import json
import mmap
import os
import struct
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, TextIO

from streamcore import crc32c
from streamcore.codec import COMPRESSION_TYPES, decode_batch
from streamcore.codec.batch_header import (
    CODEC_MASK,
    CONTROL_FLAG,
    CRC_START,
    HEADER_SIZE,
    LOG_APPEND_TIME_FLAG,
    LOG_OVERHEAD,
    MAGIC,
    MIN_BATCH_LENGTH,
    TRANSACTIONAL_FLAG,
    BatchHeader,
    parse_header,
)
from streamcore.errors import StorageError, StreamcoreError

__all__ = [
    "Batch",
    "PartitionCheck",
    "check_partition",
    "main",
    "register",
    "scan_segment",
]

#: Exit status when the log is damaged, the repair was refused or failed.
EXIT_FAILURE = 1
#: Exit status of bad arguments (argparse uses the same).
EXIT_USAGE = 2

_INDEX_ENTRY = struct.Struct(">II")  # relative offset, file position (docs/storage.md)
_TIME_ENTRY = struct.Struct(">qI")  # max timestamp so far, relative offset
_CHECKPOINT = "checkpoint"
_CLEAN_SHUTDOWN = ".clean_shutdown"


class ToolError(Exception):
    """The one line a failing ``streamcore log`` prints."""


# -- reading segments -----------------------------------------------------------


def _segment_base(name: str) -> int | None:
    stem, dot, ext = name.partition(".")
    if dot and ext == "log" and len(stem) == 20 and stem.isdigit():
        return int(stem)
    return None


def _segments(directory: str) -> list[tuple[int, str]]:
    """(base offset, path) of the ``.log`` segment files of a partition directory, ascending."""
    found = []
    for name in os.listdir(directory):
        base = _segment_base(name)
        if base is not None:
            found.append((base, os.path.join(directory, name)))
    return sorted(found)


class Batch(NamedTuple):
    """One batch as found in a segment file."""

    path: str
    #: byte position of the batch in its file
    position: int
    #: whole size in bytes
    size: int
    header: BatchHeader
    crc_valid: bool
    #: CRC32C computed over the bytes the stored CRC covers
    computed_crc: int


@dataclass
class SegmentScan:
    """What walking one segment file found: its batches up to the first framing break."""

    path: str
    base: int
    size: int
    batches: list[Batch] = field(default_factory=list)
    #: (byte position, why) of the first bytes that do not frame a batch; None if none
    broken: tuple[int, str] | None = None


def scan_segment(path: str, keep_bytes: bool = False) -> Iterator[tuple[Batch, bytes | None]]:
    """Yield each framed batch of a segment file and (if asked) its bytes; _Broken at a framing break.

    A batch whose CRC fails is still yielded (``crc_valid`` False): its length field
    framed it, so the walk can go on to the next one.
    """
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        if size == 0:
            return
        with mmap.mmap(fh.fileno(), size, prot=mmap.PROT_READ) as mm:
            view = memoryview(mm)
            try:
                pos = 0
                while pos < size:
                    if size - pos < HEADER_SIZE:
                        raise _Broken(pos, "batch header cut short by the end of the file")
                    h = parse_header(view, pos)
                    if h.batch_length < MIN_BATCH_LENGTH:
                        raise _Broken(pos, f"batchLength {h.batch_length} cannot frame a batch")
                    if h.magic != MAGIC:
                        raise _Broken(pos, f"magic {h.magic} is not 2")
                    total = h.batch_length + LOG_OVERHEAD
                    if pos + total > size:
                        raise _Broken(pos, f"batch of {total} bytes runs past the end of the file")
                    computed = crc32c(view[pos + CRC_START : pos + total])
                    data = bytes(view[pos : pos + total]) if keep_bytes else None
                    yield Batch(path, pos, total, h, computed == h.crc, computed), data
                    pos += total
            finally:
                view.release()


class _Broken(Exception):
    def __init__(self, position: int, reason: str) -> None:
        super().__init__(reason)
        self.position = position
        self.reason = reason


def _walk(path: str, base: int) -> SegmentScan:
    scan = SegmentScan(path, base, os.path.getsize(path))
    try:
        for batch, _ in scan_segment(path):
            scan.batches.append(batch)
    except _Broken as broken:
        scan.broken = (broken.position, broken.reason)
    return scan


# -- checking a partition ---------------------------------------------------------


@dataclass
class Damage:
    """Where the sound part of a log ends: the first batch (or segment) that must go."""

    path: str
    position: int
    #: the offset the damaged batch should have started at (the log's new end)
    offset: int
    reason: str
    #: the damage is a segment that does not start where the log before it ends
    gap: bool = False


@dataclass
class PartitionCheck:
    """Everything ``verify`` found in one partition directory."""

    directory: str
    segments: list[SegmentScan]
    checkpoint: tuple[int, int] | None
    #: one line each
    problems: list[str] = field(default_factory=list)
    #: the first damage that truncation repairs (None when the batches are sound)
    damage: Damage | None = None
    #: index files that do not match their segment (recovery rebuilds them)
    bad_indexes: list[str] = field(default_factory=list)
    #: log start offset in the checkpoint below the first segment's base (segments missing)
    missing_start: tuple[int, int] | None = None

    @property
    def batch_count(self) -> int:
        return sum(len(s.batches) for s in self.segments)

    @property
    def end_offset(self) -> int:
        """Where the sound part of the log ends: the damage, else the end of the last segment."""
        if self.damage is not None:
            return self.damage.offset
        return _segment_end(self.segments[-1]) if self.segments else 0


def _segment_end(scan: SegmentScan) -> int:
    """Offset after the last framed batch of a segment (its base when it has none)."""
    if not scan.batches:
        return scan.base
    h = scan.batches[-1].header
    return h.base_offset + h.last_offset_delta + 1


def _old_end(scans: list[SegmentScan]) -> int:
    """The end of the log as its batch headers tell, damaged ones included."""
    return max((_segment_end(s) for s in scans), default=0)


def _read_checkpoint(directory: str, problems: list[str]) -> tuple[int, int] | None:
    path = os.path.join(directory, _CHECKPOINT)
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except FileNotFoundError:
        return None
    fields = dict(line.partition(" ")[::2] for line in text.splitlines())
    try:
        if fields.get("version") != "1":
            raise ValueError(f"version {fields.get('version')!r}")
        return int(fields["log_start_offset"]), int(fields["recovery_point"])
    except (KeyError, ValueError) as exc:
        problems.append(f"{path}: unreadable checkpoint ({exc})")
        return None


def check_partition(directory: str) -> PartitionCheck:
    """Check one partition directory without opening it (see the module docstring)."""
    problems: list[str] = []
    checkpoint = _read_checkpoint(directory, problems)
    scans = [_walk(path, base) for base, path in _segments(directory)]
    check = PartitionCheck(directory, scans, checkpoint, problems)
    expected: int | None = None
    for scan in scans:
        if expected is not None and scan.base != expected:
            what = "missing" if scan.base > expected else "overlapping"
            line = (
                f"{scan.path}: segment starts at offset {scan.base} but the log before it ends at "
                f"{expected} (offsets {what})"
            )
            problems.append(line)
            if check.damage is None:
                why = f"segment starts at offset {scan.base} where {expected} was expected"
                check.damage = Damage(scan.path, 0, expected, why, gap=True)
        next_off = scan.base
        for batch in scan.batches:
            h = batch.header
            where = f"{scan.path}: batch at byte {batch.position} (offset {h.base_offset})"
            reason = None
            if not batch.crc_valid:
                reason = f"CRC32C mismatch (stored {h.crc:#010x}, computed {batch.computed_crc:#010x})"
            elif h.base_offset != next_off:
                reason = f"baseOffset {h.base_offset} where {next_off} was expected"
            elif h.last_offset_delta < 0:
                reason = f"negative lastOffsetDelta {h.last_offset_delta}"
            if reason is not None:
                problems.append(f"{where}: {reason}")
                if check.damage is None:
                    check.damage = Damage(scan.path, batch.position, next_off, reason)
                # After a bad batch, go on from its own offsets to report later problems once each.
            next_off = h.base_offset + h.last_offset_delta + 1
        if scan.broken is not None:
            pos, reason = scan.broken
            problems.append(f"{scan.path}: bytes from {pos} to {scan.size} do not frame a batch: {reason}")
            if check.damage is None:
                check.damage = Damage(scan.path, pos, next_off, reason)
        _check_indexes(scan, check)
        expected = next_off
    if checkpoint is not None:
        log_start, recovery_point = checkpoint
        first = scans[0].base if scans else log_start
        if log_start < first:
            check.missing_start = (log_start, first)
            problems.append(
                f"{directory}: the checkpoint's log start offset is {log_start} but the first segment starts "
                f"at {first} (segments missing)"
            )
        end = _segment_end(scans[-1]) if scans else log_start
        if recovery_point > end:
            problems.append(
                f"{directory}: the checkpoint's recovery point {recovery_point} is past the end of the log "
                f"({end}): fsynced data is missing"
            )
    return check


def _check_indexes(scan: SegmentScan, check: PartitionCheck) -> None:
    """Compare ``.index`` and ``.timeindex`` of a segment with its batches."""
    starts = {b.position: b.header for b in scan.batches}
    by_rel = {}
    running = None
    for b in scan.batches:
        ts = b.header.max_timestamp
        running = ts if running is None else max(running, ts)
        by_rel[b.header.base_offset - scan.base] = running
    stem = scan.path[: -len(".log")]
    for suffix, entry, check_entry in (
        (".index", _INDEX_ENTRY, _index_entry_problem),
        (".timeindex", _TIME_ENTRY, _time_entry_problem),
    ):
        path = stem + suffix
        try:
            with open(path, "rb") as fh:
                data = fh.read()
        except FileNotFoundError:
            if scan.size:
                check.problems.append(f"{path}: missing (the next open rebuilds it from the segment)")
                check.bad_indexes.append(path)
            continue
        if len(data) % entry.size:
            check.problems.append(
                f"{path}: {len(data)} bytes is not a whole number of {entry.size}-byte entries"
            )
            check.bad_indexes.append(path)
            continue
        previous: tuple[int, int] | None = None
        for n, fields in enumerate(entry.iter_unpack(data)):
            why = check_entry(fields, previous, scan, starts, by_rel)
            if why is not None:
                check.problems.append(f"{path}: entry {n} {fields}: {why}")
                check.bad_indexes.append(path)
                break
            previous = fields
        else:
            if scan.size and not data:
                check.problems.append(f"{path}: empty, but the segment holds batches")
                check.bad_indexes.append(path)


def _index_entry_problem(
    fields: tuple[int, int], previous: tuple[int, int] | None, scan: SegmentScan, starts: dict, by_rel: dict
) -> str | None:
    rel, pos = fields
    if previous is not None and (rel <= previous[0] or pos <= previous[1]):
        return "not increasing"
    h = starts.get(pos)
    if h is None:
        return f"position {pos} is not the start of a batch"
    if h.base_offset != scan.base + rel:
        return f"points at the batch of offset {h.base_offset}, not {scan.base + rel}"
    return None


def _time_entry_problem(
    fields: tuple[int, int], previous: tuple[int, int] | None, scan: SegmentScan, starts: dict, by_rel: dict
) -> str | None:
    ts, rel = fields
    if previous is not None and (ts < previous[0] or rel < previous[1]):
        return "not increasing"
    if rel not in by_rel:
        return f"relative offset {rel} is not the start of a batch"
    if by_rel[rel] != ts:
        return f"timestamp {ts}, but the largest maxTimestamp up to that batch is {by_rel[rel]}"
    return None


def _partition_dirs(directory: str) -> list[str]:
    """``directory`` itself when it is a partition directory, else the partition directories in it."""
    if _is_partition(directory):
        return [directory]
    found = []
    for name in sorted(os.listdir(directory)):
        path = os.path.join(directory, name)
        if os.path.isdir(path) and _is_partition(path):
            found.append(path)
    return found


def _is_partition(directory: str) -> bool:
    try:
        names = os.listdir(directory)
    except OSError:
        return False
    return _CHECKPOINT in names or any(_segment_base(n) is not None for n in names)


# -- dump -------------------------------------------------------------------------


def _printable(data: bytes) -> str | None:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return text if text.isprintable() else None


def _bytes_json(data: bytes | None) -> dict[str, Any]:
    if data is None:
        return {"text": None, "hex": None}
    return {"text": _printable(data), "hex": data.hex()}


def _bytes_text(data: bytes | None) -> str:
    if data is None:
        return "null"
    text = _printable(data)
    return json.dumps(text, ensure_ascii=False) if text is not None else f"hex:{data.hex()}"


def _batch_fields(batch: Batch) -> dict[str, Any]:
    h = batch.header
    attrs = h.attributes
    codec = attrs & CODEC_MASK
    return {
        "file": batch.path,
        "base_offset": h.base_offset,
        "last_offset": h.base_offset + h.last_offset_delta,
        "count": h.record_count,
        "position": batch.position,
        "size": batch.size,
        "crc": h.crc,
        "crc_valid": batch.crc_valid,
        "compression": COMPRESSION_TYPES[codec] if codec < len(COMPRESSION_TYPES) else f"unknown({codec})",
        "producer_id": h.producer_id,
        "producer_epoch": h.producer_epoch,
        "base_sequence": h.base_sequence,
        "partition_leader_epoch": h.partition_leader_epoch,
        "is_transactional": bool(attrs & TRANSACTIONAL_FLAG),
        "is_control": bool(attrs & CONTROL_FLAG),
        "timestamp_type": "LogAppendTime" if attrs & LOG_APPEND_TIME_FLAG else "CreateTime",
        "base_timestamp": h.first_timestamp,
        "max_timestamp": h.max_timestamp,
    }


def _records(data: bytes, crc_valid: bool) -> tuple[list[dict[str, Any]], str | None]:
    try:
        decoded = decode_batch(data, verify_crc=crc_valid)
    except StreamcoreError as exc:
        return [], " ".join(str(exc).split())
    return [
        {
            "offset": r.offset,
            "timestamp": r.timestamp_ms,
            "key": r.key,
            "value": r.value,
            "headers": r.headers,
        }
        for r in decoded.records
    ], None


def _dump_file(path: str, records: bool, as_json: bool, out: TextIO) -> bool:
    """Print one segment file's batches; False when it holds bytes that do not frame a batch."""
    base = _segment_base(os.path.basename(path))
    if not as_json:
        out.write(f"Dumping {path}\n")
        if base is not None:
            out.write(f"Starting offset: {base}\n")
    try:
        for batch, data in scan_segment(path, keep_bytes=records):
            fields = _batch_fields(batch)
            recs: list[dict[str, Any]] = []
            error = None
            if records and data is not None:
                recs, error = _records(data, batch.crc_valid)
            if as_json:
                if records:
                    fields["records"] = [_record_json(r) for r in recs]
                    fields["records_error"] = error
                out.write(json.dumps(fields) + "\n")
                continue
            crc = "valid" if batch.crc_valid else f"INVALID (computed {batch.computed_crc:#010x})"
            out.write(
                f"baseOffset: {fields['base_offset']} lastOffset: {fields['last_offset']} "
                f"count: {fields['count']} position: {batch.position} size: {batch.size} "
                f"CRC: {fields['crc']:#010x} {crc} compression: {fields['compression']} "
                f"producerId: {fields['producer_id']} producerEpoch: {fields['producer_epoch']} "
                f"baseSequence: {fields['base_sequence']} partitionLeaderEpoch: {fields['partition_leader_epoch']} "
                f"isTransactional: {str(fields['is_transactional']).lower()} "
                f"isControl: {str(fields['is_control']).lower()} timestampType: {fields['timestamp_type']} "
                f"baseTimestamp: {fields['base_timestamp']} maxTimestamp: {fields['max_timestamp']}\n"
            )
            for r in recs:
                headers = ", ".join(f"{json.dumps(k)}: {_bytes_text(v)}" for k, v in r["headers"])
                out.write(
                    f"| offset: {r['offset']} timestamp: {r['timestamp']} key: {_bytes_text(r['key'])} "
                    f"value: {_bytes_text(r['value'])} headers: {{{headers}}}\n"
                )
            if error is not None:
                out.write(f"| records unreadable: {error}\n")
    except _Broken as broken:
        size = os.path.getsize(path)
        line = f"bytes from {broken.position} to {size} do not frame a batch: {broken.reason}"
        if as_json:
            out.write(json.dumps({"file": path, "position": broken.position, "error": line}) + "\n")
        else:
            out.write(f"{line}\n")
        return False
    return True


def _record_json(r: dict[str, Any]) -> dict[str, Any]:
    return {
        "offset": r["offset"],
        "timestamp": r["timestamp"],
        "key": _bytes_json(r["key"]),
        "value": _bytes_json(r["value"]),
        "headers": [{"key": k, "value": _bytes_json(v)} for k, v in r["headers"]],
    }


def run_dump(args: argparse.Namespace, out: TextIO) -> int:
    path = args.path
    if os.path.isdir(path):
        files = [p for _, p in _segments(path)]
        if not files:
            raise ToolError(f"{path}: no segment files (<20-digit offset>.log) in this directory")
    elif os.path.isfile(path):
        files = [path]
    else:
        raise ToolError(f"{path}: no such file or directory")
    sound = True
    for f in files:
        sound = _dump_file(f, args.records, args.json, out) and sound
    return 0 if sound else EXIT_FAILURE


# -- verify -----------------------------------------------------------------------


def run_verify(args: argparse.Namespace, out: TextIO) -> int:
    directory = args.directory
    if not os.path.isdir(directory):
        raise ToolError(f"{directory}: not a directory")
    partitions = _partition_dirs(directory)
    if not partitions:
        raise ToolError(f"{directory}: neither a partition directory nor a data directory holding any")
    problems = 0
    for part in partitions:
        check = check_partition(part)
        for line in check.problems:
            out.write(line + "\n")
        problems += len(check.problems)
        if not check.problems:
            start = check.segments[0].base if check.segments else 0
            out.write(
                f"{part}: sound ({len(check.segments)} segment(s), {check.batch_count} batch(es), "
                f"offsets {start} to {check.end_offset})\n"
            )
    return 0 if problems == 0 else EXIT_FAILURE


# -- recover ----------------------------------------------------------------------


def _confirm(args: argparse.Namespace, out: TextIO) -> bool:
    if args.yes:
        return True
    stdin = sys.stdin
    if stdin is None or not stdin.isatty():
        raise ToolError("stdin is not a terminal: pass --yes to confirm the truncation")
    out.write("Truncate? [y/N] ")
    out.flush()
    answer = stdin.readline().strip().lower()
    return answer in ("y", "yes")


def _plan(check: PartitionCheck) -> list[str]:
    lines = []
    damage = check.damage
    if damage is not None:
        old_end = max(damage.offset, _old_end(check.segments))
        cut_index = next(i for i, s in enumerate(check.segments) if s.path == damage.path)
        if damage.gap:
            later = check.segments[cut_index:]
            dropped = sum(s.size for s in later)
            for scan in later:
                lines.append(f"delete {scan.path} ({scan.size} bytes): {damage.reason}")
        else:
            later = check.segments[cut_index + 1 :]
            dropped = check.segments[cut_index].size - damage.position + sum(s.size for s in later)
            lines.append(
                f"cut {damage.path} at byte {damage.position} (the batch that should start at offset "
                f"{damage.offset}: {damage.reason})"
            )
            for scan in later:
                lines.append(f"delete {scan.path} ({scan.size} bytes)")
        offsets = (
            f"offsets {damage.offset} to {old_end - 1}"
            if old_end > damage.offset
            else f"offsets from {damage.offset} on"
        )
        lines.append(f"drop {dropped} bytes: {offsets}; the log will end at offset {damage.offset}")
    for path in sorted(set(check.bad_indexes)):
        lines.append(f"rebuild {path} from its segment")
    if check.missing_start is not None:
        lines.append(
            f"move the log start offset from {check.missing_start[0]} to {check.missing_start[1]} "
            "(the segments below are gone)"
        )
    return lines


def run_recover(args: argparse.Namespace, out: TextIO) -> int:
    from streamcore.storage.dir_lock import DirLock
    from streamcore.storage.log import Log, describe_recovery

    if not args.truncate:
        raise ToolError("say --truncate: truncation at the first damaged batch is the only repair offered")
    directory = os.path.abspath(args.directory)
    if not os.path.isdir(directory) or not _is_partition(directory):
        raise ToolError(f"{directory}: not a partition directory (no checkpoint or segment files)")
    # The same locks a standalone Log takes: a broker on the data directory, or any
    # other opener of this partition, makes this fail at once.
    locks = [DirLock(os.path.dirname(directory), shared=True, create=False), DirLock(directory)]
    try:
        for lock in locks:
            lock.acquire()
        check = check_partition(directory)
        plan = _plan(check)
        if not plan:
            out.write(f"{directory}: no damage found; nothing to truncate\n")
            return 0
        if (
            check.checkpoint is not None
            and check.damage is not None
            and check.damage.offset < check.checkpoint[0]
        ):
            raise ToolError(
                f"{directory}: the damage at offset {check.damage.offset} is below the log start offset "
                f"{check.checkpoint[0]}; truncating there is not possible: move the directory aside"
            )
        out.write(f"{directory}: will\n")
        for line in plan:
            out.write(f"  {line}\n")
        if not _confirm(args, out):
            out.write("nothing changed\n")
            return EXIT_FAILURE
        _apply(directory, check)
        log = Log(directory, lock=False, fsync="never")
        try:
            report = log.recovery_report
            end = log.high_watermark
        finally:
            log.close()
    finally:
        for lock in reversed(locks):
            lock.release()
    summary = describe_recovery(report)
    out.write((summary or f"recovered {directory}: nothing was dropped") + "\n")
    if check.damage is not None and end != check.damage.offset:
        raise ToolError(f"{directory}: expected the log to end at {check.damage.offset}, it ends at {end}")
    out.write(f"{directory}: the log opens and ends at offset {end}\n")
    return 0


def _apply(directory: str, check: PartitionCheck) -> None:
    """Make the next open cut at the damage: lower the recovery point; drop wrong index files."""
    from streamcore._atomic_file import write_atomic

    for path in sorted(set(check.bad_indexes)):
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
    if check.damage is None:
        return
    log_start = check.checkpoint[0] if check.checkpoint is not None else check.segments[0].base
    # Recovery scans from the segment holding the recovery point and truncates at the
    # first bad batch at or above it, whether or not the log was closed cleanly.
    text = f"version 1\nlog_start_offset {log_start}\nrecovery_point {check.damage.offset}\n"
    write_atomic(os.path.join(directory, _CHECKPOINT), text)


# -- wiring -------------------------------------------------------------------------

_EPILOG = """\
examples:
  streamcore log dump /var/lib/streamcore/orders-0
  streamcore log dump /var/lib/streamcore/orders-0/00000000000000000000.log --records
  streamcore log dump /var/lib/streamcore/orders-0 --json | jq .crc_valid
  streamcore log verify /var/lib/streamcore            # every partition of a data directory
  streamcore log recover --truncate /var/lib/streamcore/orders-0
"""


def register(subparsers: Any) -> None:
    """Add ``streamcore log`` with its ``dump``, ``verify`` and ``recover`` actions."""
    p = subparsers.add_parser(
        "log",
        help="dump, verify and repair partition logs on disk (no broker needed)",
        description="Look into partition logs on disk, check them and repair a damaged one.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_actions(p)


def _add_actions(p: argparse.ArgumentParser) -> None:
    actions = p.add_subparsers(dest="log_action", metavar="ACTION", required=True)
    d = actions.add_parser(
        "dump",
        help="print the batches (and records) of a partition directory or a segment file",
        description="Print every batch of a partition directory or one .log segment file, like kafka-dump-log. "
        "Exits 1 when some bytes do not frame a batch.",
    )
    d.add_argument("path", metavar="DIR|FILE", help="partition directory or .log segment file")
    d.add_argument(
        "--records", action="store_true", help="also print each record: offset, key, value, headers"
    )
    d.add_argument("--json", action="store_true", help="one JSON object per batch per line")
    d.set_defaults(log_handler=run_dump)
    v = actions.add_parser(
        "verify",
        help="check CRCs, offsets, the checkpoint and the indexes; exit 1 with one line per problem",
        description="Check every batch's framing and CRC32C, that offsets run on from segment to segment, the "
        "checkpoint, and the offset and time indexes against the segments, without opening a broker. "
        "Exits 0 when sound, 1 with one line per problem otherwise.",
    )
    v.add_argument(
        "directory", metavar="DIR", help="partition directory, or a data directory to check all of them"
    )
    v.set_defaults(log_handler=run_verify)
    r = actions.add_parser(
        "recover",
        help="cut a damaged log at its first damaged batch, after confirmation",
        description="Truncate a partition log at its first damaged batch and delete the segments after it, so "
        "that it opens again with every batch below the damage; index files that do not match are rebuilt. "
        "Shows what will be dropped and asks y/N on a terminal (--yes otherwise). Refuses while a broker or "
        "another process holds the directory.",
    )
    r.add_argument("directory", metavar="DIR", help="partition directory")
    r.add_argument(
        "--truncate", action="store_true", required=True, help="truncate at the first damaged batch"
    )
    r.add_argument(
        "--yes", action="store_true", help="do not ask for confirmation (needed when stdin is not a tty)"
    )
    r.set_defaults(log_handler=run_recover)
    p.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    try:
        return int(args.log_handler(args, sys.stdout))
    except ToolError as exc:
        print(f"streamcore log {args.log_action}: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except BrokenPipeError:
        return 0  # the output was piped into head: stop quietly, as Unix filters do
    except (StorageError, OSError) as exc:
        print(f"streamcore log {args.log_action}: {' '.join(str(exc).split())}", file=sys.stderr)
        return EXIT_FAILURE


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m streamcore.tools.log ACTION ...``: the same as ``streamcore log ACTION ...``."""
    parser = argparse.ArgumentParser(
        prog="streamcore log", epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    _add_actions(parser)
    args = parser.parse_args(argv)
    return int(args.handler(args))


if __name__ == "__main__":
    sys.exit(main())
