"""``streamcore quotas`` as a process: the tools' contract (help with examples, one-line
errors and exit statuses) and its use through a secured listener with --command-config."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from streamcore import Broker

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "streamcore", "quotas", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )


@pytest.mark.parametrize("action", ["alter", "describe"])
def test_help_has_examples_and_the_connection_options(action: str) -> None:
    proc = run(action, "--help")
    assert proc.returncode == 0, proc.stderr
    assert f"streamcore quotas {action}" in proc.stdout.split("examples:", 1)[1]
    assert "--bootstrap" in proc.stdout and "--command-config" in proc.stdout


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_broker_is_one_line_and_exit_1() -> None:
    proc = run("describe", "--bootstrap", f"127.0.0.1:{_closed_port()}", "--timeout", "5")
    assert proc.returncode == 1 and proc.stdout == ""
    assert len(proc.stderr.splitlines()) == 1 and "broker unreachable" in proc.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["alter", "--add-config", "producer_byte_rate=1"], "name an entity"),
        (["alter", "--user", "a"], "give --add-config KEY=VALUE or --delete-config KEY"),
        (["alter", "--user", "a", "--add-config", "producer_byte_rate"], "expected KEY=VALUE"),
        (["alter", "--user", "a", "--add-config", "producer_byte_rate=fast"], "is not a number"),
        (["alter", "--entity-name", "a", "--add-config", "producer_byte_rate=1"], "without an --entity-type"),
        (
            ["alter", "--entity-type", "users", "--add-config", "producer_byte_rate=1"],
            "needs an --entity-name",
        ),
        (["alter", "--user", "a", "--user", "b", "--add-config", "producer_byte_rate=1"], "named twice"),
        (["describe", "--entity-type", "groups"], "invalid choice"),
    ],
)
def test_bad_arguments_are_one_line_and_exit_2(args: list[str], message: str) -> None:
    proc = run(*args, "--bootstrap", f"127.0.0.1:{_closed_port()}")
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.splitlines()) == 1 and message in proc.stderr, proc.stderr


USERS = {"admin": "admin-pw", "alice": "alice-pw"}


@pytest.fixture
def sasl_broker(tmp_path: Path) -> Any:
    b = Broker(
        str(tmp_path / "data"),
        listeners="SASL_PLAINTEXT://127.0.0.1:0",
        sasl_mechanisms="PLAIN",
        sasl_plain_users=",".join(f"{u}:{p}" for u, p in USERS.items()),
        authorizer="acl",
        super_users="User:admin",
    ).start()
    yield b
    b.stop()


def _properties(tmp_path: Path, user: str) -> str:
    path = tmp_path / f"{user}.properties"
    path.write_text(
        "security.protocol=SASL_PLAINTEXT\n"
        "sasl.mechanism=PLAIN\n"
        "sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required "
        f'username="{user}" password="{USERS[user]}";\n'
    )
    return str(path)


def test_through_a_sasl_listener_with_command_config(sasl_broker: Any, tmp_path: Path) -> None:
    bootstrap = sasl_broker.bootstrap_servers
    admin = ["--bootstrap", bootstrap, "--command-config", _properties(tmp_path, "admin")]
    done = run("alter", "--user", "alice", "--add-config", "producer_byte_rate=2048", *admin)
    assert (done.returncode, done.stdout) == (0, "Completed updating quotas of user=alice.\n"), done.stderr
    shown = run("describe", *admin)
    assert [line.split() for line in shown.stdout.splitlines()] == [
        ["USER", "CLIENT-ID", "IP", "QUOTA", "VALUE"],
        ["alice", "-", "-", "producer_byte_rate", "2048"],
    ]
    # alice may not: the broker's refusal is the one line, exit 1.
    alice = ["--bootstrap", bootstrap, "--command-config", _properties(tmp_path, "alice")]
    denied = run("describe", *alice)
    assert denied.returncode == 1
    assert (
        denied.stderr.strip()
        == "streamcore quotas: CLUSTER_AUTHORIZATION_FAILED: Cluster authorization failed."
    )
    denied = run("alter", "--user", "alice", "--delete-config", "producer_byte_rate", *alice)
    assert denied.returncode == 1 and "CLUSTER_AUTHORIZATION_FAILED" in denied.stderr
    assert sasl_broker.state.quota_store.quotas == {(("user", "alice"),): {"producer_byte_rate": 2048.0}}
