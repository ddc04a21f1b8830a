"""Idempotent producers: id allocation across restarts and per-partition sequence rules."""

from __future__ import annotations

import pytest

from streamcore.broker.producer_state import (
    ProducerIdManager,
    ProducerStateManager,
    SequenceStatus,
    next_sequence,
)
from streamcore.codec import encode_batch
from streamcore.errors import ErrorCode
from streamcore.storage import Log

E = ErrorCode
S = SequenceStatus
P = ("t", 0)
INT32_MAX = 2**31 - 1


def write(psm, pid, epoch, seq, n, offset, key=P):
    """Check and complete a batch of n records landing at ``offset``; returns the check."""
    check = psm.check_and_record(key, pid, epoch, seq, n - 1, now_ms=0)
    if check.status is S.NEW:
        psm.complete(check.token, offset, offset + n - 1)
    return check


# --------------------------------------------------------------------------- ids


def test_producer_ids_are_unique_across_restarts(tmp_path):
    m = ProducerIdManager(tmp_path, block_size=3)
    first = [m.init_producer_id().producer_id for _ in range(5)]
    assert first == [0, 1, 2, 3, 4]
    assert {m.init_producer_id().producer_epoch} == {0}
    m2 = ProducerIdManager(tmp_path, block_size=3)
    later = [m2.init_producer_id().producer_id for _ in range(3)]
    assert min(later) > 5
    assert len(set(first + later)) == 8


def test_idempotent_init_always_gives_a_fresh_id_at_epoch_zero(tmp_path):
    m = ProducerIdManager(tmp_path)
    a = m.init_producer_id()
    b = m.init_producer_id(producer_id=a.producer_id, producer_epoch=0)
    assert (b.error_code, b.producer_epoch) == (0, 0)
    assert b.producer_id != a.producer_id


def test_transactional_id_keeps_its_id_and_bumps_the_epoch_across_restarts(tmp_path):
    m = ProducerIdManager(tmp_path)
    a = m.init_producer_id("tx")
    b = m.init_producer_id("tx")
    assert (b.producer_id, b.producer_epoch) == (a.producer_id, a.producer_epoch + 1)
    c = ProducerIdManager(tmp_path).init_producer_id("tx")
    assert (c.producer_id, c.producer_epoch) == (a.producer_id, 2)


def test_transactional_init_with_stale_epoch_is_refused(tmp_path):
    m = ProducerIdManager(tmp_path)
    a = m.init_producer_id("tx")
    m.init_producer_id("tx")
    m.init_producer_id("tx")  # epoch 2 now
    bad = m.init_producer_id("tx", producer_id=a.producer_id, producer_epoch=0)
    assert bad.error_code == E.INVALID_PRODUCER_EPOCH.code
    retry = m.init_producer_id("tx", producer_id=a.producer_id, producer_epoch=1)
    assert (retry.error_code, retry.producer_epoch) == (0, 2)
    bumped = m.init_producer_id("tx", producer_id=a.producer_id, producer_epoch=2)
    assert (bumped.error_code, bumped.producer_epoch) == (0, 3)


def test_observed_ids_push_allocation_past_them(tmp_path):
    m = ProducerIdManager(tmp_path)
    m.observe(41)
    assert m.init_producer_id().producer_id == 42
    assert ProducerIdManager(tmp_path).init_producer_id().producer_id > 42


def test_sequence_wraps_at_int32_max():
    assert next_sequence(5, 3) == 8
    assert next_sequence(INT32_MAX, 1) == 0
    assert next_sequence(INT32_MAX - 1, 3) == 1


# --------------------------------------------------------------------------- sequences


def test_in_order_batches_are_new():
    psm = ProducerStateManager()
    assert write(psm, 7, 0, 0, 3, 100).status is S.NEW
    assert write(psm, 7, 0, 3, 2, 103).status is S.NEW
    assert psm.last_sequence(P, 7) == 4


def test_retried_batch_is_a_duplicate_with_its_original_offsets():
    psm = ProducerStateManager()
    write(psm, 7, 0, 0, 3, 100)
    write(psm, 7, 0, 3, 2, 103)
    dup = write(psm, 7, 0, 0, 3, 999)
    assert (dup.status, dup.error_code, dup.base_offset, dup.last_offset) == (S.DUPLICATE, 0, 100, 102)
    dup = write(psm, 7, 0, 3, 2, 999)
    assert (dup.base_offset, dup.last_offset) == (103, 104)


def test_only_the_last_five_batches_are_remembered():
    psm = ProducerStateManager()
    for i in range(7):
        write(psm, 1, 0, i, 1, 10 + i)
    assert write(psm, 1, 0, 2, 1, 0).status is S.DUPLICATE
    old = write(psm, 1, 0, 1, 1, 0)
    assert (old.status, old.error_code) == (S.ERROR, E.OUT_OF_ORDER_SEQUENCE_NUMBER.code)


def test_gap_in_sequence_is_out_of_order():
    psm = ProducerStateManager()
    write(psm, 7, 0, 0, 3, 0)
    gap = write(psm, 7, 0, 5, 1, 3)
    assert (gap.status, gap.error_code) == (S.ERROR, E.OUT_OF_ORDER_SEQUENCE_NUMBER.code)
    assert psm.last_sequence(P, 7) == 2


def test_stale_epoch_is_refused():
    psm = ProducerStateManager()
    write(psm, 7, 2, 0, 1, 0)
    r = write(psm, 7, 1, 1, 1, 1)
    assert (r.status, r.error_code) == (S.ERROR, E.INVALID_PRODUCER_EPOCH.code)


def test_new_epoch_must_start_at_sequence_zero():
    psm = ProducerStateManager()
    write(psm, 7, 0, 0, 5, 0)
    r = write(psm, 7, 1, 5, 1, 5)
    assert (r.status, r.error_code) == (S.ERROR, E.OUT_OF_ORDER_SEQUENCE_NUMBER.code)
    assert write(psm, 7, 1, 0, 1, 5).status is S.NEW
    assert psm.producers(P) == {7: 1}
    # the old epoch's batches are gone: a retry of them is now a stale epoch
    assert write(psm, 7, 0, 0, 5, 0).error_code == E.INVALID_PRODUCER_EPOCH.code


def test_unknown_producer_is_accepted_at_any_first_sequence():
    psm = ProducerStateManager()
    assert write(psm, 9, 0, 1234, 2, 0).status is S.NEW
    assert write(psm, 9, 0, 1236, 1, 2).status is S.NEW


def test_never_issued_producer_id_is_unknown():
    psm = ProducerStateManager(is_issued=lambda pid: pid < 10)
    r = write(psm, 50, 0, 0, 1, 0)
    assert (r.status, r.error_code) == (S.ERROR, E.UNKNOWN_PRODUCER_ID.code)
    assert write(psm, 5, 0, 0, 1, 0).status is S.NEW


def test_sequence_wraparound_is_in_order():
    psm = ProducerStateManager()
    write(psm, 7, 0, INT32_MAX - 1, 2, 0)
    assert write(psm, 7, 0, 0, 1, 2).status is S.NEW


def test_partitions_are_independent():
    psm = ProducerStateManager()
    write(psm, 7, 0, 0, 3, 0, key=("t", 0))
    assert write(psm, 7, 0, 0, 3, 0, key=("t", 1)).status is S.NEW


def test_pipelined_batches_are_checked_against_reserved_ones():
    psm = ProducerStateManager()
    a = psm.check_and_record(P, 7, 0, 0, 9, now_ms=0)
    b = psm.check_and_record(P, 7, 0, 10, 9, now_ms=0)  # before a's append finished
    assert (a.status, b.status) == (S.NEW, S.NEW)
    again = psm.check_and_record(P, 7, 0, 0, 9, now_ms=0)
    assert (again.status, again.error_code) == (S.IN_FLIGHT, E.REQUEST_TIMED_OUT.code)
    psm.complete(a.token, 0, 9)
    psm.complete(b.token, 10, 19)
    dup = psm.check_and_record(P, 7, 0, 10, 9, now_ms=0)
    assert (dup.status, dup.base_offset) == (S.DUPLICATE, 10)


def test_aborted_batch_can_be_retried():
    psm = ProducerStateManager()
    write(psm, 7, 0, 0, 1, 0)
    failing = psm.check_and_record(P, 7, 0, 1, 0, now_ms=0)
    psm.abort(failing.token)
    assert write(psm, 7, 0, 1, 1, 1).status is S.NEW
    first = psm.check_and_record(P, 8, 0, 0, 0, now_ms=0)
    psm.abort(first.token)
    assert psm.producers(P) == {7: 0}


def test_non_idempotent_batches_are_not_tracked():
    psm = ProducerStateManager()
    r = psm.check_and_record(P, -1, -1, -1, 4)
    assert r.status is S.NEW and r.token is None
    psm.complete(r.token, 0, 4)
    assert psm.producers(P) == {}


def test_idle_producers_expire():
    psm = ProducerStateManager()
    psm.complete(psm.check_and_record(P, 1, 0, 0, 0, now_ms=1000).token, 0, 0)
    psm.complete(psm.check_and_record(P, 2, 0, 0, 0, now_ms=5000).token, 1, 1)
    assert psm.expire(now_ms=6000, max_idle_ms=2000) == 1
    assert psm.producers(P) == {2: 0}


# --------------------------------------------------------------------------- recovery from the log


@pytest.fixture
def log(tmp_path):
    with Log(tmp_path / "t-0", fsync="never", segment_bytes=1024) as log:
        yield log


def test_state_is_rebuilt_from_the_log_headers(log):
    batches = [
        (3, 0, 0, 2),  # pid, epoch, base sequence, records
        (3, 0, 2, 3),
        (4, 1, 0, 1),
        (-1, -1, -1, 2),  # not idempotent
        (3, 0, 5, 1),
    ]
    for pid, epoch, seq, n in batches:
        log.append(encode_batch([bytes(100)] * n, producer_id=pid, producer_epoch=epoch, base_sequence=seq))
    for i in range(6):  # old-epoch batches of pid 5, then a bump
        log.append(encode_batch([b"x"], producer_id=5, producer_epoch=0, base_sequence=i))
    log.append(encode_batch([b"y"], producer_id=5, producer_epoch=1, base_sequence=0))
    assert log.segment_count > 1
    psm = ProducerStateManager()
    assert psm.rebuild_from_log(P, log) == 5
    assert psm.producers(P) == {3: 0, 4: 1, 5: 1}
    assert psm.last_sequence(P, 3) == 5
    dup = psm.check_and_record(P, 3, 0, 2, 2)
    assert (dup.status, dup.base_offset, dup.last_offset) == (S.DUPLICATE, 2, 4)
    assert psm.check_and_record(P, 3, 0, 6, 0).status is S.NEW
    assert psm.check_and_record(P, 4, 1, 5, 0).error_code == E.OUT_OF_ORDER_SEQUENCE_NUMBER.code
    assert psm.check_and_record(P, 5, 0, 6, 0).error_code == E.INVALID_PRODUCER_EPOCH.code


def test_rebuild_of_an_empty_log_clears_state(log):
    psm = ProducerStateManager()
    write(psm, 1, 0, 0, 1, 0)
    assert psm.rebuild_from_log(P, log) == -1
    assert psm.producers(P) == {}


class _HeadersOnly:
    """A log that offers only what rebuilding may use: no spans, no segment files."""

    def __init__(self, log):
        self._log = log
        self.walks = 0

    def batch_headers(self, from_offset=None):
        self.walks += 1
        return self._log.batch_headers(from_offset)


def test_rebuild_reads_batch_headers_from_storage_not_segment_files(log):
    log.append(encode_batch([b"x", b"y"], producer_id=9, producer_epoch=0, base_sequence=0))
    only = _HeadersOnly(log)
    psm = ProducerStateManager()
    assert psm.rebuild_from_log(P, only) == 9
    assert only.walks == 1
    assert psm.last_sequence(P, 9) == 1


def test_producer_id_blocks_are_persisted_with_the_atomic_write_helper(tmp_path, monkeypatch):
    from streamcore.broker import producer_state

    writes = []
    real = producer_state.write_atomic

    def spy(path, data):
        writes.append(path)
        real(path, data)

    monkeypatch.setattr(producer_state, "write_atomic", spy)
    m = ProducerIdManager(tmp_path, block_size=2)
    m.init_producer_id()
    m.init_producer_id()
    m.init_producer_id()  # the second block
    assert [p.name for p in writes] == ["producer_ids.json", "producer_ids.json"]
    assert not list(tmp_path.glob("*.tmp"))
    assert ProducerIdManager(tmp_path).next_producer_id == 4


def test_transaction_markers_do_not_become_a_producers_last_batch(log):
    log.append(
        encode_batch([b"a", b"b", b"c"], producer_id=7, producer_epoch=0, base_sequence=0, transactional=True)
    )
    # A COMMIT marker (key: version 0, type 1) for the same producer and epoch.
    log.append(
        encode_batch(
            [b"\x00\x00\x00\x00\x00\x00"],
            keys=[b"\x00\x00\x00\x01"],
            producer_id=7,
            producer_epoch=0,
            transactional=True,
            control=True,
        )
    )
    psm = ProducerStateManager()
    assert psm.rebuild_from_log(P, log) == 7
    assert psm.last_sequence(P, 7) == 2
    assert psm.check_and_record(P, 7, 0, 3, 0).status is S.NEW
    # A marker of a newer epoch (the coordinator fenced the producer) resets it.
    log.append(
        encode_batch(
            [b"\x00\x00\x00\x00\x00\x00"],
            keys=[b"\x00\x00\x00\x00"],
            producer_id=7,
            producer_epoch=1,
            transactional=True,
            control=True,
        )
    )
    assert psm.rebuild_from_log(P, log) == 7
    assert psm.producers(P) == {7: 1}
    assert psm.check_and_record(P, 7, 0, 3, 0).error_code == E.INVALID_PRODUCER_EPOCH.code
