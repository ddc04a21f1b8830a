"""``_native.search``: one partition's full-text index, on tantivy (twin: ``streamcore._reference.search``).

Documents are (partition, offset, timestamp_ms, key, value); a JSON-object value is
indexed field by field, any other value as plain text. The index keeps the partition,
offset and timestamp of a hit, never the record: callers read it from the log. The
query language and the analysis rules are in docs/search.md.
"""

import os
from collections.abc import Sequence
from types import TracebackType
from typing import final

__all__ = ["SearchIndex", "ENGINE", "MIN_WRITER_MEMORY_BYTES", "DEFAULT_WRITER_MEMORY_BYTES"]

#: Which twin wrote an index: "native" here, "reference" in the twin.
ENGINE: str
#: Smallest writer memory budget (bytes).
MIN_WRITER_MEMORY_BYTES: int
#: Writer memory budget unless told otherwise (bytes).
DEFAULT_WRITER_MEMORY_BYTES: int

@final
class SearchIndex:
    """The index in ``directory`` (created with the directory when missing).

    Changes (``add``, ``delete_range``) become durable and visible to ``search`` at
    ``commit``; a crash loses only uncommitted changes. Raises StorageError when the
    index files cannot be read or written, ValueError for bad arguments or queries.
    """

    def __new__(cls, directory: str | os.PathLike[str], *, writer_memory_bytes: int = ...) -> SearchIndex: ...
    def add(self, docs: Sequence[tuple[int, int, int, bytes | None, bytes | None]]) -> int:
        """Add (partition, offset, timestamp_ms, key, value) documents; return how many.
        A document at an offset already in the index replaces it."""
    def add_batches(
        self,
        data: bytes,
        partition: int,
        low: int,
        high: int,
        aborted: Sequence[tuple[int, int, int]] = ...,
        *,
        replace: bool = False,
    ) -> tuple[int, int | None]:
        """Add the records with offsets in [low, high) of the log batches in ``data`` that a
        read_committed consumer sees: control batches are left out, and so is a
        transactional batch whose base offset lies in one of ``aborted``'s (producer id,
        first offset, last offset) spans of its producer. With ``replace``, first delete
        [low, end). Decoding and indexing run without the GIL.

        Returns (documents added, end): ``end`` is where reading goes on, the end (last
        offset + 1) of the last whole batch capped at ``high``; None when ``data`` holds
        no whole batch. Raises CorruptRecordError for a malformed batch."""
    def delete_range(self, start: int, end: int) -> None:
        """Delete the documents whose offsets are in [start, end)."""
    def commit(self) -> None:
        """Make every change so far durable and visible."""
    def search(
        self, query: str, *, since_ms: int | None = None, limit: int = 20
    ) -> list[tuple[int, int, int]]:
        """(partition, offset, timestamp_ms) of the hits with a timestamp >= ``since_ms`` (ms),
        in offset order, at most ``limit`` (the lowest offsets)."""
    @property
    def doc_count(self) -> int:
        """Documents in the committed index."""
    @property
    def max_offset(self) -> int | None:
        """The largest offset ever added (deleted documents included), or None."""
    @property
    def directory(self) -> str: ...
    def close(self) -> None:
        """Release the writer (uncommitted changes are dropped); searching still works."""
    def __enter__(self) -> SearchIndex: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...
