"""The ``streamcore`` command.

Each subcommand is one ``add_<name>_command(subparsers)`` function that adds its
parser and sets ``handler`` (a function taking the parsed arguments and returning
the exit status). Adding a subcommand means writing that function and listing it
in :func:`_command_adders`. ``bench`` and its targets live in :mod:`streamcore.bench.cli`
(listed in its ``TARGETS``), the client tools (``topics``, ``produce``, ``consume``,
``groups``) in :mod:`streamcore.tools`; this module only wires them in.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

from streamcore._version import __version__
from streamcore.tools._common import tool_parser

__all__ = ["build_parser", "main"]

Subparsers = Any  # argparse's _SubParsersAction is private; only add_parser is used
CommandAdder = Callable[[Subparsers], None]


# --- info -------------------------------------------------------------------------


def add_info_command(subparsers: Subparsers) -> None:
    """``streamcore info``: implementations, CPU features and versions in use."""
    p = subparsers.add_parser(
        "info",
        help="show which native or reference implementation each capability uses",
        description="Show, per capability, whether native or reference code is active, why native "
        "code did not load, the CPU features the CRC-32C code uses, and library versions.",
    )
    p.add_argument("--json", action="store_true", help="print the same information as JSON")
    p.set_defaults(handler=run_info)


def _yes_no(flags: dict[str, bool]) -> str:
    return ", ".join(f"{name} {'yes' if present else 'no'}" for name, present in flags.items())


def format_info(env: dict[str, Any]) -> str:
    """Human-readable rendering of ``streamcore.bench.environment.collect_environment()``."""
    v = env["versions"]
    lines = [
        f"streamcore {v['streamcore']} on {v['python_implementation']} {v['python']} ({v['python_executable']})",
        "",
        "capabilities:",
    ]
    impl = env["implementation"]
    errors = env["native_load_errors"]
    width = max((len(k) for k in impl), default=0)
    for capability, active in impl.items():
        why = ""
        if active == "reference" and not env["no_extensions"]:
            # Rust capabilities share one load error: that of streamcore._native itself.
            reason = errors.get(capability) or (
                "streamcore._native did not load" if "_native" in errors else ""
            )
            why = f"  <- {reason}" if reason else ""
        lines.append(f"  {capability.ljust(width)}  {active}{why}")
    if env["no_extensions"]:
        lines.append("  (STREAMCORE_NO_EXTENSIONS=1: native code disabled)")
    lines.append("native load errors:" + ("" if errors else " none"))
    lines += [f"  {name}: {message}" for name, message in errors.items()]

    crc = env["crc32c"]
    lines += ["", "CRC-32C:", f"  implementation:   {crc['implementation_detail'] or 'n/a'}"]
    has = crc["cpu_has"]
    lines.append(
        f"  CPU has:          {_yes_no(has)} (/proc/cpuinfo)"
        if has is not None
        else f"  CPU has:          n/a (no /proc/cpuinfo; machine {crc['machine']})"
    )
    uses = crc["active_code_uses"]
    lines.append(
        f"  active code uses: {' '.join(uses) or 'no special instructions'}"
        if uses is not None
        else "  active code uses: n/a (the reference twin reports only its implementation line)"
    )

    cython = v["cython_modules"]
    lines += [
        "",
        "versions:",
        f"  python            {v['python']}",
        f"  streamcore        {v['streamcore']}",
        f"  _native (Rust)    {v['native_extension'] or 'not built'}",
        "  Cython modules    "
        + (", ".join(f"{m} {'present' if ok else 'absent'}" for m, ok in cython.items()) or "none"),
    ]
    for name, version in v["libraries"].items():
        lines.append(f"  {name.ljust(17)} {version or 'not installed'}")
    crates = v["native_codec_crates"]
    lines.append(
        "  native codec crates: " + (", ".join(f"{k} {val}" for k, val in crates.items()) or "not reported")
    )
    baselines = ", ".join(f"{k} {val or 'not installed'}" for k, val in v["baseline_libraries"].items())
    lines.append(f"  benchmark baselines: {baselines}")
    return "\n".join(lines)


def run_info(args: argparse.Namespace) -> int:
    """Print the environment report; exit status 0."""
    from streamcore.bench.environment import collect_environment

    env = collect_environment()
    print(json.dumps(env, indent=2, sort_keys=True) if args.json else format_info(env))
    return 0


# --- broker, config --------------------------------------------------------------------


def _add_setting_flags(p: argparse.ArgumentParser) -> None:
    """One option per setting that has a command-line flag (see ``config --show``)."""
    from streamcore.broker.config import SETTINGS

    p.add_argument("--config", metavar="FILE.toml", help="TOML configuration file")
    for s in SETTINGS:
        if s.cli:
            if s.repeatable:
                p.add_argument(
                    s.cli, dest=s.name, default=None, action="append", help=s.help + " Repeatable."
                )
            elif s.kind == "bool":
                # A boolean setting's flag takes no value: giving it turns the setting on.
                p.add_argument(
                    s.cli, dest=s.name, default=None, action="store_const", const="true", help=s.help
                )
            elif s.choices and s.kind == "choice":
                # Choices are lower case; str.lower lets "--log-level INFO" through as well.
                p.add_argument(
                    s.cli, dest=s.name, default=None, help=s.help, choices=s.choices, type=str.lower
                )
            else:
                p.add_argument(s.cli, dest=s.name, default=None, help=s.help)


def _load_broker_config(args: argparse.Namespace) -> Any:
    from streamcore.broker.config import SETTINGS, load_config

    cli = {
        s.name: getattr(args, s.name) for s in SETTINGS if s.cli and getattr(args, s.name, None) is not None
    }
    return load_config(args.config, cli=cli)


_BROKER_EXAMPLES = """
examples:
  streamcore broker --data-dir /var/lib/streamcore --metrics-port 9100
  streamcore broker --port 0 --metrics-port 0 --log-level info --log-format json
  STREAMCORE_STORAGE_FSYNC=always streamcore broker --config broker.toml
  streamcore broker --no-search-index          # no search indexer thread at all
"""


def add_broker_command(subparsers: Subparsers) -> None:
    """``streamcore broker``: run the Kafka-wire broker until SIGTERM/SIGINT."""
    p = tool_parser(
        subparsers,
        "broker",
        help="run the broker (prints 'listening on HOST:PORT' when ready)",
        description="Run the Kafka-protocol broker.\n\n"
        "Settings: CLI flags > STREAMCORE_* environment > --config FILE.toml > defaults;\n"
        "`streamcore config --show` lists them all. When ready it prints 'listening on HOST:PORT'\n"
        "on stdout, then 'metrics on http://HOST:PORT/metrics' if --metrics-port is given\n"
        "(0 = a free port). SIGTERM/SIGINT stop it cleanly (exit 0). Logs go to stderr\n"
        "(--log-level; --log-format json writes one JSON object per line). A bad setting, a data\n"
        "directory in use or not writable, or a port in use is one line on stderr, exit non-zero.",
        epilog=_BROKER_EXAMPLES,
    )
    _add_setting_flags(p)
    p.set_defaults(handler=run_broker_command)


def _early_logging(args: argparse.Namespace) -> None:
    """Configure logging from the flags or the environment before the configuration is
    read, so that what reading it warns about (an unknown variable) is logged in the
    chosen format."""
    import os

    from streamcore.broker.config import SETTINGS
    from streamcore.logging_setup import configure_logging

    chosen = {}
    for s in SETTINGS:
        if s.name in ("log.level", "log.format"):
            raw = getattr(args, s.name, None) or os.environ.get(s.env)
            chosen[s.name] = s.parse(raw) if raw is not None else None
    configure_logging(chosen["log.level"] or "warning", chosen["log.format"] or "text")


def run_broker_command(args: argparse.Namespace) -> int:
    from streamcore.broker.embedded import run_broker
    from streamcore.errors import ConfigError
    from streamcore.logging_setup import configure_logging

    try:
        _early_logging(args)
        config = _load_broker_config(args)
    except ConfigError as exc:
        print(f"streamcore broker: {exc}", file=sys.stderr)
        return 2
    configure_logging(config.log.level, config.log.format)
    return run_broker(config)


def add_config_command(subparsers: Subparsers) -> None:
    """``streamcore config --show``: every broker setting with its value and source."""
    p = tool_parser(
        subparsers,
        "config",
        help="show the broker configuration and where each value comes from",
        description="Resolve the broker configuration as `streamcore broker` would with the same flags.",
    )
    p.add_argument("--show", action="store_true", required=True, help="print every setting and its source")
    _add_setting_flags(p)
    p.set_defaults(handler=run_config_command)


def run_config_command(args: argparse.Namespace) -> int:
    from streamcore.broker.config import config_show
    from streamcore.errors import ConfigError

    try:
        _early_logging(args)
        print(config_show(_load_broker_config(args)), end="")
    except ConfigError as exc:
        print(f"streamcore config: {exc}", file=sys.stderr)
        return 2
    return 0


# --- the command itself -------------------------------------------------------------


def _command_adders() -> list[CommandAdder]:
    """Top-level subcommands, in help order.

    The tools and the bench are imported here, not at the top of the module: ``streamcore
    broker`` builds a parser with its own subcommand only (see :func:`main`), and its
    start-up should not pay for some hundred modules it never uses (the tools' client
    code, the bench's peers and ``importlib.metadata``).
    """
    from streamcore.bench.cli import add_bench_command
    from streamcore.tools import TOOLS

    return [add_info_command, add_broker_command, add_config_command, *TOOLS, add_bench_command]


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The argument parser with every registered subcommand (``only="broker"``: that one alone)."""
    parser = argparse.ArgumentParser(
        prog="streamcore",
        description="Kafka-protocol streaming for Python: broker, client and native core.",
    )
    parser.add_argument("--version", action="version", version=f"streamcore {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    adders = [add_broker_command] if only == "broker" else _command_adders()
    for add in adders:
        add(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point: parse ``argv`` (default ``sys.argv[1:]``), run the subcommand, return its status.

    Usage errors (unknown subcommand, bad option) exit with status 2.
    """
    if argv is None:
        argv = sys.argv[1:]
    # The broker's start-up is timed by users and benchmarks: its parser alone.
    only = "broker" if argv[:1] == ["broker"] else None
    args = build_parser(only).parse_args(argv)
    return int(args.handler(args))


if __name__ == "__main__":
    sys.exit(main())
