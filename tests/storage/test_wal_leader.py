"""Leader/follower group commit: a blocking append that finds the writer idle writes its
group on its own thread; ``submit`` always hands off to the pool. Both twins.

Whoever writes a group, the contract is the same: offsets in queue order without gaps,
the same files, every acknowledged append durable per the policy, a close that drains.
"""

from __future__ import annotations

import os
import struct
import threading

import pytest

from streamcore._reference import wal as reference_wal
from streamcore.errors import StorageError

from .batches import batch_of_size, make_batch
from .conftest import native_wal_module


def _files(path: str) -> dict[str, bytes]:
    out = {}
    for name in sorted(os.listdir(path)):
        with open(os.path.join(path, name), "rb") as f:
            out[name] = f.read()
    return out


def _batches(data: bytes) -> list[tuple[int, bytes]]:
    """(baseOffset, bytes after the baseOffset) of every batch in ``data``."""
    out = []
    pos = 0
    while pos < len(data):
        base, length = struct.unpack_from(">qi", data, pos)
        out.append((base, data[pos + 8 : pos + 12 + length]))
        pos += 12 + length
    return out


@pytest.mark.parametrize("fsync", ["always", "never"])
def test_concurrent_blocking_and_async_appends_get_gapless_offsets_in_queue_order(twin, tmp_path, fsync):
    threads, per_thread = 8, 40
    path = str(tmp_path / "p")
    results: dict[tuple[int, int], tuple[int, int, int]] = {}
    callbacks: list[tuple[int, int, int]] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def on_done(result, exc) -> None:
        with lock:
            if exc is not None:
                errors.append(exc)
            else:
                callbacks.append(tuple(result))

    with twin(path, fsync=fsync, segment_bytes=20_000, queue_depth=100_000) as wal:

        def worker(t: int) -> None:
            try:
                for i in range(per_thread):
                    # A thread's own batches carry (thread, index) so reads can check them.
                    batch = make_batch([bytes([t, i])], base_timestamp=1_000 + i)
                    if i % 5 == 4:
                        wal.submit(batch, on_done)
                    else:
                        res = tuple(wal.append(batch))
                        with lock:
                            results[(t, i)] = res
                    if i % 17 == 16:
                        wal.flush()
            except BaseException as exc:  # pragma: no cover - reported below
                with lock:
                    errors.append(exc)

        workers = [threading.Thread(target=worker, args=(t,)) for t in range(threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        wal.flush()
        total = threads * per_thread
        assert wal.high_watermark == total
        data = wal.read(0, 1 << 30)
    assert errors == []
    got = _batches(data)
    assert [base for base, _ in got] == list(range(total))
    # Each blocking append was answered with the offset its batch sits at.
    by_offset = dict(got)
    for (t, i), (base, last, _ts) in results.items():
        assert base == last
        assert by_offset[base] == make_batch([bytes([t, i])], base_timestamp=1_000 + i)[8:]
    # Each thread's batches are in the log in the order it appended them.
    order: dict[int, list[int]] = {}
    for _base, rest in got:
        t, i = rest[-3], rest[-2]  # the 2-byte value before the empty headers count
        order.setdefault(t, []).append(i)
    assert all(seq == list(range(per_thread)) for seq in order.values())
    assert len(callbacks) == threads * (per_thread // 5)
    # Reopening finds everything (a clean close drained and fsynced it).
    with twin(path, fsync="never") as again:
        assert again.high_watermark == total
        assert again.recovery_report["clean"] is True


def test_a_mix_of_leading_and_handed_off_appends_writes_the_same_files_in_both_twins(tmp_path):
    native = native_wal_module()
    if native is None:
        pytest.skip("streamcore._native has no wal submodule (native WAL not built)")
    out = {}
    for name, cls in (("ref", reference_wal.WalLog), ("nat", native.WalLog)):
        path = str(tmp_path / name)
        with cls(path, fsync="always", segment_bytes=3_000, index_interval_bytes=300) as wal:
            for i in range(60):
                batch = batch_of_size(100 + (i * 131) % 900, records=1 + i % 3, base_timestamp=5_000 + i % 4)
                if i % 3 == 0:
                    done = threading.Event()
                    wal.submit(batch, lambda result, exc, done=done: done.set())
                    assert done.wait(30)
                else:
                    wal.append(batch)
                if i % 11 == 0:
                    wal.flush()
        out[name] = _files(path)
    assert out["ref"] == out["nat"]
    assert sum(n.endswith(".log") for n in out["ref"]) > 5


def test_a_lone_blocking_appender_writes_every_group_itself_and_submit_never_does(tmp_path):
    # Only the reference twin shows who wrote a group (native: WalStats::groups_led, tested in Rust).
    with reference_wal.WalLog(str(tmp_path / "p"), fsync="always") as wal:
        writer = wal._writer
        # A freshly opened log's first step runs on the pool; an append before it queues.
        for _ in range(3000):
            if writer.idle:
                break
            threading.Event().wait(0.01)
        for i in range(5):
            assert wal.append(make_batch(1))[0] == i
        assert writer.groups_led == 5
        done = threading.Event()
        for _ in range(3):
            wal.submit(make_batch(1), lambda result, exc: done.set())
        wal.flush()
        assert done.wait(30)
        assert writer.groups_led == 5
        assert wal.stats()["groups"] >= 6


def test_closing_while_threads_append_drains_what_was_acknowledged(twin, tmp_path):
    path = str(tmp_path / "p")
    acked: list[int] = []
    refused: list[BaseException] = []
    lock = threading.Lock()
    wal = twin(path, fsync="always")
    started = threading.Barrier(5)

    def worker() -> None:
        started.wait()
        while True:
            try:
                base = wal.append(make_batch(1))[0]
            except StorageError as exc:
                with lock:
                    refused.append(exc)
                return
            with lock:
                acked.append(base)

    workers = [threading.Thread(target=worker) for _ in range(4)]
    for w in workers:
        w.start()
    started.wait()
    while True:
        with lock:
            if len(acked) >= 40:
                break
        threading.Event().wait(0.001)
    wal.close()
    for w in workers:
        w.join(60)
        assert not w.is_alive()
    assert len(refused) == 4
    assert sorted(acked) == list(range(len(acked)))
    with twin(path, fsync="never") as again:
        assert again.recovery_report["clean"] is True
        assert again.high_watermark == len(acked)
