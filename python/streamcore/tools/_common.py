"""What every Kafka-style tool shares: the connection options, client settings, errors and output.

The contract scripts rely on: every tool takes ``--bootstrap HOST:PORT`` (default
``127.0.0.1:9092``, or the ``STREAMCORE_BOOTSTRAP`` environment variable) and
``--command-config FILE`` (a Java-style ``.properties`` file of client settings);
it exits 0 on success and otherwise prints ONE line on stderr and exits non-zero
(:data:`EXIT_FAILURE` when the operation failed, :data:`EXIT_USAGE` for bad
arguments or settings), never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, NoReturn, TextIO

__all__ = [
    "DEFAULT_BOOTSTRAP",
    "EXIT_FAILURE",
    "EXIT_USAGE",
    "ToolError",
    "UsageError",
    "add_connection_options",
    "client_settings",
    "format_table",
    "load_properties",
    "one_line",
    "parse_key_values",
    "run_tool",
    "tool_parser",
    "shared_settings",
]

DEFAULT_BOOTSTRAP = "127.0.0.1:9092"
#: Exit status of an operation that failed (broker error, unreachable broker, unknown topic).
EXIT_FAILURE = 1
#: Exit status of bad arguments or settings (argparse uses the same).
EXIT_USAGE = 2

Subparsers = Any  # argparse's _SubParsersAction is private; only add_parser is used


class ToolError(Exception):
    """An operation failed; the message is the one line the tool prints."""


class UsageError(ToolError):
    """Arguments or settings are wrong; exits with :data:`EXIT_USAGE`."""


def tool_parser(subparsers: Subparsers, name: str, **kw: Any) -> argparse.ArgumentParser:
    """``subparsers.add_parser(name, **kw)`` whose usage errors are one stderr line (status 2).

    argparse prints the whole usage text before its error; the tools promise scripts
    one line, so the line names the problem and points at ``--help`` instead.
    """
    kw.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
    p: argparse.ArgumentParser = subparsers.add_parser(name, **kw)

    def error(message: str) -> NoReturn:
        p.exit(EXIT_USAGE, f"{p.prog}: error: {message} (see {p.prog} --help)\n")

    p.error = error  # type: ignore[method-assign]
    return p


def action_parser(
    actions: Subparsers,
    name: str,
    help: str,
    examples: str,
    *,
    label: str = "examples",
    connects: bool = True,
) -> argparse.ArgumentParser:
    """One action of a tool (``streamcore topics create``...): ``help`` as its help and
    description, ``examples`` under ``label`` as the epilog and, with ``connects``, the
    connection options (:func:`add_connection_options`)."""
    a = tool_parser(
        actions,
        name,
        help=help,
        description=help[0].upper() + help[1:] + ".",
        epilog=f"{label}:\n  {examples}\n",
    )
    if connects:
        add_connection_options(a)
    return a


def add_connection_options(p: argparse.ArgumentParser) -> None:
    """Add the options every tool shares: ``--bootstrap``, ``--command-config`` and ``--timeout``."""
    g = p.add_argument_group("connection")
    g.add_argument(
        "--bootstrap",
        metavar="HOST:PORT[,HOST:PORT]",
        default=None,
        help=f"brokers to contact first (default: $STREAMCORE_BOOTSTRAP, else {DEFAULT_BOOTSTRAP})",
    )
    g.add_argument(
        "--command-config",
        metavar="FILE",
        default=None,
        help="Java-style properties file of client settings (client.id=ops, request.timeout.ms=10000 ...); "
        "an unknown property is an error",
    )
    g.add_argument(
        "--timeout",
        metavar="SECONDS",
        type=_positive_seconds,
        default=30.0,
        help="give up when a broker does not answer or cannot be reached for this long (default 30)",
    )


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0 seconds, got {text!r}")
    return value


def load_properties(path: str) -> dict[str, str]:
    """Read a Java ``.properties`` file (``key=value``, ``key: value``, ``#`` comments, escapes).

    Raises UsageError naming the file when it cannot be read.
    """
    import javaproperties  # the one well-kept parser of the full format (escapes, continuations)

    try:
        with open(path, encoding="utf-8") as fh:
            return dict(javaproperties.load(fh))
    except OSError as exc:
        raise UsageError(f"--command-config {path}: {exc.strerror or exc}") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise UsageError(f"--command-config {path}: not a properties file ({exc})") from None


def client_settings(
    args: argparse.Namespace, role: str, overrides: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Keyword arguments for a ``role`` client ("producer", "consumer", "admin") built from ``args``.

    Precedence: the tool's own flags (``overrides``) > ``--command-config`` file >
    the timeouts ``--timeout`` implies. The file may hold the security settings as
    Java or librdkafka clients write them (``security.protocol``, ``ssl.ca.location``,
    ``ssl.truststore.type=PEM`` with ``ssl.truststore.location``, ``sasl.mechanism``,
    ``sasl.jaas.config`` or ``sasl.username``/``sasl.password``); they reach every
    client the tool opens. The bootstrap address is ``--bootstrap``, else
    ``STREAMCORE_BOOTSTRAP``, else the file's ``bootstrap.servers``, else
    127.0.0.1:9092. Every property is checked against the client's settings table
    here, so an unknown one is a UsageError naming it and the file.
    """
    from streamcore.client.config import build_config, java_pem_stores
    from streamcore.errors import ConfigError

    timeout_ms = max(1, int(args.timeout * 1000))
    settings: dict[str, Any] = {
        "request_timeout_ms": timeout_ms,
        "socket_connection_setup_timeout_ms": timeout_ms,
    }
    if role == "producer":
        settings["max_block_ms"] = timeout_ms
        settings["delivery_timeout_ms"] = timeout_ms
    properties: dict[str, Any] = {}
    if args.command_config is not None:
        try:
            # Under the names of the settings they stand for, so a second client gets them too.
            properties = dict(java_pem_stores(load_properties(args.command_config)))
        except ConfigError as exc:
            raise UsageError(f"--command-config {args.command_config}: {one_line(exc)}") from None
    file_bootstrap = next(
        (v for k, v in properties.items() if k.strip().replace("_", ".").lower() == "bootstrap.servers"), None
    )
    properties = {
        k: v for k, v in properties.items() if k.strip().replace("_", ".").lower() != "bootstrap.servers"
    }
    bootstrap = (
        args.bootstrap or os.environ.get("STREAMCORE_BOOTSTRAP") or file_bootstrap or DEFAULT_BOOTSTRAP
    )
    try:
        build_config(role, bootstrap, properties, {})
    except ConfigError as exc:
        raise UsageError(f"--command-config {args.command_config}: {one_line(exc)}") from None
    merged = {**settings, **_snake(properties), **_snake(overrides or {})}
    try:
        build_config(role, bootstrap, None, merged)
    except ConfigError as exc:
        raise UsageError(one_line(exc)) from None
    merged["bootstrap_servers"] = bootstrap
    return merged


def shared_settings(settings: Mapping[str, Any], role: str) -> dict[str, Any]:
    """The part of another client's ``settings`` that a ``role`` client also takes.

    A tool that needs a second client (the consumer's topic lookup through an admin
    client) gives it the same connection settings without the first role's own.
    """
    from streamcore.client.config import SETTINGS

    valid = {s.name for s in SETTINGS if role in s.used_by} | {"bootstrap_servers"}
    return {k: v for k, v in settings.items() if k in valid}


def _snake(props: Mapping[str, Any]) -> dict[str, Any]:
    """Each property under its setting's own name (``ssl.ca.location`` -> ``ssl_cafile``).

    One spelling lets later sources override earlier ones, and lets shared_settings
    hand a second client the security settings a file gave under another spelling.
    """
    from streamcore.client.config import ALIASES

    out: dict[str, Any] = {}
    for k, v in props.items():
        key = k.strip().replace(".", "_").replace("-", "_").lower()
        out[ALIASES.get(key, key)] = v
    return out


def parse_key_values(items: Iterable[str], what: str) -> dict[str, str]:
    """``["a=1", "b=2"]`` to ``{"a": "1", "b": "2"}``; UsageError names ``what`` for an item without '='."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"{what}: expected KEY=VALUE, got {item!r}")
        out[key] = value
    return out


def format_table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """Left-aligned columns separated by two spaces; an empty cell is printed as ``-``.

    Every cell is one whitespace-free word (spaces become ``_``), so that
    ``awk '{print $3}'`` picks the same column on every line.
    """

    def cell(v: object) -> str:
        s = "-" if v is None or v == "" else str(v)
        return "_".join(s.split()) or "-"

    body = [[cell(v) for v in row] for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in body)]) for i, h in enumerate(header)]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        for row in [list(header), *body]
    ]
    return "\n".join(lines)


def one_line(exc: BaseException) -> str:
    """``exc`` as one line of text (its message with whitespace runs collapsed, else its class name)."""
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def run_tool(
    name: str,
    handler: Callable[[argparse.Namespace], int],
    args: argparse.Namespace,
    err: TextIO | None = None,
) -> int:
    """Run ``handler(args)``; turn every expected failure into one stderr line and an exit status.

    ``name`` prefixes the line (``streamcore topics: ...``). A closed stdout (the
    output piped into ``head``) ends the tool quietly with status 0, as Unix filters do.
    """
    import asyncio
    import concurrent.futures

    from streamcore.errors import ConfigError, KafkaError, StreamcoreError

    # Before Python 3.11 these two are not the builtin TimeoutError.
    timeouts = (TimeoutError, asyncio.TimeoutError, concurrent.futures.TimeoutError)
    err = err or sys.stderr
    try:
        return int(handler(args))
    except UsageError as exc:
        print(f"streamcore {name}: {exc}", file=err)
        return EXIT_USAGE
    except ConfigError as exc:
        print(f"streamcore {name}: {one_line(exc)}", file=err)
        return EXIT_USAGE
    except ToolError as exc:
        print(f"streamcore {name}: {exc}", file=err)
        return EXIT_FAILURE
    except KafkaError as exc:
        print(f"streamcore {name}: {one_line(exc)}", file=err)
        return EXIT_FAILURE
    except BrokenPipeError:
        # Python would complain again when flushing stdout at exit; point it at /dev/null.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except (ConnectionError, OSError, *timeouts) as exc:
        print(f"streamcore {name}: broker unreachable or not answering: {one_line(exc)}", file=err)
        return EXIT_FAILURE
    except StreamcoreError as exc:
        print(f"streamcore {name}: {one_line(exc)}", file=err)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return 130
