"""``streamcore.search.search`` and ``streamcore search`` on a stopped broker's data
directory: the hits are the records read back from the log, checked against a scan."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from streamcore.codec import encode_batch
from streamcore.errors import DataDirLockedError
from streamcore.search import SearchHit, search
from streamcore.storage import Log
from streamcore.storage.dir_lock import DirLock
from streamcore.tools.search import main as cli_main

from .workload import random_docs, random_query, scan


def make_topic(
    data_dir: Any, topic: str, partitions: int, per_partition: int, seed: int
) -> dict[int, list[Any]]:
    rng = random.Random(seed)
    docs = {}
    for p in range(partitions):
        docs[p] = random_docs(rng, per_partition, partition=p)
        with Log(data_dir / f"{topic}-{p}", fsync="never") as log:
            for i in range(0, per_partition, 10):
                chunk = docs[p][i : i + 10]
                log.append(
                    encode_batch(
                        [d[4] for d in chunk], [d[3] for d in chunk], timestamps_ms=[d[2] for d in chunk]
                    )
                )
    return docs


def expected(docs: dict[int, list[Any]], query: str, since: int | None, limit: int) -> list[SearchHit]:
    by_offset = {(d[0], d[1]): d for part in docs.values() for d in part}
    hits = [h for p in sorted(docs) for h in scan(docs[p], query, since, limit)]
    hits.sort(key=lambda h: (h[2], h[0], h[1]))
    return [SearchHit(p, o, ts, by_offset[(p, o)][3], by_offset[(p, o)][4]) for p, o, ts in hits[:limit]]


def test_search_matches_a_scan_of_the_log(tmp_path: Any) -> None:
    docs = make_topic(tmp_path, "app-logs", 2, 120, seed=7)
    make_topic(tmp_path, "app", 1, 5, seed=8)  # a topic whose name prefixes the other's
    rng = random.Random(9)
    for i in range(40):
        query = random_query(rng)
        since = rng.choice([None, 1250])
        limit = rng.choice([3, 20, 500])
        results = search(tmp_path, "app-logs", query, since_ms=since, limit=limit, catch_up=i == 0)
        assert list(results) == expected(docs, query, since, limit), query
        assert {p: lag.records for p, lag in results.lag.items()} == {0: 0, 1: 0}


def test_new_records_need_a_catch_up_and_lag_says_so(tmp_path: Any) -> None:
    make_topic(tmp_path, "t", 1, 10, seed=1)
    assert len(search(tmp_path, "t", "", limit=100)) == 10
    with Log(tmp_path / "t-0", fsync="never") as log:
        log.append(encode_batch([b"fresh words"], timestamps_ms=[5000]))
    stale = search(tmp_path, "t", "fresh", catch_up=False)
    assert list(stale) == []
    assert stale.lag[0].records == 1
    fresh = search(tmp_path, "t", "fresh")
    assert [(h.offset, h.value) for h in fresh] == [(10, b"fresh words")]


def test_a_hit_whose_record_left_the_log_is_not_returned(tmp_path: Any) -> None:
    make_topic(tmp_path, "t", 1, 30, seed=2)
    assert len(search(tmp_path, "t", "", limit=100)) == 30
    with Log(tmp_path / "t-0", fsync="never") as log:
        log.delete_records(20)
        start = log.log_start_offset
    # Without catching up the index still holds the deleted records: reading back drops them.
    hits = search(tmp_path, "t", "", limit=100, catch_up=False)
    assert sorted(h.offset for h in hits) == list(range(start, 30))


def test_errors(tmp_path: Any) -> None:
    make_topic(tmp_path, "t", 1, 3, seed=3)
    with pytest.raises(FileNotFoundError):
        search(tmp_path, "nope", "x")
    with pytest.raises(ValueError, match="invalid search query"):
        search(tmp_path, "t", "(x")
    with DirLock(str(tmp_path)):
        with pytest.raises(DataDirLockedError):
            search(tmp_path, "t", "x")


def test_cli(tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    with Log(tmp_path / "orders-0", fsync="never") as log:
        log.append(
            encode_batch(
                [
                    b'{"level":"error","service":"payments"}',
                    b'{"level":"info","service":"payments"}',
                    b"plain error",
                ],
                [b"k1", None, b"k3"],
                timestamps_ms=[1_700_000_000_000, 1_700_000_000_001, 1_700_000_000_002],
            )
        )
    data_dir = str(tmp_path)
    assert cli_main(["orders", "level:error AND service:payments", "--data-dir", data_dir]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == ['0\t0\t2023-11-14T22:13:20.000+00:00\tk1\t{"level":"error","service":"payments"}']
    assert cli_main(["orders", "error", "--data-dir", data_dir, "--json", "--limit", "5"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(o["offset"], o["key"]) for o in lines] == [(0, "k1"), (2, "k3")]
    assert lines[1] == {
        "partition": 0,
        "offset": 2,
        "timestamp": 1_700_000_000_002,
        "key": "k3",
        "value": "plain error",
    }
    # Records older than --since are left out (these are from 2023).
    assert cli_main(["orders", "", "--data-dir", data_dir, "--since", "1h"]) == 0
    assert capsys.readouterr().out == ""
    assert cli_main(["orders", "(error", "--data-dir", data_dir]) == 2
    assert "invalid search query" in capsys.readouterr().err
    assert cli_main(["missing", "x", "--data-dir", data_dir]) == 1
    assert cli_main(["orders", "x", "--data-dir", data_dir, "--since", "soon"]) == 2
