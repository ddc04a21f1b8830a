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

from typing import TYPE_CHECKING, Any

# Eager: the function shares its submodule's name, and a later import of the submodule
# (offset_map imports it) would otherwise leave the package attribute naming the module.
from streamcore._reference.cleaner.key_hash import key_hash

if TYPE_CHECKING:
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

# Names load on first use: the native binding imports ``result`` (its result types) when
# ``streamcore._native`` loads, and that must not pull the whole twin (and the crc32c
# package behind it) into every native process's start-up.
_HOMES = {
    "DEFAULT_LOAD_FACTOR": "offset_map",
    "DEFAULT_MEMORY_BYTES": "offset_map",
    "OffsetMap": "offset_map",
    "build_offset_map": "offset_map",
    "CleanedSegment": "result",
    "CleanResult": "result",
    "CleanStats": "result",
    "CLEANED_SUFFIX": "rewrite",
    "DEFAULT_DELETE_RETENTION_MS": "rewrite",
    "clean_segments": "rewrite",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value
    return value


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
