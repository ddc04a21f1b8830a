"""Classic consumer-group state machine: joins, syncs, heartbeats, leaves, timeouts, static members.

Every test drives the coordinator on a fresh event loop; completion is asserted
by event order (a join is done after a few loop turns, before any timer could
have fired), never by measuring wall time.
"""

from __future__ import annotations

import asyncio

import pytest

from streamcore.broker.group_coordinator import GroupCoordinator
from streamcore.broker.group_types import GroupState, JoinResult
from streamcore.errors import ErrorCode

LONG_MS = 300_000  # timeouts that must never fire in the prompt-join tests
GUARD_S = 10  # only guards against a hang; no test gets near it

E = ErrorCode


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, GUARD_S))


async def turns(n: int = 5) -> None:
    """Let the loop run ready callbacks a few times (no timer can fire meanwhile at LONG_MS)."""
    for _ in range(n):
        await asyncio.sleep(0)


class LoopClock:
    """The running loop's clock, moved only by :meth:`advance`.

    The coordinator's session and rebalance timers are ``loop.call_later`` timers. On
    the real clock a test of a 40 ms session is a race with the scheduler: a loaded
    machine that does not run the test for 40 ms expires members the test meant to keep,
    or fires a timer before the test looked at what it holds up. On this clock a timer
    fires when the test moves time past it, and at no other moment.
    """

    def __init__(self) -> None:
        loop = asyncio.get_running_loop()
        self._now = loop.time()
        # BaseEventLoop.time is a plain method: the loop's timers and its select timeout
        # read the time through this attribute.
        loop.time = self.time  # type: ignore[method-assign]

    def time(self) -> float:
        return self._now

    async def advance(self, ms: float) -> None:
        """Move time on by ``ms`` and let the loop run what fell due."""
        self._now += ms / 1000.0
        await turns()


def coordinator(**kw) -> GroupCoordinator:
    kw.setdefault("min_session_timeout_ms", 1)
    return GroupCoordinator(**kw)


def join(gc, member_id="", *, group="g", instance=None, session=LONG_MS, rebalance=LONG_MS,
         ptype="consumer", protocols=(("range", b"m"),), v4=False, client="c"):  # fmt: skip
    return asyncio.ensure_future(
        gc.join_group(
            group,
            member_id,
            instance,
            client,
            "/127.0.0.1",
            session,
            rebalance,
            ptype,
            list(protocols),
            require_known_member_id=v4,
        )  # fmt: skip
    )


async def join_new(gc, **kw) -> JoinResult:
    """Join as a brand-new dynamic member and wait for the answer."""
    return await join(gc, **kw)


async def stable_group(gc, n: int, *, group="g", session=LONG_MS, rebalance=LONG_MS):
    """Bring n dynamic members into a Stable group; returns their member ids (leader first)."""
    ids: list[str] = []
    for i in range(n):
        new = join(
            gc, group=group, session=session, rebalance=rebalance, protocols=[("range", f"m{i}".encode())]
        )
        rejoin = [join(gc, mid, group=group, session=session, rebalance=rebalance,
                       protocols=[("range", f"m{j}".encode())]) for j, mid in enumerate(ids)]  # fmt: skip
        results = await asyncio.gather(new, *rejoin)
        assert all(r.error_code == 0 for r in results), results
        ids.append(results[0].member_id)
        gen = results[0].generation_id
        leader = results[0].leader_id
        syncs = [gc.sync_group(group, gen, mid, None, [(m, m.encode()) for m in ids] if mid == leader else [])
                 for mid in ids]  # fmt: skip
        for r in await asyncio.gather(*syncs):
            assert r.error_code == 0
    assert gc.state(group) is GroupState.STABLE
    return ids


# --------------------------------------------------------------------------- joins


def test_first_join_of_a_new_group_is_answered_at_once():
    async def main():
        gc = coordinator()
        t = join(gc, rebalance=LONG_MS)
        await turns()
        assert t.done(), "a lone first member must not wait for any timer"
        r = t.result()
        assert r.error_code == 0
        assert r.generation_id == 1
        assert r.leader_id == r.member_id
        assert [m.member_id for m in r.members] == [r.member_id]
        assert r.protocol_name == "range"
        assert gc.state("g") is GroupState.COMPLETING_REBALANCE

    run(main())


def test_member_id_required_flow_for_join_v4():
    async def main():
        gc = coordinator()
        first = await join(gc, v4=True)
        assert first.error_code == E.MEMBER_ID_REQUIRED.code
        assert first.member_id
        assert gc.state("g") is GroupState.EMPTY
        t = join(gc, first.member_id, v4=True)
        await turns()
        assert t.done()
        r = t.result()
        assert (r.error_code, r.member_id, r.leader_id, r.generation_id) == (
            0,
            first.member_id,
            first.member_id,
            1,
        )

    run(main())


def test_three_members_joining_in_sequence_each_rebalance_completes_promptly():
    async def main():
        events: list[tuple[str, int]] = []
        gc = coordinator(on_rebalance=lambda g, gen: events.append(("rebalanced", gen)))
        members: list[str] = []
        for i in range(3):
            new = join(gc, protocols=[("range", f"sub{i}".encode())])
            await turns()
            for mid in members:
                # existing members learn about the rebalance from their heartbeat, then rejoin
                assert gc.heartbeat("g", gc.generation("g"), mid, None) == E.REBALANCE_IN_PROGRESS.code
                events.append(("heartbeat-told-rejoin", i))
            rejoins = [
                join(gc, mid, protocols=[("range", f"sub{j}".encode())]) for j, mid in enumerate(members)
            ]
            await turns()
            assert new.done() and all(t.done() for t in rejoins), "rebalance must end once all rejoined"
            results = [new.result()] + [t.result() for t in rejoins]
            events.append(("joined", i))
            assert {r.generation_id for r in results} == {i + 1}
            assert all(r.error_code == 0 for r in results)
            members.append(new.result().member_id)
            leader = results[0].leader_id
            assert leader == members[0]
            gen = results[0].generation_id
            syncs = [asyncio.ensure_future(gc.sync_group("g", gen, m, None, [(x, x.encode()) for x in members]
                                                          if m == leader else []))  # fmt: skip
                     for m in members]  # fmt: skip
            await turns()
            assert all(s.done() for s in syncs)
            assert [s.result().assignment for s in syncs] == [m.encode() for m in members]
        assert events == [
            ("rebalanced", 1), ("joined", 0),
            ("heartbeat-told-rejoin", 1), ("rebalanced", 2), ("joined", 1),
            ("heartbeat-told-rejoin", 2), ("heartbeat-told-rejoin", 2), ("rebalanced", 3), ("joined", 2),
        ]  # fmt: skip
        assert gc.rebalance_count == 3

    run(main())


def test_leader_sees_each_members_own_latest_metadata():
    async def main():
        gc = coordinator()
        a, b = await stable_group(gc, 2)
        # b rejoins with a new subscription; a rejoins with its old one
        tb = join(gc, b, protocols=[("range", b"b-new-topics")])
        ta = join(gc, a, protocols=[("range", b"m0")])
        ra, rb = await asyncio.gather(ta, tb)
        leader_view = {m.member_id: m.metadata for m in ra.members}
        assert leader_view == {a: b"m0", b: b"b-new-topics"}
        assert rb.members == ()

    run(main())


def test_protocol_with_most_member_votes_is_chosen():
    async def main():
        gc = coordinator()
        t1 = join(gc, protocols=[("range", b"1"), ("roundrobin", b"1")])
        r1 = await t1
        t2 = join(gc, protocols=[("roundrobin", b"2"), ("range", b"2")])
        t3 = join(gc, protocols=[("roundrobin", b"3"), ("sticky", b"3"), ("range", b"3")])
        await turns()
        t1 = join(gc, r1.member_id, protocols=[("range", b"1"), ("roundrobin", b"1")])
        results = await asyncio.gather(t1, t2, t3)
        assert {r.protocol_name for r in results} == {"roundrobin"}
        leader = next(r for r in results if r.members)
        assert sorted(m.metadata for m in leader.members) == [b"1", b"2", b"3"]

    run(main())


def test_join_with_no_common_protocol_or_other_type_is_inconsistent():
    async def main():
        gc = coordinator()
        await stable_group(gc, 1)
        r = await join(gc, protocols=[("sticky", b"")])
        assert r.error_code == E.INCONSISTENT_GROUP_PROTOCOL.code
        r = await join(gc, ptype="connect")
        assert r.error_code == E.INCONSISTENT_GROUP_PROTOCOL.code
        r = await join(gc, group="other", protocols=[])
        assert r.error_code == E.INCONSISTENT_GROUP_PROTOCOL.code

    run(main())


def test_join_argument_errors():
    async def main():
        gc = coordinator(min_session_timeout_ms=1000, max_session_timeout_ms=2000)
        assert (await join(gc, session=999)).error_code == E.INVALID_SESSION_TIMEOUT.code
        assert (await join(gc, session=2001)).error_code == E.INVALID_SESSION_TIMEOUT.code
        assert (await join(gc, group="", session=1000)).error_code == E.INVALID_GROUP_ID.code
        r = await join(gc, "made-up", group="new", session=1000)
        assert r.error_code == E.UNKNOWN_MEMBER_ID.code
        assert gc.state("new") is None

    run(main())


def test_unknown_member_id_in_existing_group():
    async def main():
        gc = coordinator()
        await stable_group(gc, 1)
        assert (await join(gc, "nobody")).error_code == E.UNKNOWN_MEMBER_ID.code

    run(main())


def test_stable_follower_rejoining_unchanged_gets_current_generation_without_rebalance():
    async def main():
        gc = coordinator()
        a, b = await stable_group(gc, 2)
        gen = gc.generation("g")
        r = await join(gc, b, protocols=[("range", b"m1")])
        assert (r.error_code, r.generation_id, r.leader_id, r.members) == (0, gen, a, ())
        assert gc.state("g") is GroupState.STABLE

    run(main())


def test_repeated_join_while_completing_rebalance_repeats_the_answer():
    async def main():
        gc = coordinator()
        r1 = await join(gc)
        r2 = await join(gc, r1.member_id)
        assert (r2.generation_id, r2.leader_id, [m.member_id for m in r2.members]) == (
            r1.generation_id, r1.leader_id, [m.member_id for m in r1.members])  # fmt: skip
        assert gc.rebalance_count == 1

    run(main())


def test_duplicate_join_while_waiting_answers_the_older_request_with_rebalance_in_progress():
    async def main():
        gc = coordinator()
        a, b = await stable_group(gc, 2)
        first = join(gc, b, protocols=[("range", b"x")])
        await turns()
        second = join(gc, b, protocols=[("range", b"y")])
        await turns()
        assert first.done() and first.result().error_code == E.REBALANCE_IN_PROGRESS.code
        ra = await join(gc, a, protocols=[("range", b"m0")])
        assert {m.member_id: m.metadata for m in ra.members}[b] == b"y"
        assert (await second).error_code == 0

    run(main())


# --------------------------------------------------------------------------- sync


def test_followers_wait_for_the_leaders_sync():
    async def main():
        gc = coordinator()
        r1 = await join(gc)
        t2 = join(gc)
        await turns()
        t1 = join(gc, r1.member_id)
        r1, r2 = await asyncio.gather(t1, t2)
        leader, follower = (r1, r2) if r1.members else (r2, r1)
        fs = asyncio.ensure_future(gc.sync_group("g", follower.generation_id, follower.member_id, None, []))
        await turns()
        assert not fs.done()
        ls = await gc.sync_group("g", leader.generation_id, leader.member_id, None,
                                 [(follower.member_id, b"F"), (leader.member_id, b"L")])  # fmt: skip
        await turns()
        assert fs.done()
        assert (ls.error_code, ls.assignment, ls.protocol_name) == (0, b"L", "range")
        assert (fs.result().error_code, fs.result().assignment) == (0, b"F")
        assert gc.state("g") is GroupState.STABLE
        # a Stable group answers a repeated sync at once
        again = await gc.sync_group("g", follower.generation_id, follower.member_id, None, [])
        assert again.assignment == b"F"

    run(main())


def test_sync_error_codes():
    async def main():
        gc = coordinator()
        (a,) = await stable_group(gc, 1)
        gen = gc.generation("g")
        assert (await gc.sync_group("nope", gen, a, None, [])).error_code == E.UNKNOWN_MEMBER_ID.code
        assert (await gc.sync_group("g", gen, "x", None, [])).error_code == E.UNKNOWN_MEMBER_ID.code
        assert (await gc.sync_group("g", gen + 1, a, None, [])).error_code == E.ILLEGAL_GENERATION.code
        r = await gc.sync_group("g", gen, a, None, [], protocol_name="roundrobin")
        assert r.error_code == E.INCONSISTENT_GROUP_PROTOCOL.code
        r = await gc.sync_group("g", gen, a, None, [], protocol_type="consumer", protocol_name="range")
        assert r.error_code == 0
        newcomer = join(gc)
        await turns()
        assert gc.state("g") is GroupState.PREPARING_REBALANCE
        assert (await gc.sync_group("g", gen, a, None, [])).error_code == E.REBALANCE_IN_PROGRESS.code
        newcomer.cancel()

    run(main())


def test_members_waiting_on_sync_are_told_to_rejoin_when_a_rebalance_starts():
    async def main():
        gc = coordinator()
        r1 = await join(gc)
        t2 = join(gc)
        await turns()
        t1 = join(gc, r1.member_id)
        ra, rb = await asyncio.gather(t1, t2)
        follower = rb if ra.members else ra
        fs = asyncio.ensure_future(gc.sync_group("g", follower.generation_id, follower.member_id, None, []))
        await turns()
        late = join(gc)
        await turns()
        assert fs.done() and fs.result().error_code == E.REBALANCE_IN_PROGRESS.code
        late.cancel()

    run(main())


def test_assignment_left_out_by_the_leader_is_empty():
    async def main():
        gc = coordinator()
        r = await join(gc)
        t2 = join(gc)
        await turns()
        t1 = join(gc, r.member_id)
        r1, r2 = await asyncio.gather(t1, t2)
        leader, follower = (r1, r2) if r1.members else (r2, r1)
        fs = asyncio.ensure_future(gc.sync_group("g", follower.generation_id, follower.member_id, None, []))
        await gc.sync_group("g", leader.generation_id, leader.member_id, None, [(leader.member_id, b"all")])
        assert (await fs).assignment == b""

    run(main())


# --------------------------------------------------------------------------- heartbeat


def test_heartbeat_error_codes():
    async def main():
        gc = coordinator()
        a, b = await stable_group(gc, 2)
        gen = gc.generation("g")
        assert gc.heartbeat("g", gen, a, None) == 0
        assert gc.heartbeat("missing", gen, a, None) == E.UNKNOWN_MEMBER_ID.code
        assert gc.heartbeat("g", gen, "stranger", None) == E.UNKNOWN_MEMBER_ID.code
        assert gc.heartbeat("g", gen - 1, a, None) == E.ILLEGAL_GENERATION.code
        t = join(gc, b, protocols=[("range", b"changed")])
        await turns()
        assert gc.heartbeat("g", gen, a, None) == E.REBALANCE_IN_PROGRESS.code
        ra = await join(gc, a, protocols=[("range", b"m0")])
        await t
        assert gc.heartbeat("g", ra.generation_id, a, None) == 0  # CompletingRebalance is fine

    run(main())


# --------------------------------------------------------------------------- timeouts


def test_rebalance_timeout_removes_members_that_did_not_rejoin():
    async def main():
        clock = LoopClock()
        gc = coordinator()
        a, b = await stable_group(gc, 2, rebalance=50)
        newcomer = join(gc, rebalance=50)
        ra = join(gc, a, rebalance=50, protocols=[("range", b"m0")])
        await turns()
        assert not newcomer.done(), "b has not rejoined, so the rebalance waits"
        await clock.advance(49)
        assert not newcomer.done(), "the rebalance timeout has not passed yet"
        await clock.advance(2)
        assert newcomer.done() and ra.done(), "the rebalance timeout ends the wait for b"
        r_new, r_a = await asyncio.gather(newcomer, ra)
        assert r_new.generation_id == r_a.generation_id == 3
        assert set(gc.member_ids("g")) == {a, r_new.member_id}
        assert gc.heartbeat("g", r_a.generation_id, b, None) == E.UNKNOWN_MEMBER_ID.code

    run(main())


def test_session_timeout_expires_a_silent_member_and_rebalances():
    async def main():
        clock = LoopClock()
        gc = coordinator()
        a, b = await stable_group(gc, 2, session=40)
        gen = gc.generation("g")
        # a heartbeats at 30 ms and is asked again at 50 ms; b stays silent past its 40 ms.
        await clock.advance(30)
        assert gc.heartbeat("g", gen, a, None) == 0
        assert set(gc.member_ids("g")) == {a, b}
        await clock.advance(20)
        assert gc.heartbeat("g", gen, a, None) == E.REBALANCE_IN_PROGRESS.code
        assert gc.member_ids("g") == [a]
        r = await join(gc, a, session=40, protocols=[("range", b"m0")])
        assert (r.error_code, r.generation_id, r.leader_id) == (0, gen + 1, a)

    run(main())


def test_last_member_expiring_leaves_the_group_empty_with_next_generation():
    async def main():
        gc = coordinator()
        (a,) = await stable_group(gc, 1, session=20)
        gen = gc.generation("g")
        for _ in range(300):
            if gc.state("g") is GroupState.EMPTY:
                break
            await asyncio.sleep(0.01)
        assert gc.state("g") is GroupState.EMPTY
        assert gc.generation("g") == gen + 1
        assert gc.heartbeat("g", gen, a, None) == E.UNKNOWN_MEMBER_ID.code
        assert gc.empty_since_ms("g") is not None

    run(main())


def test_unclaimed_member_id_from_member_id_required_expires_and_stops_blocking():
    async def main():
        clock = LoopClock()
        gc = coordinator()
        (a,) = await stable_group(gc, 1)
        pending = await join(gc, v4=True, session=30)
        assert pending.error_code == E.MEMBER_ID_REQUIRED.code
        # a change by a forces a rebalance; the pending id holds it until it expires
        t = join(gc, a, protocols=[("range", b"new")])
        await turns()
        assert not t.done()
        await clock.advance(29)
        assert not t.done()
        await clock.advance(2)
        assert t.done()
        r = await t
        assert (r.error_code, r.generation_id) == (0, 2)
        assert gc.member_ids("g") == [a]

    run(main())


# --------------------------------------------------------------------------- static membership


def test_static_member_restart_with_same_metadata_keeps_generation_and_fences_old_id():
    async def main():
        gc = coordinator()
        ra = await join(gc, instance="i-a")
        t_b = join(gc, instance="i-b", protocols=[("range", b"b")])
        await turns()
        t_a = join(gc, ra.member_id, instance="i-a")
        ra, rb = await asyncio.gather(t_a, t_b)
        gen = ra.generation_id
        s_a = gc.sync_group("g", gen, ra.member_id, "i-a", [(ra.member_id, b"A"), (rb.member_id, b"B")])
        s_b = gc.sync_group("g", gen, rb.member_id, "i-b", [])
        await asyncio.gather(s_a, s_b)
        count = gc.rebalance_count
        # b restarts: same instance id, empty member id, same metadata
        rb2 = await join(gc, instance="i-b", protocols=[("range", b"b")])
        assert rb2.error_code == 0
        assert rb2.member_id != rb.member_id
        assert (rb2.generation_id, rb2.leader_id) == (gen, ra.member_id)
        assert gc.rebalance_count == count
        assert gc.state("g") is GroupState.STABLE
        assert gc.heartbeat("g", gen, rb.member_id, "i-b") == E.FENCED_INSTANCE_ID.code
        assert (
            await gc.sync_group("g", gen, rb.member_id, "i-b", [])
        ).error_code == E.FENCED_INSTANCE_ID.code
        assert (await join(gc, rb.member_id, instance="i-b")).error_code == E.FENCED_INSTANCE_ID.code
        assert (await gc.sync_group("g", gen, rb2.member_id, "i-b", [])).assignment == b"B"
        assert gc.heartbeat("g", gen, rb2.member_id, "i-b") == 0

    run(main())


def test_static_member_restart_with_new_metadata_triggers_rebalance():
    async def main():
        gc = coordinator()
        r = await join(gc, instance="i-a")
        await gc.sync_group("g", r.generation_id, r.member_id, "i-a", [(r.member_id, b"A")])
        r2 = await join(gc, instance="i-a", protocols=[("range", b"other-topics")])
        assert r2.error_code == 0
        assert r2.generation_id == r.generation_id + 1
        assert r2.leader_id == r2.member_id
        assert [m.metadata for m in r2.members] == [b"other-topics"]

    run(main())


def test_static_member_replaced_while_waiting_in_join_gets_fenced():
    async def main():
        gc = coordinator()
        a, b = await stable_group(gc, 2)
        r_s = join(gc, instance="i-s")  # triggers a rebalance; waits for a and b
        await turns()
        r_s2 = join(gc, instance="i-s")  # the same instance restarts before the rebalance ends
        await turns()
        assert r_s.done() and r_s.result().error_code == E.FENCED_INSTANCE_ID.code
        ja = join(gc, a, protocols=[("range", b"m0")])
        jb = join(gc, b, protocols=[("range", b"m1")])
        results = await asyncio.gather(ja, jb, r_s2)
        assert all(x.error_code == 0 for x in results)
        assert len(gc.member_ids("g")) == 3

    run(main())


# --------------------------------------------------------------------------- leave


def test_leave_group_batch_reports_each_member_and_rebalances():
    async def main():
        gc = coordinator()
        ra = await join(gc, instance="i-a")
        t_b = join(gc)
        await turns()
        t_a = join(gc, ra.member_id, instance="i-a")
        ra, rb = await asyncio.gather(t_a, t_b)
        leader = ra if ra.members else rb
        await asyncio.gather(
            gc.sync_group("g", ra.generation_id, ra.member_id, "i-a", []),
            gc.sync_group("g", rb.generation_id, rb.member_id, None, []),
        )
        assert leader is not None
        top, res = gc.leave_group(
            "g", [(rb.member_id, None), ("ghost", None), ("", "i-unknown"), ("wrong-id", "i-a")]
        )
        assert top == 0
        assert [r.error_code for r in res] == [0, E.UNKNOWN_MEMBER_ID.code, E.UNKNOWN_MEMBER_ID.code,
                                              E.FENCED_INSTANCE_ID.code]  # fmt: skip
        assert (
            gc.state("g") is GroupState.PREPARING_REBALANCE
            or gc.state("g") is GroupState.COMPLETING_REBALANCE
        )
        r = await join(gc, ra.member_id, instance="i-a")
        assert r.generation_id == ra.generation_id + 1
        top, res = gc.leave_group("g", [("", "i-a")])
        assert [x.error_code for x in res] == [0]
        assert gc.state("g") is GroupState.EMPTY

    run(main())


def test_leave_unknown_group_reports_unknown_member():
    async def main():
        gc = coordinator()
        top, res = gc.leave_group("none", [("m", None)])
        assert top == 0 and res[0].error_code == E.UNKNOWN_MEMBER_ID.code

    run(main())


def test_leaving_member_waiting_in_join_lets_the_rebalance_finish():
    async def main():
        gc = coordinator()
        a, b = await stable_group(gc, 2)
        ja = join(gc, a, protocols=[("range", b"changed")])
        await turns()
        gc.leave_group("g", [(b, None)])
        r = await ja
        assert (r.error_code, [m.member_id for m in r.members]) == (0, [a])

    run(main())


# --------------------------------------------------------------------------- commits, describe, list, delete


def test_commit_validation():
    async def main():
        gc = coordinator()
        assert gc.validate_commit("fresh", -1, "", None) == 0
        assert gc.validate_commit("fresh", 3, "m", None) == E.ILLEGAL_GENERATION.code
        r = await join(gc)
        assert gc.validate_commit("g", r.generation_id, r.member_id, None) == E.REBALANCE_IN_PROGRESS.code
        await gc.sync_group("g", r.generation_id, r.member_id, None, [(r.member_id, b"")])
        assert gc.validate_commit("g", r.generation_id, r.member_id, None) == 0
        assert gc.validate_commit("g", r.generation_id + 1, r.member_id, None) == E.ILLEGAL_GENERATION.code
        assert gc.validate_commit("g", r.generation_id, "other", None) == E.UNKNOWN_MEMBER_ID.code
        assert gc.validate_commit("g", -1, "", None) == E.UNKNOWN_MEMBER_ID.code
        gc.leave_group("g", [(r.member_id, None)])
        assert gc.state("g") is GroupState.EMPTY
        assert gc.validate_commit("g", -1, "", None) == 0

    run(main())


def test_describe_and_list_groups():
    async def main():
        gc = coordinator()
        (a,) = await stable_group(gc, 1)
        d = gc.describe_group("g")
        assert (d.state, d.protocol_type, d.protocol_name) == ("Stable", "consumer", "range")
        assert [(m.member_id, m.client_id, m.client_host, m.metadata, m.assignment) for m in d.members] == [
            (a, "c", "/127.0.0.1", b"m0", a.encode())
        ]
        missing = gc.describe_group("zzz")
        assert (missing.state, missing.members, missing.error_code) == ("Dead", (), 0)
        await join(gc, group="h")
        listing = {x.group_id: x.state for x in gc.list_groups()}
        assert listing == {"g": "Stable", "h": "CompletingRebalance"}
        assert [x.group_id for x in gc.list_groups(["stable"])] == ["g"]
        d = gc.describe_group("h")
        assert d.protocol_name == "" and d.members[0].metadata == b""

    run(main())


def test_delete_groups_only_when_empty():
    async def main():
        gc = coordinator()
        await stable_group(gc, 1)
        gc.validate_commit("simple", -1, "", None)
        await join(gc, group="e")
        gc.leave_group("e", [(gc.member_ids("e")[0], None)])
        assert gc.delete_groups(["g", "e", "nope"]) == {
            "g": E.NON_EMPTY_GROUP.code, "e": 0, "nope": E.GROUP_ID_NOT_FOUND.code}  # fmt: skip
        assert gc.state("e") is None

    run(main())


def test_close_answers_parked_requests():
    async def main():
        gc = coordinator()
        a, b = await stable_group(gc, 2)
        t = join(gc, a, protocols=[("range", b"x")])
        await turns()
        gc.close()
        assert (await t).error_code == E.COORDINATOR_NOT_AVAILABLE.code

    run(main())


@pytest.mark.parametrize("generations", [3])
def test_generation_increases_by_one_per_rebalance(generations):
    async def main():
        gc = coordinator()
        (a,) = await stable_group(gc, 1)
        seen = [gc.generation("g")]
        for i in range(generations):
            r = await join(gc, a, protocols=[("range", f"v{i}".encode())])
            seen.append(r.generation_id)
        assert seen == list(range(seen[0], seen[0] + generations + 1))

    run(main())


def test_initial_rebalance_delay_holds_the_first_join_until_it_passes():
    async def main():
        gc = coordinator(initial_rebalance_delay_ms=30)
        first = join(gc)
        await turns()
        assert not first.done()
        second = join(gc)
        results = await asyncio.gather(first, second)
        assert {r.generation_id for r in results} == {1}
        assert sorted(len(r.members) for r in results) == [0, 2]

    run(main())


def test_from_config_uses_the_groups_settings():
    from streamcore.broker.config import load_config

    cfg = load_config(env={"STREAMCORE_GROUPS_MIN_SESSION_TIMEOUT_MS": "2s"})
    gc = GroupCoordinator.from_config(cfg.groups)
    assert (gc.min_session_timeout_ms, gc.max_session_timeout_ms, gc.initial_rebalance_delay_ms) == (
        2000,
        1_800_000,
        0,
    )
