"""The broker's SASL mechanisms, credentials, PLAIN users and failure throttle, without sockets.

The client side is streamcore's client code (written apart from the broker's) and, for
SCRAM-SHA-256, the exchange of RFC 7677 section 3 byte for byte.
"""

from __future__ import annotations

import base64
import json
import os
import stat
import time
from pathlib import Path

import pytest

from streamcore.broker.config import SaslConfig
from streamcore.broker.security import mechanisms as mech_module
from streamcore.broker.security.credentials import (
    SCRAM_MECHANISMS,
    CredentialStore,
    ScramCredential,
    mechanism_by_type,
)
from streamcore.broker.security.mechanisms import (
    AuthenticationFailed,
    InvalidToken,
    OAuthBearerServer,
    PlainServer,
    ScramServer,
    validate_unsecured_jws,
)
from streamcore.broker.security.sasl import FailureThrottle, load_plain_users, load_token_validator
from streamcore.client.security import PlainClient, ScramClient
from streamcore.errors import ConfigError, StorageError

from .certs import unsecured_jwt

SHA256 = SCRAM_MECHANISMS["SCRAM-SHA-256"]
SHA512 = SCRAM_MECHANISMS["SCRAM-SHA-512"]
SECRET = b"k" * 32


def scram_server(mechanism=SHA512, users=None):
    users = users or {}
    return ScramServer(mechanism, lambda u: users.get(u), SECRET)


def run_scram(server: ScramServer, client: ScramClient) -> bytes:
    first = server.evaluate(client.initial())
    final = server.evaluate(client.evaluate(first))
    assert client.evaluate(final) is None  # the client checked the server's signature
    return final


def test_rfc_7677_exchange_byte_for_byte(monkeypatch: pytest.MonkeyPatch) -> None:
    salt = base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ==")
    credential = ScramCredential.from_password(SHA256, "pencil", salt=salt, iterations=4096)
    monkeypatch.setattr(mech_module.secrets, "token_urlsafe", lambda n: "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0")
    server = scram_server(SHA256, {"user": credential})
    first = server.evaluate(b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO")
    assert first == b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
    final = server.evaluate(
        b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
    )
    assert final == b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
    assert (server.complete, server.username) == (True, "user")


@pytest.mark.parametrize("mechanism", [SHA256, SHA512], ids=lambda m: m.name)
def test_scram_with_streamcores_client(mechanism) -> None:
    credential = ScramCredential.from_password(mechanism, "s3cret, with = signs", iterations=4096)
    server = scram_server(mechanism, {"al,i=ce": credential})
    run_scram(server, ScramClient(mechanism.name, "al,i=ce", "s3cret, with = signs"))
    assert (server.complete, server.username) == (True, "al,i=ce")


def test_a_wrong_password_fails_with_kafkas_message() -> None:
    server = scram_server(users={"alice": ScramCredential.from_password(SHA512, "right")})
    client = ScramClient("SCRAM-SHA-512", "alice", "wrong")
    first = server.evaluate(client.initial())
    with pytest.raises(AuthenticationFailed) as info:
        server.evaluate(client.evaluate(first))
    assert str(info.value) == (
        "Authentication failed during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-512"
    )
    assert not server.complete
    with pytest.raises(AuthenticationFailed):
        server.evaluate(b"anything")


def test_an_unknown_user_is_not_told_apart_until_the_proof() -> None:
    # Same shape of first answer as a known user, with a salt that does not change between tries.
    firsts = []
    for _ in range(2):
        server = scram_server()
        client = ScramClient("SCRAM-SHA-512", "nobody", "pw")
        first = server.evaluate(client.initial())
        firsts.append(first.decode().split(",", 1)[1])
        with pytest.raises(AuthenticationFailed, match="invalid credentials"):
            server.evaluate(client.evaluate(first))
    assert firsts[0] == firsts[1] and firsts[0].endswith(",i=4096")


@pytest.mark.parametrize(
    ("first", "message"),
    [
        (b"p=tls-unique,,n=alice,r=abc", "channel binding is not supported"),
        (b"x,,n=alice,r=abc", "client-first message"),
        (b"n,,n=al=2Xce,r=abc", "client-first message"),
        (b"n,,r=abc,n=alice", "client-first message"),
        (b"n,,n=alice", "client-first message"),
        (b"n,,n=alice,r=", "client-first message"),
        (b"n,,m=ext,n=alice,r=abc", "client-first message"),
        (b"\xff\xfe", "client-first message"),
        (b"n,a=bob,n=alice,r=abc", "authorization id that is different"),
        (b"n,,n=alice,r=abc,tokenauth=true", "delegation tokens"),
    ],
)
def test_malformed_client_first_messages_fail(first: bytes, message: str) -> None:
    server = scram_server(users={"alice": ScramCredential.from_password(SHA512, "pw")})
    with pytest.raises(AuthenticationFailed, match=message):
        server.evaluate(first)


def test_the_final_message_must_carry_the_nonce_header_and_a_proof_of_the_right_size() -> None:
    users = {"alice": ScramCredential.from_password(SHA512, "pw")}
    for mangle, message in [
        (lambda f: f.replace(b",p=", b"X,p=", 1), "Invalid client nonce"),
        (lambda f: f.replace(b"c=biws", b"c=eSws"), "invalid credentials"),
        (lambda f: f.rsplit(b",p=", 1)[0] + b",p=AAAA", "invalid credentials"),
        (lambda f: f.rsplit(b",p=", 1)[0], "client-final message"),
        (lambda f: f.rsplit(b",p=", 1)[0] + b",p=!!", "client-final message"),
    ]:
        server = scram_server(users=users)
        client = ScramClient("SCRAM-SHA-512", "alice", "pw")
        final = client.evaluate(server.evaluate(client.initial()))
        with pytest.raises(AuthenticationFailed, match=message):
            server.evaluate(mangle(final))
    # As Kafka, a nonce that ends with the combined one is taken (librdkafka < 2.1 repeats its
    # own part in front); the proof covers what was sent.
    server = scram_server(users=users)
    client = ScramClient("SCRAM-SHA-512", "alice", "pw")
    first = server.evaluate(client.initial())
    combined = first.decode().split(",")[0][2:]
    without_proof = f"c=biws,r={client.nonce}{combined}"
    auth_message = f"n=alice,r={client.nonce},{first.decode()},{without_proof}".encode()
    salted = SHA512.salted_password(b"pw", users["alice"].salt, 4096)
    client_key = SHA512.hmac(salted, b"Client Key")
    signature = SHA512.hmac(SHA512.hash(client_key), auth_message)
    proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
    final = server.evaluate(f"{without_proof},p={base64.b64encode(proof).decode()}".encode())
    assert final.startswith(b"v=") and server.complete
    # The authorization id may repeat the user name; the gs2 header then is part of c=.
    server = scram_server(users=users)
    first = server.evaluate(b"n,a=alice,n=alice,r=abc")
    assert first.startswith(b"r=abc")


def test_plain() -> None:
    users = {"alice": "pw"}
    server = PlainServer(users.get)
    assert server.evaluate(PlainClient("alice", "pw").initial()) == b""
    assert (server.complete, server.username) == (True, "alice")
    assert PlainServer(users.get).evaluate(b"alice\0alice\0pw") == b""
    for token, message in [
        (b"\0alice\0wrong", "Invalid username or password"),
        (b"\0bob\0pw", "Invalid username or password"),
        (b"\0alice\0pwx", "Invalid username or password"),
        (b"bob\0alice\0pw", "authorization id that is different"),
        (b"\0alice", "expected 3 tokens, got 2"),
        (b"\0\0pw", "username not specified"),
        (b"\0alice\0", "password not specified"),
        (b"\0al\xffice\0pw", "not UTF-8"),
    ]:
        with pytest.raises(AuthenticationFailed, match=message):
            PlainServer(users.get).evaluate(token)


def test_credentials_derive_from_the_salted_password_alike() -> None:
    salt = os.urandom(16)
    by_password = ScramCredential.from_password(SHA512, "pw", salt=salt, iterations=5000)
    salted = SHA512.salted_password(b"pw", salt, 5000)
    assert ScramCredential.from_salted_password(SHA512, salt, salted, 5000) == by_password
    assert len(by_password.stored_key) == len(by_password.server_key) == 64
    assert ScramCredential.from_json(by_password.to_json()) == by_password
    assert mechanism_by_type(1) is SHA256 and mechanism_by_type(2) is SHA512 and mechanism_by_type(3) is None


def test_the_store_persists_atomically_and_for_its_owner_only(tmp_path: Path) -> None:
    store = CredentialStore(tmp_path)
    assert store.users() == {}
    alice = ScramCredential.from_password(SHA512, "pw")
    store.apply(upsertions=[("alice", "SCRAM-SHA-512", alice), ("bob", "SCRAM-SHA-256", alice)])
    assert stat.S_IMODE(os.stat(store.path).st_mode) == 0o600
    again = CredentialStore(tmp_path)
    assert again.get("alice", "SCRAM-SHA-512") == alice
    assert again.get("alice", "SCRAM-SHA-256") is None
    again.apply(deletions=[("bob", "SCRAM-SHA-256")])
    assert sorted(CredentialStore(tmp_path).users()) == ["alice"]
    # Only salts, keys and counts are stored, never a password.
    stored = json.loads(store.path.read_text())["users"]["alice"]["SCRAM-SHA-512"]
    assert sorted(stored) == ["iterations", "salt", "server_key", "stored_key"]


def test_a_failed_write_changes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from streamcore.broker.security import credentials

    store = CredentialStore(tmp_path)

    def fail(path: object, data: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(credentials, "write_atomic", fail)
    with pytest.raises(OSError):
        store.apply(upsertions=[("alice", "SCRAM-SHA-512", ScramCredential.from_password(SHA512, "pw"))])
    assert store.users() == {}


@pytest.mark.parametrize(
    "text", ["{", '{"version": 2, "users": {}}', '{"version": 1, "users": {"a": {"MD5": {}}}}',
             '{"version": 1, "users": {"a": {"SCRAM-SHA-512": {"salt": "!", "iterations": 1, "stored_key": "", "server_key": ""}}}}']
)  # fmt: skip
def test_a_damaged_credentials_file_is_refused_with_advice(tmp_path: Path, text: str) -> None:
    (tmp_path / "scram-credentials.json").write_text(text)
    with pytest.raises(
        StorageError, match="not a valid SCRAM credentials file .*delete it and add the users again"
    ):
        CredentialStore(tmp_path)


def test_plain_users_come_from_the_setting_and_the_file(tmp_path: Path) -> None:
    users_file = tmp_path / "users.txt"
    users_file.write_text("# ops\nbob:b:pw\n\n  carol : c pw\nalice:from-file\n")
    cfg = SaslConfig(plain_users=("alice:a", "dave:d"), plain_users_file=str(users_file))
    assert load_plain_users(cfg) == {"alice": "from-file", "dave": "d", "bob": "b:pw", "carol": " c pw"}
    users_file.write_text("bob:pw\njust-a-secret\n")
    with pytest.raises(ConfigError, match=r"users\.txt: line 2 is not user:password$") as info:
        load_plain_users(cfg)
    assert "just-a-secret" not in str(info.value)
    with pytest.raises(ConfigError, match="cannot be read"):
        load_plain_users(SaslConfig(plain_users_file=str(tmp_path / "missing")))


def test_the_throttle_doubles_the_wait_per_consecutive_failure_up_to_5_s() -> None:
    now = [100.0]
    throttle = FailureThrottle(50, clock=lambda: now[0])
    waits = [throttle.failed("10.0.0.1") for _ in range(9)]
    assert waits == [0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0, 5.0]
    assert throttle.failed("10.0.0.2") == 0.1  # per address
    throttle.succeeded("10.0.0.1")
    assert throttle.failed("10.0.0.1") == 0.1
    now[0] += FailureThrottle.QUIET_S + 1
    assert throttle.failures("10.0.0.2") == 1
    assert throttle.failed("10.0.0.2") == 0.1  # a quiet minute forgets
    assert FailureThrottle(0).failed("x") == 0.0


def test_the_throttle_remembers_a_bounded_number_of_addresses() -> None:
    throttle = FailureThrottle(50, max_addresses=3)
    for i in range(5):
        throttle.failed(f"10.0.0.{i}")
    assert [throttle.failures(f"10.0.0.{i}") for i in range(5)] == [0, 0, 1, 1, 1]


# -- OAUTHBEARER ---------------------------------------------------------------------------------


def oauth_message(token: str, *, authzid: str = "", extensions: str = "") -> bytes:
    head = f"n,a={authzid}," if authzid else "n,,"
    return f"{head}\x01auth=Bearer {token}\x01{extensions}\x01".encode()


def test_oauthbearer_accepts_an_unsecured_token_and_reports_its_expiry() -> None:
    exp = time.time() + 3600
    server = OAuthBearerServer(validate_unsecured_jws)
    assert (
        server.evaluate(
            oauth_message(unsecured_jwt("alice", exp, iat=time.time()), extensions="traceId=abc 1\x01")
        )
        == b""
    )
    assert (server.complete, server.username, server.expires_at_ms) == (True, "alice", int(exp * 1000))
    server = OAuthBearerServer(validate_unsecured_jws)
    assert server.evaluate(oauth_message(unsecured_jwt("alice", exp), authzid="alice")) == b""
    server = OAuthBearerServer(validate_unsecured_jws)
    with pytest.raises(AuthenticationFailed, match=r"authorization id \(bob\) that is different .*\(alice\)"):
        server.evaluate(oauth_message(unsecured_jwt("alice", exp), authzid="bob"))


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        (unsecured_jwt("alice", time.time() - 1), "expired"),
        (unsecured_jwt("alice", None), "No expiration time"),
        (unsecured_jwt(None, time.time() + 60), "No principal name"),
        (unsecured_jwt(" ", time.time() + 60), "No principal name"),
        (unsecured_jwt("alice", time.time() + 60, alg="HS256"), "'none' for an algorithm"),
        (unsecured_jwt("alice", time.time() + 60, signature="c2ln"), "must not contain a digital signature"),
        (unsecured_jwt("alice", time.time() + 60, iat=time.time() + 120), "not after the Issued At"),
        ("abc.def", "3 dot-separated"),
        ("e30..", "contains '..'"),
        ("a.e30.", "malformed Base64"),
    ],
)
def test_oauthbearer_refuses_a_bad_token_with_kafkas_json_challenge_then_fails(
    token: str, reason: str
) -> None:
    refused: list[str] = []
    server = OAuthBearerServer(validate_unsecured_jws, refused.append)
    assert server.evaluate(oauth_message(token)) == b'{"status":"invalid_token"}'
    assert reason in refused[0]
    assert not server.complete
    with pytest.raises(AuthenticationFailed, match=r'^\{"status":"invalid_token"\}$'):
        server.evaluate(b"\x01")


@pytest.mark.parametrize(
    "message",
    [b"n,,auth=Bearer x\x01\x01", b"n,,\x01auth=Basic abc\x01\x01", b"n,,\x01\x01", b"y,,\x01auth=Bearer a\x01\x01",
     b"n,,\x01auth=Bearer a b\x01\x01", b"\xff"],
)  # fmt: skip
def test_malformed_oauthbearer_messages_fail_at_once(message: bytes) -> None:
    with pytest.raises(AuthenticationFailed, match="OAUTHBEARER"):
        OAuthBearerServer(validate_unsecured_jws).evaluate(message)


def test_a_validator_is_loaded_by_name_and_its_failures_refuse_the_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "my_tokens.py").write_text(
        "from streamcore.broker.security.mechanisms import InvalidToken\n"
        "def check(token):\n"
        "    if token == 'good': return ('svc-a', None)\n"
        "    if token == 'weird': return 'svc-a'\n"
        "    if token == 'boom': raise RuntimeError('backend down')\n"
        "    raise InvalidToken('unknown token')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    validator = load_token_validator("my_tokens:check")
    assert validator("good") == ("svc-a", None)
    for token, reason in [("bad", "unknown token"), ("boom", "validator failed"), ("weird", "no principal")]:
        with pytest.raises(InvalidToken, match=reason):
            validator(token)
    assert load_token_validator(None) is validate_unsecured_jws
    for spec, message in [("my_tokens", "not module:callable"), ("no_such_module:x", "cannot load"),
                          ("my_tokens:nothing", "cannot load"), ("my_tokens:InvalidToken.args", "not callable")]:  # fmt: skip
        with pytest.raises(ConfigError, match=message):
            load_token_validator(spec)
