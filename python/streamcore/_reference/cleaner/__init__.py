"""Reference twin of the ``cleaner`` capability: log compaction over segment files.

:func:`build_offset_map` maps each key of the dirty range to its latest offset in a
map of fixed capacity; :func:`clean_segments` rewrites segments with it into
``.cleaned`` files, keeping each key's latest record under Kafka's rules for
tombstones, batch fields, producer state and transactions (see ``rewrite.py``). Swapping the
files into a live log is the storage layer's work.

The package mirrors ``rust/core/src/cleaner/`` file for file:

==================  ===============================================================
``key_hash.py``     the 16-byte key digest (BLAKE2b)
``offset_map.py``   ``OffsetMap`` and ``build_offset_map``
``rewrite.py``      ``clean_segments``: batch decisions, re-encoding, grouping
``input.py``        reading segment files
``txn.py``          aborted and committed transactions while walking the log
``throttle.py``     the I/O rate limit
``result.py``       ``CleanResult``, ``CleanedSegment``, ``CleanStats``
==================  ===============================================================
"""

from __future__ import annotations

from streamcore._reference.cleaner.key_hash import key_hash
from streamcore._reference.cleaner.offset_map import (
    DEFAULT_LOAD_FACTOR,
    DEFAULT_MEMORY_BYTES,
    OffsetMap,
    build_offset_map,
)
from streamcore._reference.cleaner.result import CleanedSegment, CleanResult, CleanStats
from streamcore._reference.cleaner.rewrite import (
    CLEANED_SUFFIX,
    DEFAULT_DELETE_RETENTION_MS,
    clean_segments,
)

__all__ = [
    "CLEANED_SUFFIX",
    "DEFAULT_DELETE_RETENTION_MS",
    "DEFAULT_LOAD_FACTOR",
    "DEFAULT_MEMORY_BYTES",
    "CleanResult",
    "CleanStats",
    "CleanedSegment",
    "OffsetMap",
    "build_offset_map",
    "clean_segments",
    "key_hash",
]
