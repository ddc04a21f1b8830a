"""``streamcore search TOPIC QUERY [--bootstrap HOST:PORT | --metrics-url URL | --data-dir DIR]``:
full-text search over a topic's records.

With ``--data-dir``, offline on a stopped broker's data directory: the partition logs
are opened (and so locked), each partition's search index is brought up to date with
its log (unless ``--no-catch-up``), and the hits are read back from the log. With
``--metrics-url http://HOST:PORT``, a running broker answers through the ``/search``
endpoint of its metrics port (its indexer keeps the indexes; nothing is caught up on
demand). With neither, the broker at ``--bootstrap`` (default as for every tool:
``$STREAMCORE_BOOTSTRAP``, else 127.0.0.1:9092; ``--command-config`` for TLS or SASL)
is asked for its metrics port (the broker config ``streamcore.metrics.port``; the Kafka
protocol has no search request) and then searched through it as with ``--metrics-url``.

Output: one line per record, ``partition offset timestamp key value`` (tab-separated;
timestamp as ISO 8601 UTC, key and value as UTF-8 with invalid bytes replaced, a
missing key or value as ``null``), or with ``--json`` one JSON object per record
(``partition``, ``offset``, ``timestamp`` in ms, ``key``, ``value``). With
``--no-catch-up`` or ``--metrics-url`` a line on stderr says how far behind each
partition's index is, when it is.
Exit status: 0 (also with no hits), 1 when the search failed, 2 for bad arguments or
a query that does not parse.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import time
from collections.abc import Sequence
from typing import Any

from streamcore._units import parse_duration_ms
from streamcore.tools._common import (
    Subparsers,
    ToolError,
    UsageError,
    add_connection_options,
    client_settings,
    run_tool,
    tool_parser,
)

__all__ = ["add_search_command", "main"]

_EPILOG = """query language (docs/search.md):
  level:error                 a word in a JSON field (nested: svc.name:payments)
  timeout                     a word anywhere in the text of the value
  "card declined"             a phrase; msg:"card declined" in one field
  code:500  code:[500 TO 599] a number (or the word) / an inclusive range (* = open)
  _key:order42                a word in the record key
  a AND b, a b, a OR b, NOT a, (a OR b) AND c

examples:
  streamcore search orders 'level:error AND service:payments' --data-dir /var/lib/streamcore
  streamcore search logs timeout --since 1h --limit 50 --json --data-dir ./data
  streamcore search logs 'level:error' --metrics-url http://127.0.0.1:9100
  streamcore search logs 'level:error' --bootstrap 127.0.0.1:9092
"""


def add_search_command(subparsers: Subparsers) -> None:
    """Add ``streamcore search``."""
    p = tool_parser(
        subparsers,
        "search",
        help="full-text search over a topic's records (a running broker's /search, or a data directory)",
        description="Search a topic's records with a query: ask a running broker (--bootstrap, "
        "or its /search endpoint with --metrics-url), or open a stopped broker's data directory "
        "(--data-dir). "
        "The records come from the log; the search index only finds them.",
        epilog=_EPILOG,
    )
    p.add_argument("topic", metavar="TOPIC")
    p.add_argument("query", metavar="QUERY", help="the query ('' matches every record)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--data-dir", help="a stopped broker's data directory")
    where.add_argument(
        "--metrics-url",
        metavar="URL",
        help="a running broker's metrics address, http://HOST:PORT (its --metrics-port)",
    )
    p.add_argument("--since", metavar="DURATION", help="only records at most this old, e.g. 15m, 1h, 7d")
    p.add_argument("--limit", type=int, default=20, help="most records to print (default 20)")
    p.add_argument("--json", action="store_true", help="one JSON object per record")
    p.add_argument(
        "--no-catch-up",
        dest="catch_up",
        action="store_false",
        help="query the index as it is, without indexing the records it lacks first (--data-dir)",
    )
    add_connection_options(p)
    p.set_defaults(handler=_dispatch)


def _dispatch(args: argparse.Namespace) -> int:
    return run_tool("search", run_search, args)


def _text(data: bytes | None) -> str | None:
    return None if data is None else data.decode("utf-8", "replace")


def run_search(args: argparse.Namespace, out: Any = None) -> int:
    """Run the search the arguments describe and print the records."""
    from streamcore.search import RemoteSearchError, search

    out = out or sys.stdout
    if args.limit < 0:
        raise UsageError(f"--limit must be >= 0, not {args.limit}")
    since_ms = None
    if args.since is not None:
        try:
            since_ms = int(time.time() * 1000) - parse_duration_ms(args.since, "--since")
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    if args.bootstrap and (args.metrics_url or args.data_dir):
        raise UsageError("--bootstrap goes with neither --metrics-url nor --data-dir")
    if args.metrics_url and not args.metrics_url.startswith(("http://", "https://")):
        raise UsageError(f"--metrics-url must start with http:// or https://, not {args.metrics_url!r}")
    options: dict[str, Any] = {}
    if args.metrics_url:
        source = args.metrics_url
    elif args.data_dir:
        source = args.data_dir
        options["bootstrap"] = False
    else:
        settings = client_settings(args, "admin")
        source = settings.pop("bootstrap_servers")
        options.update(bootstrap=True, client_config=settings, timeout_s=args.timeout)
    try:
        results = search(
            source,
            args.topic,
            args.query,
            since_ms=since_ms,
            limit=args.limit,
            catch_up=args.catch_up,
            **options,
        )
    except (FileNotFoundError, RemoteSearchError) as exc:
        raise ToolError(str(exc)) from None
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    for p, lag in sorted(results.lag.items()):
        if lag.records:
            print(
                f"streamcore search: partition {p}: the index is {lag.records} records "
                f"({lag.seconds:.1f} s) behind the log",
                file=sys.stderr,
            )
    for hit in results:
        if args.json:
            obj = {
                "partition": hit.partition,
                "offset": hit.offset,
                "timestamp": hit.timestamp,
                "key": _text(hit.key),
                "value": _text(hit.value),
            }
            print(json.dumps(obj, ensure_ascii=False), file=out)
        else:
            ts = datetime.datetime.fromtimestamp(hit.timestamp / 1000, tz=datetime.timezone.utc)
            key, value = _text(hit.key), _text(hit.value)
            print(
                f"{hit.partition}\t{hit.offset}\t{ts.isoformat(timespec='milliseconds')}\t"
                f"{'null' if key is None else key}\t{'null' if value is None else value}",
                file=out,
            )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m streamcore.tools.search ...``: the same as ``streamcore search ...``."""
    parser = argparse.ArgumentParser(prog="streamcore")
    add_search_command(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["search", *(sys.argv[1:] if argv is None else argv)])
    return int(args.handler(args))


if __name__ == "__main__":
    sys.exit(main())
