"""``streamcore consume TOPIC``: print records, one per line, in value, key-value or JSON form."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from typing import IO, Any

from streamcore.tools._common import (
    Subparsers,
    ToolError,
    UsageError,
    add_connection_options,
    client_settings,
    run_tool,
    shared_settings,
    tool_parser,
)

__all__ = ["add_consume_command", "format_record"]

_EPILOG = """\
examples:
  streamcore consume events --from-beginning --max-messages 10
  streamcore consume events --group billing --format key-value
  streamcore consume events --from-beginning --format json --timeout-ms 5000 | jq .value
  streamcore consume events --partition 2 --from-beginning
"""

FORMATS = ("value", "key-value", "json")

#: How often, at most, a consumer in a group commits what it has printed (seconds).
_COMMIT_EVERY_S = 1.0


def add_consume_command(subparsers: Subparsers) -> None:
    """Add ``streamcore consume``."""
    p = tool_parser(
        subparsers,
        "consume",
        help="print records of a topic",
        description="Print the records of TOPIC on standard output, one per line. Without --group the tool "
        "reads every partition (or --partition) with no group and commits nothing; with --group it joins "
        "that consumer group, resumes from its committed offsets and commits what it has printed.",
        epilog=_EPILOG,
    )
    p.add_argument("topic", metavar="TOPIC")
    p.add_argument(
        "--from-beginning",
        action="store_true",
        help="start at the earliest offset where nothing is committed (default: only new records)",
    )
    p.add_argument("--group", metavar="GROUP", help="consume as a member of consumer group GROUP")
    p.add_argument("--partition", type=int, metavar="N", help="read only partition N (not with --group)")
    p.add_argument("--max-messages", type=int, metavar="N", help="exit after printing N records")
    p.add_argument(
        "--timeout-ms",
        type=int,
        metavar="MS",
        help="exit when no record arrives for MS milliseconds (an error if --max-messages is not reached)",
    )
    p.add_argument(
        "--format",
        choices=FORMATS,
        default="value",
        help="value: the value; key-value: key, separator, value; json: one object per record with "
        "topic, partition, offset, timestamp, key, value, headers (default value)",
    )
    p.add_argument(
        "--key-separator",
        default="\t",
        metavar="SEP",
        help="what separates key and value in the key-value format (default a tab)",
    )
    add_connection_options(p)
    p.set_defaults(handler=lambda args: run_tool("consume", run_consume, args))


def _text(data: bytes | None) -> str | None:
    # JSON has no bytes; invalid UTF-8 becomes U+FFFD, as other Kafka tools' JSON output does.
    return None if data is None else bytes(data).decode("utf-8", errors="replace")


def format_record(record: Any, fmt: str, key_separator: bytes = b"\t") -> bytes:
    """One output line (without its newline) for ``record`` in format ``fmt``.

    A null key or value is printed as ``null`` in the value and key-value formats.
    """
    if fmt == "value":
        return b"null" if record.value is None else bytes(record.value)
    if fmt == "key-value":
        key = b"null" if record.key is None else bytes(record.key)
        value = b"null" if record.value is None else bytes(record.value)
        return key + key_separator + value
    doc = {
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "timestamp": record.timestamp,
        "key": _text(record.key),
        "value": _text(record.value),
        "headers": [{"key": k, "value": _text(v)} for k, v in record.headers],
    }
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()


def run_consume(args: argparse.Namespace) -> int:
    """Print records until --max-messages, --timeout-ms of silence, or Ctrl-C."""
    from streamcore.client.blocking import AdminClient, Consumer
    from streamcore.client.types import OffsetAndMetadata, TopicPartition
    from streamcore.errors import ErrorCode, KafkaError

    if args.max_messages is not None and args.max_messages < 1:
        raise UsageError(f"--max-messages must be at least 1, got {args.max_messages}")
    if args.timeout_ms is not None and args.timeout_ms < 1:
        raise UsageError(f"--timeout-ms must be at least 1, got {args.timeout_ms}")
    if args.group is not None and args.partition is not None:
        raise UsageError("--partition and --group cannot be used together: a group assigns the partitions")
    overrides: dict[str, Any] = {
        "auto_offset_reset": "earliest" if args.from_beginning else "latest",
        "enable_auto_commit": False,
    }
    if args.group is not None:
        overrides["group_id"] = args.group
    settings = client_settings(args, "consumer", overrides)

    # Look the topic up first: subscribing to a topic that does not exist would wait forever.
    with AdminClient(config=shared_settings(settings, "admin")) as admin:
        try:
            partitions = admin.describe_topics([args.topic])[args.topic].partitions
        except KafkaError as exc:
            if exc.error is ErrorCode.UNKNOWN_TOPIC_OR_PARTITION:
                raise ToolError(f"topic {args.topic!r} does not exist") from None
            raise
    if args.partition is not None and args.partition not in partitions:
        raise ToolError(f"topic {args.topic!r} has no partition {args.partition} (it has {len(partitions)})")

    out: IO[bytes] = sys.stdout.buffer
    sep = args.key_separator.encode()
    fmt: Callable[[Any], bytes] = lambda r: format_record(r, args.format, sep)  # noqa: E731
    printed = 0
    with Consumer(config=settings) as consumer:
        if args.group is not None:
            consumer.subscribe([args.topic])
        else:
            wanted = partitions if args.partition is None else [args.partition]
            consumer.assign([TopicPartition(args.topic, p) for p in wanted])
        pending: dict[TopicPartition, OffsetAndMetadata] = {}
        last_commit = time.monotonic()
        idle_until = None if args.timeout_ms is None else time.monotonic() + args.timeout_ms / 1000.0
        while args.max_messages is None or printed < args.max_messages:
            wait_ms = 1000
            if idle_until is not None:
                left = idle_until - time.monotonic()
                if left <= 0:
                    break
                wait_ms = max(1, min(wait_ms, int(left * 1000)))
            want = 500 if args.max_messages is None else min(500, args.max_messages - printed)
            records = consumer.poll(timeout_ms=wait_ms, max_records=want)
            if records:
                out.write(b"".join(fmt(r) + b"\n" for r in records))
                out.flush()
                printed += len(records)
                if idle_until is not None:
                    idle_until = time.monotonic() + args.timeout_ms / 1000.0
                for r in records:
                    pending[TopicPartition(r.topic, r.partition)] = OffsetAndMetadata(r.offset + 1)
            if args.group is not None and pending and time.monotonic() - last_commit >= _COMMIT_EVERY_S:
                consumer.commit(pending)
                pending, last_commit = {}, time.monotonic()
        if args.group is not None and pending:
            consumer.commit(pending)
    if args.max_messages is not None and printed < args.max_messages:
        raise ToolError(f"no record for {args.timeout_ms} ms after {printed} of {args.max_messages} messages")
    return 0
