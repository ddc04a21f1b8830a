"""The contract every tool keeps: --bootstrap/STREAMCORE_BOOTSTRAP, --command-config, exit codes, --help."""

from __future__ import annotations

import socket

import pytest

from .helpers import failed_with_one_line, ok, run_cli

TOOLS = [
    ("topics", "list"),
    ("topics", "describe"),
    ("topics", "create"),
    ("topics", "alter"),
    ("topics", "delete"),
    ("produce",),
    ("consume",),
    ("groups", "list"),
    ("groups", "describe"),
    ("groups", "delete"),
    ("groups", "reset-offsets"),
]


@pytest.mark.parametrize("tool", TOOLS, ids=" ".join)
def test_help_has_examples_and_the_connection_options(tool: tuple[str, ...]) -> None:
    out = ok(run_cli(*tool, "--help"))
    assert "examples:" in out
    assert f"streamcore {' '.join(tool)}" in out.split("examples:", 1)[1]
    assert "--bootstrap" in out and "--command-config" in out


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens once the socket is closed


@pytest.mark.parametrize(
    "tool",
    [("topics", "list"), ("produce", "t"), ("consume", "t"), ("groups", "list"), ("groups", "describe", "g")],
    ids=" ".join,
)
def test_unreachable_broker_is_one_line_and_exit_1(tool: tuple[str, ...]) -> None:
    proc = run_cli(*tool, "--bootstrap", f"127.0.0.1:{_closed_port()}", "--timeout", "5", input=b"x\n")
    line = failed_with_one_line(proc)
    assert "broker unreachable" in line


def test_streamcore_bootstrap_environment_is_the_default(streamcore_broker: str, name: str) -> None:
    env = {"STREAMCORE_BOOTSTRAP": streamcore_broker}
    ok(run_cli("topics", "create", name, "--partitions", "1", env=env))
    assert name in ok(run_cli("topics", "list", env=env)).splitlines()
    # --bootstrap wins over the environment.
    proc = run_cli("topics", "list", "--bootstrap", f"127.0.0.1:{_closed_port()}", "--timeout", "5", env=env)
    failed_with_one_line(proc)


def test_command_config_settings_reach_the_client(streamcore_broker: str, name: str, tmp_path) -> None:
    props = tmp_path / "client.properties"
    # Java properties syntax: comments, ':' separators, escapes; the file also names the brokers.
    props.write_text(
        f"# ops\nbootstrap.servers={streamcore_broker}\nclient.id : ops\\u002dtool\nrequest.timeout.ms=20000\n"
    )
    ok(run_cli("topics", "create", name, "--command-config", str(props)))
    assert name in ok(run_cli("topics", "list", "--command-config", str(props))).splitlines()


def test_unknown_command_config_property_names_it(streamcore_broker: str, tmp_path) -> None:
    props = tmp_path / "client.properties"
    props.write_text("request.timeout.ms=1000\nlinger.msec=5\n")
    proc = run_cli("topics", "list", "--bootstrap", streamcore_broker, "--command-config", str(props))
    line = failed_with_one_line(proc, status=2)
    assert str(props) in line and "linger.msec" in line


def test_missing_command_config_file_is_a_usage_error(tmp_path) -> None:
    proc = run_cli("topics", "list", "--command-config", str(tmp_path / "nope.properties"))
    line = failed_with_one_line(proc, status=2)
    assert "nope.properties" in line and "No such file" in line


@pytest.mark.parametrize(
    "args",
    [
        ("topics", "create", "t", "--partitions", "0"),
        ("topics", "create", "t", "--config", "novalue"),
        ("topics", "alter", "t"),
        ("produce", "t", "--header", "novalue"),
        ("produce", "t", "--file", "/nonexistent/file"),
        ("produce", "t", "--compression", "brotli"),
        ("consume", "t", "--group", "g", "--partition", "0"),
        ("consume", "t", "--max-messages", "0"),
        ("groups", "reset-offsets", "g", "--topic", "t:x", "--to-earliest"),
    ],
    ids=" ".join,
)
def test_bad_arguments_exit_2_with_one_line(args: tuple[str, ...]) -> None:
    # The closed port shows the check comes before any broker is contacted.
    failed_with_one_line(run_cli(*args, "--bootstrap", f"127.0.0.1:{_closed_port()}", input=b""), status=2)


@pytest.mark.parametrize(
    "args",
    [
        ("topics", "create"),
        ("consume", "t", "--format", "xml"),
        ("groups", "reset-offsets", "g", "--all-topics"),
    ],
    ids=" ".join,
)
def test_argparse_usage_errors_are_one_line_and_exit_2(args: tuple[str, ...]) -> None:
    line = failed_with_one_line(run_cli(*args), status=2)
    assert line.startswith(f"streamcore {args[0]}") and line.endswith("--help)")
