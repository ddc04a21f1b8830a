"""Committed offsets: validation, durability across reopen, deletion, expiry, compaction."""

from __future__ import annotations

import asyncio

import pytest

from streamcore.broker.offset_store import (
    CommittedOffset,
    OffsetStore,
    encode_offset_key,
    encode_offset_value,
)
from streamcore.codec import decode_batches
from streamcore.errors import ErrorCode, LogOfflineError
from streamcore.storage import Log
from streamcore.storage.cleaner import CompactionSettings, LogCleaner

E = ErrorCode


class Clock:
    def __init__(self, now: int = 1_700_000_000_000) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


def open_log(tmp_path, **kw):
    kw.setdefault("fsync", "never")
    return Log(tmp_path / "__consumer_offsets-0", **kw)


def test_commit_then_fetch_given_and_all_partitions(tmp_path):
    clock = Clock()
    with open_log(tmp_path) as log:
        store = OffsetStore(log, wall_clock_ms=clock)
        result = store.commit("g", [("t", 0, 10, 3, "meta"), ("t", 1, 20, -1, None)])
        assert result == {("t", 0): 0, ("t", 1): 0}
        got = store.fetch("g", [("t", 0), ("t", 9)])
        assert got == {("t", 0): CommittedOffset(10, 3, "meta", clock.now), ("t", 9): None}
        assert list(store.fetch("g")) == [("t", 0), ("t", 1)]
        assert store.fetch("other") == {}
        assert store.groups() == ["g"]


def test_offsets_survive_reopening(tmp_path):
    clock = Clock()
    with open_log(tmp_path) as log:
        store = OffsetStore(log, wall_clock_ms=clock)
        store.commit("g", [("t", 0, 5, -1, "")])
        clock.now += 1000
        store.commit("g", [("t", 0, 7, 2, "x"), ("u", 3, 1, -1, "")])
        store.commit("h", [("t", 0, 99, -1, "")])
        store.delete_group("h")
    with open_log(tmp_path) as log:
        store = OffsetStore(log, wall_clock_ms=clock)
        assert store.replayed_records == 5
        assert store.fetch("g") == {
            ("t", 0): CommittedOffset(7, 2, "x", clock.now),
            ("u", 3): CommittedOffset(1, -1, "", clock.now),
        }
        assert store.groups() == ["g"]


def test_records_use_kafkas_offset_commit_layout(tmp_path):
    with open_log(tmp_path) as log:
        OffsetStore(log, wall_clock_ms=Clock(1234)).commit("grp", [("top", 2, 42, 7, "m")])
        (batch,) = decode_batches(log.read(0, 1 << 20))
        (record,) = batch.records
    assert record.key == b"\x00\x01\x00\x03grp\x00\x03top\x00\x00\x00\x02"
    assert record.value == (
        b"\x00\x03"
        + (42).to_bytes(8, "big")
        + (7).to_bytes(4, "big")
        + b"\x00\x01m"
        + (1234).to_bytes(8, "big")
    )
    assert encode_offset_key("grp", "top", 2) == record.key
    assert encode_offset_value(CommittedOffset(42, 7, "m", 1234)) == record.value


def test_validator_rejects_every_partition_of_a_commit(tmp_path):
    calls = []

    def validator(group, generation, member, instance):
        calls.append((group, generation, member, instance))
        return E.ILLEGAL_GENERATION.code if generation != 4 else 0

    with open_log(tmp_path) as log:
        store = OffsetStore(log, validator=validator)
        bad = store.commit("g", [("t", 0, 1, -1, ""), ("t", 1, 1, -1, "")], generation_id=3, member_id="m")
        assert bad == {("t", 0): E.ILLEGAL_GENERATION.code, ("t", 1): E.ILLEGAL_GENERATION.code}
        assert store.fetch("g") == {}
        assert log.high_watermark == 0
        ok = store.commit("g", [("t", 0, 1, -1, "")], generation_id=4, member_id="m", group_instance_id="i")
        assert ok == {("t", 0): 0}
        assert calls[-1] == ("g", 4, "m", "i")


def test_oversized_metadata_is_refused_per_partition(tmp_path):
    with open_log(tmp_path) as log:
        store = OffsetStore(log, max_metadata_bytes=4)
        result = store.commit("g", [("t", 0, 1, -1, "12345"), ("t", 1, 2, -1, "1234")])
        assert result == {("t", 0): E.OFFSET_METADATA_TOO_LARGE.code, ("t", 1): 0}
        assert store.fetch("g", [("t", 0)]) == {("t", 0): None}


def test_empty_group_id_is_invalid(tmp_path):
    with open_log(tmp_path) as log:
        assert OffsetStore(log).commit("", [("t", 0, 1, -1, "")]) == {("t", 0): E.INVALID_GROUP_ID.code}


def test_commit_with_group_coordinator_validation(tmp_path):
    from streamcore.broker.group_coordinator import GroupCoordinator

    async def main():
        gc = GroupCoordinator(min_session_timeout_ms=1)
        with open_log(tmp_path) as log:
            store = OffsetStore(log, validator=gc.validate_commit)
            assert await store.commit_async("simple", [("t", 0, 3, -1, "")]) == {("t", 0): 0}
            r = await gc.join_group("g", "", None, "c", "h", 10_000, 10_000, "consumer", [("range", b"")])
            await gc.sync_group("g", r.generation_id, r.member_id, None, [])
            ok = await store.commit_async("g", [("t", 0, 9, -1, "")], generation_id=r.generation_id,
                                          member_id=r.member_id)  # fmt: skip
            assert ok == {("t", 0): 0}
            stale = await store.commit_async("g", [("t", 0, 10, -1, "")], generation_id=r.generation_id - 1,
                                             member_id=r.member_id)  # fmt: skip
            assert stale == {("t", 0): E.ILLEGAL_GENERATION.code}
            assert store.fetch("g", [("t", 0)])[("t", 0)].offset == 9
            gc.close()

    asyncio.run(asyncio.wait_for(main(), 10))


def test_storage_failure_is_retriable_and_changes_nothing(tmp_path):
    with open_log(tmp_path) as log:
        store = OffsetStore(log)
        store.commit("g", [("t", 0, 1, -1, "")])

    class Broken:
        def __init__(self, inner):
            self.inner = inner

        def __getattr__(self, name):
            return getattr(self.inner, name)

        def append(self, batch):
            raise LogOfflineError("disk gone")

    with open_log(tmp_path) as log:
        store = OffsetStore(Broken(log))
        assert store.commit("g", [("t", 0, 2, -1, "")]) == {("t", 0): E.COORDINATOR_NOT_AVAILABLE.code}
        assert store.fetch("g", [("t", 0)])[("t", 0)].offset == 1


def test_delete_offsets_and_topic(tmp_path):
    with open_log(tmp_path) as log:
        store = OffsetStore(log)
        store.commit("g", [("a", 0, 1, -1, ""), ("a", 1, 1, -1, ""), ("b", 0, 1, -1, "")])
        store.commit("h", [("a", 0, 5, -1, "")])
        assert store.delete_offsets("g", [("a", 1), ("zz", 0)]) == 1
        assert store.delete_topic("a") == 2
        assert store.fetch("g") == {
            ("b", 0): CommittedOffset(1, -1, "", store.fetch("g")[("b", 0)].commit_timestamp_ms)
        }
        assert store.groups() == ["g"]
    with open_log(tmp_path) as log:
        assert list(OffsetStore(log).fetch("g")) == [("b", 0)]


def test_offsets_of_empty_groups_expire_after_retention(tmp_path):
    clock = Clock()
    with open_log(tmp_path) as log:
        store = OffsetStore(log, wall_clock_ms=clock)
        store.commit("idle", [("t", 0, 1, -1, "")])
        store.commit("active", [("t", 0, 1, -1, "")])
        store.commit("recently-empty", [("t", 0, 1, -1, "")])
        clock.now += 10_000
        store.commit("idle", [("t", 1, 1, -1, "")])  # newer commit in the same group survives
        since = {"idle": 0, "active": None, "recently-empty": clock.now}
        removed = store.expire(clock.now + 5_000, 10_000, since.get)
        assert removed == 1
        assert list(store.fetch("idle")) == [("t", 1)]
        assert list(store.fetch("active")) == [("t", 0)]
        assert list(store.fetch("recently-empty")) == [("t", 0)]
    with open_log(tmp_path) as log:
        assert list(OffsetStore(log).fetch("idle")) == [("t", 1)]


def test_the_cleaner_compacts_the_offsets_log_and_every_live_offset_survives(tmp_path):
    clock = Clock()
    settings = CompactionSettings(delete_retention_ms=1_000, segment_bytes=4096)
    with open_log(tmp_path, segment_bytes=4096) as log:
        store = OffsetStore(log, wall_clock_ms=clock)
        for round_ in range(40):
            clock.now += 1
            store.commit("g", [("t", p, round_, -1, "x" * 20) for p in range(8)])
        store.commit("gone", [("t", 0, 1, -1, "")])
        store.delete_group("gone")
        for round_ in range(40, 60):  # later commits push the tombstones out of the active segment
            clock.now += 1
            store.commit("g", [("t", p, round_, -1, "x" * 20) for p in range(8)])
        size_before = log.size_bytes
        cleaner = LogCleaner(lambda: [("o", log)], lambda _key: settings, clock=clock)
        assert cleaner.clean_log(log, settings) is not None
        assert log.size_bytes < size_before / 2
        expected = store.fetch("g")
        assert [e.offset for e in expected.values()] == [59] * 8
    with open_log(tmp_path, segment_bytes=4096) as log:
        again = OffsetStore(log, wall_clock_ms=clock)
        assert again.fetch("g") == expected
        assert again.groups() == ["g"]
        # The deleted group's tombstones were kept by the first pass; past the horizon they go.
        keys = [r.key for b in decode_batches(log.read(log.log_start_offset, 1 << 20)) for r in b.records]
        assert encode_offset_key("gone", "t", 0) in keys
        clock.now += 2_000
        store_more = OffsetStore(log, wall_clock_ms=clock)
        for round_ in range(60, 80):
            clock.now += 1
            store_more.commit("g", [("t", p, round_, -1, "x" * 20) for p in range(8)])
        cleaner = LogCleaner(lambda: [("o", log)], lambda _key: settings, clock=clock)
        assert cleaner.clean_log(log, settings) is not None
        offset, records = log.log_start_offset, []
        while offset < log.high_watermark:
            batches = decode_batches(log.read(offset, 1 << 20))
            records.extend(r.key for b in batches for r in b.records)
            offset = batches[-1].last_offset + 1
        assert encode_offset_key("gone", "t", 0) not in records
        assert OffsetStore(log, wall_clock_ms=clock).fetch("g") == store_more.fetch("g")


def test_timestamps_never_go_backwards_even_if_the_clock_does(tmp_path):
    clock = Clock()
    with open_log(tmp_path) as log:
        store = OffsetStore(log, wall_clock_ms=clock)
        store.commit("g", [("t", 0, 1, -1, "")])
        clock.now -= 60_000
        store.commit("g", [("t", 0, 2, -1, "")])
        stamps = [r.timestamp_ms for b in decode_batches(log.read(0, 1 << 20)) for r in b.records]
    assert stamps == sorted(stamps)


@pytest.mark.parametrize("n", [2500])
def test_large_commit_spans_several_batches(tmp_path, n):
    with open_log(tmp_path) as log:
        store = OffsetStore(log)
        result = store.commit("g", [("t", p, p, -1, "") for p in range(n)])
        assert set(result.values()) == {0}
    with open_log(tmp_path) as log:
        assert OffsetStore(log).live_count() == n
