"""Properties of transactional compaction.

Any transactional workload (commits, aborts, fencing aborts, markers of
producers with nothing open, plain and idempotent records, tombstones, keys shared
between committed and aborted data), cleaned in any interleaving with any clock, reads
back under read_committed as the model says: only committed records, each where it
was written, the latest committed value of every key, and the same LSO, from the
live transaction state and from one loaded afresh from the files or from the log
alone. And both cores (native and reference) clean the segments of any such workload,
pass after pass, to the same bytes and the same reports.

Runs on whichever WAL and cleaner ``streamcore._impl`` selected.
"""

from __future__ import annotations

import os
import shutil
import tempfile

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from streamcore._reference import cleaner as reference_cleaner
from streamcore.storage.cleaner import CompactionSettings, LogCleaner
from streamcore.storage.txn_index import PartitionTxnState

from .test_log_cleaner_txn import NOW, Partition, _check_everything, _native

_EXAMPLES = int(os.environ.get("STREAMCORE_CLEANER_PROP_EXAMPLES", "60"))
_RETENTION_MS = 10_000
_SETTINGS = CompactionSettings(delete_retention_ms=_RETENTION_MS, segment_bytes=2048)

_records = st.lists(st.tuples(st.integers(0, 6), st.integers(0, 4)), min_size=1, max_size=4)
_op = st.one_of(
    st.tuples(st.just("send"), st.integers(1, 3), _records),
    st.tuples(st.just("end"), st.integers(1, 3), st.booleans(), st.integers(0, 5)),
    st.tuples(st.just("plain"), st.sampled_from([-1, 9]), _records),
    st.tuples(st.just("clean"), st.sampled_from([0, 1_000, _RETENTION_MS // 2, _RETENTION_MS + 1])),
)


def _recs(spec: list[tuple[int, int]], tag: int) -> list[tuple[bytes, bytes | None]]:
    # Value kind 0 is a tombstone; the others are padded so that segments roll often.
    return [(b"k%d" % key, None if kind == 0 else b"%d-%d-" % (tag, kind) + b"v" * 60) for key, kind in spec]


@settings(max_examples=_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=st.lists(_op, min_size=5, max_size=70), hooked=st.booleans())
def test_read_committed_view_of_a_cleaned_log_is_the_models(ops, hooked):
    directory = tempfile.mkdtemp(prefix="streamcore-cleaner-txn-prop-")
    p = Partition.open_at(os.path.join(directory, "p"), segment_bytes=512)
    cleaner = LogCleaner(
        lambda: [("t", p.log)],
        lambda _key: _SETTINGS,
        clock=lambda: p.clock,
        transactions=(lambda _key: p.state) if hooked else None,
    )
    removed = markers = 0

    def clean() -> None:
        nonlocal removed, markers
        report = cleaner.clean_log(p.log, _SETTINGS, p.clock)
        if report is not None:
            removed += report.aborted_removed
            markers += report.markers_removed
        if not hooked:
            # Nobody's state was told: check what a broker would load from the files.
            p.state.close()
            p.state = PartitionTxnState(p.log)
            p.state.load()
        _check_everything(p)

    try:
        for n, op in enumerate(ops):
            if op[0] == "send":
                p.send(op[1], _recs(op[2], n))
            elif op[0] == "end":
                _, pid, commit, fence = op
                # Fencing: the coordinator aborts with the next epoch (1 in 6 ends).
                p.end(pid, commit and fence != 0, fence=fence == 0)
            elif op[0] == "plain":
                p.plain(_recs(op[2], n), pid=op[1])
            else:
                p.clock += op[1]
                clean()
        # End every transaction the way the ops left them, then clean until the markers
        # without data can go.
        for pid in list(p.open):
            p.end(pid, commit=pid % 2 == 0)
        for step in (0, 1_000, _RETENTION_MS + 1, _RETENTION_MS + 1):
            p.plain([(b"tail", b"t" * 200)] * 3)
            p.clock += step
            clean()
        event(f"aborted records removed: {'some' if removed else 'none'}")
        event(f"markers removed: {'some' if markers else 'none'}")
    finally:
        p.close()
        shutil.rmtree(directory, ignore_errors=True)


@settings(max_examples=_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    ops=st.lists(_op, min_size=5, max_size=60),
    clocks=st.lists(st.sampled_from([0, 999, 1_000, _RETENTION_MS]), min_size=2, max_size=4),
    memory=st.sampled_from([24 * 8, 1 << 14]),
)
def test_both_cores_write_the_same_bytes_for_any_transactional_workload(ops, clocks, memory):
    directory = tempfile.mkdtemp(prefix="streamcore-cleaner-txn-twins-")
    try:
        p = Partition.open_at(os.path.join(directory, "p"), segment_bytes=512)
        try:
            for n, op in enumerate(ops):
                if op[0] == "send":
                    p.send(op[1], _recs(op[2], n))
                elif op[0] == "end":
                    p.end(op[1], op[2] and op[3] != 0, fence=op[3] == 0)
                elif op[0] == "plain":
                    p.plain(_recs(op[2], n), pid=op[1])
            aborted = [(t.producer_id, t.first_offset, t.last_offset) for t in p.state.aborted()]
            names = sorted(f for f in os.listdir(p.log.directory) if f.endswith(".log"))
        finally:
            p.close()
        seen = {}
        for name, twin in (("reference", reference_cleaner), ("native", _native())):
            work = os.path.join(directory, name)
            shutil.copytree(os.path.join(directory, "p"), work)
            current = [os.path.join(work, f) for f in names]
            now = NOW
            trail = []
            for k, step in enumerate(clocks):
                now += step
                m = twin.build_offset_map(
                    current, 0, 1 << 62, memory_bytes=memory, aborted_transactions=aborted
                )
                out = os.path.join(work, f"out{k}")
                os.mkdir(out)
                r = twin.clean_segments(
                    current,
                    m,
                    out_dir=out,
                    now_ms=now,
                    delete_retention_ms=_RETENTION_MS,
                    segment_bytes=1500,
                    aborted_transactions=aborted,
                )
                nxt = os.path.join(work, f"in{k}")
                os.mkdir(nxt)
                current = []
                for seg in r.segments:
                    dest = os.path.join(nxt, f"{seg.base_offset:020d}.log")
                    os.replace(seg.path, dest)
                    current.append(dest)
                    with open(dest, "rb") as f:
                        trail.append(f.read())
                trail.append((m.latest_offset, len(m), m.full, m.records_read))
                trail.append(r.stats._replace(throttled_ms=0))
                trail.append(
                    [
                        (s.base_offset, s.batches, s.records, s.max_timestamp, s.aborted_transactions)
                        for s in r.segments
                    ]
                )
            seen[name] = trail
        assert seen["reference"] == seen["native"]
    finally:
        shutil.rmtree(directory, ignore_errors=True)
