"""``streamcore topics list|describe|create|alter|delete``: manage topics on any Kafka-protocol broker."""

from __future__ import annotations

import argparse
from typing import Any

from streamcore.tools._common import (
    Subparsers,
    ToolError,
    UsageError,
    action_parser,
    client_settings,
    parse_key_values,
    run_tool,
    tool_parser,
)

__all__ = ["add_topics_command"]

_EPILOG = """\
examples:
  streamcore topics list
  streamcore topics create events --partitions 3 --config retention.ms=86400000
  streamcore topics describe events
  streamcore topics alter events --partitions 6 --config cleanup.policy=delete --delete-config retention.ms
  streamcore topics delete events
  STREAMCORE_BOOTSTRAP=kafka:9092 streamcore topics list
"""


def add_topics_command(subparsers: Subparsers) -> None:
    """Add ``streamcore topics`` and its actions."""
    p = tool_parser(
        subparsers,
        "topics",
        help="list, describe, create, alter and delete topics",
        description="Manage topics on any Kafka-protocol broker (streamcore or Apache Kafka).",
        epilog=_EPILOG,
    )
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)

    a = action_parser(actions, "list", "print one topic name per line, sorted", "streamcore topics list")
    a.add_argument("--exclude-internal", action="store_true", help="leave out internal topics")
    a.set_defaults(tool_handler=run_list)

    a = action_parser(
        actions,
        "describe",
        "partitions, leaders and the configs set on each topic",
        "streamcore topics describe events\n  streamcore topics describe          # every topic",
    )
    a.add_argument("names", metavar="NAME", nargs="*", help="topics to describe (default: all)")
    a.add_argument(
        "--all-configs", action="store_true", help="show every config, not only those set on the topic"
    )
    a.set_defaults(tool_handler=run_describe)

    a = action_parser(
        actions,
        "create",
        "create a topic",
        "streamcore topics create events --partitions 3\n"
        "  streamcore topics create events --partitions 1 --config cleanup.policy=compact",
    )
    a.add_argument("name", metavar="NAME")
    a.add_argument(
        "--partitions", type=int, default=-1, metavar="N", help="partition count (default: broker's)"
    )
    a.add_argument(
        "--replication-factor", type=int, default=-1, metavar="R", help="replicas (default: broker's)"
    )
    a.add_argument(
        "--config", action="append", default=[], metavar="KEY=VALUE", help="topic config (repeatable)"
    )
    a.add_argument("--if-not-exists", action="store_true", help="succeed when the topic already exists")
    a.set_defaults(tool_handler=run_create)

    a = action_parser(
        actions,
        "alter",
        "add partitions, set or delete topic configs",
        "streamcore topics alter events --partitions 6\n"
        "  streamcore topics alter events --config retention.ms=3600000 --delete-config segment.ms",
    )
    a.add_argument("name", metavar="NAME")
    a.add_argument("--partitions", type=int, default=None, metavar="N", help="new (larger) partition count")
    a.add_argument(
        "--config", action="append", default=[], metavar="KEY=VALUE", help="set a topic config (repeatable)"
    )
    a.add_argument(
        "--delete-config",
        action="append",
        default=[],
        metavar="KEY",
        help="remove a topic config so the default applies again (repeatable)",
    )
    a.set_defaults(tool_handler=run_alter)

    a = action_parser(actions, "delete", "delete topics", "streamcore topics delete events old-events")
    a.add_argument("names", metavar="NAME", nargs="+")
    a.add_argument("--if-exists", action="store_true", help="succeed when a topic does not exist")
    a.set_defaults(tool_handler=run_delete)

    p.set_defaults(handler=_dispatch)


def _dispatch(args: argparse.Namespace) -> int:
    return run_tool("topics", args.tool_handler, args)


def _admin(args: argparse.Namespace) -> Any:
    from streamcore.client.blocking import AdminClient

    return AdminClient(config=client_settings(args, "admin"))


def _unknown(topic: str) -> ToolError:
    return ToolError(f"topic {topic!r} does not exist")


def run_list(args: argparse.Namespace) -> int:
    """Print every topic name, one per line, sorted."""
    with _admin(args) as admin:
        topics = admin.list_topics(include_internal=not args.exclude_internal)
    for name in sorted(topics):
        print(name)
    return 0


def run_describe(args: argparse.Namespace) -> int:
    """Print, per topic, its partition count and configs, then one line per partition."""
    from streamcore.client.admin import RESOURCE_TOPIC
    from streamcore.errors import ErrorCode, KafkaError

    with _admin(args) as admin:
        if args.names:
            try:
                infos = admin.describe_topics(args.names)
            except KafkaError as exc:
                if exc.error is ErrorCode.UNKNOWN_TOPIC_OR_PARTITION:
                    missing = [n for n in args.names if n not in admin.list_topics(include_internal=True)]
                    raise _unknown(missing[0] if missing else args.names[0]) from None
                raise
        else:
            infos = admin.list_topics(include_internal=True)
        entries = admin.describe_config_entries([(RESOURCE_TOPIC, n) for n in sorted(infos)]) if infos else {}
    for name in sorted(infos):
        info = infos[name]
        configs = entries.get((RESOURCE_TOPIC, name), {})
        shown = sorted(
            (e for e in configs.values() if args.all_configs or e.source == "DYNAMIC_TOPIC_CONFIG"),
            key=lambda e: e.name,
        )
        config_text = ",".join(f"{e.name}={'(sensitive)' if e.is_sensitive else e.value}" for e in shown)
        print(f"Topic: {name}\tPartitionCount: {len(info.partitions)}\tConfigs: {config_text}")
        for part in info.partitions:
            print(f"\tTopic: {name}\tPartition: {part}\tLeader: {info.leaders[part]}")
    return 0


def run_create(args: argparse.Namespace) -> int:
    """Create one topic; prints ``Created topic NAME.``."""
    from streamcore.client.admin import NewTopic
    from streamcore.errors import ErrorCode

    if args.partitions == 0 or args.partitions < -1:
        raise UsageError(f"--partitions must be at least 1, got {args.partitions}")
    configs = parse_key_values(args.config, "--config")
    with _admin(args) as admin:
        result = admin.create_topics([NewTopic(args.name, args.partitions, args.replication_factor, configs)])
    err = result.get(args.name)
    if err is not None:
        if err.error is ErrorCode.TOPIC_ALREADY_EXISTS:
            if args.if_not_exists:
                return 0
            raise ToolError(f"topic {args.name!r} already exists")
        raise err
    print(f"Created topic {args.name}.")
    return 0


def run_alter(args: argparse.Namespace) -> int:
    """Add partitions and/or change configs of one topic."""
    from streamcore.client.admin import RESOURCE_TOPIC, AlterConfig, ConfigOp

    sets = parse_key_values(args.config, "--config")
    if args.partitions is None and not sets and not args.delete_config:
        raise UsageError("nothing to alter: give --partitions, --config or --delete-config")
    both = set(sets) & set(args.delete_config)
    if both:
        raise UsageError(f"config {sorted(both)[0]!r} is both set and deleted")
    with _admin(args) as admin:
        if args.name not in admin.list_topics(include_internal=True):
            raise _unknown(args.name)
        if sets or args.delete_config:
            changes = [AlterConfig(k, v, ConfigOp.SET) for k, v in sets.items()]
            changes += [AlterConfig(k, None, ConfigOp.DELETE) for k in args.delete_config]
            errors = admin.incremental_alter_configs({(RESOURCE_TOPIC, args.name): changes})
            err = errors.get((RESOURCE_TOPIC, args.name))
            if err is not None:
                raise err
        if args.partitions is not None:
            err = admin.create_partitions({args.name: args.partitions}).get(args.name)
            if err is not None:
                raise err
    return 0


def run_delete(args: argparse.Namespace) -> int:
    """Delete topics; an unknown one is an error unless ``--if-exists``."""
    from streamcore.errors import ErrorCode

    with _admin(args) as admin:
        result = admin.delete_topics(args.names)
    for name in args.names:
        err = result.get(name)
        if err is None:
            continue
        if err.error is ErrorCode.UNKNOWN_TOPIC_OR_PARTITION:
            if args.if_exists:
                continue
            raise _unknown(name)
        raise err
    return 0
