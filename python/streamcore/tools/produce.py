"""``streamcore produce TOPIC``: send each input line as one record, flush, exit."""

from __future__ import annotations

import argparse
import sys
import threading
from collections.abc import Iterator
from typing import IO, Any

from streamcore.tools._common import (
    Subparsers,
    ToolError,
    UsageError,
    add_connection_options,
    client_settings,
    one_line,
    parse_key_values,
    run_tool,
    tool_parser,
)

__all__ = ["add_produce_command"]

_EPILOG = """\
examples:
  echo hello | streamcore produce events
  streamcore produce events --file lines.txt --compression zstd --acks all
  printf 'user1:clicked\\nuser2:scrolled\\n' | streamcore produce events --key-separator :
  streamcore produce events --header source=cli --header trace=abc < lines.txt
"""

_ACKS = ("0", "1", "all", "-1")
_COMPRESSION_HELP = "none, gzip, snappy, lz4 or zstd"


def add_produce_command(subparsers: Subparsers) -> None:
    """Add ``streamcore produce``."""
    p = tool_parser(
        subparsers,
        "produce",
        help="send lines from stdin or a file as records",
        description="Send each line of standard input (or --file) to TOPIC as one record, without its line "
        "ending, then flush and exit: 0 once every record is acknowledged, 1 if any failed.",
        epilog=_EPILOG,
    )
    p.add_argument("topic", metavar="TOPIC")
    p.add_argument("--file", metavar="PATH", help="read lines from PATH instead of standard input")
    p.add_argument(
        "--key-separator",
        metavar="SEP",
        help="split each line at the first SEP into key and value (a line without SEP is an error)",
    )
    p.add_argument(
        "--header",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="header added to every record (repeatable)",
    )
    p.add_argument(
        "--compression",
        metavar="CODEC",
        default=None,
        # Checked by the client's settings table (one place); not argparse choices, so that
        # building the parser for every command does not import the client.
        help=f"batch compression: {_COMPRESSION_HELP} (default none)",
    )
    p.add_argument(
        "--acks", choices=_ACKS, default=None, help="acknowledgement the broker gives (default all)"
    )
    p.add_argument(
        "--partition", type=int, default=None, metavar="N", help="send every record to partition N"
    )
    add_connection_options(p)
    p.set_defaults(handler=lambda args: run_tool("produce", run_produce, args))


def _lines(stream: IO[bytes]) -> Iterator[bytes]:
    for line in stream:
        if line.endswith(b"\n"):
            line = line[:-1]
            if line.endswith(b"\r"):
                line = line[:-1]
        yield line


class _Outcome:
    """Counts answers from the delivery callbacks (which run on the client's callback thread)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.failed = 0
        self.first_error: BaseException | None = None

    def done(self, fut: Any) -> None:
        exc = fut.exception()
        if exc is not None:
            with self.lock:
                self.failed += 1
                if self.first_error is None:
                    self.first_error = exc


def run_produce(args: argparse.Namespace) -> int:
    """Send every line, flush, and fail when any record was not acknowledged."""
    from streamcore.client.blocking import Producer

    headers: list[tuple[str, bytes | None]] = []
    for item in args.header:  # a list, not a dict: Kafka headers may repeat a key
        (key_value,) = parse_key_values([item], "--header").items()
        headers.append((key_value[0], key_value[1].encode()))
    sep = args.key_separator.encode() if args.key_separator is not None else None
    if sep == b"":
        raise UsageError("--key-separator must not be empty")
    overrides: dict[str, Any] = {}
    if args.compression is not None:
        overrides["compression_type"] = args.compression
    if args.acks is not None:
        overrides["acks"] = args.acks
    settings = client_settings(args, "producer", overrides)
    try:
        source: IO[bytes] = open(args.file, "rb") if args.file is not None else sys.stdin.buffer
    except OSError as exc:
        raise UsageError(f"--file {args.file}: {exc.strerror or exc}") from None
    outcome = _Outcome()
    sent = 0
    bad_line: int | None = None
    with source, Producer(config=settings) as producer:
        for number, line in enumerate(_lines(source), 1):
            key: bytes | None = None
            if sep is not None:
                key, found, value = line.partition(sep)
                if not found:
                    bad_line = number
                    break
            else:
                value = line
            producer.send(
                args.topic, value, key=key, headers=headers or None, partition=args.partition
            ).add_done_callback(outcome.done)
            sent += 1
        producer.flush(args.timeout)
    if outcome.first_error is not None:
        raise ToolError(
            f"{outcome.failed} of {sent} records were not delivered: {one_line(outcome.first_error)}"
        )
    if bad_line is not None:
        raise UsageError(
            f"line {bad_line} has no key separator {args.key_separator!r} ({sent} lines before it were sent)"
        )
    return 0
