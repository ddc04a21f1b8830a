"""Full-text search over a topic's records, offline on a data directory.

``search(data_dir, topic, query, since_ms=None, limit=20)`` opens the topic's
partition logs in ``data_dir`` (the broker must be stopped: the logs are locked
while they are open), brings each partition's search index up to date with its log
(``catch_up=True``, the default; the indexer's own rules, :mod:`streamcore.storage.indexer`),
queries every partition and reads each hit back from the log by its offset. The
records returned are those stored in the log, never copies kept in the index; a hit
whose record is no longer in the log (retention or compaction removed it) is left
out.

The query language is docs/search.md's: ``field:term``, bare terms, ``AND``/``OR``/
``NOT``, parentheses, quoted phrases, numeric ranges ``field:[lo TO hi]``.

Order: each partition's hits are taken in offset order (the first ``limit`` of
each); the partitions' hits are merged by timestamp, then partition, then offset,
and the first ``limit`` are returned.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from typing import Any, NamedTuple

from streamcore.codec import decode_batch
from streamcore.codec.batch_header import LOG_OVERHEAD, parse_header
from streamcore.errors import OffsetOutOfRangeError
from streamcore.storage.indexer import IndexLag, PartitionIndex
from streamcore.storage.log import Log

__all__ = ["SearchHit", "SearchResults", "partitions_of", "read_hits", "search"]


class SearchHit(NamedTuple):
    """One record found, as stored in the log."""

    partition: int
    offset: int
    #: milliseconds since the epoch
    timestamp: int
    key: bytes | None
    value: bytes | None


class SearchResults(list[SearchHit]):
    """The hits, and how far each partition's index was behind its log when it was queried."""

    #: partition -> IndexLag (records, seconds); all zero after a catch-up
    lag: dict[int, IndexLag]

    def __init__(self, hits: list[SearchHit], lag: dict[int, IndexLag]) -> None:
        super().__init__(hits)
        self.lag = lag


def partitions_of(data_dir: str | os.PathLike[str], topic: str) -> list[int]:
    """The partition numbers of ``topic`` that have a directory in ``data_dir``, ascending."""
    pattern = re.compile(re.escape(topic) + r"-(0|[1-9][0-9]*)")
    found = []
    for name in os.listdir(data_dir):
        m = pattern.fullmatch(name)
        if m is not None and os.path.isdir(os.path.join(data_dir, name)):
            found.append(int(m.group(1)))
    return sorted(found)


def read_hits(log: Any, partition: int, hits: list[tuple[int, int, int]]) -> Iterator[SearchHit]:
    """The records of ``hits`` ((partition, offset, timestamp), ascending offsets) read from ``log``.

    A hit whose offset is no longer in the log is skipped. Each batch is decoded
    once however many hits it holds.
    """
    batch_end = -1
    records: dict[int, Any] = {}
    for _, offset, _ in hits:
        if offset >= batch_end:
            try:
                data = log.read(offset, 1)
            except OffsetOutOfRangeError:
                continue
            if not data:
                continue
            header = parse_header(data)
            size = LOG_OVERHEAD + header.batch_length
            batch = decode_batch(data[:size])
            batch_end = batch.last_offset + 1
            records = {r.offset: r for r in batch}
        record = records.get(offset)
        if record is not None:
            yield SearchHit(partition, offset, record.timestamp_ms, record.key, record.value)


def _search_partition(part: PartitionIndex, query: str, since_ms: int | None, limit: int) -> list[SearchHit]:
    ask = limit
    while True:
        hits = part.index.search(query, since_ms=since_ms, limit=ask)
        found = list(read_hits(part.log, part.key[1], hits))
        # Hits whose records are gone do not count: ask for more until enough are
        # found or the index has no more.
        if len(found) >= limit or len(hits) < ask:
            return found[:limit]
        ask *= 2


def search(
    data_dir: str | os.PathLike[str],
    topic: str,
    query: str,
    *,
    since_ms: int | None = None,
    limit: int = 20,
    catch_up: bool = True,
) -> SearchResults:
    """Search ``topic``'s records in ``data_dir`` (a stopped broker's data directory).

    Args:
        query: the query (docs/search.md); ValueError when it does not parse.
        since_ms: only records with a timestamp at or after this (ms since the epoch).
        limit: the most records returned.
        catch_up: index what the index lacks before querying (else query the index as
            it is, and ``lag`` says how far behind it is).

    Raises FileNotFoundError when the topic has no partition in ``data_dir``, and
    DataDirLockedError while a broker holds the directory.
    """
    if limit < 0:
        raise ValueError(f"limit must be >= 0, not {limit}")
    partitions = partitions_of(data_dir, topic)
    if not partitions:
        raise FileNotFoundError(f"topic {topic!r} has no partition directory in {os.fspath(data_dir)}")
    hits: list[SearchHit] = []
    lag: dict[int, IndexLag] = {}
    for p in partitions:
        with Log(os.path.join(data_dir, f"{topic}-{p}")) as log:
            part = PartitionIndex((topic, p), log)
            try:
                if catch_up:
                    part.catch_up()
                lag[p] = part.lag()
                hits.extend(_search_partition(part, query, since_ms, limit))
            finally:
                part.close()
    hits.sort(key=lambda h: (h.timestamp, h.partition, h.offset))
    return SearchResults(hits[:limit], lag)
