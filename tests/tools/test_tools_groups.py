"""``streamcore groups``: list, describe (offsets, log end, lag), delete and reset-offsets."""

from __future__ import annotations

from streamcore.client.blocking import Consumer

from .helpers import failed_with_one_line, ok, run_cli, table


def _group_with_offsets(
    bootstrap: str, name: str, produced: int, consumed: int
) -> tuple[str, tuple[str, ...]]:
    """A topic ``name`` with ``produced`` records and an inactive group that consumed ``consumed``."""
    b = ("--bootstrap", bootstrap, "--timeout", "20")
    ok(run_cli("topics", "create", name, "--partitions", "1", *b))
    ok(run_cli("produce", name, *b, input=b"".join(b"r%d\n" % i for i in range(produced))))
    group = f"g-{name}"
    ok(run_cli("consume", name, "--group", group, "--from-beginning", "--max-messages", str(consumed), *b))
    return group, b


def _offsets(group: str, b: tuple[str, ...]) -> list[dict[str, str]]:
    return table(ok(run_cli("groups", "describe", group, *b)))


def test_describe_shows_committed_offset_log_end_and_lag(bootstrap: str, name: str) -> None:
    group, b = _group_with_offsets(bootstrap, name, produced=10, consumed=4)
    out = ok(run_cli("groups", "describe", group, *b))
    assert out.splitlines()[0].split()[:5] == [
        "TOPIC",
        "PARTITION",
        "CURRENT-OFFSET",
        "LOG-END-OFFSET",
        "LAG",
    ]
    (row,) = table(out)
    assert (row["TOPIC"], row["PARTITION"], row["CURRENT-OFFSET"], row["LOG-END-OFFSET"], row["LAG"]) == (
        name, "0", "4", "10", "6",
    )  # fmt: skip
    assert row["CONSUMER-ID"] == "-"  # nobody consumes now


def test_describe_names_the_member_of_an_active_group(bootstrap: str, name: str) -> None:
    group, b = _group_with_offsets(bootstrap, name, produced=3, consumed=3)
    c = Consumer(
        bootstrap, group_id=group, client_id="tool-test", session_timeout_ms=10_000, heartbeat_interval_ms=200
    )
    try:
        c.subscribe([name])
        c.wait_for_assignment(30)
        (row,) = _offsets(group, b)
        assert row["CLIENT-ID"] == "tool-test" and row["CONSUMER-ID"] != "-" and row["LAG"] == "0"
        # Resetting the offsets of a group with members is refused, as kafka-consumer-groups does.
        line = failed_with_one_line(
            run_cli("groups", "reset-offsets", group, "--all-topics", "--to-earliest", *b)
        )
        assert "stop its consumers" in line
    finally:
        c.close()


def test_list_prints_group_ids_and_states(bootstrap: str, name: str) -> None:
    group, b = _group_with_offsets(bootstrap, name, produced=1, consumed=1)
    assert group in ok(run_cli("groups", "list", *b)).splitlines()
    rows = {r["GROUP"]: r["STATE"] for r in table(ok(run_cli("groups", "list", "--state", *b)))}
    assert rows[group] == "Empty"


def test_reset_offsets_dry_run_changes_nothing_and_execute_commits(bootstrap: str, name: str) -> None:
    group, b = _group_with_offsets(bootstrap, name, produced=10, consumed=4)
    plan = run_cli("groups", "reset-offsets", group, "--topic", name, "--to-earliest", *b)
    assert table(ok(plan)) == [{"GROUP": group, "TOPIC": name, "PARTITION": "0", "NEW-OFFSET": "0"}]
    assert b"--execute" in plan.stderr
    assert _offsets(group, b)[0]["CURRENT-OFFSET"] == "4"

    ok(run_cli("groups", "reset-offsets", group, "--topic", f"{name}:0", "--to-earliest", "--execute", *b))
    assert _offsets(group, b)[0]["CURRENT-OFFSET"] == "0"
    out = ok(run_cli("consume", name, "--group", group, "--max-messages", "1", *b))
    assert out == "r0\n"  # the group really starts over

    ok(run_cli("groups", "reset-offsets", group, "--all-topics", "--shift-by", "5", "--execute", *b))
    assert _offsets(group, b)[0]["CURRENT-OFFSET"] == "6"
    ok(run_cli("groups", "reset-offsets", group, "--all-topics", "--shift-by", "-100", "--execute", *b))
    assert _offsets(group, b)[0]["CURRENT-OFFSET"] == "0"  # kept within the log
    ok(run_cli("groups", "reset-offsets", group, "--all-topics", "--to-offset", "99", "--execute", *b))
    assert _offsets(group, b)[0]["CURRENT-OFFSET"] == "10"
    ok(run_cli("groups", "reset-offsets", group, "--topic", name, "--to-offset", "7", "--execute", *b))
    assert _offsets(group, b)[0]["LAG"] == "3"
    ok(run_cli("groups", "reset-offsets", group, "--topic", name, "--to-latest", "--execute", *b))
    assert _offsets(group, b)[0]["LAG"] == "0"


def test_reset_offsets_of_a_new_group_to_latest(bootstrap: str, name: str) -> None:
    b = ("--bootstrap", bootstrap)
    ok(run_cli("topics", "create", name, "--partitions", "2", *b))
    ok(run_cli("produce", name, "--partition", "1", *b, input=b"a\nb\n"))
    group = f"g-{name}"
    ok(run_cli("groups", "reset-offsets", group, "--topic", name, "--to-latest", "--execute", *b))
    rows = {r["PARTITION"]: r["CURRENT-OFFSET"] for r in _offsets(group, b)}
    assert rows == {"0": "0", "1": "2"}


def test_delete_removes_an_inactive_group(bootstrap: str, name: str) -> None:
    group, b = _group_with_offsets(bootstrap, name, produced=2, consumed=2)
    ok(run_cli("groups", "delete", group, *b))
    assert group not in ok(run_cli("groups", "list", *b)).splitlines()
    line = failed_with_one_line(run_cli("groups", "describe", group, *b))
    assert line == f"streamcore groups: consumer group {group!r} does not exist"


def test_delete_refuses_a_group_with_members(bootstrap: str, name: str) -> None:
    group, b = _group_with_offsets(bootstrap, name, produced=1, consumed=1)
    c = Consumer(bootstrap, group_id=group, session_timeout_ms=10_000, heartbeat_interval_ms=200)
    try:
        c.subscribe([name])
        c.wait_for_assignment(30)
        line = failed_with_one_line(run_cli("groups", "delete", group, *b))
        assert (
            line
            == f"streamcore groups: consumer group {group!r} has members: stop its consumers before deleting it"
        )
    finally:
        c.close()


def test_unknown_group_and_topic_errors(bootstrap: str, name: str) -> None:
    b = ("--bootstrap", bootstrap)
    line = failed_with_one_line(run_cli("groups", "describe", f"nobody-{name}", *b))
    assert line == f"streamcore groups: consumer group 'nobody-{name}' does not exist"
    line = failed_with_one_line(run_cli("groups", "reset-offsets", "g", "--topic", name, "--to-earliest", *b))
    assert line == f"streamcore groups: topic {name!r} does not exist"
