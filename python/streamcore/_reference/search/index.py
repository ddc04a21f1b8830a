"""``SearchIndex``: one partition's inverted index, the twin of ``rust/core/src/search/mod.rs``.

A dictionary from (field, term) to the offsets holding it, with each document's
terms in order for phrases, its numbers by path for ranges, and its partition and
timestamp. Changes are buffered until :meth:`SearchIndex.commit`, which appends them
to ``reference-ops.jsonl`` (fsynced) and then records the file's committed length in
``reference-meta.json`` (atomic replace): opening replays the operations up to that
length and cuts off anything after it, so a crash loses only uncommitted changes.
The native index keeps its own files in the same directory; neither twin reads the
other's.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterable
from typing import Any

from streamcore._atomic_file import fsync_dir, write_atomic
from streamcore._reference.search.analyze import analyze_value, positioned_tokens, tokens
from streamcore._reference.search.batches import documents
from streamcore._reference.search.query import All, And, Node, Not, Or, Range, Text, parse

__all__ = ["DEFAULT_WRITER_MEMORY_BYTES", "ENGINE", "MIN_WRITER_MEMORY_BYTES", "SearchIndex"]

#: Which twin wrote an index (the native one says "native").
ENGINE = "reference"
#: The native writer's smallest memory budget (bytes); accepted and checked here too.
MIN_WRITER_MEMORY_BYTES = 15_000_000
#: Writer memory budget unless told otherwise (bytes).
DEFAULT_WRITER_MEMORY_BYTES = MIN_WRITER_MEMORY_BYTES

_OPS = "reference-ops.jsonl"
_META = "reference-meta.json"
#: The query language's name for the record key.
KEY_FIELD = "_key"
# Field keys of a document's texts: bare terms, the key, and "f:<path>" for JSON leaves.
_BODY = "b"
_KEY = "k"

# A document: [partition, timestamp, {field key: [[token, ...] per value]}, {path: [numbers]}]
_Doc = list[Any]


def _analyze(
    key: bytes | None, value: bytes | None
) -> tuple[dict[str, list[list[str | None]]], dict[str, list[float]]]:
    texts: dict[str, list[list[str | None]]] = {}
    numbers: dict[str, list[float]] = {}
    if key is not None:
        texts[_KEY] = [positioned_tokens(key.decode("utf-8", "replace"))]
    if value is not None:
        a = analyze_value(value)
        if a.plain is not None:
            texts.setdefault(_BODY, []).append(positioned_tokens(a.plain))
        for path, text in a.fields:
            words = positioned_tokens(text)
            texts.setdefault(_BODY, []).append(words)
            texts.setdefault("f:" + path, []).append(words)
        for path, number in a.numbers:
            numbers.setdefault(path, []).append(number)
    return texts, numbers


def _non_negative(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if value < 0:
        raise ValueError(f"{name} must be >= 0, not {value}")
    return value


class SearchIndex:
    """One partition's full-text index in ``directory`` (created when empty)."""

    def __init__(
        self, directory: str | os.PathLike[str], *, writer_memory_bytes: int = DEFAULT_WRITER_MEMORY_BYTES
    ) -> None:
        if writer_memory_bytes < MIN_WRITER_MEMORY_BYTES:
            raise ValueError(
                f"writer_memory_bytes must be at least {MIN_WRITER_MEMORY_BYTES}, not {writer_memory_bytes}"
            )
        self._directory = os.fspath(directory)
        os.makedirs(self._directory, exist_ok=True)
        self._lock = threading.Lock()
        self._docs: dict[int, _Doc] = {}
        self._postings: dict[tuple[str, str], set[int]] = {}
        self._pending: list[list[Any]] = []
        self._max_offset: int | None = None
        self._load()

    # -- persistence -------------------------------------------------------------

    def _load(self) -> None:
        ops_path = os.path.join(self._directory, _OPS)
        try:
            with open(os.path.join(self._directory, _META), encoding="utf-8") as f:
                committed = int(json.load(f)["committed_bytes"])
        except FileNotFoundError:
            committed = 0
        try:
            with open(ops_path, "rb") as f:
                data = f.read(committed)
        except FileNotFoundError:
            data = b""
        for line in data.splitlines():
            self._apply(json.loads(line))
        # Bytes past the committed length are a commit that did not finish.
        if os.path.exists(ops_path) and os.path.getsize(ops_path) > committed:
            with open(ops_path, "r+b") as f:
                f.truncate(committed)
                os.fsync(f.fileno())

    def _apply(self, op: list[Any]) -> None:
        if op[0] == "add":
            _, offset, partition, timestamp, texts, numbers = op
            self._unindex(offset)
            self._docs[offset] = [partition, timestamp, texts, numbers]
            for field, values in texts.items():
                for words in values:
                    for word in words:
                        if word is not None:
                            self._postings.setdefault((field, word), set()).add(offset)
            if self._max_offset is None or offset > self._max_offset:
                self._max_offset = offset
        else:
            _, start, end = op
            for offset in [o for o in self._docs if start <= o < end]:
                self._unindex(offset)

    def _unindex(self, offset: int) -> None:
        doc = self._docs.pop(offset, None)
        if doc is None:
            return
        for field, values in doc[2].items():
            for words in values:
                for word in words:
                    offsets = self._postings.get((field, word)) if word is not None else None
                    if offsets is not None:
                        offsets.discard(offset)
                        if not offsets:
                            del self._postings[(field, word)]

    # -- changes -------------------------------------------------------------------

    def add(self, docs: Iterable[tuple[int, int, int, bytes | None, bytes | None]]) -> int:
        """Add documents (partition, offset, timestamp_ms, key, value); return how many.

        A document at an offset already indexed replaces it. Visible after ``commit``.
        """
        ops: list[list[Any]] = []
        for partition, offset, timestamp, key, value in docs:
            texts, numbers = _analyze(key, value)
            ops.append(
                [
                    "add",
                    _non_negative("offset", offset),
                    _non_negative("partition", partition),
                    timestamp,
                    texts,
                    numbers,
                ]
            )
        with self._lock:
            self._pending.extend(ops)
            for op in ops:
                if self._max_offset is None or op[1] > self._max_offset:
                    self._max_offset = op[1]
        return len(ops)

    def add_batches(
        self,
        data: bytes | bytearray | memoryview,
        partition: int,
        low: int,
        high: int,
        aborted: Iterable[tuple[int, int, int]] = (),
        *,
        replace: bool = False,
    ) -> tuple[int, int | None]:
        """Add the records in ``[low, high)`` of the log batches in ``data`` that a
        read_committed consumer sees; with ``replace``, first delete ``[low, end)``.

        Returns (documents added, end): ``end`` is where reading goes on (the last
        whole batch's end, capped at ``high``), None when ``data`` holds no whole batch.
        """
        for name, v in (("partition", partition), ("low", low), ("high", high)):
            _non_negative(name, v)
        docs, end = documents(data, partition, low, high, aborted)
        if replace and end is not None:
            self.delete_range(low, end)
        if docs:
            self.add(docs)
        return len(docs), end

    def delete_range(self, start: int, end: int) -> None:
        """Delete the documents whose offsets are in ``[start, end)``; visible after ``commit``."""
        _non_negative("start", start)
        _non_negative("end", end)
        if start < end:
            with self._lock:
                self._pending.append(["delete", start, end])

    def commit(self) -> None:
        """Make every change so far durable and visible to searches."""
        with self._lock:
            if not self._pending:
                return
            ops_path = os.path.join(self._directory, _OPS)
            payload = b"".join(
                json.dumps(op, separators=(",", ":")).encode("utf-8") + b"\n" for op in self._pending
            )
            created = not os.path.exists(ops_path)
            with open(ops_path, "ab") as f:
                f.write(payload)
                f.flush()
                os.fsync(f.fileno())
                committed = f.tell()
            if created:
                fsync_dir(self._directory)
            write_atomic(os.path.join(self._directory, _META), json.dumps({"committed_bytes": committed}))
            for op in self._pending:
                self._apply(op)
            self._pending.clear()

    # -- reading -------------------------------------------------------------------

    @property
    def doc_count(self) -> int:
        """Documents in the committed index."""
        return len(self._docs)

    @property
    def max_offset(self) -> int | None:
        """The largest offset ever added (deleted documents included), or None."""
        return self._max_offset

    @property
    def directory(self) -> str:
        return self._directory

    def search(
        self, query: str, *, since_ms: int | None = None, limit: int = 20
    ) -> list[tuple[int, int, int]]:
        """(partition, offset, timestamp_ms) of the hits of ``query`` at or after ``since_ms``,
        in offset order, at most ``limit`` (the lowest offsets). Raises ValueError for a bad query."""
        node = parse(query)
        if limit < 0:
            raise ValueError(f"limit must be >= 0, not {limit}")
        with self._lock:
            hits = sorted(self._eval(node))
            out: list[tuple[int, int, int]] = []
            for offset in hits:
                if len(out) >= limit:
                    break
                partition, timestamp = self._docs[offset][0], self._docs[offset][1]
                if since_ms is None or timestamp >= since_ms:
                    out.append((partition, offset, timestamp))
            return out

    def _eval(self, node: Node) -> set[int]:
        if isinstance(node, All):
            return set(self._docs)
        if isinstance(node, Text):
            if node.field is None:
                found = self._text(_BODY, node.text)
            elif node.field == KEY_FIELD:
                found = self._text(_KEY, node.text)
            else:
                found = self._text("f:" + node.field, node.text)
                if node.number is not None:
                    found |= self._numbers(node.field, node.number, node.number)
            return found
        if isinstance(node, Range):
            if node.field == KEY_FIELD:
                return set()
            return self._numbers(node.field, node.lo, node.hi)
        if isinstance(node, And):
            result = self._eval(node.items[0])
            for item in node.items[1:]:
                result &= self._eval(item)
            return result
        if isinstance(node, Or):
            result = set()
            for item in node.items:
                result |= self._eval(item)
            return result
        assert isinstance(node, Not)
        return set(self._docs) - self._eval(node.inner)

    def _text(self, field: str, text: str) -> set[int]:
        words = tokens(text)
        if not words:
            return set()
        candidates = set(self._postings.get((field, words[0]), ()))
        for word in words[1:]:
            candidates &= self._postings.get((field, word), set())
        if len(words) == 1:
            return candidates
        n = len(words)
        return {
            o
            for o in candidates
            if any(
                value[i : i + n] == words
                for value in self._docs[o][2].get(field, ())
                for i in range(len(value))
            )
        }

    def _numbers(self, path: str, lo: float | None, hi: float | None) -> set[int]:
        return {
            offset
            for offset, doc in self._docs.items()
            if any((lo is None or v >= lo) and (hi is None or v <= hi) for v in doc[3].get(path, ()))
        }

    def close(self) -> None:
        """Drop uncommitted changes (the native twin releases its writer); searching still works."""
        with self._lock:
            self._pending.clear()

    def __enter__(self) -> SearchIndex:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SearchIndex({self._directory!r})"
