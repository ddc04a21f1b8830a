"""``WalLog.replace_segments`` and ``WalLog.compacted_offset`` on both WAL twins.

The contract is docs/storage.md, "Swapping cleaned segments into a live log" and
"Gaps below the compacted offset". The logs here are built from rounds of four
batches that fill one segment exactly (so segment bases are 0, 7, 14, ...): three
keyed batches of two records and one keyless batch. Keys ``h0``-``h2`` and ``w`` come
back every round; ``u<round>-<j>`` keys are unique (or, with ``unique=False``, come
back every round too, so that a later round supersedes a whole segment). The
``.cleaned`` files come from the real cleaner (``streamcore._impl.cleaner``) or are
written by hand where they must be malformed.

Each scenario is a function returning what it observed (reads, offsets, report,
files left), so that the per-twin tests assert on it and the last tests check that
both twins observe exactly the same thing and leave byte-identical directories.
"""

from __future__ import annotations

import os
import shutil
import struct
import threading
from functools import partial
from typing import Any

import pytest

from streamcore import _impl
from streamcore._reference import wal as reference_wal
from streamcore._reference.record_batch import decode_batches, encode_batch
from streamcore.errors import CorruptRecordError

from .batches import batch_offsets, make_batch, split_batches
from .conftest import native_wal_module
from .crash import set_crash_state

TS = 1_700_000_000_000
PER_ROUND = 7  # offsets per round (and per segment)
BIG = 1 << 24  # max_bytes that reads the whole log
LEFTOVER_SUFFIXES = (".cleaned", ".swap", ".deleted", ".tmp")
COMPACTED = "compacted-offset"

Records = dict[int, tuple[bytes | None, bytes]]


def _round(r: int, *, unique: bool = True) -> list[bytes]:
    """The four batches of round ``r`` (their baseOffset is set by the log)."""
    out = []
    for j in range(3):
        second = b"w" if j == 1 else (b"u%02d-%d" % (r, j) if unique else b"x---%d" % j)
        values = [b"v%02d-%d-%d" % (r, j, m) for m in range(2)]
        out.append(encode_batch(values, [b"h%d" % j, second], None, [TS + 10 * r + j] * 2))
    out.append(encode_batch([b"v%02d-3-0" % r], None, None, [TS + 10 * r + 3]))
    return out


SEGMENT_BYTES = sum(len(b) for b in _round(0))
KW: dict[str, Any] = {"fsync": "never", "segment_bytes": SEGMENT_BYTES, "index_interval_bytes": 100}


def _append_rounds(wal, rounds, written: Records, *, unique: bool = True) -> None:
    for r in rounds:
        for batch in _round(r, unique=unique):
            base, last, _ = tuple(wal.append(batch))
            (decoded,) = decode_batches(batch)
            assert last - base == len(decoded.records) - 1
            for i, rec in enumerate(decoded.records):
                written[base + i] = (rec.key, rec.value)


def _clean_model(
    present: Records, lo: int, hi: int, map_lo: int | None = None, map_hi: int | None = None
) -> Records:
    """What cleaning [lo, hi) with a map over [map_lo, map_hi) leaves of ``present``."""
    map_lo = lo if map_lo is None else map_lo
    map_hi = hi if map_hi is None else map_hi
    latest: dict[bytes, int] = {}
    for o in sorted(present):
        key = present[o][0]
        if map_lo <= o < map_hi and key is not None:
            latest[key] = o
    out = {}
    for o, (key, value) in present.items():
        if lo <= o < hi and (key is None or latest.get(key, o) > o):
            continue
        out[o] = (key, value)
    return out


def _seg(path: str, base: int, suffix: str = ".log") -> str:
    return os.path.join(path, f"{base:020d}{suffix}")


def _bases(path: str) -> list[int]:
    return sorted(int(n[:20]) for n in os.listdir(path) if n.endswith(".log"))


def _leftovers(path: str) -> list[str]:
    return sorted(n for n in os.listdir(path) if n.endswith(LEFTOVER_SUFFIXES))


def _clean_into(path: str, clean_bases: list[int], map_bases: list[int], map_lo: int, map_hi: int) -> str:
    """Run the cleaner over the log's own files; return ``<path>/<first:020>.log.cleaned``."""
    cleaner = _impl.cleaner
    offset_map = cleaner.build_offset_map(
        [_seg(path, b) for b in map_bases], map_lo, map_hi, memory_bytes=1 << 16
    )
    result = cleaner.clean_segments(
        [_seg(path, b) for b in clean_bases], offset_map, out_dir=path, now_ms=TS, segment_bytes=1 << 30
    )
    assert [s.base_offset for s in result.segments] == [clean_bases[0]]
    assert result.segments[0].path == _seg(path, clean_bases[0], ".log.cleaned")
    return result.segments[0].path


def _clean_range(path: str, lo: int, hi: int) -> str:
    """Clean the segments with a base in [lo, hi) with a map over the same range."""
    bases = [b for b in _bases(path) if lo <= b < hi]
    return _clean_into(path, bases, bases, lo, hi)


def _records(data: bytes) -> Records:
    return {r.offset: (r.key, r.value) for b in decode_batches(data) for r in b.records}


def _first_batches(wal, hw: int) -> list[tuple[int, int]]:
    """(base, last) of the first batch a read at each offset below ``hw`` returns."""
    return [batch_offsets(split_batches(wal.read(o, 1))[0]) for o in range(wal.log_start_offset, hw)]


def _expected_first_batches(data: bytes, lo: int, hw: int) -> list[tuple[int, int]]:
    """For each offset in [lo, hw): the first batch of ``data`` whose last offset reaches it."""
    batches = [batch_offsets(b) for b in split_batches(data)]
    return [next(b for b in batches if b[1] >= o) for o in range(lo, hw)]


def _state(wal, path: str) -> dict[str, Any]:
    """Offsets, content and files of an open log."""
    return {
        "hw": wal.high_watermark,
        "log_start": wal.log_start_offset,
        "compacted": wal.compacted_offset,
        "segment_count": wal.segment_count,
        "size_bytes": wal.size_bytes,
        "data": wal.read(wal.log_start_offset, BIG),
        "bases": _bases(path),
        "leftovers": _leftovers(path),
    }


def _report(wal, path: str) -> dict[str, Any]:
    """The recovery report with the directory made relative (for comparing twins)."""
    out = {}
    for key, value in wal.recovery_report.items():
        if key == "directory":
            continue
        out[key] = value.replace(path, "<dir>") if isinstance(value, str) else value
    return out


def _compacted_file(path: str) -> str | None:
    try:
        with open(os.path.join(path, COMPACTED), encoding="utf-8") as f:
            return f.read()
    except FileNotFoundError:
        return None


def _tail_bytes(path: str, from_base: int) -> bytes:
    """The bytes of every segment with a base at or above ``from_base``, in order."""
    out = b""
    for b in _bases(path):
        if b >= from_base:
            with open(_seg(path, b), "rb") as f:
                out += f.read()
    return out


def _read_file(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


# -- scenarios ---------------------------------------------------------------------


def sc_multi_swap(cls, path: str) -> dict[str, Any]:
    """Three swaps over six rounds ([7,21), [21,35) up to the active base, then [0,21) over a cleaned segment)."""
    written: Records = {}
    obs: dict[str, Any] = {"steps": []}
    model: Records
    with cls(path, **KW) as wal:
        _append_rounds(wal, range(6), written)
        obs["initial_bases"] = _bases(path)
        model = dict(written)
        for lo, hi in ((7, 21), (21, 35), (0, 21)):
            cleaned = _clean_range(path, lo, hi)
            ok = wal.replace_segments(cleaned, lo, hi)
            model = _clean_model(model, lo, hi)
            obs["steps"].append(
                (
                    ok,
                    wal.compacted_offset,
                    wal.high_watermark,
                    wal.log_start_offset,
                    _bases(path),
                    _leftovers(path),
                )
            )
        obs["state"] = _state(wal, path)
        obs["first_batches"] = _first_batches(wal, wal.high_watermark)
        obs["spans"] = [
            [(os.path.basename(p), pos, n) for p, pos, n in wal.read_spans(o, 1)] for o in range(0, 42, 3)
        ]
        obs["at_hw"] = wal.read(wal.high_watermark, 100)
        obs["time"] = [wal.offset_for_timestamp(TS + t) for t in (0, 5, 12, 31, 53)]
        obs["compacted_file"] = _compacted_file(path)
    obs["model"] = model
    obs["written"] = written
    return obs


def sc_reopen(cls, path: str, mode: str) -> dict[str, Any]:
    """Swap [0,21) in a six-round log, close, reopen (``mode``: how), append once more."""
    written: Records = {}
    with cls(path, **KW) as wal:
        _append_rounds(wal, range(6), written)
        assert wal.replace_segments(_clean_range(path, 0, 21), 0, 21) is True
        before = _state(wal, path)
    if mode == "clean-without-indexes":
        os.unlink(_seg(path, 0, ".index"))
        os.unlink(_seg(path, 0, ".timeindex"))
    elif mode == "crash-from-0":
        set_crash_state(path, recovery_point=0)
    elif mode == "crash-from-end":
        set_crash_state(path, recovery_point=before["hw"])
    with cls(path, **KW) as wal:
        after = _state(wal, path)
        report = _report(wal, path)
        first_batches = _first_batches(wal, wal.high_watermark)
        appended = tuple(wal.append(_round(6)[0]))[:2]
    with cls(path, **KW) as wal:
        again = _state(wal, path)
    return {
        "before": before,
        "after": after,
        "report": report,
        "first_batches": first_batches,
        "appended": appended,
        "again": again,
        "written": written,
    }


def sc_crash(cls, path: str, state: str, recovery_point: str) -> dict[str, Any]:
    """A five-round log closed, then the files a crash during a swap of [0,21) leaves, then opened."""
    with cls(path, **KW) as wal:
        _append_rounds(wal, range(5), {})
        before = wal.read(0, BIG)
    cleaned = _clean_range(path, 0, 21)
    swapped = _read_file(cleaned) + _tail_bytes(path, 21)
    swap = os.path.join(path, f"{0:020d}-{21:020d}.log.swap")
    if state != "cleaned":
        with open(os.path.join(path, COMPACTED), "w", encoding="utf-8") as f:
            f.write("21\n")
    if state.startswith("swap") or state == "swapped-no-index":
        os.replace(cleaned, swap)
    doomed: list[str] = []
    if state == "swap-some-deleted":
        doomed = [_seg(path, 0, s) for s in (".log", ".index", ".timeindex")] + [_seg(path, 7)]
    elif state in ("swap-all-deleted", "swapped-no-index"):
        doomed = [_seg(path, b, s) for b in (0, 7, 14) for s in (".log", ".index", ".timeindex")]
    for p in doomed:
        os.replace(p, p + ".deleted")
    if state == "swapped-no-index":
        os.replace(swap, _seg(path, 0))
    set_crash_state(path, recovery_point=0 if recovery_point == "0" else 35)
    with cls(path, **KW) as wal:
        opened = _state(wal, path)
        report = _report(wal, path)
        first_batches = _first_batches(wal, wal.high_watermark)
    with cls(path, **KW) as wal:
        again = _state(wal, path)
        again_report = _report(wal, path)
    return {
        "before": before,
        "swapped": swapped,
        "opened": opened,
        "report": report,
        "first_batches": first_batches,
        "again": again,
        "again_report": again_report,
    }


def sc_gap_above(cls, path: str, kind: str) -> dict[str, Any]:
    """Swap [0,21) in a six-round log, then damage offsets above the compacted offset and crash."""
    with cls(path, **KW) as wal:
        _append_rounds(wal, range(6), {})
        assert wal.replace_segments(_clean_range(path, 0, 21), 0, 21) is True
        before = wal.read(0, BIG)
    first_batch = len(_round(0)[0])
    if kind == "batch":
        # The second batch of segment 28 (offsets 30-31) claims 33: the CRC does not cover it.
        with open(_seg(path, 28), "r+b") as f:
            f.seek(first_batch)
            f.write(struct.pack(">q", 33))
        set_crash_state(path, recovery_point=28)
    else:
        for s in (".log", ".index", ".timeindex"):
            os.unlink(_seg(path, 28, s))
        set_crash_state(path, recovery_point=21)
    with cls(path, **KW) as wal:
        opened = _state(wal, path)
        report = _report(wal, path)
    return {"before": before, "opened": opened, "report": report, "first_batch": first_batch}


BAD_ARGS = {
    "base-equals-end": ("cleaned0", 0, 0),
    "base-above-end": ("cleaned0", 21, 7),
    "negative-base": ("cleaned0", -7, 21),
    "end-past-the-active-segment": ("cleaned0", 0, 35),
    "end-inside-the-active-segment": ("cleaned0", 0, 30),
    "name-of-another-base": ("cleaned0", 7, 21),
    "a-segment-file": ("segment0", 0, 21),
    "another-directory": ("elsewhere", 0, 21),
}


def sc_bad_args(cls, path: str, case: str) -> dict[str, Any]:
    which, base, end = BAD_ARGS[case]
    with cls(path, **KW) as wal:
        _append_rounds(wal, range(5), {})
        cleaned = _clean_range(path, 0, 21)
        other_dir = os.path.join(os.path.dirname(path), os.path.basename(path) + "-elsewhere")
        os.makedirs(other_dir, exist_ok=True)
        elsewhere = os.path.join(other_dir, os.path.basename(cleaned))
        shutil.copyfile(cleaned, elsewhere)
        given = {"cleaned0": cleaned, "segment0": _seg(path, 0), "elsewhere": elsewhere}[which]
        given_bytes = _read_file(given)
        before = _state(wal, path)
        with pytest.raises(ValueError) as info:
            wal.replace_segments(given, base, end)
        after = _state(wal, path)
        kept = (os.path.exists(given) and _read_file(given) == given_bytes, os.path.exists(cleaned))
        compacted_file = _compacted_file(path)
        # The log is not harmed: the proper swap still goes through.
        ok = wal.replace_segments(cleaned, 0, 21)
        swapped = _state(wal, path)
    shutil.rmtree(other_dir)
    return {
        "error": type(info.value).__name__,
        "before": before,
        "after": after,
        "kept": kept,
        "compacted_file": compacted_file,
        "ok": ok,
        "swapped": swapped,
    }


MALFORMED = {
    "garbage": lambda: b"\xde\xad\xbe\xef" * 64,
    "zeros": lambda: bytes(200),
    "offset-below-base": lambda: make_batch(2, base_offset=3),
    "offset-at-end": lambda: make_batch(1, base_offset=8) + make_batch(1, base_offset=21),
    "last-offset-past-end": lambda: make_batch(3, base_offset=19),
    "offsets-going-back": lambda: make_batch(1, base_offset=12) + make_batch(1, base_offset=10),
    "same-base-twice": lambda: make_batch(1, base_offset=12) + make_batch(1, base_offset=12),
    "overlapping-batches": lambda: make_batch(3, base_offset=10) + make_batch(1, base_offset=11),
    "bad-crc": lambda: _flip(make_batch(2, base_offset=8), -3),
    "torn-last-batch": lambda: make_batch(1, base_offset=8) + make_batch(2, base_offset=9)[:-5],
    "trailing-bytes": lambda: make_batch(1, base_offset=8) + bytes(7),
}


def _flip(data: bytes, pos: int) -> bytes:
    out = bytearray(data)
    out[pos] ^= 0x10
    return bytes(out)


def sc_malformed(cls, path: str, kind: str) -> dict[str, Any]:
    """A hand-written cleaned file for [7,21) that is not a proper run of batches there."""
    with cls(path, **KW) as wal:
        _append_rounds(wal, range(5), {})
        before = _state(wal, path)
        cleaned = _seg(path, 7, ".log.cleaned")
        with open(cleaned, "wb") as f:
            f.write(MALFORMED[kind]())
        with pytest.raises(CorruptRecordError) as info:
            wal.replace_segments(cleaned, 7, 21)
        after = _state(wal, path)
        file_left = os.path.exists(cleaned)
        compacted_file = _compacted_file(path)
        offline = wal.is_offline
        ok = wal.replace_segments(_clean_range(path, 7, 21), 7, 21)
        swapped = _state(wal, path)
    return {
        "error": type(info.value).__name__,
        "mentions_file": cleaned in str(info.value),
        "before": before,
        "after": after,
        "file_left": file_left,
        "compacted_file": compacted_file,
        "offline": offline,
        "ok": ok,
        "swapped": swapped,
    }


def sc_gone(cls, path: str, how: str) -> dict[str, Any]:
    """The segments a cleaned file was made from are no longer the log's when it is swapped in."""
    wal = cls(path, **KW)
    try:
        _append_rounds(wal, range(5), {})
        cleaned0 = _clean_range(path, 0, 21)
        cleaned = cleaned0
        base = 0
        if how == "delete_records":
            assert wal.delete_records(8) == 8
        elif how == "retention":
            # Without its oldest segment the log still holds 4 segments' bytes: exactly one goes.
            assert wal.apply_retention(None, 4 * SEGMENT_BYTES, None) == 1
        elif how == "replaced-by-another-swap":
            cleaned = _clean_range(path, 7, 21)
            base = 7
            assert wal.replace_segments(cleaned0, 0, 21) is True
        elif how == "closed":
            wal.close()
        # The cleaned file itself is the one leftover expected before the call.
        before = None if how == "closed" else {**_state(wal, path), "leftovers": None}
        ok = wal.replace_segments(cleaned, base, 21)
        after = None if how == "closed" else {**_state(wal, path), "leftovers": None}
        leftovers_after = _leftovers(path)
        file_left = os.path.exists(cleaned)
    finally:
        wal.close()
    with cls(path, **KW) as reopened:
        reopened_state = _state(reopened, path)
    return {
        "ok": ok,
        "file_left": file_left,
        "leftovers_after": leftovers_after,
        "before": before,
        "after": after,
        "reopened": reopened_state,
        "compacted_file": _compacted_file(path),
    }


EMPTY = {"first-segment": (0, 7, 14), "middle-segment": (7, 14, 21)}


def sc_empty(cls, path: str, where: str) -> dict[str, Any]:
    """Every record of one segment is superseded by the next one: the cleaned file is empty."""
    lo, hi, map_hi = EMPTY[where]
    written: Records = {}
    with cls(path, **KW) as wal:
        _append_rounds(wal, range(5), written, unique=False)
        before = _state(wal, path)
        cleaned = _clean_into(path, [lo], [lo, hi], lo, map_hi)
        cleaned_size = os.path.getsize(cleaned)
        ok = wal.replace_segments(cleaned, lo, hi)
        after = _state(wal, path)
        first_batches = _first_batches(wal, wal.high_watermark)
        spans_in_gap = [(os.path.basename(p), pos, n) for p, pos, n in wal.read_spans(lo, 1)]
    with cls(path, **KW) as wal:
        clean_reopen = _state(wal, path)
    set_crash_state(path, recovery_point=0)
    with cls(path, **KW) as wal:
        crash_reopen = _state(wal, path)
        crash_report = _report(wal, path)
    return {
        "written": written,
        "before": before,
        "cleaned_size": cleaned_size,
        "ok": ok,
        "after": after,
        "first_batches": first_batches,
        "spans_in_gap": spans_in_gap,
        "clean_reopen": clean_reopen,
        "crash_reopen": crash_reopen,
        "crash_report": crash_report,
    }


# -- a swap while the log is in use ----------------------------------------------------


def test_a_swap_while_appending_and_reading_keeps_every_live_record_at_its_offset(twin, fast_dir):
    path = os.path.join(fast_dir, "p")
    written: Records = {}
    errors: list[BaseException] = []
    swapped = threading.Event()
    started = threading.Event()
    reads = [0]
    with twin(path, **KW) as wal:
        _append_rounds(wal, range(4), written)
        assert _bases(path) == [0, 7, 14, 21]
        original = dict(written)
        later: Records = {}

        def appender() -> None:
            try:
                _append_rounds(wal, range(4, 5), later)
                started.set()
                _append_rounds(wal, range(5, 30), later)
            except BaseException as exc:  # surfaced by the main thread
                errors.append(exc)

        def reader() -> None:
            # Every read, whether it ran on the old files or the new segment, returns
            # records exactly as written, at their offsets, in order.
            try:
                for _ in range(20_000):
                    recs = [
                        (r.offset, r.key, r.value)
                        for b in decode_batches(wal.read(0, BIG))
                        for r in b.records
                    ]
                    offsets = [o for o, _, _ in recs]
                    assert offsets == sorted(set(offsets))
                    for o, k, v in recs:
                        assert original.get(o, (k, v)) == (k, v), o
                    reads[0] += 1
                    if swapped.is_set():
                        break
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=appender), threading.Thread(target=reader)]
        for t in threads:
            t.start()
        try:
            # The swap starts with appends under way (or, on a slow scheduler, done).
            assert started.wait(60), errors
            cleaned = _clean_range(path, 0, 21)
            assert wal.replace_segments(cleaned, 0, 21) is True
            assert wal.compacted_offset == 21
        finally:
            swapped.set()
            for t in threads:
                t.join(60)
        assert not any(t.is_alive() for t in threads)
        assert errors == []
        assert reads[0] >= 1
        written.update(later)
        expected = _clean_model(written, 0, 21)
        assert (wal.high_watermark, wal.log_start_offset, wal.compacted_offset) == (210, 0, 21)
        data = wal.read(0, BIG)
        assert _records(data) == expected
        # Rounds 0 and 1 keep their unique keys only; round 2 keeps its keyed records; keyless ones go.
        assert sorted(o for o in expected if o < 21) == [1, 5, 8, 12, 14, 15, 16, 17, 18, 19]
        assert _bases(path) == [0] + list(range(21, 210, 7))
        assert _leftovers(path) == []
        assert os.path.exists(_seg(path, 0, ".index")) and os.path.exists(_seg(path, 0, ".timeindex"))
        assert wal.segment_count == len(_bases(path))
        assert wal.size_bytes == sum(os.path.getsize(_seg(path, b)) for b in _bases(path))
    assert _compacted_file(path) == "21\n"


def test_swaps_move_the_compacted_offset_up_only_and_reads_step_over_every_gap(twin, fast_dir):
    obs = sc_multi_swap(twin, os.path.join(fast_dir, "p"))
    assert obs["initial_bases"] == [0, 7, 14, 21, 28, 35]
    assert obs["steps"] == [
        (True, 21, 42, 0, [0, 7, 21, 28, 35], []),
        (True, 35, 42, 0, [0, 7, 21, 35], []),
        (True, 35, 42, 0, [0, 21, 35], []),
    ]
    state = obs["state"]
    assert _records(state["data"]) == obs["model"]
    # Only the latest of each key below 35 is left; round 5 (the active segment) is whole.
    assert sorted(obs["model"]) == [
        1,
        5,
        8,
        12,
        14,
        15,
        16,
        17,
        18,
        19,
        22,
        26,
        28,
        29,
        30,
        31,
        32,
        33,
    ] + list(range(35, 42))
    for o, rec in obs["model"].items():
        assert obs["written"][o] == rec
    # A read at a removed offset returns the next batch that still holds an offset at or after it.
    assert obs["first_batches"] == _expected_first_batches(state["data"], 0, 42)
    assert obs["first_batches"][2] == (4, 5)  # offsets 2-3 went with their whole batch
    assert obs["first_batches"][6] == (7, 8)  # 6 was keyless; offset 7 went but its batch keeps 8
    assert obs["first_batches"][34] == (35, 36)  # from the end of the cleaned segment into the next one
    assert obs["spans"][0] == [(f"{0:020d}.log", 0, len(split_batches(state["data"])[0]))]
    assert obs["at_hw"] == b""
    assert obs["compacted_file"] == "35\n"
    assert state["leftovers"] == []


@pytest.mark.parametrize("mode", ["clean", "clean-without-indexes", "crash-from-0", "crash-from-end"])
def test_a_reopened_log_has_the_same_content_gaps_and_compacted_offset(twin, fast_dir, mode):
    obs = sc_reopen(twin, os.path.join(fast_dir, "p"), mode)
    before, after = obs["before"], obs["after"]
    assert (before["hw"], before["log_start"], before["compacted"], before["bases"]) == (
        42,
        0,
        21,
        [0, 21, 28, 35],
    )
    assert after == before
    assert _records(after["data"]) == _clean_model(obs["written"], 0, 21)
    report = obs["report"]
    assert report["clean"] is mode.startswith("clean")
    assert (report["truncated_bytes"], report["segments_deleted"], report["first_dropped_offset"]) == (
        0,
        0,
        None,
    )
    assert (report["end_offset"], report["old_end_offset"], report["swaps_completed"]) == (42, 42, 0)
    assert report["reason"] is None and report["cut_file"] is None
    if mode == "crash-from-0":
        assert report["scanned_segments"] == 4  # the gaps below offset 21 were scanned and accepted
    assert obs["first_batches"] == _expected_first_batches(after["data"], 0, 42)
    assert obs["appended"] == (42, 43)
    assert obs["again"]["hw"] == 44 and obs["again"]["data"][: len(before["data"])] == before["data"]


# -- crashes around the commit point ------------------------------------------------

CRASH_STATES = [
    "cleaned",
    "cleaned-and-compacted-offset",
    "swap",
    "swap-some-deleted",
    "swap-all-deleted",
    "swapped-no-index",
]


@pytest.mark.parametrize("recovery_point", ["end", "0"])
@pytest.mark.parametrize("state", CRASH_STATES)
def test_a_crash_before_the_commit_point_rolls_back_and_after_it_completes(
    twin, fast_dir, state, recovery_point
):
    path = os.path.join(fast_dir, "p")
    obs = sc_crash(twin, path, state, recovery_point)
    opened, report = obs["opened"], obs["report"]
    committed = state not in ("cleaned", "cleaned-and-compacted-offset")
    assert opened["data"] == (obs["swapped"] if committed else obs["before"])
    assert opened["hw"] == 35 and opened["log_start"] == 0
    assert opened["bases"] == ([0, 21, 28] if committed else [0, 7, 14, 21, 28])
    assert opened["compacted"] == (0 if state == "cleaned" else 21)
    assert opened["leftovers"] == []
    assert report["swaps_completed"] == (1 if state.startswith("swap-") or state == "swap" else 0)
    assert report["clean"] is False
    assert (report["truncated_bytes"], report["segments_deleted"], report["end_offset"]) == (0, 0, 35)
    assert obs["first_batches"] == _expected_first_batches(opened["data"], 0, 35)
    assert obs["again"] == opened
    assert obs["again_report"]["clean"] is True and obs["again_report"]["swaps_completed"] == 0
    for suffix in (".index", ".timeindex"):
        assert os.path.exists(_seg(path, 0, suffix))


@pytest.mark.parametrize("kind", ["batch", "segment"])
def test_a_gap_above_the_compacted_offset_still_ends_the_log(twin, fast_dir, kind):
    path = os.path.join(fast_dir, "p")
    obs = sc_gap_above(twin, path, kind)
    opened, report = obs["opened"], obs["report"]
    before_batches = split_batches(obs["before"])
    if kind == "batch":
        assert opened["hw"] == 30
        assert report["reason"] == "baseOffset 33 where 30 was expected"
        assert report["cut_file"] == f"<dir>/{28:020d}.log" and report["cut_position"] == obs["first_batch"]
        assert (report["segments_deleted"], report["truncated_bytes"]) == (
            1,
            2 * SEGMENT_BYTES - obs["first_batch"],
        )
        assert opened["bases"] == [0, 21, 28]
    else:
        assert opened["hw"] == 28
        assert report["reason"] == "segment starts at offset 35 where 28 was expected"
        assert report["cut_file"] == f"<dir>/{35:020d}.log" and report["cut_position"] == 0
        assert (report["segments_deleted"], report["truncated_bytes"]) == (1, SEGMENT_BYTES)
        assert opened["bases"] == [0, 21]
    assert report["first_dropped_offset"] == opened["hw"]
    assert opened["compacted"] == 21
    # Everything below the cut, gaps included, is as it was.
    kept = [b for b in before_batches if batch_offsets(b)[1] < opened["hw"]]
    assert opened["data"] == b"".join(kept)


# -- refusals ------------------------------------------------------------------------


@pytest.mark.parametrize("case", list(BAD_ARGS))
def test_bad_arguments_raise_value_error_and_touch_nothing(twin, fast_dir, case):
    obs = sc_bad_args(twin, os.path.join(fast_dir, "p"), case)
    assert obs["error"] == "ValueError"
    assert obs["after"] == obs["before"]
    assert obs["kept"] == (True, True)
    assert obs["compacted_file"] is None and obs["after"]["compacted"] == 0
    assert obs["ok"] is True and obs["swapped"]["compacted"] == 21 and obs["swapped"]["bases"] == [0, 21, 28]


@pytest.mark.parametrize("kind", list(MALFORMED))
def test_a_malformed_cleaned_file_is_corrupt_record_error_deleted_and_the_log_unchanged(twin, fast_dir, kind):
    obs = sc_malformed(twin, os.path.join(fast_dir, "p"), kind)
    assert obs["error"] == "CorruptRecordError"
    assert obs["mentions_file"]
    assert obs["file_left"] is False
    assert obs["after"] == obs["before"]
    assert obs["compacted_file"] is None and obs["after"]["compacted"] == 0
    assert obs["offline"] is False
    assert obs["ok"] is True and obs["swapped"]["bases"] == [0, 7, 21, 28]


@pytest.mark.parametrize("how", ["delete_records", "retention", "replaced-by-another-swap", "closed"])
def test_segments_no_longer_in_the_log_return_false_and_delete_the_cleaned_file(twin, fast_dir, how):
    obs = sc_gone(twin, os.path.join(fast_dir, "p"), how)
    assert obs["ok"] is False
    assert obs["file_left"] is False
    assert obs["leftovers_after"] == []
    if how != "closed":
        assert obs["after"] == obs["before"]
    expected_bases = {
        "delete_records": [7, 14, 21, 28],
        "retention": [7, 14, 21, 28],
        "replaced-by-another-swap": [0, 21, 28],
        "closed": [0, 7, 14, 21, 28],
    }[how]
    assert obs["reopened"]["bases"] == expected_bases
    assert obs["reopened"]["leftovers"] == []
    assert obs["reopened"]["hw"] == 35
    assert obs["reopened"]["compacted"] == (21 if how == "replaced-by-another-swap" else 0)
    assert obs["compacted_file"] == ("21\n" if how == "replaced-by-another-swap" else None)


@pytest.mark.parametrize("where", list(EMPTY))
def test_an_empty_cleaned_file_leaves_an_empty_segment_that_reads_step_over(twin, fast_dir, where):
    lo, hi, _ = EMPTY[where]
    obs = sc_empty(twin, os.path.join(fast_dir, "p"), where)
    before, after = obs["before"], obs["after"]
    assert obs["cleaned_size"] == 0
    assert obs["ok"] is True
    assert (after["hw"], after["log_start"], after["compacted"]) == (35, 0, hi)
    assert after["bases"] == before["bases"] == [0, 7, 14, 21, 28]
    assert after["size_bytes"] == before["size_bytes"] - SEGMENT_BYTES
    assert _records(after["data"]) == {o: r for o, r in obs["written"].items() if not lo <= o < hi}
    assert obs["first_batches"] == _expected_first_batches(after["data"], 0, 35)
    assert obs["first_batches"][lo] == (hi, hi + 1)
    assert obs["spans_in_gap"][0][0] == f"{hi:020d}.log"
    assert obs["clean_reopen"] == after
    assert obs["crash_reopen"] == after
    assert obs["crash_report"]["truncated_bytes"] == 0 and obs["crash_report"]["scanned_segments"] == 5


# -- both twins alike ------------------------------------------------------------------


def _native_class():
    mod = native_wal_module()
    if mod is None:
        pytest.skip("streamcore._native has no wal submodule (native WAL not built)")
    return mod.WalLog


def _files(path: str) -> dict[str, bytes]:
    return {n: _read_file(os.path.join(path, n)) for n in sorted(os.listdir(path))}


CROSS = {
    "multi-swap": sc_multi_swap,
    **{f"reopen-{m}": partial(sc_reopen, mode=m) for m in ("clean", "crash-from-0")},
    **{f"crash-{s}": partial(sc_crash, state=s, recovery_point="0") for s in CRASH_STATES},
    **{f"gap-above-{k}": partial(sc_gap_above, kind=k) for k in ("batch", "segment")},
    **{f"bad-args-{k}": partial(sc_bad_args, case=k) for k in BAD_ARGS},
    **{f"malformed-{k}": partial(sc_malformed, kind=k) for k in MALFORMED},
    **{f"gone-{h}": partial(sc_gone, how=h) for h in ("delete_records", "closed")},
    **{f"empty-{w}": partial(sc_empty, where=w) for w in EMPTY},
}


@pytest.mark.parametrize("scenario", list(CROSS))
def test_both_twins_observe_the_same_and_leave_byte_identical_directories(fast_dir, scenario):
    native = _native_class()
    results = {}
    for name, cls in (("reference", reference_wal.WalLog), ("native", native)):
        path = os.path.join(fast_dir, name)
        results[name] = (CROSS[scenario](cls, path), _files(path))
    ref, nat = results["reference"], results["native"]
    assert nat[0] == ref[0]
    assert sorted(nat[1]) == sorted(ref[1])
    for name in ref[1]:
        assert nat[1][name] == ref[1][name], name
