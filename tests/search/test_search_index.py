"""The search capability (``_impl.search.SearchIndex``): known answers, random workloads
against a brute-force scan, replacement, deletion, persistence. Each test runs on the
capability of this pass and, in the native pass, on the reference twin too."""

from __future__ import annotations

import random
from typing import Any

import pytest

from .workload import implementations, random_docs, random_query, scan

IMPLS = implementations()
IDS = [impl.ENGINE for impl in IMPLS]


@pytest.fixture(params=IMPLS, ids=IDS)
def impl(request: pytest.FixtureRequest) -> Any:
    return request.param


def _doc(offset: int, ts: int, value: str) -> tuple[int, int, int, bytes, bytes]:
    return (3, offset, ts, f"k{offset}".encode(), value.encode())


DOCS = [
    _doc(0, 10, '{"level":"error","svc":{"name":"payments"},"code":500,"msg":"card declined by bank"}'),
    _doc(1, 20, '{"level":"info","svc":{"name":"orders"},"code":200.0,"msg":"bank ok"}'),
    _doc(2, 30, "plain error text about payments"),
    _doc(3, 40, '{"level":"error","code":"500","tags":["a b","c"],"deep":{"x.y":[{"z":7}]}}'),
]

KNOWN = {
    "level:error": [0, 3],
    "LEVEL:error": [],
    "level:ERROR": [0, 3],
    "level:error AND svc.name:payments": [0],
    "level:error svc.name:payments": [0],
    "payments": [0, 2],
    "code:500": [0, 3],
    "code:200": [1],
    "code:[100 TO 300]": [1],
    "code:[500 TO *]": [0],
    "code:[* TO *]": [0, 1],
    "deep.x.y.z:7": [3],
    'msg:"declined by bank"': [0],
    '"by declined"': [],
    'tags:"b c"': [],
    'tags:"a b"': [3],
    "NOT level:error": [1, 2],
    "info OR text": [1, 2],
    "(info OR text) AND NOT payments": [1],
    "_key:k2": [2],
    "": [0, 1, 2, 3],
    "!!!": [],
}


def test_known_answers(impl: Any, tmp_path: Any) -> None:
    index = impl.SearchIndex(tmp_path / "ix")
    assert index.add(DOCS) == 4
    assert index.search("level:error") == [], "visible only after commit"
    index.commit()
    assert index.doc_count == 4
    for query, offsets in KNOWN.items():
        assert [h[1] for h in index.search(query, limit=100)] == offsets, query
    assert index.search("_key:k3") == [(3, 3, 40)]
    assert [h[1] for h in index.search("", since_ms=25, limit=1)] == [2]
    assert index.search("", limit=0) == []


@pytest.mark.parametrize(
    "query",
    ["(a", "a)", '"a', "n:[1 TO", "n:[a TO 2]", "[1 TO 2]", "AND", "a OR", ":x", "f:", "n:[1 2]", "a ]"],
)
def test_bad_queries_are_value_errors(impl: Any, tmp_path: Any, query: str) -> None:
    index = impl.SearchIndex(tmp_path / "ix")
    with pytest.raises(ValueError, match="invalid search query"):
        index.search(query)


def test_bad_arguments(impl: Any, tmp_path: Any) -> None:
    with pytest.raises(ValueError):
        impl.SearchIndex(tmp_path / "ix", writer_memory_bytes=1000)
    index = impl.SearchIndex(tmp_path / "ix")
    with pytest.raises(ValueError):
        index.add([(0, -1, 0, None, b"x")])
    with pytest.raises(ValueError):
        index.search("", limit=-1)


def test_readd_replaces_delete_range_removes_and_reopen_keeps(impl: Any, tmp_path: Any) -> None:
    index = impl.SearchIndex(tmp_path / "ix")
    index.add(DOCS)
    index.commit()
    index.add([_doc(1, 20, "replaced"), _doc(4, 50, "new")])
    index.delete_range(2, 4)
    index.commit()
    assert [h[1] for h in index.search("", limit=10)] == [0, 1, 4]
    assert [h[1] for h in index.search("replaced")] == [1]
    assert [h[1] for h in index.search("bank")] == [0]
    # Uncommitted changes are lost at close.
    index.add([_doc(9, 90, "lost")])
    index.close()
    again = impl.SearchIndex(tmp_path / "ix")
    assert again.max_offset == 4
    assert again.doc_count == 3
    assert again.search("lost") == []
    again.add([_doc(0, 10, "again")])
    again.commit()
    assert [h[1] for h in again.search("again")] == [0]
    assert again.doc_count == 3
    again.close()


@pytest.mark.parametrize("seed", range(6))
def test_random_workload_matches_a_scan(impl: Any, tmp_path: Any, seed: int) -> None:
    rng = random.Random(seed)
    docs = random_docs(rng, 300, partition=seed)
    live: dict[int, Any] = {}
    index = impl.SearchIndex(tmp_path / "ix")
    # In slices, with commits between, some documents added twice and some ranges deleted.
    position = 0
    while position < len(docs):
        step = rng.randint(1, 80)
        chunk = docs[position : position + step]
        index.add(chunk)
        live.update((d[1], d) for d in chunk)
        if rng.random() < 0.3 and position:
            replay = docs[rng.randrange(position) : position]
            index.add(replay)
            live.update((d[1], d) for d in replay)
        if rng.random() < 0.2:
            start = rng.randrange(position + len(chunk))
            end = start + rng.randint(1, 30)
            index.delete_range(start, end)
            for offset in range(start, end):
                live.pop(offset, None)
        if rng.random() < 0.7:
            index.commit()
        position += step
    index.commit()
    assert index.doc_count == len(live)
    for _attempt in range(2):
        for _ in range(120):
            query = random_query(rng)
            since = rng.choice([None, None, 1200])
            limit = rng.choice([5, 20, 1000])
            assert index.search(query, since_ms=since, limit=limit) == scan(
                live.values(), query, since, limit
            ), (
                query,
                since,
                limit,
            )
        # The same answers from the files alone.
        index.close()
        index = impl.SearchIndex(tmp_path / "ix")
    index.close()
