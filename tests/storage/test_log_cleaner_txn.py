"""Compaction of transactional data (Kafka's rules) over live Logs, on whichever WAL and
cleaner ``streamcore._impl`` selected (CI runs native and STREAMCORE_NO_EXTENSIONS=1);
the twin comparison at the end runs both cores on the same files.

The helpers (a partition written the way the broker writes it, with a
PartitionTxnState following it; a read_committed reader with the Kafka consumer's
algorithm; the checks of a cleaned log against what was written) are shared with
``test_log_cleaner_txn_props.py``.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from types import ModuleType

import pytest

from streamcore._reference import cleaner as reference_cleaner
from streamcore.broker.producer_state import ProducerStateManager
from streamcore.broker.transactions.markers import build_marker
from streamcore.codec import decode_batches, encode_batch
from streamcore.storage import Log
from streamcore.storage.cleaner import CompactionSettings, LogCleaner
from streamcore.storage.txn_index import (
    CONTROL_ABORT,
    INDEX_FILE,
    SNAPSHOT_FILE,
    PartitionTxnState,
    control_type,
)

NOW = 1_800_000_000_000

Rec = tuple[int, bytes | None, bytes | None]


def batches(log: Log) -> list:
    """Every batch of the log from its start to the high watermark, decoded (CRC checked)."""
    out = []
    offset = log.log_start_offset
    while offset < log.high_watermark:
        got = decode_batches(log.read(offset, 1 << 20))
        assert got, f"no batch at {offset} below the high watermark {log.high_watermark}"
        out.extend(got)
        offset = got[-1].last_offset + 1
    return out


def read_committed(log: Log, state: PartitionTxnState) -> list[Rec]:
    """What a read_committed consumer reading from the log start gets: Kafka's consumer
    algorithm over the aborted transactions Fetch would hand it."""
    lso = state.last_stable_offset()
    pending = sorted(state.collect_aborted(log.log_start_offset, lso), key=lambda t: t.first_offset)
    aborted_pids: set[int] = set()
    out: list[Rec] = []
    for b in batches(log):
        if b.base_offset >= lso:
            break
        while pending and pending[0].first_offset <= b.last_offset:
            aborted_pids.add(pending.pop(0).producer_id)
        if b.is_control:
            if b.records and control_type(b.records[0].key) == CONTROL_ABORT:
                aborted_pids.discard(b.producer_id)
            continue
        if b.is_transactional and b.producer_id in aborted_pids:
            continue
        out.extend((r.offset, r.key, r.value) for r in b.records if r.offset < lso)
    return out


@dataclass
class Partition:
    """A log written like the broker writes a partition, with the model of what it holds."""

    log: Log
    state: PartitionTxnState
    #: offset -> (key, value) of every data record written
    written: dict[int, tuple[bytes | None, bytes | None]] = field(default_factory=dict)
    #: offsets of records whose transaction committed, or that were not transactional
    committed: set[int] = field(default_factory=set)
    #: offsets of records whose transaction aborted
    aborted: set[int] = field(default_factory=set)
    #: producer id -> offsets written in its open transaction
    open: dict[int, list[int]] = field(default_factory=dict)
    epochs: dict[int, int] = field(default_factory=dict)
    sequences: dict[int, int] = field(default_factory=dict)
    clock: int = NOW

    @classmethod
    def open_at(cls, path: str, **kw) -> Partition:
        log = Log(path, fsync="never", index_interval_bytes=128, **kw)
        state = PartitionTxnState(log)
        state.load()
        return cls(log, state)

    def _seq(self, pid: int, n: int) -> int:
        seq = self.sequences.get(pid, 0)
        self.sequences[pid] = seq + n
        return seq

    def send(self, pid: int, recs: list[tuple[bytes, bytes | None]]) -> int:
        """A transactional batch of ``pid`` (opening its transaction if none is open)."""
        epoch = self.epochs.setdefault(pid, 0)
        raw = encode_batch(
            [v for _, v in recs],
            keys=[k for k, _ in recs],
            timestamps_ms=[self.clock] * len(recs),
            producer_id=pid,
            producer_epoch=epoch,
            base_sequence=self._seq(pid, len(recs)),
            transactional=True,
        )
        base = self.log.append(raw).base_offset
        self.state.begin(pid, base)
        offsets = list(range(base, base + len(recs)))
        self.open.setdefault(pid, []).extend(offsets)
        for o, (k, v) in zip(offsets, recs, strict=True):
            self.written[o] = (k, v)
        return base

    def plain(self, recs: list[tuple[bytes, bytes | None]], pid: int = -1) -> int:
        """A non-transactional batch (idempotent when ``pid`` >= 0)."""
        extra = {}
        if pid >= 0:
            extra = {"producer_id": pid, "producer_epoch": 0, "base_sequence": self._seq(pid, len(recs))}
        raw = encode_batch(
            [v for _, v in recs], keys=[k for k, _ in recs], timestamps_ms=[self.clock] * len(recs), **extra
        )
        base = self.log.append(raw).base_offset
        for i, (k, v) in enumerate(recs):
            self.written[base + i] = (k, v)
            self.committed.add(base + i)
        return base

    def end(self, pid: int, commit: bool, *, fence: bool = False) -> int:
        """The marker ending ``pid``'s transaction (``fence``: written with the next epoch,
        as the coordinator aborts a fenced producer's transaction)."""
        if fence:
            self.epochs[pid] = self.epochs.get(pid, 0) + 1
            self.sequences[pid] = 0
        marker = build_marker(pid, self.epochs.get(pid, 0), commit=commit, timestamp_ms=self.clock)
        at = self.log.append(marker).base_offset
        self.state.end(pid, at, commit)
        (self.committed if commit else self.aborted).update(self.open.pop(pid, []))
        return at

    def lso(self) -> int:
        firsts = [offs[0] for offs in self.open.values() if offs]
        return min(firsts) if firsts else self.log.high_watermark

    def close(self) -> None:
        self.state.close()
        self.log.close()


def check_view(view: list[Rec], p: Partition, lso: int) -> None:
    """The read_committed view of a (cleaned) log against what was written."""
    offsets = [o for o, _, _ in view]
    assert offsets == sorted(set(offsets)), "offsets must stay unique and increasing"
    for offset, key, value in view:
        assert p.written[offset] == (key, value), f"record at {offset} is not what was written there"
        assert offset in p.committed, f"record at {offset} of an aborted or open transaction is visible"
        assert offset < lso
    latest: dict[bytes | None, int] = {}
    for o in sorted(p.committed):
        if o < lso:
            latest[p.written[o][0]] = o
    seen = {key: offset for offset, key, _ in view}
    for key, offset in latest.items():
        if p.written[offset][1] is None:
            # A tombstone may be gone once its horizon passed, and then the whole key.
            assert seen.get(key, offset) == offset, f"key {key!r}"
        else:
            assert seen.get(key) == offset, f"key {key!r}: latest committed at {offset}, read {seen.get(key)}"


# -- the scenarios -----------------------------------------------------------------

_SEGMENT_BYTES = 1024
_RETENTION_MS = 60_000
_SETTINGS = CompactionSettings(delete_retention_ms=_RETENTION_MS, segment_bytes=4 * _SEGMENT_BYTES)


def _cleaner(p: Partition, *, hooked: bool = True) -> LogCleaner:
    """A cleaner over ``p``'s log; ``hooked``: it asks ``p.state`` as it would ask the
    broker's state, else it follows the log's headers itself."""
    return LogCleaner(
        lambda: [("t", p.log)],
        lambda _key: _SETTINGS,
        clock=lambda: p.clock,
        transactions=(lambda _key: p.state) if hooked else None,
    )


def _roll(p: Partition, n: int = 12) -> None:
    """Plain records of throwaway keys until the active segment rolls at least once."""
    bases = len(_segment_files(p.log))
    i = 0
    while len(_segment_files(p.log)) <= bases or i < n:
        p.plain([(b"filler-%d" % (i % 3), b"x" * 100)])
        i += 1


def _segment_files(log: Log) -> list[str]:
    return sorted(n for n in os.listdir(log.directory) if n.endswith(".log"))


def _reloaded_view(p: Partition) -> tuple[int, list[Rec]]:
    """LSO and read_committed view from a state loaded afresh from the files."""
    fresh = PartitionTxnState(p.log)
    fresh.load()
    try:
        return fresh.last_stable_offset(), read_committed(p.log, fresh)
    finally:
        fresh.close()


def _check_everything(p: Partition) -> list[Rec]:
    lso = p.lso()
    assert p.state.last_stable_offset() == lso
    view = read_committed(p.log, p.state)
    check_view(view, p, lso)
    # As after a restart (snapshot or full scan), then as after losing the files.
    assert _reloaded_view(p) == (lso, view)
    saved = {
        n: open(os.path.join(p.log.directory, n), "rb").read()
        for n in (INDEX_FILE, SNAPSHOT_FILE)
        if os.path.exists(os.path.join(p.log.directory, n))
    }
    PartitionTxnState.remove_files(p.log.directory)
    assert _reloaded_view(p) == (lso, view)
    for name, raw in saved.items():
        with open(os.path.join(p.log.directory, name), "wb") as f:
            f.write(raw)
    return view


def _data_records(log: Log) -> dict[int, tuple[bytes | None, bytes | None]]:
    return {r.offset: (r.key, r.value) for b in batches(log) if not b.is_control for r in b.records}


def _markers(log: Log) -> list[tuple[int, int]]:
    """(offset, record count) of every control batch."""
    return [(b.base_offset, len(b.records)) for b in batches(log) if b.is_control]


def _pass(p: Partition, cleaner: LogCleaner, hooked: bool):
    report = cleaner.clean_log(p.log, _SETTINGS, p.clock)
    if not hooked:
        # Nobody's state was told: what the cleaner left in the files is checked, as a
        # broker starting on the directory would load it.
        p.state.close()
        p.state = PartitionTxnState(p.log)
        p.state.load()
    return report


@pytest.mark.parametrize("hooked", [True, False], ids=["broker-state", "header-scan"])
def test_aborted_records_go_committed_stay_and_markers_go_after_delete_retention(tmp_path, hooked):
    p = Partition.open_at(str(tmp_path / "p"), segment_bytes=_SEGMENT_BYTES)
    try:
        p.send(1, [(b"a", b"a1"), (b"b", b"b1")])
        p.send(2, [(b"a", b"ABORTED"), (b"c", b"ABORTED")])
        commit_at = p.end(1, commit=True)
        abort_at = p.end(2, commit=False)
        p.send(2, [(b"d", b"d2")])  # producer 2's next transaction commits
        p.end(2, commit=True)
        p.plain([(b"b", b"b-plain")])
        _roll(p)
        cleaner = _cleaner(p, hooked=hooked)
        before = _check_everything(p)
        aborted_offsets = {o for o in p.aborted}

        report = _pass(p, cleaner, hooked)
        assert report is not None and report.completed
        data = _data_records(p.log)
        assert not aborted_offsets & data.keys(), "aborted records must be removed"
        assert report.aborted_removed == len(aborted_offsets)
        assert 1 not in data, "committed b1 is superseded by the later plain b"
        assert data[0] == (b"a", b"a1"), "a committed record no later record supersedes stays"
        # Both markers stay: batches of their transactions were there when the pass began.
        assert {o for o, _ in _markers(p.log)} >= {commit_at, abort_at}
        assert [(t.producer_id, t.last_offset) for t in p.state.aborted()] == [(2, abort_at)]
        assert _check_everything(p) == [r for r in before if r[0] in data]

        # Next pass: the aborted transaction has no batch left. Its index entry goes
        # (before the swap), and its marker gets a horizon instead of going at once.
        # (A pass needs new dirty data; each pass cleans from the log start.)
        p.clock += 1_000
        _roll(p)
        report = _pass(p, cleaner, hooked)
        assert report is not None and report.aborted_entries_dropped == 1
        assert p.state.aborted() == []
        assert abort_at in {o for o, _ in _markers(p.log)}
        _check_everything(p)

        # Before the horizon the markers stay; at it, those without data go.
        p.clock += _RETENTION_MS - 1
        _roll(p)
        report = _pass(p, cleaner, hooked)
        assert report is not None and report.markers_removed == 0
        p.clock += 1
        _roll(p)
        report = _pass(p, cleaner, hooked)
        assert report is not None and report.markers_removed >= 1
        left = {o for o, _ in _markers(p.log)}
        assert abort_at not in left
        assert commit_at in left, "a COMMIT marker stays while its transaction's record a1 does"
        view = _check_everything(p)
        assert (0, b"a", b"a1") in view
    finally:
        p.close()


def test_an_open_transaction_and_everything_from_its_segment_on_are_not_cleaned(tmp_path):
    p = Partition.open_at(str(tmp_path / "p"), segment_bytes=_SEGMENT_BYTES)
    try:
        p.plain([(b"k", b"old")])
        _roll(p)
        first_open = p.send(3, [(b"k", b"in-open-txn"), (b"j", None)])
        _roll(p)
        p.plain([(b"k", b"newest")])
        _roll(p)
        cleaner = _cleaner(p)
        segs = _segment_files(p.log)
        holder = max(n for n in segs if int(n[:20]) <= first_open)
        untouched = {n: open(os.path.join(p.log.directory, n), "rb").read() for n in segs if n >= holder}
        report = cleaner.clean_log(p.log, _SETTINGS, p.clock)
        # Only what lies below the segment holding the LSO is cleaned.
        assert report is not None and report.end_offset <= int(holder[:20])
        for name, raw in untouched.items():
            assert open(os.path.join(p.log.directory, name), "rb").read() == raw
        assert _data_records(p.log)[first_open] == (b"k", b"in-open-txn")
        _check_everything(p)
        # Once it commits, the transaction's records are cleaned like any others.
        p.end(3, commit=True)
        _roll(p)
        p.clock += 1_000
        report = cleaner.clean_log(p.log, _SETTINGS, p.clock)
        assert report is not None and report.end_offset > first_open
        data = _data_records(p.log)
        assert first_open not in data, "superseded by the later plain k"
        assert data[first_open + 1] == (b"j", None), "a committed tombstone stays until its horizon"
        _check_everything(p)
    finally:
        p.close()


def test_producer_state_rebuilt_from_the_cleaned_log_is_the_same(tmp_path):
    p = Partition.open_at(str(tmp_path / "p"), segment_bytes=_SEGMENT_BYTES)
    try:
        # Producer 1: a committed then an aborted transaction over the same keys.
        p.send(1, [(b"a", b"1")])
        p.end(1, commit=True)
        p.send(1, [(b"a", b"2")])
        p.end(1, commit=False)
        # Producer 2: aborted by the coordinator with a bumped epoch (fencing).
        p.send(2, [(b"b", b"1")])
        p.end(2, commit=False, fence=True)
        # Producer 3: idempotent, every record later superseded.
        p.plain([(b"c", b"1")], pid=3)
        p.plain([(b"c", b"2"), (b"a", b"3")])
        _roll(p)

        def producers() -> list[tuple[int, int, int | None]]:
            m = ProducerStateManager()
            m.rebuild_from_log("p", p.log)
            return [
                (pid, epoch, m.last_sequence("p", pid)) for pid, epoch in sorted(m.producers("p").items())
            ]

        expected = producers()
        cleaner = _cleaner(p)
        for _ in range(3):
            assert cleaner.clean_log(p.log, _SETTINGS, p.clock) is not None
            assert producers() == expected
            p.clock += _RETENTION_MS + 1
            _roll(p)
        # Each producer's last batch is still there, emptied where its records went.
        by_pid: dict[int, list[tuple[bool, int, int]]] = {}
        for b in batches(p.log):
            if b.producer_id >= 0:
                by_pid.setdefault(b.producer_id, []).append((b.is_control, b.producer_epoch, len(b.records)))
        # Producer 1's last data batch is the aborted one, kept as a header; its ABORT
        # marker then stays too (a batch of its transaction is still there).
        assert by_pid[1][:2] == [(False, 0, 0), (True, 0, 1)]
        assert by_pid[2] == [(True, 1, 0)]  # the fencing marker carries the new epoch
        assert by_pid[3] == [(False, 0, 0)]
        _check_everything(p)
    finally:
        p.close()


@pytest.mark.parametrize("committed", [False, True], ids=["before-commit-point", "after-commit-point"])
def test_a_crash_during_a_swap_leaves_a_consistent_log_and_index(tmp_path, committed):
    path = str(tmp_path / "p")
    p = Partition.open_at(path, segment_bytes=_SEGMENT_BYTES)
    p.send(1, [(b"a", b"1")])
    p.send(2, [(b"a", b"ABORTED")])
    p.end(2, commit=False)
    p.end(1, commit=True)
    p.send(2, [(b"z", b"later")])
    p.end(2, commit=True)
    _roll(p)
    cleaner = _cleaner(p)
    assert cleaner.clean_log(p.log, _SETTINGS, p.clock) is not None  # aborted data gone
    p.clock += 1_000
    _roll(p)
    real = p.log.replace_segments

    class Crash(Exception):
        pass

    def crash(cleaned: str, base: int, end: int) -> bool:
        # The process dies in the middle of the swap (docs/storage.md, "Swapping cleaned
        # segments into a live log"): after step 1 raised the compacted offset, and
        # before or after step 2's rename, the commit point; no old segment deleted.
        with open(os.path.join(path, "compacted-offset"), "w") as f:
            f.write(f"{max(end, p.log.compacted_offset)}\n")
        if committed:
            os.replace(cleaned, os.path.join(path, f"{base:020d}-{end:020d}.log.swap"))
        raise Crash()

    p.log.replace_segments = crash  # type: ignore[method-assign]
    with pytest.raises(Crash):
        cleaner.clean_log(p.log, _SETTINGS, p.clock)
    p.log.replace_segments = real  # type: ignore[method-assign]
    written, committed_offsets = p.written, p.committed
    p.state.close()
    p.log.close()
    for name in os.listdir(path):
        if name in ("checkpoint", ".clean_shutdown"):
            os.unlink(os.path.join(path, name))
    q = Partition.open_at(path, segment_bytes=_SEGMENT_BYTES)
    try:
        q.written, q.committed, q.clock = written, committed_offsets, p.clock
        assert q.log.recovery_report["swaps_completed"] == (1 if committed else 0)
        _check_everything(q)
        # And the next pass goes through.
        q.clock += _RETENTION_MS + 1
        _roll(q)
        assert _cleaner(q).clean_log(q.log, _SETTINGS, q.clock) is not None
        _check_everything(q)
    finally:
        q.close()


# -- the twins give the same bytes ------------------------------------------------------


def _native() -> ModuleType:
    from streamcore import _native  # type: ignore[attr-defined]

    return _native.cleaner


def _core_pass(twin: ModuleType, segs: list[str], out: str, aborted, now_ms: int):
    os.makedirs(out, exist_ok=True)
    m = twin.build_offset_map(segs, 0, 1 << 62, memory_bytes=1 << 16, aborted_transactions=aborted)
    return m, twin.clean_segments(
        segs,
        m,
        out_dir=out,
        now_ms=now_ms,
        delete_retention_ms=_RETENTION_MS,
        segment_bytes=1 << 20,
        aborted_transactions=aborted,
    )


def test_both_cores_clean_transactional_segments_to_the_same_bytes(tmp_path):
    p = Partition.open_at(str(tmp_path / "p"), segment_bytes=_SEGMENT_BYTES)
    try:
        for i in range(6):
            p.send(1, [(b"k%d" % (i % 3), b"c%d" % i), (b"t", None)])
            p.send(2, [(b"k%d" % (i % 2), b"x%d" % i)])
            p.plain([(b"p%d" % (i % 2), b"v%d" % i)], pid=5)
            p.end(1, commit=True)
            p.end(2, commit=i % 2 == 1, fence=i == 4)
        p.end(7, commit=True)  # a marker of a producer with nothing open: no data at all
        _roll(p)
        aborted = [(t.producer_id, t.first_offset, t.last_offset) for t in p.state.aborted()]
        segs = [os.path.join(p.log.directory, n) for n in _segment_files(p.log)[:-1]]
    finally:
        p.close()
    outputs = {}
    for name, twin in (("reference", reference_cleaner), ("native", _native())):
        work = tmp_path / name
        shutil.copytree(tmp_path / "p", work)
        current = [str(work / os.path.basename(s)) for s in segs]
        passes = []
        for n, now in enumerate([NOW, NOW + 1_000, NOW + 2 * _RETENTION_MS]):
            m, r = _core_pass(twin, current, str(work / f"out{n}"), aborted, now)
            passes.append(
                (
                    m.latest_offset,
                    len(m),
                    r.stats,
                    [(s.base_offset, s.aborted_transactions) for s in r.segments],
                )
            )
            nxt = work / f"in{n}"
            nxt.mkdir()
            current = []
            for s in r.segments:
                dest = str(nxt / f"{s.base_offset:020d}.log")
                os.replace(s.path, dest)
                current.append(dest)
            passes.append([open(c, "rb").read() for c in current])
        outputs[name] = passes
    ref, nat = outputs["reference"], outputs["native"]
    for a, b in zip(ref, nat, strict=True):
        if isinstance(a, tuple):
            assert a[:2] == b[:2] and a[3] == b[3]
            assert a[2]._replace(throttled_ms=0) == b[2]._replace(throttled_ms=0)
        else:
            assert a == b
    # The passes did something: aborted data, then markers.
    stats = [x[2] for x in ref if isinstance(x, tuple)]
    assert stats[0].aborted_removed > 0 and stats[-1].markers_removed > 0


def test_with_the_brokers_partition_state_as_the_source(tmp_path):
    """The wiring the broker uses: the cleaner asks TransactionalPartitions for the
    loaded state of each partition, and what fetch answers stays right."""
    from streamcore.broker.transactions.partitions import TransactionalPartitions

    log = Log(str(tmp_path / "t-0"), fsync="never", index_interval_bytes=128, segment_bytes=_SEGMENT_BYTES)
    partitions = TransactionalPartitions(lambda _t, _p: log)
    partitions.load(("t", 0), log)
    clock = [NOW]

    def produce(pid: int, recs, *, txn: bool = True) -> int:
        raw = encode_batch(
            [v for _, v in recs],
            keys=[k for k, _ in recs],
            timestamps_ms=[clock[0]] * len(recs),
            producer_id=pid,
            producer_epoch=0 if pid >= 0 else -1,
            base_sequence=0 if pid >= 0 else -1,
            transactional=txn,
        )
        token = partitions.begin_append("t", 0, pid, txn) if pid >= 0 else None
        base = log.append(raw).base_offset
        partitions.finish_append(token, base)
        return base

    def marker(pid: int, commit: bool) -> int:
        at = log.append(build_marker(pid, 0, commit=commit, timestamp_ms=clock[0])).base_offset
        partitions.on_marker("t", 0, pid, at, commit)
        return at

    def filler(n: int = 14) -> None:
        for i in range(n):
            produce(-1, [(b"f%d" % (i % 2), b"x" * 100)], txn=False)

    cleaner = LogCleaner(
        lambda: [(("t", 0), log)],
        lambda _key: _SETTINGS,
        clock=lambda: clock[0],
        transactions=lambda key: partitions._states.get(key),
    )
    try:
        produce(1, [(b"a", b"ABORTED")])
        abort_at = marker(1, commit=False)
        committed = produce(1, [(b"a", b"committed")])
        marker(1, commit=True)
        filler()
        for step in (0, 1_000, _RETENTION_MS + 1):
            clock[0] += step
            assert cleaner.clean_log(log, _SETTINGS, clock[0]) is not None
            filler()
        # The aborted record, its index entry and its marker are gone; fetch from the
        # start hands the consumer no aborted transaction, and the committed record is read.
        assert [b.base_offset for b in batches(log) if b.is_control and b.base_offset == abort_at] == []
        lso = partitions.lso("t", 0)
        assert partitions.aborted_transactions("t", 0, 0, lso) == []
        view = read_committed(log, partitions.state("t", 0))
        assert (committed, b"a", b"committed") in view
        assert all(v != b"ABORTED" for _, _, v in view)
    finally:
        partitions.close()
        log.close()


def test_a_marker_the_cleaner_emptied_still_ends_its_transaction_on_a_rescan(tmp_path):
    from streamcore._reference.cleaner.rewrite import _empty_batch
    from streamcore._reference.record_batch import decode_batch

    with Log(str(tmp_path / "p"), fsync="never") as log:
        log.append(
            encode_batch(
                [b"v"], keys=[b"k"], producer_id=1, producer_epoch=0, base_sequence=0, transactional=True
            )
        )
        # What a pass leaves of a fencing COMMIT marker once its horizon passed: the header.
        emptied = _empty_batch(decode_batch(build_marker(1, 1, commit=True, timestamp_ms=5)))
        assert log.append(emptied).base_offset == 1
        state = PartitionTxnState(log)
        state.load()
        try:
            assert state.ongoing() == {} and state.last_stable_offset() == 2 and state.aborted() == []
        finally:
            state.close()


def test_drop_aborted_forgets_entries_rewrites_the_index_and_drops_the_snapshot(tmp_path):
    p = Partition.open_at(str(tmp_path / "p"))
    try:
        p.send(1, [(b"a", b"1")])
        first = p.end(1, commit=False)
        p.send(2, [(b"b", b"1")])
        second = p.end(2, commit=False)
        p.state.close()
        p.state = PartitionTxnState(p.log)
        p.state.load()  # writes the snapshot and the index
        assert os.path.exists(os.path.join(p.log.directory, SNAPSHOT_FILE))
        assert [t.last_offset for t in p.state.aborted()] == [first, second]
        lso, aborted = p.state.cleaner_view()
        assert lso == p.log.high_watermark and aborted == p.state.aborted()
        assert p.state.drop_aborted([(1, 0, first)]) == 1
        assert [t.last_offset for t in p.state.aborted()] == [second]
        assert not os.path.exists(os.path.join(p.log.directory, SNAPSHOT_FILE))
        with open(os.path.join(p.log.directory, INDEX_FILE), "rb") as f:
            from streamcore.storage.txn_index import entries_from_bytes

            assert [t.last_offset for t in entries_from_bytes(f.read())] == [second]
        # Appends after the rewrite land in the new file.
        p.send(1, [(b"a", b"2")])
        third = p.end(1, commit=False)
        with open(os.path.join(p.log.directory, INDEX_FILE), "rb") as f:
            assert [t.last_offset for t in entries_from_bytes(f.read())] == [second, third]
    finally:
        p.close()
