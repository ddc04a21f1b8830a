"""Kafka record batch v2: encode, decode and validate, with compression.

The functions come from whichever implementation ``streamcore._impl`` selected
(the Rust core, or the pure-Python reference twin under
``STREAMCORE_NO_EXTENSIONS=1``); both give the same bytes and records and raise
the same :class:`streamcore.errors.CorruptRecordError` on malformed input.

* :func:`encode_batch` -- records to one batch (``compression`` one of
  :data:`COMPRESSION_TYPES`);
* :func:`decode_batch` / :func:`decode_batches` -- one batch, or back-to-back
  batches up to a trailing partial one, to :class:`RecordBatch` objects whose
  ``records`` are :class:`Record` objects and whose ``to_columns()`` gives numpy
  columns;
* :func:`validate_batch` -- the broker's produce-time check, returning the
  header fields as a :class:`~streamcore.codec.batch_header.BatchInfo` named tuple
  without building records.

The header layout itself (field offsets, flags, ``struct`` formats) is
:mod:`streamcore.codec.batch_header`.

Decompression is capped at ``max_decompressed_bytes`` (default
:data:`DEFAULT_MAX_DECOMPRESSED_BYTES`, 64 MiB) per batch. Key-to-partition
hashing as the Java client does it lives in :mod:`streamcore.codec.partitioner`.
"""

from __future__ import annotations

from streamcore._impl import record_batch as _impl

__all__ = [
    "COMPRESSION_TYPES",
    "DEFAULT_MAX_DECOMPRESSED_BYTES",
    "Record",
    "RecordBatch",
    "decode_batch",
    "decode_batches",
    "encode_batch",
    "validate_batch",
]

#: Compression names accepted by ``encode_batch``, indexed by Kafka codec id
#: (attributes bits 0-2).
COMPRESSION_TYPES: tuple[str, ...] = ("none", "gzip", "snappy", "lz4", "zstd")

#: Default cap on one batch's decompressed records region, in bytes (64 MiB).
DEFAULT_MAX_DECOMPRESSED_BYTES: int = _impl.DEFAULT_MAX_DECOMPRESSED_BYTES

encode_batch = _impl.encode_batch
decode_batch = _impl.decode_batch
decode_batches = _impl.decode_batches
validate_batch = _impl.validate_batch
RecordBatch = _impl.RecordBatch
Record = _impl.Record
