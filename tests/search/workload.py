"""Random records and queries for the search tests, and the brute-force answer.

The answer scans every record with the analysis rules and the query parser of the
reference twin (``_reference/search/analyze.py``, ``query.py``), without any index:
what an index (either twin) returns must equal it.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Sequence
from typing import Any

from streamcore._reference.search.analyze import analyze_value, positioned_tokens, tokens
from streamcore._reference.search.query import All, And, Node, Not, Or, Range, Text, parse

WORDS = [
    "error",
    "info",
    "warn",
    "payments",
    "orders",
    "card",
    "declined",
    "bank",
    "ok",
    "Timeout",
    "retry",
    "42",
    "x",
]
FIELDS = ["level", "svc.name", "msg", "code", "tags", "user.id", "ok"]

Doc = tuple[int, int, int, "bytes | None", "bytes | None"]


def _phrase(rng: random.Random, n: int) -> str:
    seps = [" ", " ", "-", ", ", "/"]
    return "".join(rng.choice(WORDS) + rng.choice(seps) for _ in range(n)).strip(" ,/-")


def random_value(rng: random.Random) -> bytes | None:
    roll = rng.random()
    if roll < 0.05:
        return None
    if roll < 0.2:
        return _phrase(rng, rng.randint(0, 6)).encode()
    if roll < 0.25:
        return rng.choice([b"\xff\xfe error bytes", b"[1, 2, 3]", b'"a json string"', b"17", b"{not json"])
    obj: dict[str, Any] = {}
    if rng.random() < 0.8:
        obj["level"] = rng.choice(["error", "info", "warn", "ERROR"])
    if rng.random() < 0.6:
        obj["svc"] = {"name": rng.choice(["payments", "orders", "card bank"])}
    if rng.random() < 0.7:
        obj["msg"] = _phrase(rng, rng.randint(1, 5))
    if rng.random() < 0.6:
        obj["code"] = rng.choice([200, 404, 500, 503, 42, -1, 2.5, 500.0, "500", "404 not found"])
    if rng.random() < 0.4:
        obj["tags"] = [rng.choice(WORDS + [1, 2.5, True, None]) for _ in range(rng.randint(0, 3))]
    if rng.random() < 0.3:
        obj["user.id"] = rng.randint(0, 20)
    if rng.random() < 0.2:
        obj["user"] = {"id": rng.choice([3, "3", 7])}
    if rng.random() < 0.2:
        obj["ok"] = rng.choice([True, False, None])
    return json.dumps(obj).encode()


def random_docs(rng: random.Random, n: int, partition: int = 0, first_offset: int = 0) -> list[Doc]:
    docs = []
    for i in range(n):
        key = None if rng.random() < 0.2 else f"key-{rng.randint(0, 9)}".encode()
        docs.append((partition, first_offset + i, 1_000 + rng.randint(0, 500), key, random_value(rng)))
    return docs


def _clause(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.3:
        return f"{rng.choice(FIELDS)}:{rng.choice(WORDS + ['500', '2.5', 'true', '3'])}"
    if roll < 0.5:
        return rng.choice(WORDS)
    if roll < 0.6:
        return f'"{_phrase(rng, 2)}"'
    if roll < 0.7:
        return f'{rng.choice(["msg", "svc.name", "tags"])}:"{_phrase(rng, 2)}"'
    if roll < 0.85:
        lo = rng.choice(["*", "-5", "0", "42", "200", "2.5", "499.5"])
        hi = rng.choice(["*", "3", "42", "500", "1e3"])
        return f"{rng.choice(['code', 'user.id', 'tags'])}:[{lo} TO {hi}]"
    return f"_key:key-{rng.randint(0, 9)}"


def random_query(rng: random.Random, depth: int = 0) -> str:
    roll = rng.random()
    if depth > 2 or roll < 0.4:
        return _clause(rng)
    if roll < 0.55:
        return f"NOT {random_query(rng, depth + 1)}"
    if roll < 0.7:
        return f"({random_query(rng, depth + 1)} OR {random_query(rng, depth + 1)})"
    if roll < 0.85:
        return f"{random_query(rng, depth + 1)} AND {random_query(rng, depth + 1)}"
    return f"{random_query(rng, depth + 1)} {random_query(rng, depth + 1)}"


def _texts(doc: Doc) -> dict[str, list[list[str | None]]]:
    texts: dict[str, list[list[str | None]]] = {}
    _, _, _, key, value = doc
    if key is not None:
        texts["_key"] = [positioned_tokens(key.decode("utf-8", "replace"))]
    if value is not None:
        a = analyze_value(value)
        if a.plain is not None:
            texts.setdefault("", []).append(positioned_tokens(a.plain))
        for path, text in a.fields:
            texts.setdefault("", []).append(positioned_tokens(text))
            texts.setdefault("." + path, []).append(positioned_tokens(text))
    return texts


def _matches(node: Node, texts: dict[str, list[list[str | None]]], numbers: dict[str, list[float]]) -> bool:
    if isinstance(node, All):
        return True
    if isinstance(node, Text):
        where = "" if node.field is None else ("_key" if node.field == "_key" else "." + node.field)
        words = tokens(node.text)
        hit = bool(words) and any(
            value[i : i + len(words)] == words for value in texts.get(where, []) for i in range(len(value))
        )
        if node.number is not None and node.field not in (None, "_key"):
            hit = hit or node.number in numbers.get(node.field, [])
        return hit
    if isinstance(node, Range):
        return node.field != "_key" and any(
            (node.lo is None or v >= node.lo) and (node.hi is None or v <= node.hi)
            for v in numbers.get(node.field, [])
        )
    if isinstance(node, And):
        return all(_matches(n, texts, numbers) for n in node.items)
    if isinstance(node, Or):
        return any(_matches(n, texts, numbers) for n in node.items)
    assert isinstance(node, Not)
    return not _matches(node.inner, texts, numbers)


def scan(
    docs: Iterable[Doc], query: str, since_ms: int | None = None, limit: int = 20
) -> list[tuple[int, int, int]]:
    """(partition, offset, timestamp) of the matching documents by a scan, in offset order."""
    node = parse(query)
    out = []
    for doc in sorted(docs, key=lambda d: d[1]):
        numbers: dict[str, list[float]] = {}
        if doc[4] is not None:
            for path, number in analyze_value(doc[4]).numbers:
                numbers.setdefault(path, []).append(number)
        if (since_ms is None or doc[2] >= since_ms) and _matches(node, _texts(doc), numbers):
            out.append((doc[0], doc[1], doc[2]))
    return out[:limit]


def implementations() -> Sequence[Any]:
    """The search capability of this pass, and the reference twin when that is another."""
    from streamcore import _impl
    from streamcore._reference import search as reference

    active = _impl.search
    return [active] if active is reference else [active, reference]
