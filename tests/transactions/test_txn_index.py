"""Per-partition transaction state in storage: LSO, the aborted index, its files and rebuild."""

from __future__ import annotations

import os

from streamcore.broker.transactions.markers import build_marker
from streamcore.codec import encode_batch
from streamcore.storage import Log
from streamcore.storage.txn_index import (
    ABORTED_TXN,
    INDEX_FILE,
    SNAPSHOT_FILE,
    AbortedTxn,
    PartitionTxnState,
    entries_from_bytes,
)


def data(pid: int, n: int = 2, *, txn: bool = True) -> bytes:
    return encode_batch([b"v"] * n, producer_id=pid, producer_epoch=0, base_sequence=0, transactional=txn)


def plain(n: int = 1) -> bytes:
    return encode_batch([b"p"] * n)


def write(log: Log, state: PartitionTxnState | None, batch: bytes) -> int:
    """Append and follow it the way the broker does (state None: only the log changes)."""
    result = log.append(batch)
    if state is not None:
        from streamcore.codec import decode_batch

        b = decode_batch(batch)
        if b.is_control:
            state.end(b.producer_id, result.base_offset, b.records[0].key[3] == 1)
        elif b.is_transactional:
            state.begin(b.producer_id, result.base_offset)
    return result.base_offset


def scenario(log: Log, state: PartitionTxnState | None) -> None:
    """pid 1 commits [0,3), pid 2 aborts [2..6], pid 3 stays open from 7."""
    write(log, state, data(1))  # 0-1
    write(log, state, data(2))  # 2-3
    write(log, state, build_marker(1, 0, commit=True))  # 4
    write(log, state, plain())  # 5
    write(log, state, build_marker(2, 0, commit=False))  # 6
    write(log, state, data(3))  # 7-8
    write(log, state, plain(2))  # 9-10


EXPECTED_ABORTED = [AbortedTxn(2, 2, 6, 7)]


def test_lso_and_aborted_follow_appends(tmp_path):
    with Log(tmp_path / "t-0", fsync="never") as log:
        state = PartitionTxnState(log)
        state.load()
        assert state.last_stable_offset() == 0
        write(log, state, data(1))
        write(log, state, data(2))
        assert state.last_stable_offset() == 0  # pid 1's transaction is open at 0
        assert state.ongoing() == {1: 0, 2: 2}
        write(log, state, build_marker(1, 0, commit=True))
        assert state.last_stable_offset() == 2
        write(log, state, plain())
        write(log, state, build_marker(2, 0, commit=False))
        assert state.last_stable_offset() == 7 == log.high_watermark
        assert state.aborted() == [AbortedTxn(2, 2, 6, 7)]
        write(log, state, data(3))
        write(log, state, plain(2))
        assert state.last_stable_offset() == 7
        assert state.last_stable_offset(high_watermark=5) == 5
        state.close()


def test_collect_aborted_by_range(tmp_path):
    with Log(tmp_path / "t-0", fsync="never") as log:
        state = PartitionTxnState(log)
        state.load()
        scenario(log, state)
        # A second abort later in the log.
        write(log, state, data(4))  # 11-12
        write(log, state, build_marker(4, 0, commit=False))  # 13
        assert state.collect_aborted(0, 2) == []  # ends before the abort's first batch
        assert state.collect_aborted(0, 3) == [AbortedTxn(2, 2, 6, 7)]
        assert state.collect_aborted(6, 7) == [AbortedTxn(2, 2, 6, 7)]
        assert state.collect_aborted(7, 14) == [AbortedTxn(4, 11, 13, 7)]
        assert [t.producer_id for t in state.collect_aborted(0, 14)] == [2, 4]
        state.close()


def test_index_file_holds_kafkas_entries_and_a_marker_without_an_open_transaction_changes_nothing(tmp_path):
    with Log(tmp_path / "t-0", fsync="never") as log:
        state = PartitionTxnState(log)
        state.load()
        assert not os.path.exists(tmp_path / "t-0" / INDEX_FILE)  # no transactions: no files
        assert state.end(9, 0, False) is None
        scenario(log, state)
        state.close()
        raw = (tmp_path / "t-0" / INDEX_FILE).read_bytes()
    assert raw == ABORTED_TXN.pack(0, 2, 2, 6, 7)
    assert list(entries_from_bytes(raw)) == EXPECTED_ABORTED


def test_rebuild_from_the_log_alone(tmp_path):
    with Log(tmp_path / "t-0", fsync="never") as log:
        scenario(log, None)  # the state never saw the appends: as after a crash without files
        state = PartitionTxnState(log)
        report = state.load()
        assert report["from_offset"] == 0 and report["scanned_batches"] == 7
        assert state.aborted() == EXPECTED_ABORTED
        assert state.ongoing() == {3: 7}
        assert state.last_stable_offset() == 7
        state.close()
        assert os.path.exists(tmp_path / "t-0" / SNAPSHOT_FILE)


def test_reopen_scans_only_past_the_snapshot(tmp_path):
    with Log(tmp_path / "t-0", fsync="never") as log:
        state = PartitionTxnState(log)
        state.load()
        scenario(log, state)
        state.close()
        again = PartitionTxnState(log)
        again.load()  # the first load found nothing: no snapshot, a full scan
        assert again.aborted() == EXPECTED_ABORTED
        write(log, again, build_marker(3, 0, commit=False))  # 11: ends pid 3
        again.close()
        third = PartitionTxnState(log)
        report = third.load()
        assert report["from_offset"] == 11  # the previous load's snapshot covered [0, 11)
        assert report["scanned_batches"] == 1
        assert third.aborted() == [*EXPECTED_ABORTED, AbortedTxn(3, 7, 11, 12)]
        assert third.ongoing() == {}
        third.close()


def test_a_torn_index_tail_is_rebuilt(tmp_path):
    with Log(tmp_path / "t-0", fsync="never") as log:
        scenario(log, None)
        state = PartitionTxnState(log)
        state.load()  # snapshot: indexed_to 11, one entry
        write(log, state, build_marker(3, 0, commit=False))  # a second entry, appended
        state.close()
        path = tmp_path / "t-0" / INDEX_FILE
        path.write_bytes(path.read_bytes()[:-5])  # a crash tore the appended entry
        again = PartitionTxnState(log)
        again.load()
        assert again.aborted() == [*EXPECTED_ABORTED, AbortedTxn(3, 7, 11, 12)]
        again.close()
        assert list(entries_from_bytes(path.read_bytes())) == again.aborted()


def test_a_snapshot_beyond_the_recovered_log_forces_a_full_rebuild(tmp_path):
    with Log(tmp_path / "t-0", fsync="never") as log:
        scenario(log, None)
        PartitionTxnState(log).load()  # snapshot at 11
    # The log loses its tail (as recovery cuts a torn one): rebuild it shorter.
    os.rename(tmp_path / "t-0", tmp_path / "old")
    with Log(tmp_path / "t-0", fsync="never") as log:
        write(log, None, data(1))  # 0-1
        write(log, None, data(2))  # 2-3
        for name in (INDEX_FILE, SNAPSHOT_FILE):
            os.replace(tmp_path / "old" / name, tmp_path / "t-0" / name)
        state = PartitionTxnState(log)
        report = state.load()
        assert report["from_offset"] == 0
        assert state.aborted() == [] and state.ongoing() == {1: 0, 2: 2}
        state.close()


def test_unreadable_snapshot_is_ignored(tmp_path):
    with Log(tmp_path / "t-0", fsync="never") as log:
        scenario(log, None)
        (tmp_path / "t-0" / SNAPSHOT_FILE).write_text("{not json")
        state = PartitionTxnState(log)
        assert state.load()["from_offset"] == 0
        assert state.aborted() == EXPECTED_ABORTED
        state.close()


def test_entries_below_the_log_start_are_forgotten(tmp_path):
    with Log(tmp_path / "t-0", fsync="never") as log:
        state = PartitionTxnState(log)
        state.load()
        scenario(log, state)
        log.delete_records(7)
        assert state.retain_from(log.log_start_offset) == 1
        assert state.aborted() == []
        state.close()


def test_a_snapshot_that_does_not_fit_an_empty_log_is_replaced(tmp_path):
    with Log(tmp_path / "t-0", fsync="never") as log:
        scenario(log, None)
        PartitionTxnState(log).load()  # snapshot at 11, one entry
    os.rename(tmp_path / "t-0", tmp_path / "old")
    with Log(tmp_path / "t-0", fsync="never") as log:
        for name in (INDEX_FILE, SNAPSHOT_FILE):
            os.replace(tmp_path / "old" / name, tmp_path / "t-0" / name)
        state = PartitionTxnState(log)
        state.load()  # empty log: nothing of the old files may survive
        assert state.aborted() == []
        # The log grows past the old snapshot's offset with other transactions.
        for batch in (data(5), data(6), build_marker(5, 0, commit=False), plain(9)):
            write(log, state, batch)
        state.close()
        again = PartitionTxnState(log)
        again.load()
        assert again.aborted() == [AbortedTxn(5, 0, 4, 2)]
        assert again.ongoing() == {6: 2}
        again.close()


def test_no_files_for_a_short_log_without_transactions(tmp_path, monkeypatch):
    import streamcore.storage.txn_index as txn_index

    with Log(tmp_path / "t-0", fsync="never") as log:
        for _ in range(3):
            log.append(plain())
        PartitionTxnState(log).load()
        assert not os.path.exists(tmp_path / "t-0" / SNAPSHOT_FILE)
        monkeypatch.setattr(txn_index, "_SNAPSHOT_AFTER_BATCHES", 3)
        PartitionTxnState(log).load()  # a long scan: worth a snapshot
        assert os.path.exists(tmp_path / "t-0" / SNAPSHOT_FILE)
        log.append(plain())
        assert PartitionTxnState(log).load()["from_offset"] == 3


def test_a_log_opened_empty_starts_with_the_empty_state_without_reading_it(tmp_path, monkeypatch):
    """A topic created while the broker runs: its first fetch, after any amount of
    non-transactional data, takes the empty state instead of scanning every header."""
    import streamcore.storage.txn_index as txn_index
    from streamcore.broker.transactions.partitions import TransactionalPartitions

    scans: list[tuple[int, int]] = []
    real_follow = txn_index._follow

    def counting(log, from_offset, end, ongoing, aborted):
        scans.append((from_offset, end))
        return real_follow(log, from_offset, end, ongoing, aborted)

    monkeypatch.setattr(txn_index, "_follow", counting)
    with Log(tmp_path / "t-0", fsync="never") as log:
        for _ in range(50):
            log.append(plain(3))
        partitions = TransactionalPartitions(lambda topic, partition: log)
        state = partitions.state("t", 0)
        assert scans == []
        assert state.ongoing() == {} and state.aborted() == []
        assert partitions.lso("t", 0) == log.high_watermark == 150
        # Later transactional writes are followed as after a load.
        write(log, state, data(4))  # 150-151
        assert partitions.lso("t", 0) == 150
        write(log, state, build_marker(4, 0, commit=False))  # 152
        assert partitions.lso("t", 0) == 153
        assert state.aborted() == [AbortedTxn(4, 150, 152, 153)]
        state.close()
    # Reopened with data, the log is loaded (scanned) as before, to the same state.
    with Log(tmp_path / "t-0", fsync="never") as log:
        again = TransactionalPartitions(lambda topic, partition: log).state("t", 0)
        assert scans and again.aborted() == [AbortedTxn(4, 150, 152, 153)]
        again.close()


def test_a_log_opened_empty_beside_old_transaction_files_is_loaded(tmp_path):
    with Log(tmp_path / "t-0", fsync="never") as log:
        scenario(log, None)
        PartitionTxnState(log).load()  # writes the files
    os.rename(tmp_path / "t-0", tmp_path / "old")
    with Log(tmp_path / "t-0", fsync="never") as log:
        for name in (INDEX_FILE, SNAPSHOT_FILE):
            os.replace(tmp_path / "old" / name, tmp_path / "t-0" / name)
        state = PartitionTxnState(log)
        # Files of an earlier life: load() must judge and replace them.
        assert not state.start_if_new()
        state.load()
        assert state.aborted() == []
        state.close()
    # A log that had data when it was opened is never taken as new.
    with Log(tmp_path / "t-0", fsync="never") as log:
        log.append(plain())
    with Log(tmp_path / "t-0", fsync="never") as log:
        assert not PartitionTxnState(log).start_if_new()
