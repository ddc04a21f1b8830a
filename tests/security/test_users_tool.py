"""``streamcore users`` offline (data directory) and online (DescribeUserScramCredentials /
AlterUserScramCredentials through a broker), and those two APIs' Kafka semantics."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import streamcore
from broker.wire_client import WireClient
from streamcore import Broker
from streamcore.broker.security.credentials import SCRAM_MECHANISMS, CredentialStore
from streamcore.errors import ErrorCode
from streamcore.protocol import messages as m

from .certs import authenticated, sasl_login

PACKAGE_PARENT = str(Path(streamcore.__file__).resolve().parent.parent)
RUN_TIMEOUT_S = 90
SHA512 = SCRAM_MECHANISMS["SCRAM-SHA-512"]


def users_cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "STREAMCORE_BOOTSTRAP"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (PACKAGE_PARENT, env.get("PYTHONPATH")) if p)
    return subprocess.run(
        [sys.executable, "-m", "streamcore.cli", "users", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=RUN_TIMEOUT_S,
        check=False,
    )


def ok(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def one_line_failure(proc: subprocess.CompletedProcess[str], status: int = 1) -> str:
    assert proc.returncode == status, (proc.returncode, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("streamcore users: "), proc.stderr
    return lines[0]


def rows(out: str) -> list[list[str]]:
    return [line.split() for line in out.strip().splitlines()[1:]]


def test_offline_users_are_there_when_the_broker_starts(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    assert ok(
        users_cli("add", "alice", "--password", "a-pw", "--mechanism", "scram-sha-512", "--data-dir", data)
    ) == ("set SCRAM-SHA-512 credentials of user alice (4096 iterations)\n")
    pw_file = tmp_path / "bob.pw"
    pw_file.write_text("b-pw\nignored\n")
    ok(
        users_cli(
            "add",
            "bob",
            "--password-file",
            str(pw_file),
            "--mechanism",
            "SCRAM-SHA-256",
            "--iterations",
            "8192",
            "--data-dir",
            data,
        )
    )
    assert rows(ok(users_cli("list", "--data-dir", data))) == [
        ["alice", "SCRAM-SHA-512", "4096"],
        ["bob", "SCRAM-SHA-256", "8192"],
    ]
    with Broker(data, listeners="SASL_PLAINTEXT://127.0.0.1:0") as broker:
        with authenticated(broker.bootstrap_servers, "SCRAM-SHA-512", "alice", "a-pw") as c:
            assert c.request(m.MetadataRequest(topics=None), 1).brokers
        with authenticated(broker.bootstrap_servers, "SCRAM-SHA-256", "bob", "b-pw"):
            pass
        # The data directory is the broker's while it runs.
        line = one_line_failure(users_cli("add", "carol", "--password", "c", "--data-dir", data))
        assert "is in use" in line and "--bootstrap" in line
    assert (
        ok(users_cli("delete", "alice", "--data-dir", data))
        == "deleted SCRAM-SHA-512 credentials of user alice\n"
    )
    assert rows(ok(users_cli("list", "--data-dir", data))) == [["bob", "SCRAM-SHA-256", "8192"]]
    assert "user 'alice' has no credentials" in one_line_failure(
        users_cli("delete", "alice", "--data-dir", data)
    )


def test_offline_usage_errors_are_one_line(tmp_path: Path) -> None:
    data = str(tmp_path)
    assert "--iterations must be 4096-16384" in one_line_failure(
        users_cli("add", "a", "--password", "p", "--iterations", "100", "--data-dir", data), status=2
    )
    assert "give --password or --password-file" in one_line_failure(
        users_cli("add", "a", "--data-dir", data, stdin=""), status=2
    )
    assert "invalid choice" in users_cli("add", "a", "--password", "p", "--mechanism", "MD5").stderr
    (tmp_path / "scram-credentials.json").write_text("{")
    assert "not a valid SCRAM credentials file" in one_line_failure(users_cli("list", "--data-dir", data))


def test_online_users_through_a_plaintext_listener(tmp_path: Path) -> None:
    with Broker(
        str(tmp_path),
        listeners="PLAINTEXT://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:0",
        sasl_failed_authentication_delay_ms=0,
    ) as broker:
        bootstrap = broker.bootstrap_servers
        sasl = broker.bootstrap_for("SASL_PLAINTEXT")
        ok(users_cli("add", "alice", "--password", "pw1", "--bootstrap", bootstrap))
        ok(
            users_cli(
                "add",
                "alice",
                "--password",
                "pw2",
                "--mechanism",
                "SCRAM-SHA-256",
                "--iterations",
                "5000",
                "--bootstrap",
                bootstrap,
            )
        )
        assert rows(ok(users_cli("list", "--bootstrap", bootstrap))) == [
            ["alice", "SCRAM-SHA-256", "5000"],
            ["alice", "SCRAM-SHA-512", "4096"],
        ]
        # Credentials added online serve the next authentication at once...
        with authenticated(sasl, "SCRAM-SHA-512", "alice", "pw1"):
            pass
        with authenticated(sasl, "SCRAM-SHA-256", "alice", "pw2"):
            pass
        # ...and a new password replaces the old one.
        ok(users_cli("add", "alice", "--password", "pw3", "--bootstrap", bootstrap))
        with WireClient(sasl) as c:
            assert (
                sasl_login(c, "SCRAM-SHA-512", "alice", "pw1").error_code
                == ErrorCode.SASL_AUTHENTICATION_FAILED.code
            )
        with authenticated(sasl, "SCRAM-SHA-512", "alice", "pw3"):
            pass
        assert ok(users_cli("delete", "alice", "--bootstrap", bootstrap)) == (
            "deleted SCRAM-SHA-256, SCRAM-SHA-512 credentials of user alice\n"
        )
        assert rows(ok(users_cli("list", "--bootstrap", bootstrap))) == []
        assert "user 'alice' has no credentials" in one_line_failure(
            users_cli("delete", "alice", "--bootstrap", bootstrap)
        )
        line = one_line_failure(
            users_cli("delete", "alice", "--mechanism", "SCRAM-SHA-256", "--bootstrap", bootstrap)
        )
        assert "RESOURCE_NOT_FOUND" in line
    # Persisted in the data directory.
    assert CredentialStore(tmp_path).users() == {}


def test_online_users_through_a_sasl_listener_with_command_config(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    ok(users_cli("add", "admin", "--password", "admin-pw", "--data-dir", data))
    props = tmp_path / "admin.properties"
    props.write_text(
        "security.protocol=SASL_PLAINTEXT\nsasl.mechanism=SCRAM-SHA-512\nsasl.username=admin\nsasl.password=admin-pw\n"
    )
    with Broker(data, listeners="SASL_PLAINTEXT://127.0.0.1:0") as broker:
        conn = ["--bootstrap", broker.bootstrap_servers, "--command-config", str(props)]
        ok(users_cli("add", "app", "--password", "app-pw", *conn))
        assert [r[0] for r in rows(ok(users_cli("list", *conn)))] == ["admin", "app"]
        with authenticated(broker.bootstrap_servers, "SCRAM-SHA-512", "app", "app-pw"):
            pass


def alter(c: WireClient, deletions=(), upsertions=()) -> dict[str, tuple[int, str | None]]:
    resp = c.request(
        m.AlterUserScramCredentialsRequest(deletions=list(deletions), upsertions=list(upsertions)), 0
    )
    return {r.user: (r.error_code, r.error_message) for r in resp.results}


def upsert(
    name: str, mechanism: int = 2, iterations: int = 4096, salt: bytes = b"salt", salted: bytes = b"x" * 64
):
    return m.AlterUserScramCredentialsRequest_ScramCredentialUpsertion(
        name=name, mechanism=mechanism, iterations=iterations, salt=salt, salted_password=salted
    )


def delete(name: str, mechanism: int = 2):
    return m.AlterUserScramCredentialsRequest_ScramCredentialDeletion(name=name, mechanism=mechanism)


def test_alter_and_describe_follow_kafkas_rules() -> None:
    E = ErrorCode
    with Broker() as broker, WireClient(broker.bootstrap_servers) as c:
        got = alter(
            c,
            deletions=[delete("ghost"), delete("twice"), delete("twice"), delete("", 2), delete("odd", 9)],
            upsertions=[
                upsert("ok"),
                upsert("ok256", mechanism=1, iterations=16384),
                upsert("few", iterations=4095),
                upsert("many", iterations=16385),
                upsert("dup"),
                upsert("dup", mechanism=1),
                upsert("bad-mech", mechanism=0),
                upsert("empty-salt", salt=b""),
            ],
        )
        assert got == {
            "ghost": (E.RESOURCE_NOT_FOUND.code, "Attempt to delete a user credential that does not exist"),
            # A user's first error is its answer (as in Kafka): not found, before twice.
            "twice": (E.RESOURCE_NOT_FOUND.code, "Attempt to delete a user credential that does not exist"),
            "": (E.UNACCEPTABLE_CREDENTIAL.code, "Username must not be empty"),
            "odd": (E.UNSUPPORTED_SASL_MECHANISM.code, "Unknown SCRAM mechanism"),
            "ok": (0, None),
            "ok256": (0, None),
            "few": (E.UNACCEPTABLE_CREDENTIAL.code, "Too few iterations"),
            "many": (E.UNACCEPTABLE_CREDENTIAL.code, "Too many iterations"),
            "dup": (
                E.DUPLICATE_RESOURCE.code,
                "A user credential cannot be altered twice in the same request",
            ),
            "bad-mech": (E.UNSUPPORTED_SASL_MECHANISM.code, "Unknown SCRAM mechanism"),
            "empty-salt": (E.UNACCEPTABLE_CREDENTIAL.code, "Salt and salted password must not be empty"),
        }
        assert sorted(broker.state.scram_credentials.users()) == ["ok", "ok256"]
        desc = c.request(m.DescribeUserScramCredentialsRequest(users=None), 0)
        assert desc.error_code == 0
        assert [
            (r.user, [(i.mechanism, i.iterations) for i in r.credential_infos]) for r in desc.results
        ] == [
            ("ok", [(2, 4096)]),
            ("ok256", [(1, 16384)]),
        ]
        Name = m.DescribeUserScramCredentialsRequest_UserName
        desc = c.request(
            m.DescribeUserScramCredentialsRequest(
                users=[Name("ok"), Name("nobody"), Name("ok256"), Name("ok256")]
            ),
            0,
        )
        assert [(r.user, r.error_code) for r in desc.results] == [
            ("ok", 0),
            ("nobody", E.RESOURCE_NOT_FOUND.code),
            ("ok256", E.DUPLICATE_RESOURCE.code),
        ]
        assert alter(c, deletions=[delete("ok256", 1), delete("ok256", 1)]) == {
            "ok256": (
                E.DUPLICATE_RESOURCE.code,
                "A user credential cannot be altered twice in the same request",
            )
        }
        assert alter(c, deletions=[delete("ok")], upsertions=[upsert("ok256", mechanism=2)]) == {
            "ok": (0, None),
            "ok256": (0, None),
        }
        assert sorted((u, sorted(mechs)) for u, mechs in broker.state.scram_credentials.users().items()) == [
            ("ok256", ["SCRAM-SHA-256", "SCRAM-SHA-512"])
        ]


def test_with_the_acl_authorizer_users_are_managed_by_super_users_only(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    ok(users_cli("add", "admin", "--password", "admin-pw", "--data-dir", data))
    ok(users_cli("add", "app", "--password", "app-pw", "--data-dir", data))
    with Broker(
        data, listeners="SASL_PLAINTEXT://127.0.0.1:0", authorizer="acl", super_users="User:admin"
    ) as broker:
        bootstrap = broker.bootstrap_servers
        with authenticated(bootstrap, "SCRAM-SHA-512", "app", "app-pw") as c:
            assert alter(c, upsertions=[upsert("app")]) == {
                "app": (
                    ErrorCode.CLUSTER_AUTHORIZATION_FAILED.code,
                    "Cluster authorization failed: ALTER on the cluster is needed",
                )
            }
            desc = c.request(m.DescribeUserScramCredentialsRequest(users=None), 0)
            assert (desc.error_code, desc.results) == (ErrorCode.CLUSTER_AUTHORIZATION_FAILED.code, [])
        with authenticated(bootstrap, "SCRAM-SHA-512", "admin", "admin-pw") as c:
            assert alter(c, deletions=[delete("app")]) == {"app": (0, None)}
            desc = c.request(m.DescribeUserScramCredentialsRequest(users=None), 0)
            assert [r.user for r in desc.results] == ["admin"]
