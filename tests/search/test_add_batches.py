"""``SearchIndex.add_batches``: log batches straight into the index, the same on both
twins: the read_committed filter (control batches, aborted transactions), the
[low, high) window, the end it reports, ``replace``, compressed and log-append-time
batches, and malformed input."""

from __future__ import annotations

import random
from typing import Any

import pytest

from streamcore.codec import encode_batch
from streamcore.errors import CorruptRecordError

from .workload import implementations

IMPLS = implementations()


@pytest.fixture(params=IMPLS, ids=[impl.ENGINE for impl in IMPLS])
def impl(request: pytest.FixtureRequest) -> Any:
    return request.param


def _batch(base: int, words: list[str], **kw: Any) -> bytes:
    return encode_batch(
        [f'{{"w":"{w}","n":{base + i}}}'.encode() for i, w in enumerate(words)],
        keys=[f"k{base + i}".encode() for i in range(len(words))],
        timestamps_ms=[1_000 + base + i for i in range(len(words))],
        base_offset=base,
        **kw,
    )


def _offsets(index: Any, query: str = "") -> list[int]:
    return [hit[1] for hit in index.search(query, limit=1000)]


def test_window_end_and_fields(impl: Any, tmp_path: Any) -> None:
    data = _batch(10, ["red", "green", "blue"]) + _batch(13, ["red", "cyan", "red"])
    with impl.SearchIndex(tmp_path / "i") as index:
        assert index.add_batches(data, 5, 11, 15) == (4, 15)
        index.commit()
        assert _offsets(index) == [11, 12, 13, 14]
        assert _offsets(index, "w:red") == [13]
        assert _offsets(index, "_key:k12") == [12]
        assert _offsets(index, "n:[14 TO 14]") == [14]
        assert index.search("w:red") == [(5, 13, 1_013)]
        # No upper bound: the end is the last batch's.
        assert index.add_batches(data, 5, 0, (1 << 63) - 1) == (6, 16)


def test_control_and_aborted_batches_are_left_out(impl: Any, tmp_path: Any) -> None:
    txn = {"producer_id": 7, "producer_epoch": 0, "base_sequence": 0, "transactional": True}
    data = (
        _batch(0, ["a", "b"], **txn)
        + _batch(2, ["marker"], control=True, **txn)
        + _batch(3, ["c"], producer_id=8, producer_epoch=0, base_sequence=0, transactional=True)
        + _batch(4, ["d"])
    )
    with impl.SearchIndex(tmp_path / "i") as index:
        assert index.add_batches(data, 0, 0, 100, [(7, 0, 2)]) == (2, 5)
        index.commit()
        assert _offsets(index) == [3, 4]
    with impl.SearchIndex(tmp_path / "j") as index:
        # An abort of another producer or of a range not covering the base hides nothing.
        assert index.add_batches(data, 0, 0, 100, [(9, 0, 2), (7, 1, 2)]) == (4, 5)


def test_replace_deletes_the_chunk_first(impl: Any, tmp_path: Any) -> None:
    with impl.SearchIndex(tmp_path / "i") as index:
        index.add([(0, o, 0, None, b"old") for o in range(10)])
        index.commit()
        # A compacted chunk: offsets 2 and 5 survive of [0, 6); 6.. stay untouched.
        data = _batch(2, ["new"]) + _batch(5, ["new"])
        assert index.add_batches(data, 0, 0, 6, replace=True) == (2, 6)
        index.commit()
        assert _offsets(index, "new") == [2, 5]
        assert _offsets(index, "old") == [6, 7, 8, 9]


@pytest.mark.parametrize("compression", ["gzip", "zstd", "lz4", "snappy"])
def test_compressed_and_log_append_time(impl: Any, tmp_path: Any, compression: str) -> None:
    data = _batch(0, ["x", "y"], compression=compression, log_append_time=True)
    with impl.SearchIndex(tmp_path / "i") as index:
        assert index.add_batches(data, 1, 0, 10) == (2, 2)
        index.commit()
        # Log-append time: every record carries the batch's max timestamp.
        assert index.search("") == [(1, 0, 1_001), (1, 1, 1_001)]


def test_empty_partial_and_corrupt_input(impl: Any, tmp_path: Any) -> None:
    data = _batch(0, ["x"])
    with impl.SearchIndex(tmp_path / "i") as index:
        assert index.add_batches(b"", 0, 0, 10) == (0, None)
        assert index.add_batches(data[:-1], 0, 0, 10) == (0, None)
        bad = bytearray(data)
        bad[-1] ^= 0xFF
        with pytest.raises(CorruptRecordError):
            index.add_batches(bytes(bad), 0, 0, 10)
        with pytest.raises(ValueError):
            index.add_batches(data, -1, 0, 10)
        index.commit()
        assert index.doc_count == 0


@pytest.mark.parametrize("seed", range(5))
def test_random_chunks_match_a_record_scan(impl: Any, tmp_path: Any, seed: int) -> None:
    """Random runs of plain, transactional, aborted and control batches, read in random
    windows: the index holds exactly the records a read_committed scan keeps."""
    rng = random.Random(seed)
    data = b""
    offset = 0
    expected: dict[int, str] = {}
    aborted: list[tuple[int, int, int]] = []
    for _ in range(30):
        n = rng.randint(1, 5)
        words = [rng.choice(["alpha", "beta", "gamma", "delta"]) for _ in range(n)]
        kind = rng.choice(["plain", "plain", "txn", "aborted", "control"])
        pid = rng.randint(1, 3)
        if kind == "plain":
            data += _batch(offset, words)
        elif kind == "control":
            data += _batch(offset, words, control=True, producer_id=pid, producer_epoch=0, transactional=True)
        else:
            data += _batch(
                offset, words, producer_id=pid, producer_epoch=0, base_sequence=0, transactional=True
            )
            if kind == "aborted":
                aborted.append((pid, offset, offset + n - 1))
        if kind in ("plain", "txn"):
            expected.update({offset + i: w for i, w in enumerate(words)})
        offset += n
    low = rng.randint(0, offset // 2)
    high = rng.randint(low + 1, offset + 5)
    with impl.SearchIndex(tmp_path / "i") as index:
        count, end = index.add_batches(data, 0, low, high, aborted)
        index.commit()
        keep = {o: w for o, w in expected.items() if low <= o < high}
        assert count == len(keep)
        assert end == min(offset, high)
        for word in ("alpha", "beta", "gamma", "delta"):
            assert _offsets(index, f"w:{word}") == sorted(o for o, w in keep.items() if w == word)
