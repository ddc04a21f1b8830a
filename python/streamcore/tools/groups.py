"""``streamcore groups list|describe|delete|reset-offsets``: inspect and manage consumer groups."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from streamcore.tools._common import (
    Subparsers,
    ToolError,
    UsageError,
    action_parser,
    client_settings,
    format_table,
    run_tool,
    tool_parser,
)

__all__ = ["add_groups_command", "plan_reset"]

_EPILOG = """\
examples:
  streamcore groups list --state
  streamcore groups describe billing
  streamcore groups reset-offsets billing --topic events --to-earliest            # dry run: prints the plan
  streamcore groups reset-offsets billing --topic events:0,1 --shift-by -10 --execute
  streamcore groups delete billing
"""

#: Group states in which no member holds partitions, so offsets may be reset or the group deleted.
_INACTIVE = ("Empty", "Dead")


def add_groups_command(subparsers: Subparsers) -> None:
    """Add ``streamcore groups`` and its actions."""
    p = tool_parser(
        subparsers,
        "groups",
        help="list, describe, delete consumer groups and reset their offsets",
        description="Inspect and manage consumer groups on any Kafka-protocol broker.",
        epilog=_EPILOG,
    )
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)

    a = action_parser(
        actions,
        "list",
        "print one group id per line, sorted",
        "streamcore groups list\n  streamcore groups list --state",
    )
    a.add_argument("--state", action="store_true", help="print a table GROUP STATE instead")
    a.set_defaults(tool_handler=run_list)

    a = action_parser(
        actions,
        "describe",
        "committed offset, log end offset and lag of each partition of a group",
        "streamcore groups describe billing",
    )
    a.add_argument("group", metavar="GROUP")
    a.set_defaults(tool_handler=run_describe)

    a = action_parser(
        actions,
        "delete",
        "delete groups that have no members (and their committed offsets)",
        "streamcore groups delete billing old-billing",
    )
    a.add_argument("groups", metavar="GROUP", nargs="+")
    a.set_defaults(tool_handler=run_delete)

    a = action_parser(
        actions,
        "reset-offsets",
        "move a group's committed offsets (dry run unless --execute)",
        "streamcore groups reset-offsets billing --topic events --to-latest --execute\n"
        "  streamcore groups reset-offsets billing --all-topics --shift-by -100",
    )
    a.add_argument("group", metavar="GROUP")
    which = a.add_mutually_exclusive_group(required=True)
    which.add_argument(
        "--topic",
        action="append",
        metavar="TOPIC[:P,P...]",
        help="a topic, or some of its partitions (repeatable)",
    )
    which.add_argument("--all-topics", action="store_true", help="every topic the group has offsets for")
    to = a.add_mutually_exclusive_group(required=True)
    to.add_argument("--to-earliest", action="store_true", help="the earliest offset still in the log")
    to.add_argument("--to-latest", action="store_true", help="the log end offset")
    to.add_argument("--to-offset", type=int, metavar="N", help="offset N (kept within the log's range)")
    to.add_argument(
        "--shift-by",
        type=int,
        metavar="N",
        help="the committed offset plus N (may be negative; kept in range)",
    )
    run = a.add_mutually_exclusive_group()
    run.add_argument("--execute", action="store_true", help="commit the new offsets")
    run.add_argument("--dry-run", action="store_true", help="only print the plan (the default)")
    a.set_defaults(tool_handler=run_reset_offsets)

    p.set_defaults(handler=_dispatch)


def _dispatch(args: argparse.Namespace) -> int:
    return run_tool("groups", args.tool_handler, args)


def _admin(args: argparse.Namespace) -> Any:
    from streamcore.client.blocking import AdminClient

    return AdminClient(config=client_settings(args, "admin"))


def _describe(admin: Any, group: str) -> Any:
    """The group's description, or None when the broker does not know it."""
    from streamcore.errors import ErrorCode

    (desc,) = admin.describe_groups([group])
    if desc.error is not None:
        if desc.error.error is ErrorCode.GROUP_ID_NOT_FOUND:
            return None
        raise desc.error
    return desc


def run_list(args: argparse.Namespace) -> int:
    """Print the group ids (or GROUP STATE rows), sorted."""
    with _admin(args) as admin:
        groups = admin.list_groups()
    if args.state:
        print(format_table(["GROUP", "STATE"], [(g, state or "-") for g, _, state in groups]))
    else:
        for g, _, _ in groups:
            print(g)
    return 0


def run_describe(args: argparse.Namespace) -> int:
    """Print TOPIC PARTITION CURRENT-OFFSET LOG-END-OFFSET LAG CONSUMER-ID HOST CLIENT-ID rows."""
    from streamcore.client.types import TopicPartition

    with _admin(args) as admin:
        desc = _describe(admin, args.group)
        committed = admin.list_consumer_group_offsets(args.group)
        owners: dict[TopicPartition, Any] = {}
        for m in desc.members if desc is not None else []:
            for tp in m.assignment:
                owners[tp] = m
        if not committed and not owners and (desc is None or desc.state == "Dead"):
            raise ToolError(f"consumer group {args.group!r} does not exist")
        parts = sorted(set(committed) | set(owners))
        ends = admin.list_offsets(dict.fromkeys(parts, "latest")) if parts else {}
    rows = []
    for tp in parts:
        om = committed.get(tp)
        end = ends.get(tp)
        lag = None if om is None or end is None or end < 0 else max(0, end - om.offset)
        m = owners.get(tp)
        rows.append(
            (
                tp.topic,
                tp.partition,
                None if om is None else om.offset,
                end,
                lag,
                m.member_id if m else None,
                m.client_host if m else None,
                m.client_id if m else None,
            )
        )
    header = [
        "TOPIC",
        "PARTITION",
        "CURRENT-OFFSET",
        "LOG-END-OFFSET",
        "LAG",
        "CONSUMER-ID",
        "HOST",
        "CLIENT-ID",
    ]
    print(format_table(header, rows))
    return 0


def run_delete(args: argparse.Namespace) -> int:
    """Delete groups; a group with members or an unknown group is an error."""
    from streamcore.errors import ErrorCode

    with _admin(args) as admin:
        result = admin.delete_groups(args.groups)
    for group in args.groups:
        err = result.get(group)
        if err is None:
            continue
        if err.error is ErrorCode.NON_EMPTY_GROUP:
            raise ToolError(f"consumer group {group!r} has members: stop its consumers before deleting it")
        if err.error is ErrorCode.GROUP_ID_NOT_FOUND:
            raise ToolError(f"consumer group {group!r} does not exist")
        raise err
    print(f"Deleted consumer groups: {', '.join(args.groups)}")
    return 0


def _topic_spec(text: str) -> tuple[str, list[int] | None]:
    topic, sep, parts = text.partition(":")
    if not topic:
        raise UsageError(f"--topic: expected TOPIC or TOPIC:P,P..., got {text!r}")
    if not sep:
        return topic, None
    try:
        return topic, sorted({int(p) for p in parts.split(",")})
    except ValueError:
        raise UsageError(f"--topic: partitions must be numbers, got {text!r}") from None


def plan_reset(
    how: str,
    amount: int | None,
    current: dict[Any, int],
    earliest: dict[Any, int],
    latest: dict[Any, int],
) -> dict[Any, int]:
    """New offset per partition for a reset ``how`` ("earliest", "latest", "offset", "shift").

    ``amount`` is the offset (``offset``) or the shift (``shift``). Offsets are kept
    within [earliest, latest], as kafka-consumer-groups does. ``shift`` needs a
    committed offset in ``current`` for every partition (ToolError otherwise).
    """
    plan = {}
    for tp in sorted(latest):
        lo, hi = earliest[tp], latest[tp]
        if how == "earliest":
            target = lo
        elif how == "latest":
            target = hi
        elif how == "offset":
            assert amount is not None
            target = amount
        else:
            assert amount is not None
            if tp not in current:
                raise ToolError(f"--shift-by: {tp.topic}-{tp.partition} has no committed offset to shift")
            target = current[tp] + amount
        plan[tp] = min(max(target, lo), hi)
    return plan


def run_reset_offsets(args: argparse.Namespace) -> int:
    """Print the plan GROUP TOPIC PARTITION NEW-OFFSET; with --execute also commit it."""
    from streamcore.client.types import TopicPartition
    from streamcore.errors import ErrorCode, KafkaError

    if args.to_earliest:
        how, amount = "earliest", None
    elif args.to_latest:
        how, amount = "latest", None
    elif args.to_offset is not None:
        how, amount = "offset", args.to_offset
    else:
        how, amount = "shift", args.shift_by
    specs = [] if args.all_topics else [_topic_spec(text) for text in args.topic]
    with _admin(args) as admin:
        desc = _describe(admin, args.group)
        if desc is not None and desc.state not in _INACTIVE:
            raise ToolError(
                f"consumer group {args.group!r} is {desc.state}, not inactive: stop its consumers "
                "before resetting its offsets"
            )
        committed = admin.list_consumer_group_offsets(args.group)
        if args.all_topics:
            parts = sorted(committed)
            if not parts:
                raise ToolError(f"consumer group {args.group!r} has no committed offsets to reset")
        else:
            parts = []
            for topic, wanted in specs:
                try:
                    have = admin.describe_topics([topic])[topic].partitions
                except KafkaError as exc:
                    if exc.error is ErrorCode.UNKNOWN_TOPIC_OR_PARTITION:
                        raise ToolError(f"topic {topic!r} does not exist") from None
                    raise
                missing = sorted(set(wanted or ()) - set(have))
                if missing:
                    raise ToolError(f"topic {topic!r} has no partition {missing[0]}")
                parts += [TopicPartition(topic, p) for p in (wanted if wanted is not None else have)]
        earliest = admin.list_offsets(dict.fromkeys(parts, "earliest"))
        latest = admin.list_offsets(dict.fromkeys(parts, "latest"))
        current = {tp: om.offset for tp, om in committed.items()}
        plan = plan_reset(how, amount, current, earliest, latest)
        if args.execute:
            errors = admin.alter_consumer_group_offsets(args.group, plan)
            failed = [(tp, e) for tp, e in sorted(errors.items()) if e is not None]
            if failed:
                tp, err = failed[0]
                raise ToolError(f"could not commit {tp.topic}-{tp.partition}: {err}")
    print(
        format_table(
            ["GROUP", "TOPIC", "PARTITION", "NEW-OFFSET"],
            [(args.group, tp.topic, tp.partition, offset) for tp, offset in sorted(plan.items())],
        )
    )
    if not args.execute:
        print("dry run: no offsets changed; add --execute to commit them", file=sys.stderr)
    return 0
