"""Full-text search over a topic's records: offline on a data directory, or asking a
running broker's ``/search`` endpoint.

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

``search("http://HOST:PORT", topic, query, ...)`` asks a running broker instead (its
metrics port, where ``/search`` is served), and so does ``search("HOST:PORT", ...)``
with the broker's Kafka address (``bootstrap=True`` to say so when a directory of that
name exists): the Kafka protocol has no search request, so the client asks the broker
for its ``streamcore.metrics.port`` broker config (DescribeConfigs) and searches over
HTTP on the host the broker advertises. The broker queries the indexes its
indexer keeps and reads the hits from its logs; nothing is caught up on demand, and
``lag`` says how far behind each partition's index is. :func:`search_indexes` is
what the broker runs for that endpoint; :func:`results_to_json` and
:func:`results_from_json` are the endpoint's format.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import sys
import types
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from typing import Any, NamedTuple

from streamcore.codec import decode_batch
from streamcore.codec.batch_header import LOG_OVERHEAD, parse_header
from streamcore.errors import OffsetOutOfRangeError
from streamcore.storage.indexer import IndexLag, PartitionIndex, log_lag
from streamcore.storage.log import Log

__all__ = [
    "METRICS_PORT_CONFIG",
    "RemoteSearchError",
    "SearchHit",
    "SearchResults",
    "partitions_of",
    "read_hits",
    "results_from_json",
    "results_to_json",
    "search",
    "metrics_url_of",
    "search_indexes",
]


#: The broker config (DescribeConfigs on the broker resource, read-only) holding the
#: port of a streamcore broker's metrics server, where ``/search`` is served; absent
#: when the broker runs without one.
METRICS_PORT_CONFIG = "streamcore.metrics.port"

# HOST:PORT[,HOST:PORT...] (names, IPv4, [IPv6]): what a Kafka bootstrap list looks like.
_BOOTSTRAP = re.compile(
    r"^(?:[\w.-]+|\[[0-9a-fA-F:.]+\]):\d{1,5}(?:,(?:[\w.-]+|\[[0-9a-fA-F:.]+\]):\d{1,5})*$"
)


class RemoteSearchError(Exception):
    """A broker's ``/search`` endpoint refused the search or could not be reached;
    ``status`` is the HTTP status (0 when there was no answer)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


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


def search_indexes(
    logs: Mapping[int, Any],
    indexes: Mapping[int, PartitionIndex],
    query: str,
    *,
    since_ms: int | None = None,
    limit: int = 20,
) -> SearchResults:
    """Search the partitions of one topic: ``logs`` and ``indexes`` by partition number.

    A partition in ``logs`` without an index yet has no hits and reports its whole log
    as lag. Raises ValueError for a query that does not parse or a negative limit.
    """
    if limit < 0:
        raise ValueError(f"limit must be >= 0, not {limit}")
    if not any(p in indexes for p in logs):
        # No index answers (the indexer has not reached the topic yet): the query is still
        # checked, with the twin's parser (both twins accept the same language).
        from streamcore._reference.search.query import parse

        parse(query)
    hits: list[SearchHit] = []
    lag: dict[int, IndexLag] = {}
    for p in sorted(logs):
        part = indexes.get(p)
        if part is None:
            lag[p] = log_lag(logs[p], 0)
            continue
        lag[p] = part.lag()
        hits.extend(_search_partition(part, query, since_ms, limit))
    hits.sort(key=lambda h: (h.timestamp, h.partition, h.offset))
    return SearchResults(hits[:limit], lag)


def _encode(data: bytes | None, encoding: str) -> str | None:
    if data is None:
        return None
    if encoding == "base64":
        return base64.b64encode(data).decode("ascii")
    return data.decode("utf-8", "replace")


def results_to_json(topic: str, results: SearchResults, *, encoding: str = "text") -> dict[str, Any]:
    """The ``/search`` answer: the hits (key and value as UTF-8 text with invalid bytes
    replaced, or with ``encoding="base64"`` as base64), each partition's lag, and
    ``behind_records`` (summed) / ``behind_seconds`` (largest) over the partitions."""
    return {
        "topic": topic,
        "encoding": encoding,
        "hits": [
            {
                "partition": h.partition,
                "offset": h.offset,
                "timestamp": h.timestamp,
                "key": _encode(h.key, encoding),
                "value": _encode(h.value, encoding),
            }
            for h in results
        ],
        "lag": {
            str(p): {"records": lag.records, "seconds": lag.seconds} for p, lag in sorted(results.lag.items())
        },
        "behind_records": sum(lag.records for lag in results.lag.values()),
        "behind_seconds": max((lag.seconds for lag in results.lag.values()), default=0.0),
    }


def results_from_json(data: Mapping[str, Any]) -> SearchResults:
    """The :class:`SearchResults` of a ``/search`` answer (:func:`results_to_json`)."""
    encoding = data.get("encoding", "text")

    def decode(value: str | None) -> bytes | None:
        if value is None:
            return None
        return base64.b64decode(value) if encoding == "base64" else value.encode("utf-8")

    hits = [
        SearchHit(
            int(h["partition"]), int(h["offset"]), int(h["timestamp"]), decode(h["key"]), decode(h["value"])
        )
        for h in data["hits"]
    ]
    lag = {int(p): IndexLag(int(v["records"]), float(v["seconds"])) for p, v in data["lag"].items()}
    return SearchResults(hits, lag)


def metrics_url_of(
    bootstrap: str, client_config: Mapping[str, Any] | None = None, *, timeout_s: float = 30.0
) -> str:
    """``http://HOST:PORT`` of the metrics server (``/search``) of a broker reached at
    ``bootstrap``: the first broker in the cluster's metadata whose broker configs hold
    :data:`METRICS_PORT_CONFIG`, on the host it advertises. Raises RemoteSearchError
    (status 0) when none does or the cluster cannot be reached in ``timeout_s`` (s)."""
    from streamcore.client.admin import AdminClient
    from streamcore.client.sync import loop_thread
    from streamcore.errors import KafkaError

    async def ask() -> str | None:
        # asyncio.wait_for below bounds the whole lookup; the client's own timeouts stay
        # as the caller configured them.
        admin = AdminClient(bootstrap, client_config)
        try:
            await admin.cluster.refresh()
            for node, (host, _port) in sorted(admin.cluster.brokers.items()):
                configs = await admin.describe_configs(brokers=[node])
                port = configs.get((4, str(node)), {}).get(METRICS_PORT_CONFIG)
                if port:
                    return f"http://{host}:{port}"
            return None
        finally:
            await admin.close()

    try:
        url = loop_thread().run(asyncio.wait_for(ask(), timeout_s), timeout=timeout_s + 5)
    except (KafkaError, OSError, asyncio.TimeoutError, TimeoutError) as exc:
        raise RemoteSearchError(0, f"{bootstrap}: {exc or type(exc).__name__}") from None
    if url is None:
        raise RemoteSearchError(
            0,
            f"{bootstrap}: no broker there serves search (it is not a streamcore broker, "
            f"or it runs without a metrics port: start it with --metrics-port)",
        )
    return url


def _search_remote(
    url: str, topic: str, query: str, since_ms: int | None, limit: int, timeout_s: float
) -> SearchResults:
    params = {"topic": topic, "q": query, "limit": str(limit), "encoding": "base64"}
    if since_ms is not None:
        params["since_ms"] = str(since_ms)
    target = url.rstrip("/") + "/search?" + urllib.parse.urlencode(params)
    try:
        with urllib.request.urlopen(target, timeout=timeout_s) as response:
            return results_from_json(json.loads(response.read()))
    except urllib.error.HTTPError as exc:
        message = exc.read().decode("utf-8", "replace").strip() or exc.reason
        try:
            message = json.loads(message)["error"]
        except (ValueError, KeyError, TypeError):
            pass
        if exc.code == 400:
            raise ValueError(str(message)) from None
        raise RemoteSearchError(exc.code, f"{url}: {message}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise RemoteSearchError(0, f"{url}: {reason}") from None


def search(
    data_dir: str | os.PathLike[str],
    topic: str,
    query: str,
    *,
    since_ms: int | None = None,
    limit: int = 20,
    catch_up: bool = True,
    timeout_s: float = 30.0,
    bootstrap: bool | None = None,
    client_config: Mapping[str, Any] | None = None,
) -> SearchResults:
    """Search ``topic``'s records in ``data_dir`` (a stopped broker's data directory), or
    ask a running broker when ``data_dir`` is its ``http://HOST:PORT`` metrics address
    or its Kafka bootstrap address ``HOST:PORT[,HOST:PORT]``.

    Args:
        query: the query (docs/search.md); ValueError when it does not parse.
        since_ms: only records with a timestamp at or after this (ms since the epoch).
        limit: the most records returned.
        catch_up: index what the index lacks before querying (else query the index as
            it is, and ``lag`` says how far behind it is). A broker never catches up on
            demand: its indexer runs on its own.
        timeout_s: how long to wait for a broker's answer (s).
        bootstrap: True: ``data_dir`` is a bootstrap address; False: a directory; None
            (default): a bootstrap address when it looks like one and no directory of
            that name exists.
        client_config: settings of the admin client that looks the metrics port up
            (security settings for a TLS or SASL listener), as ``AdminClient`` takes them.

    Raises FileNotFoundError when the topic has no partition in ``data_dir``, and
    DataDirLockedError while a broker holds the directory; against a broker,
    RemoteSearchError when it refuses (unknown or unindexed topic, indexing off) or
    cannot be reached, or when a bootstrap address leads to no broker serving search
    (not a streamcore broker, or one without a metrics port).
    """
    if limit < 0:
        raise ValueError(f"limit must be >= 0, not {limit}")
    if isinstance(data_dir, str) and data_dir.startswith(("http://", "https://")):
        return _search_remote(data_dir, topic, query, since_ms, limit, timeout_s)
    if isinstance(data_dir, str) and (
        bootstrap or (bootstrap is None and _BOOTSTRAP.match(data_dir) and not os.path.isdir(data_dir))
    ):
        url = metrics_url_of(data_dir, client_config, timeout_s=timeout_s)
        return _search_remote(url, topic, query, since_ms, limit, timeout_s)
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


class _CallableModule(types.ModuleType):
    """This module's class: ``streamcore.search(...)`` is :func:`search`, so the short
    spelling works without a function shadowing the module on the package."""

    def __call__(
        self,
        data_dir: str | os.PathLike[str],
        topic: str,
        query: str,
        **options: Any,
    ) -> SearchResults:
        return search(data_dir, topic, query, **options)


sys.modules[__name__].__class__ = _CallableModule
