"""Property tests of the cleaner: random keyed workloads with tombstones over several
segments, cleaned by both twins.

After a pass, for every key the latest record of the input is what remains (a
tombstone only until its delete horizon has passed), offsets are unchanged and
strictly increasing, every batch decodes with a good CRC and keeps its codec, and
the native output equals the reference output (byte for byte when uncompressed;
compressors differ between the twins, so compressed batches compare decoded).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from streamcore._reference import cleaner as reference_cleaner
from streamcore._reference.record_batch import decode_batches, encode_batch

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]


def native_cleaner():
    from streamcore import _native  # type: ignore[attr-defined]

    return _native.cleaner


record = st.tuples(st.integers(0, 7), st.one_of(st.none(), st.binary(max_size=12)))
batch_st = st.tuples(st.lists(record, min_size=1, max_size=6), st.sampled_from(CODECS), st.booleans())
workload = st.lists(st.lists(batch_st, min_size=1, max_size=4), min_size=1, max_size=4)


def write(d: Path, segments) -> tuple[list[str], list[tuple[int, bytes, bytes | None]], dict[int, int]]:
    """Segment files, every record (offset, key, value), and each batch's codec by base offset."""
    paths, log, codecs = [], [], {}
    off = 0
    for seg in segments:
        base = off
        parts = []
        for recs, codec, idem in seg:
            keys = [b"k%d" % k for k, _ in recs]
            values = [v for _, v in recs]
            extra = {"producer_id": 5, "producer_epoch": 0, "base_sequence": off} if idem else {}
            ts = [1_000 + off + i for i in range(len(recs))]
            parts.append(encode_batch(values, keys, None, ts, base_offset=off, compression=codec, **extra))
            codecs[off] = CODECS.index(codec)
            log += [(off + i, k, v) for i, (k, v) in enumerate(zip(keys, values, strict=True))]
            off += len(recs)
        p = d / f"{base:020d}.log"
        p.write_bytes(b"".join(parts))
        paths.append(str(p))
    return paths, log, codecs


def run(twin, paths, out: Path, now_ms: int):
    out.mkdir()
    m = twin.build_offset_map(paths, 0, 1 << 40, memory_bytes=1 << 12)
    return twin.clean_segments(
        paths, m, out_dir=out, now_ms=now_ms, delete_retention_ms=100, segment_bytes=600
    )


def read(result):
    batches = []
    for s in result.segments:
        batches += decode_batches(Path(s.path).read_bytes())
    return batches


@settings(max_examples=40, deadline=None)
@given(workload, st.booleans())
def test_cleaning_keeps_the_latest_record_per_key_at_its_offset(segments, twice):
    d = Path(tempfile.mkdtemp(prefix="streamcore-cleaner-prop-"))
    try:
        paths, log, codecs = write(d, segments)
        latest: dict[bytes, tuple[int, bytes | None]] = {}
        for off, k, v in log:
            latest[k] = (off, v)
        outs = {}
        for name, twin in (("reference", reference_cleaner), ("native", native_cleaner())):
            r = run(twin, paths, d / f"out-{name}", now_ms=10_000)
            batches = read(r)
            if twice:
                # A second pass at the horizon (10_000 + 100) removes the tombstones.
                again = d / f"again-{name}"
                again.mkdir()
                moved = []
                for s in r.segments:
                    p = again / f"{s.base_offset:020d}.log"
                    os.replace(s.path, p)
                    moved.append(str(p))
                r = run(twin, moved, d / f"out2-{name}", now_ms=10_100)
                batches = read(r)
            outs[name] = (r, batches)
            got = [(x.offset, x.key, x.value) for b in batches for x in b.records]
            offsets = [o for o, _, _ in got]
            assert offsets == sorted(set(offsets))
            want = sorted((off, k, v) for k, (off, v) in latest.items() if not (twice and v is None))
            assert got == want
            for b in batches:
                # A producer's emptied last batch is a bare header (no codec), as in Kafka.
                assert (b.attributes & 7) == (codecs[b.base_offset] if b.records else 0)
                if b.records:
                    assert b.records[0].offset >= b.base_offset and b.records[-1].offset <= b.last_offset
                # Tombstones still present carry the horizon set by the first pass.
                if any(x.value is None for x in b.records):
                    assert b.attributes & 0x40 and b.first_timestamp == 10_100
        (rr, rb), (nr, nb) = outs["reference"], outs["native"]
        plain = all(c == 0 for c in codecs.values())
        # Compressed sizes differ between the twins' compressors; everything else is equal.
        blank = {} if plain else {"bytes_read": 0, "bytes_written": 0}
        assert rr.stats._replace(**blank) == nr.stats._replace(**blank)
        assert [
            (
                b.base_offset,
                b.last_offset,
                b.attributes,
                b.first_timestamp,
                b.max_timestamp,
                b.producer_id,
                b.base_sequence,
                b.records,
            )
            for b in rb
        ] == [
            (
                b.base_offset,
                b.last_offset,
                b.attributes,
                b.first_timestamp,
                b.max_timestamp,
                b.producer_id,
                b.base_sequence,
                b.records,
            )
            for b in nb
        ]
        for a, b in zip(rr.segments, nr.segments, strict=True):
            assert (a.base_offset, a.batches, a.records, a.max_timestamp) == (
                b.base_offset,
                b.batches,
                b.records,
                b.max_timestamp,
            )
            if plain:
                assert Path(a.path).read_bytes() == Path(b.path).read_bytes()
    finally:
        shutil.rmtree(d, ignore_errors=True)


@settings(max_examples=25, deadline=None)
@given(workload, st.integers(1, 12))
def test_a_map_that_fills_stops_both_twins_at_the_same_offset(segments, slots):
    d = Path(tempfile.mkdtemp(prefix="streamcore-cleaner-prop-"))
    try:
        paths, log, _ = write(d, segments)
        maps = [
            t.build_offset_map(paths, 0, 1 << 40, memory_bytes=slots * 24, load_factor=1.0)
            for t in (reference_cleaner, native_cleaner())
        ]
        a, b = maps
        assert (a.full, len(a), a.latest_offset) == (b.full, len(b), b.latest_offset)
        for k in range(8):
            assert a.get(b"k%d" % k) == b.get(b"k%d" % k)
        # Every offset the map covers holds no later record of its key than the map says.
        for off, k, _ in log:
            if off <= a.latest_offset:
                assert a.get(k) >= off
    finally:
        shutil.rmtree(d, ignore_errors=True)
