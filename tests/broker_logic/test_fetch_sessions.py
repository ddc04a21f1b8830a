"""KIP-227 fetch sessions: create, incremental updates, response filtering, errors, eviction."""

from __future__ import annotations

from streamcore.broker.fetch_sessions import FetchPartition, FetchSessionCache
from streamcore.errors import ErrorCode

E = ErrorCode


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000

    def __call__(self) -> int:
        return self.now


def fp(offset: int = 0) -> FetchPartition:
    return FetchPartition(fetch_offset=offset, partition_max_bytes=1 << 20)


def parts(*keys, offset=0):
    return [(k, fp(offset)) for k in keys]


def serve(ctx, state):
    """Run the handler's loop: state maps key -> (hw, has_records, error); returns included keys."""
    out = []
    for key, _ in ctx.partitions():
        hw, records, err = state.get(key, (0, False, 0))
        if ctx.should_include(
            key, high_watermark=hw, has_records=records, error_code=err, log_start_offset=0
        ):
            out.append(key)
    return out


def test_sessionless_full_fetch_serves_every_partition_and_caches_nothing():
    cache = FetchSessionCache()
    ctx = cache.new_context(0, -1, parts(("a", 0), ("a", 1)))
    assert (ctx.error_code, ctx.session_id, ctx.incremental) == (0, 0, False)
    assert serve(ctx, {}) == [("a", 0), ("a", 1)]
    assert len(cache) == 0


def test_initial_epoch_creates_a_session_with_the_partitions():
    cache = FetchSessionCache()
    ctx = cache.new_context(0, 0, parts(("a", 0), ("b", 0)))
    assert ctx.session_id > 0 and not ctx.incremental
    assert serve(ctx, {}) == [("a", 0), ("b", 0)]
    session = cache.get(ctx.session_id)
    assert session is not None and session.next_epoch == 1
    assert list(session.partitions) == [("a", 0), ("b", 0)]


def test_incremental_fetch_includes_only_partitions_with_news():
    cache = FetchSessionCache()
    full = cache.new_context(0, 0, parts(("a", 0), ("b", 0), ("c", 0)))
    serve(full, {("a", 0): (5, True, 0), ("b", 0): (7, True, 0), ("c", 0): (0, False, 0)})
    sid = full.session_id
    inc = cache.new_context(sid, 1, [])
    assert (inc.error_code, inc.session_id, inc.incremental) == (0, sid, True)
    assert serve(inc, {("a", 0): (5, False, 0), ("b", 0): (7, False, 0), ("c", 0): (0, False, 0)}) == []
    inc = cache.new_context(sid, 2, [])
    news = {("a", 0): (5, False, 0), ("b", 0): (8, False, 0), ("c", 0): (0, True, 0)}
    assert serve(inc, news) == [("b", 0), ("c", 0)]
    inc = cache.new_context(sid, 3, [])
    errors = {**news, ("a", 0): (5, False, E.NOT_LEADER_FOR_PARTITION.code), ("c", 0): (0, False, 0)}
    assert serve(inc, errors) == [("a", 0)]


def test_log_start_offset_change_is_reported():
    cache = FetchSessionCache()
    full = cache.new_context(0, 0, parts(("a", 0)))
    assert full.should_include(("a", 0), high_watermark=10, log_start_offset=0)
    inc = cache.new_context(full.session_id, 1, [])
    assert not inc.should_include(("a", 0), high_watermark=10, log_start_offset=0)
    inc = cache.new_context(full.session_id, 2, [])
    assert inc.should_include(("a", 0), high_watermark=10, log_start_offset=4)


def test_incremental_adds_updates_and_forgets_partitions():
    cache = FetchSessionCache()
    full = cache.new_context(0, 0, parts(("a", 0), ("a", 1)))
    sid = full.session_id
    inc = cache.new_context(sid, 1, [(("a", 1), fp(42)), (("b", 0), fp(7))], forgotten=[("a", 0)])
    got = dict(inc.partitions())
    assert set(got) == {("a", 1), ("b", 0)}
    assert got[("a", 1)].fetch_offset == 42 and got[("b", 0)].fetch_offset == 7
    # a newly added partition has never been reported, so it is included
    assert inc.should_include(("b", 0), high_watermark=0, log_start_offset=0)


def test_included_partitions_rotate_to_the_end():
    cache = FetchSessionCache()
    full = cache.new_context(0, 0, parts(("a", 0), ("b", 0), ("c", 0)))
    serve(full, {})
    inc = cache.new_context(full.session_id, 1, [])
    serve(inc, {("a", 0): (0, True, 0)})
    assert [k for k, _ in cache.new_context(full.session_id, 2, []).partitions()] == [
        ("b", 0),
        ("c", 0),
        ("a", 0),
    ]


def test_unknown_session_id_is_not_found():
    cache = FetchSessionCache()
    ctx = cache.new_context(12345, 1, [])
    assert ctx.error_code == E.FETCH_SESSION_ID_NOT_FOUND.code == 70
    assert ctx.partitions() == []


def test_wrong_epoch_is_invalid_and_does_not_advance_the_session():
    cache = FetchSessionCache()
    sid = cache.new_context(0, 0, parts(("a", 0))).session_id
    for epoch in (2, 5):
        assert cache.new_context(sid, epoch, []).error_code == E.INVALID_FETCH_SESSION_EPOCH.code == 71
    assert cache.new_context(sid, 1, []).error_code == 0
    assert cache.new_context(sid, 1, []).error_code == E.INVALID_FETCH_SESSION_EPOCH.code
    assert cache.new_context(sid, 2, []).error_code == 0


def test_final_epoch_closes_the_session_and_serves_sessionless():
    cache = FetchSessionCache()
    sid = cache.new_context(0, 0, parts(("a", 0))).session_id
    ctx = cache.new_context(sid, -1, parts(("z", 0)))
    assert (ctx.error_code, ctx.session_id) == (0, 0)
    assert [k for k, _ in ctx.partitions()] == [("z", 0)]
    assert cache.get(sid) is None


def test_initial_epoch_with_existing_id_replaces_the_session():
    cache = FetchSessionCache()
    sid = cache.new_context(0, 0, parts(("a", 0))).session_id
    ctx = cache.new_context(sid, 0, parts(("b", 0)))
    assert cache.get(sid) is None
    assert ctx.session_id != 0 and ctx.session_id != sid
    assert len(cache) == 1


def test_topic_id_use_must_match_the_session():
    cache = FetchSessionCache()
    sid = cache.new_context(0, 0, parts(("id-1", 0)), uses_topic_ids=True).session_id
    assert (
        cache.new_context(sid, 1, [], uses_topic_ids=False).error_code == E.FETCH_SESSION_TOPIC_ID_ERROR.code
    )
    assert cache.new_context(sid, 1, [], uses_topic_ids=True).error_code == 0


def test_full_cache_evicts_a_stale_session_first():
    clock = Clock()
    cache = FetchSessionCache(max_slots=2, eviction_ms=1000, clock_ms=clock)
    big_old = cache.new_context(0, 0, parts(*[("t", i) for i in range(10)])).session_id
    clock.now += 500
    small_new = cache.new_context(0, 0, parts(("t", 0))).session_id
    clock.now += 600  # big_old idle 1100 ms: stale; small_new idle 600 ms
    third = cache.new_context(0, 0, parts(("u", 0))).session_id
    assert third != 0
    assert cache.get(big_old) is None and cache.get(small_new) is not None
    assert cache.evictions == 1


def test_full_cache_lets_a_larger_session_evict_the_smallest():
    clock = Clock()
    cache = FetchSessionCache(max_slots=2, eviction_ms=10_000, clock_ms=clock)
    small = cache.new_context(0, 0, parts(("t", 0))).session_id
    clock.now += 1
    medium = cache.new_context(0, 0, parts(("t", 0), ("t", 1), ("t", 2))).session_id
    clock.now += 1
    # no larger than the smallest: served without a session
    same = cache.new_context(0, 0, parts(("x", 0)))
    assert same.session_id == 0 and same.error_code == 0
    assert [k for k, _ in same.partitions()] == [("x", 0)]
    assert cache.sessionless_fallbacks == 1
    bigger = cache.new_context(0, 0, parts(("x", 0), ("x", 1))).session_id
    assert bigger != 0
    assert cache.get(small) is None and cache.get(medium) is not None
    assert len(cache) == 2


def test_zero_slots_means_no_sessions():
    cache = FetchSessionCache(max_slots=0)
    ctx = cache.new_context(0, 0, parts(("a", 0)))
    assert ctx.session_id == 0 and [k for k, _ in ctx.partitions()] == [("a", 0)]


def test_session_epoch_wraps_to_one():
    cache = FetchSessionCache()
    sid = cache.new_context(0, 0, parts(("a", 0))).session_id
    cache.get(sid).next_epoch = 2**31 - 1
    assert cache.new_context(sid, 2**31 - 1, []).error_code == 0
    assert cache.get(sid).next_epoch == 1


def test_forget_partitions_of_a_deleted_topic():
    cache = FetchSessionCache()
    sid = cache.new_context(0, 0, parts(("a", 0), ("b", 0))).session_id
    cache.forget_partitions(lambda key: key[0] == "a")
    assert list(cache.get(sid).partitions) == [("b", 0)]
