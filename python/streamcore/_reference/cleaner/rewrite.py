"""The cleaning pass: rewrite segments keeping, per key, only its latest record.

The rules (Kafka's cleaner for magic 2; the native ``rewrite.rs`` applies the same):

* a record after the map's latest offset is kept (not yet mapped);
* a record without a key is removed; a record older than its key's mapped offset
  is removed;
* a tombstone (null value) is kept until its batch's delete horizon has passed. A
  batch that keeps a tombstone and has no horizon yet is rewritten with one:
  baseTimestamp becomes ``now_ms + delete_retention_ms`` and attribute bit 6 says
  so (KIP-534); a pass at or after that time removes the tombstone;
* a batch that keeps every record and needs no horizon is copied byte for byte;
  otherwise it is re-encoded: same baseOffset, partitionLeaderEpoch,
  lastOffsetDelta, producer id/epoch/base sequence, codec (recompressed at its
  default level), timestamp type and flags; each record keeps its offset delta and
  timestamp; baseTimestamp is the first kept record's timestamp (or the horizon),
  maxTimestamp the largest kept one (the batch's own under log-append time); the
  CRC is recomputed;
* a batch left with no record is dropped unless it is its producer's last batch:
  then a header with no records stays (baseTimestamp -1, original maxTimestamp and
  lastOffsetDelta) so idempotent sequence checks keep working. A producer's last
  batch holds its last data offset, or, when a marker of a newer epoch followed
  its last data (fencing), it is that epoch's control batch;
* transactions (with ``aborted_transactions``; None copies control and
  transactional batches unchanged): records of aborted transactions go whatever
  their keys; committed transactional records are cleaned like others; a
  COMMIT/ABORT marker whose transaction has no batch left (``txn.py``) gets a delete
  horizon like a tombstone's and goes once it has passed. An ABORT marker kept
  because its transaction still had batches is reported in the output's
  ``aborted_transactions`` (its entry of the cleaned aborted-transaction index).

Consecutive input segments share one output while their sizes add up to at most
``segment_bytes`` and their offsets fit 32-bit relative index entries.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence

from crc32c import crc32c as _crc32c

from streamcore._reference._batch_header import (
    CODEC_MASK,
    CONTROL_FLAG,
    CRC_AT,
    CRC_START,
    HEADER_SIZE,
    LOG_APPEND_TIME_FLAG,
    LOG_OVERHEAD,
    MAGIC,
    TRANSACTIONAL_FLAG,
    BatchHeader,
    max_timestamp,
    pack_header,
)
from streamcore._reference.cleaner.input import (
    SegmentFile,
    modified_ms,
    read_batches,
    segment_files,
    walk_headers,
)
from streamcore._reference.cleaner.key_hash import key_hash
from streamcore._reference.cleaner.offset_map import OffsetMap, _aborted_list
from streamcore._reference.cleaner.result import CleanedSegment, CleanResult, CleanStats
from streamcore._reference.cleaner.throttle import Throttle
from streamcore._reference.cleaner.txn import AbortedTxn, TxnTracker
from streamcore._reference.compression import compress
from streamcore._reference.record_batch import DEFAULT_MAX_DECOMPRESSED_BYTES, decode_batch
from streamcore._reference.record_types import Record, RecordBatch
from streamcore._reference.wire import encode_varlong
from streamcore.errors import CorruptRecordError, StorageError

__all__ = [
    "CLEANED_SUFFIX",
    "DELETE_HORIZON_FLAG",
    "DEFAULT_DELETE_RETENTION_MS",
    "clean_segments",
    "group_segments",
]

#: Attribute bit 6: baseTimestamp holds the batch's delete horizon (KIP-534).
DELETE_HORIZON_FLAG = 0x40
#: Suffix of the files a cleaning pass writes.
CLEANED_SUFFIX = ".log.cleaned"
#: Kafka's ``delete.retention.ms`` default (24 h).
DEFAULT_DELETE_RETENTION_MS = 86_400_000
_NO_TIMESTAMP = -1
_I32_MAX = (1 << 31) - 1
_I64_MAX = (1 << 63) - 1
_U64 = (1 << 64) - 1
_KEEP_FLAGS = LOG_APPEND_TIME_FLAG | TRANSACTIONAL_FLAG | CONTROL_FLAG


def _wrap64(v: int) -> int:
    return ((v + (1 << 63)) & _U64) - (1 << 63)


def group_segments(
    bases: Sequence[int], sizes: Sequence[int], last_offsets: Sequence[int], segment_bytes: int
) -> list[range]:
    """Index ranges of segments cleaned into one output each (Kafka's groupSegmentsBySize)."""
    groups: list[range] = []
    i, n = 0, len(bases)
    while i < n:
        start = i
        size = sizes[i]
        i += 1
        while (
            i < n
            and size + sizes[i] <= segment_bytes
            and (sizes[i] == 0 or last_offsets[i] - bases[start] <= _I32_MAX)
        ):
            size += sizes[i]
            i += 1
        groups.append(range(start, i))
    return groups


def _field(v: bytes | None) -> bytes:
    if v is None:
        return b"\x01"  # varint -1
    return encode_varlong(len(v)) + v


def _rebuild(batch: RecordBatch, kept: list[Record], horizon: int | None) -> bytes:
    attrs = batch.attributes
    log_append = bool(attrs & LOG_APPEND_TIME_FLAG)
    base_ts = horizon if horizon is not None else kept[0].timestamp_ms
    max_ts = batch.max_timestamp if log_append else max(r.timestamp_ms for r in kept)
    base = batch.base_offset
    parts: list[bytes] = []
    for r in kept:
        body = [
            b"\x00",  # record attributes: unused by magic 2
            encode_varlong(_wrap64(r.timestamp_ms - base_ts)),
            encode_varlong(_wrap64(r.offset - base)),
            _field(r.key),
            _field(r.value),
            encode_varlong(len(r.headers)),
        ]
        for hk, hv in r.headers:
            body.append(_field(hk.encode("utf-8")))
            body.append(_field(hv))
        b = b"".join(body)
        parts.append(encode_varlong(len(b)))
        parts.append(b)
    region = b"".join(parts)
    codec = attrs & CODEC_MASK
    payload = compress(codec, region) if codec else region
    new_attrs = codec | (attrs & _KEEP_FLAGS) | (DELETE_HORIZON_FLAG if horizon is not None else 0)
    header = BatchHeader(
        base,
        HEADER_SIZE - LOG_OVERHEAD + len(payload),
        batch.partition_leader_epoch,
        MAGIC,
        0,
        new_attrs,
        batch._last_offset_delta,
        base_ts,
        max_ts,
        batch.producer_id,
        batch.producer_epoch,
        batch.base_sequence,
        len(kept),
    )
    return _seal(bytearray(pack_header(header) + payload))


def _empty_batch(batch: RecordBatch) -> bytes:
    header = BatchHeader(
        batch.base_offset,
        HEADER_SIZE - LOG_OVERHEAD,
        batch.partition_leader_epoch,
        MAGIC,
        0,
        batch.attributes & _KEEP_FLAGS,
        batch._last_offset_delta,
        _NO_TIMESTAMP,
        batch.max_timestamp,
        batch.producer_id,
        batch.producer_epoch,
        batch.base_sequence,
        0,
    )
    return _seal(bytearray(pack_header(header)))


def _seal(out: bytearray) -> bytes:
    out[CRC_AT : CRC_AT + 4] = _crc32c(memoryview(out)[CRC_START:]).to_bytes(4, "big")
    return bytes(out)


#: What the pass keeps of a producer: (last data offset or None, producer epoch).
_LastRecord = tuple[int | None, int]


def _is_last(last: _LastRecord | None, batch: RecordBatch) -> bool:
    if last is None:
        return False
    if last[0] is not None:
        return batch.last_offset == last[0]
    return bool(batch.attributes & CONTROL_FLAG) and batch.producer_epoch == last[1]


class _Pass:
    def __init__(
        self,
        offset_map: OffsetMap,
        now_ms: int,
        delete_retention_ms: int,
        producer_last: Mapping[int, _LastRecord],
        txn: TxnTracker | None,
    ) -> None:
        self.map = offset_map
        self.now_ms = now_ms
        self.delete_retention_ms = delete_retention_ms
        self.producer_last = producer_last
        self.txn = txn
        #: aborted transactions whose marker the current output keeps
        self.retained: list[AbortedTxn] = []
        self.c = dict.fromkeys(CleanStats._fields, 0)

    def decide(self, raw: bytes, batch: RecordBatch) -> tuple[bytes | None, int, bool]:
        """(bytes to write or None, records in them, whether an empty header is kept)."""
        c = self.c
        records = batch.records
        n = len(records)
        c["records_read"] += n
        attrs = batch.attributes
        is_last = batch.producer_id >= 0 and _is_last(self.producer_last.get(batch.producer_id), batch)
        txn = self.txn
        if txn is None:
            if attrs & (CONTROL_FLAG | TRANSACTIONAL_FLAG):
                return raw, n, False
            return self._records(raw, batch, is_last)
        has_horizon = bool(attrs & DELETE_HORIZON_FLAG)
        if attrs & CONTROL_FLAG:
            # Kafka: a marker whose transaction has no batch left may go, once the
            # delete horizon it then gets has passed; other control batches stay.
            can_discard, retained = txn.on_control_batch(
                batch.producer_id, batch.base_offset, batch.last_offset, n > 0, records[0].key if n else None
            )
            if retained is not None:
                self.retained.append(retained)
            discard = can_discard and has_horizon and self.now_ms >= batch.first_timestamp
            if not discard and n > 0:
                if can_discard and not has_horizon:
                    horizon = min(self.now_ms + self.delete_retention_ms, _I64_MAX)
                    return _rebuild(batch, list(records), horizon), n, False
                return raw, n, False
            if is_last:
                return _empty_batch(batch), 0, True
            c["markers_removed"] += 1
            return None, 0, False
        if txn.on_data_batch(attrs, batch.producer_id, batch.last_offset):
            c["aborted_removed"] += n
            if is_last:
                return _empty_batch(batch), 0, True
            return None, 0, False
        return self._records(raw, batch, is_last)

    def _records(self, raw: bytes, batch: RecordBatch, is_last: bool) -> tuple[bytes | None, int, bool]:
        """The record-by-record rules for a data batch that is not aborted."""
        c = self.c
        records = batch.records
        attrs = batch.attributes
        has_horizon = bool(attrs & DELETE_HORIZON_FLAG)
        retain_deletes = not has_horizon or self.now_ms < batch.first_timestamp
        latest = self.map.latest_offset
        lookup = self.map._get_hash
        kept: list[Record] = []
        keeps_tombstone = False
        for r in records:
            if r.offset > latest:
                keep = True
            elif r.key is None:
                c["keyless_removed"] += 1
                keep = False
            elif r.offset < lookup(key_hash(r.key)):
                c["superseded_removed"] += 1
                keep = False
            elif r.value is None and not retain_deletes:
                c["tombstones_removed"] += 1
                keep = False
            else:
                keep = True
            if keep:
                if r.value is None:
                    keeps_tombstone = True
                kept.append(r)
        needs_horizon = keeps_tombstone and not has_horizon
        if kept:
            if len(kept) == len(records) and not needs_horizon:
                return raw, len(kept), False
            if needs_horizon:
                horizon: int | None = min(self.now_ms + self.delete_retention_ms, _I64_MAX)
            elif has_horizon:
                horizon = batch.first_timestamp
            else:
                horizon = None
            return _rebuild(batch, kept, horizon), len(kept), False
        if is_last:
            return _empty_batch(batch), 0, True
        return None, 0, False


def _pre_pass(segments: list[SegmentFile], want_producers: bool) -> tuple[list[int], dict[int, _LastRecord]]:
    """Per segment its last offset (for grouping), and per producer what its last batch
    is (as Kafka's producer state has it: a data batch sets the last data offset and
    epoch; a control batch of another epoch clears the data offset)."""
    last_offsets: list[int] = []
    producers: dict[int, _LastRecord] = {}
    for i, s in enumerate(segments):
        next_base = segments[i + 1].base_offset if i + 1 < len(segments) else None
        if not want_producers and next_base is not None:
            last_offsets.append(next_base - 1)
            continue
        headers = walk_headers(s.path)
        for h in headers:
            if h.producer_id < 0:
                continue
            if not h.control:
                producers[h.producer_id] = (h.last_offset, h.producer_epoch)
            else:
                cur = producers.get(h.producer_id)
                if cur is None or cur[1] != h.producer_epoch:
                    producers[h.producer_id] = (None, h.producer_epoch)
        if next_base is not None:
            last_offsets.append(next_base - 1)
        else:
            last_offsets.append(headers[-1].last_offset if headers else s.base_offset - 1)
    return last_offsets, producers


def clean_segments(
    segment_paths: Sequence[str | os.PathLike[str]],
    offset_map: OffsetMap,
    *,
    out_dir: str | os.PathLike[str],
    now_ms: int,
    delete_retention_ms: int = DEFAULT_DELETE_RETENTION_MS,
    segment_bytes: int = 1 << 30,
    producer_last_offsets: Mapping[int, int] | None = None,
    io_max_bytes_per_second: float | None = None,
    max_decompressed_bytes: int = DEFAULT_MAX_DECOMPRESSED_BYTES,
    aborted_transactions: Iterable[tuple[int, int, int]] | None = None,
) -> CleanResult:
    """Clean ``<base:020d>.log`` segments (in offset order) with ``offset_map`` into ``out_dir``.

    Writes one ``<out_dir>/<base:020d>.log.cleaned`` per group of segments (inputs
    adding up to at most ``segment_bytes`` bytes), fsynced and given its last
    input's modification time; the inputs are not touched. ``now_ms`` is the pass's
    clock (ms since the epoch) and ``delete_retention_ms`` how long a tombstone
    outlives the pass that first keeps it (ms). ``producer_last_offsets`` maps a
    producer id to the last offset of its last data batch, whose batch is kept as an
    empty header when all its records go; None takes each producer's last batch among
    the inputs. ``aborted_transactions`` are the partition's aborted transactions
    (producer id, first offset, offset of the ABORT marker; the index's entries):
    with them aborted data and markers are removed as Kafka does (see the module
    doc); None copies control and transactional batches unchanged.
    Reads and writes are limited to ``io_max_bytes_per_second`` (bytes/s).
    Raises ValueError on bad arguments, CorruptRecordError on a bad batch and
    StorageError on I/O errors.
    """
    if delete_retention_ms < 0:
        raise ValueError(f"delete_retention_ms must be >= 0, not {delete_retention_ms}")
    if segment_bytes < 1:
        raise ValueError("segment_bytes must be >= 1")
    if io_max_bytes_per_second is not None and not io_max_bytes_per_second > 0:
        raise ValueError(f"io_max_bytes_per_second must be > 0, not {io_max_bytes_per_second}")
    if not isinstance(offset_map, OffsetMap):
        raise TypeError(
            f"offset_map must be an OffsetMap from build_offset_map, not {type(offset_map).__name__}"
        )
    out = os.fspath(out_dir)
    segments = segment_files(segment_paths)
    last_offsets, derived = _pre_pass(segments, producer_last_offsets is None)
    producer_last: dict[int, _LastRecord] = (
        derived
        if producer_last_offsets is None
        else {int(pid): (int(o), -1) for pid, o in producer_last_offsets.items()}
    )
    txn = None if aborted_transactions is None else TxnTracker(_aborted_list(aborted_transactions))
    sizes = []
    for s in segments:
        try:
            sizes.append(os.stat(s.path).st_size)
        except OSError as exc:
            raise StorageError(f"cleaner: cannot stat {s.path}: {exc.strerror or exc}") from None
    groups = group_segments([s.base_offset for s in segments], sizes, last_offsets, segment_bytes)
    throttle = Throttle(io_max_bytes_per_second)
    p = _Pass(offset_map, now_ms, delete_retention_ms, producer_last, txn)
    written = [
        _clean_group([segments[i] for i in g], p, out, throttle, max_decompressed_bytes) for g in groups
    ]
    p.c["throttled_ms"] = throttle.slept_ms
    return CleanResult(written, CleanStats(**p.c))


def _clean_group(
    group: list[SegmentFile], p: _Pass, out_dir: str, throttle: Throttle, max_decompressed_bytes: int
) -> CleanedSegment:
    base = group[0].base_offset
    path = os.path.join(out_dir, f"{base:020d}{CLEANED_SUFFIX}")
    last_modified = modified_ms(group[-1].path)
    c = p.c
    size = batches = records = 0
    max_ts = _NO_TIMESTAMP
    try:
        f = open(path, "wb", buffering=1 << 20)
    except OSError as exc:
        raise StorageError(f"cleaner: cannot create {path}: {exc.strerror or exc}") from None
    with f:
        for seg in group:
            for at, raw in read_batches(seg.path):
                c["bytes_read"] += len(raw)
                c["batches_read"] += 1
                throttle.account(len(raw))
                try:
                    batch = decode_batch(raw, max_decompressed_bytes=max_decompressed_bytes)
                except CorruptRecordError as exc:
                    raise CorruptRecordError(f"cleaner: {seg.path} batch at byte {at}: {exc}") from None
                data, n, empty = p.decide(raw, batch)
                if data is None:
                    continue
                if empty:
                    c["empty_batches_retained"] += 1
                try:
                    f.write(data)
                except OSError as exc:
                    raise StorageError(f"cleaner: cannot write {path}: {exc.strerror or exc}") from None
                size += len(data)
                batches += 1
                records += n
                max_ts = max(max_ts, max_timestamp(data))
                c["bytes_written"] += len(data)
                c["batches_written"] += 1
                c["records_kept"] += n
                throttle.account(len(data))
        try:
            f.flush()
            os.fsync(f.fileno())
        except OSError as exc:
            raise StorageError(f"cleaner: cannot fsync {path}: {exc.strerror or exc}") from None
    ns = max(last_modified, 0) * 1_000_000
    os.utime(path, ns=(ns, ns))
    retained, p.retained = p.retained, []
    return CleanedSegment(
        path, base, [s.path for s in group], size, batches, records, max_ts, last_modified, retained
    )
