"""A connection's TLS and SASL handshakes against a scripted server on 127.0.0.1.

The server here speaks just enough Kafka (ApiVersions, SaslHandshake, SaslAuthenticate)
to play the broker's side of each mechanism, including answers a real broker never
gives: a forged SCRAM server signature, a session lifetime of a fraction of a second,
no SASL APIs at all. Its SCRAM side is written from RFC 5802 here, apart from the
client's code.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import os
import ssl
import struct
from pathlib import Path
from typing import Any

import pytest

from streamcore.client.connection import BrokerConnection
from streamcore.client.security import Security, build_ssl_context
from streamcore.errors import AuthenticationError, ErrorCode
from streamcore.protocol.api_versions import REQUEST_CLASSES
from streamcore.protocol.headers import ApiKey, encode_response, parse_request_header
from streamcore.protocol.messages import (
    ApiVersionsRequest,
    ApiVersionsResponse,
    ApiVersionsResponse_ApiVersion,
    SaslAuthenticateResponse,
    SaslHandshakeResponse,
)

from .tls_certs import TestCA

_SASL_VERSIONS = {
    ApiKey.API_VERSIONS: (0, 3),
    ApiKey.SASL_HANDSHAKE: (0, 1),
    ApiKey.SASL_AUTHENTICATE: (0, 2),
}
_BOUND_S = 20.0  # generous bound on every wait: a hang fails the test instead of stalling the run


class ScriptedBroker:
    """Per connection: ApiVersions any time, SaslHandshake, then the mechanism's SaslAuthenticate rounds."""

    def __init__(
        self,
        *,
        mechanisms: tuple[str, ...] = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"),
        users: dict[str, str] | None = None,
        tokens: set[str] | None = None,
        versions: dict[int, tuple[int, int]] | None = None,
        forge_server_signature: bool = False,
        session_lifetime_ms: int = 0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.mechanisms = mechanisms
        self.users = users if users is not None else {"alice": "alice-secret"}
        self.tokens = tokens or set()
        self.versions = versions if versions is not None else _SASL_VERSIONS
        self.forge = forge_server_signature
        self.session_lifetime_ms = session_lifetime_ms
        self.ssl_context = ssl_context
        self.authenticated: list[str] = []  # user of each successful authentication
        self.auth_versions: list[int] = []  # SaslAuthenticate version of each round
        self.peer_subjects: list[Any] = []  # client certificate subjects seen over TLS
        self.server: asyncio.AbstractServer | None = None
        self.port = 0

    async def __aenter__(self) -> ScriptedBroker:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.ssl_context)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peercert")
        if peer:
            self.peer_subjects.append(peer["subject"])
        state: dict[str, Any] = {}
        try:
            while True:
                size = struct.unpack(">i", await reader.readexactly(4))[0]
                frame = await reader.readexactly(size)
                h = parse_request_header(frame)
                req = REQUEST_CLASSES[h.api_key].decode(memoryview(frame)[h.body_offset :], h.api_version)
                resp, close = self._answer(h.api_key, h.api_version, req, state)
                writer.write(encode_response(h.correlation_id, h.api_key, h.api_version, resp))
                await writer.drain()
                if close:
                    break
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()

    def _answer(self, api_key: int, version: int, req: Any, state: dict[str, Any]) -> tuple[Any, bool]:
        if api_key == ApiKey.API_VERSIONS:
            keys = [
                ApiVersionsResponse_ApiVersion(api_key=k, min_version=lo, max_version=hi)
                for k, (lo, hi) in self.versions.items()
            ]
            return ApiVersionsResponse(error_code=0, api_keys=keys), False
        if api_key == ApiKey.SASL_HANDSHAKE:
            if req.mechanism not in self.mechanisms:
                code = ErrorCode.UNSUPPORTED_SASL_MECHANISM.code
                return SaslHandshakeResponse(error_code=code, mechanisms=list(self.mechanisms)), True
            state["mechanism"] = req.mechanism
            return SaslHandshakeResponse(error_code=0, mechanisms=list(self.mechanisms)), False
        if api_key == ApiKey.SASL_AUTHENTICATE:
            self.auth_versions.append(version)
            mech = state.get("mechanism")
            try:
                if mech == "PLAIN":
                    out = self._plain(req.auth_bytes, state)
                elif mech in ("SCRAM-SHA-256", "SCRAM-SHA-512"):
                    out = self._scram(mech, req.auth_bytes, state)
                elif mech == "OAUTHBEARER":
                    out = self._oauth(req.auth_bytes, state)
                else:
                    raise _Refused("SaslAuthenticate before SaslHandshake")
            except _Refused as exc:
                code = ErrorCode.SASL_AUTHENTICATION_FAILED.code
                return SaslAuthenticateResponse(error_code=code, error_message=str(exc)), True
            lifetime = self.session_lifetime_ms if state.get("done") else 0
            return SaslAuthenticateResponse(auth_bytes=out, session_lifetime_ms=lifetime), False
        raise AssertionError(f"the scripted broker does not serve api key {api_key}")

    def _done(self, user: str, state: dict[str, Any]) -> None:
        state["done"] = True
        self.authenticated.append(user)

    def _plain(self, message: bytes, state: dict[str, Any]) -> bytes:
        _authzid, user, password = message.decode().split("\x00")
        if self.users.get(user) != password:
            raise _Refused("Invalid username or password")
        self._done(user, state)
        return b""

    def _scram(self, mech: str, message: bytes, state: dict[str, Any]) -> bytes:
        algo = "sha256" if mech == "SCRAM-SHA-256" else "sha512"
        text = message.decode()
        if "client_first_bare" not in state:
            bare = text[3:]  # after the GS2 header "n,,"
            attrs = dict(part.split("=", 1) for part in bare.split(","))
            user = attrs["n"].replace("=2C", ",").replace("=3D", "=")
            if user not in self.users:
                raise _Refused(f"unknown user {user}")
            salt = os.urandom(16)
            nonce = attrs["r"] + base64.b64encode(os.urandom(12)).decode()
            server_first = f"r={nonce},s={base64.b64encode(salt).decode()},i=4096"
            state.update(client_first_bare=bare, server_first=server_first, user=user, salt=salt, nonce=nonce)
            return server_first.encode()
        without_proof, _, proof_b64 = text.rpartition(",p=")
        salted = hashlib.pbkdf2_hmac(algo, self.users[state["user"]].encode(), state["salt"], 4096)
        client_key = hmac.new(salted, b"Client Key", algo).digest()
        auth = f"{state['client_first_bare']},{state['server_first']},{without_proof}".encode()
        client_signature = hmac.new(hashlib.new(algo, client_key).digest(), auth, algo).digest()
        proof = base64.b64decode(proof_b64)
        recovered = bytes(a ^ b for a, b in zip(proof, client_signature, strict=True))
        if hashlib.new(algo, recovered).digest() != hashlib.new(algo, client_key).digest():
            raise _Refused("invalid credentials")
        server_signature = hmac.new(hmac.new(salted, b"Server Key", algo).digest(), auth, algo).digest()
        if self.forge:
            server_signature = bytes(b ^ 0xFF for b in server_signature)
        self._done(state["user"], state)
        return b"v=" + base64.b64encode(server_signature)

    def _oauth(self, message: bytes, state: dict[str, Any]) -> bytes:
        if state.get("oauth_error"):
            raise _Refused("invalid token")  # after the client's 0x01 acknowledgement
        fields = dict(f.split("=", 1) for f in message.decode()[3:].split("\x01") if f)
        token = fields.get("auth", "").removeprefix("Bearer ")
        if token not in self.tokens:
            state["oauth_error"] = True
            return b'{"status":"invalid_token"}'
        self._done(token, state)
        return b""


class _Refused(Exception):
    pass


def _run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, _BOUND_S))


class LoopClock:
    """The running loop's clock, moved only by :meth:`advance`.

    A connection retires at 85 % of its SASL session on a ``loop.call_later`` timer. With
    sessions of a few hundred ms on the real clock, a loaded machine that does not run
    the test for that long retires a connection before the test looked at it. On this
    clock the timer fires when the test moves time past it, and at no other moment
    (nothing in these tests sleeps or times out meanwhile: every wait is on I/O).
    """

    def __init__(self) -> None:
        loop = asyncio.get_running_loop()
        self._now = loop.time()
        # BaseEventLoop.time is a plain method: the loop's timers read the time through it.
        loop.time = self.time  # type: ignore[method-assign]

    def time(self) -> float:
        return self._now

    async def advance(self, ms: float) -> None:
        """Move time on by ``ms`` and let the loop run what fell due."""
        self._now += ms / 1000.0
        for _ in range(5):
            await asyncio.sleep(0)


async def _until(condition: Any) -> None:
    """Let the loop run until ``condition()`` holds (I/O only: the clock stands still)."""
    for _ in range(100_000):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("the condition never held")


def _sasl(mechanism: str, **kw: Any) -> Security:
    return Security(
        "SASL_PLAINTEXT", None, mechanism, kw.get("username"), kw.get("password"), kw.get("provider")
    )


async def _connect(broker: ScriptedBroker, security: Security, **kw: Any) -> BrokerConnection:
    return await BrokerConnection.connect("127.0.0.1", broker.port, security=security, **kw)


# ---------------------------------------------------------------------- SASL


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_password_mechanisms_authenticate_and_the_connection_then_serves_requests(mechanism: str) -> None:
    async def main() -> None:
        async with ScriptedBroker() as broker:
            conn = await _connect(broker, _sasl(mechanism, username="alice", password="alice-secret"))
            assert (conn.sasl_mechanism, broker.authenticated) == (mechanism, ["alice"])
            # v2 (flexible) is the newest both sides speak
            assert set(broker.auth_versions) == {2}
            resp = await conn.request(ApiVersionsRequest())
            assert resp.error_code == 0
            conn.close()

    _run(main())


@pytest.mark.parametrize("versions", [(0, 0), (0, 1)])
def test_older_sasl_authenticate_versions_are_used_when_that_is_all_the_broker_has(
    versions: tuple[int, int],
) -> None:
    async def main() -> None:
        table = {**_SASL_VERSIONS, ApiKey.SASL_AUTHENTICATE: versions}
        async with ScriptedBroker(versions=table) as broker:
            conn = await _connect(broker, _sasl("SCRAM-SHA-512", username="alice", password="alice-secret"))
            assert set(broker.auth_versions) == {versions[1]}
            conn.close()

    _run(main())


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_a_wrong_password_is_an_authentication_error_with_the_brokers_reason(mechanism: str) -> None:
    async def main() -> None:
        async with ScriptedBroker() as broker:
            with pytest.raises(AuthenticationError) as info:
                await _connect(broker, _sasl(mechanism, username="alice", password="nope"))
            assert info.value.error is ErrorCode.SASL_AUTHENTICATION_FAILED
            assert f"{mechanism} authentication with 127.0.0.1:{broker.port} failed" in str(info.value)
            assert broker.authenticated == []

    _run(main())


def test_a_scram_server_that_cannot_sign_is_refused_even_though_it_accepted_the_proof() -> None:
    async def main() -> None:
        async with ScriptedBroker(forge_server_signature=True) as broker:
            with pytest.raises(AuthenticationError, match="server signature does not match") as info:
                await _connect(broker, _sasl("SCRAM-SHA-512", username="alice", password="alice-secret"))
            assert info.value.error is None and broker.authenticated == ["alice"]

    _run(main())


def test_a_mechanism_the_broker_does_not_enable_names_those_it_does() -> None:
    async def main() -> None:
        async with ScriptedBroker(mechanisms=("SCRAM-SHA-512",)) as broker:
            with pytest.raises(
                AuthenticationError, match=r"refused SASL mechanism PLAIN \(it offers: SCRAM-SHA-512\)"
            ) as info:
                await _connect(broker, _sasl("PLAIN", username="alice", password="alice-secret"))
            assert info.value.error is ErrorCode.UNSUPPORTED_SASL_MECHANISM

    _run(main())


def test_a_listener_without_sasl_apis_is_an_authentication_error() -> None:
    async def main() -> None:
        async with ScriptedBroker(versions={ApiKey.API_VERSIONS: (0, 3)}) as broker:
            with pytest.raises(
                AuthenticationError, match="does not serve SaslHandshake v1 and SaslAuthenticate"
            ):
                await _connect(broker, _sasl("PLAIN", username="alice", password="alice-secret"))

    _run(main())


def test_oauthbearer_sends_the_providers_token_and_reports_the_brokers_error() -> None:
    async def main() -> None:
        async with ScriptedBroker(tokens={"good.token.sig"}) as broker:
            conn = await _connect(broker, _sasl("OAUTHBEARER", provider=lambda: ("good.token.sig", None)))
            assert broker.authenticated == ["good.token.sig"]
            conn.close()

            async def coroutine_provider() -> str:
                return "good.token.sig"

            conn = await _connect(broker, _sasl("OAUTHBEARER", provider=coroutine_provider))
            conn.close()
            with pytest.raises(AuthenticationError, match=r'invalid token \(\{"status":"invalid_token"\}\)'):
                await _connect(broker, _sasl("OAUTHBEARER", provider=lambda: "stale.token.sig"))

    _run(main())


def test_a_connection_retires_before_its_sasl_session_ends_and_answers_what_it_had() -> None:
    async def main() -> None:
        clock = LoopClock()
        async with ScriptedBroker(session_lifetime_ms=300) as broker:
            conn = await _connect(broker, _sasl("PLAIN", username="alice", password="alice-secret"))
            assert conn.session_lifetime_ms == 300 and not conn.closed
            conn.hold_writes()
            pending = conn.send(ApiVersionsRequest())
            assert pending is not None
            await clock.advance(254)
            assert not conn.closed
            await clock.advance(2)
            assert conn.closed  # retired at 85 % of the session: no new requests
            assert not pending.done()
            conn.release_writes()  # what was queued before retiring still goes out and is answered
            assert (await pending).error_code == 0
            await _until(lambda: conn._closed_exc is not None)
            assert "retired" in str(conn._closed_exc)

    _run(main())


def test_the_pool_replaces_a_retired_connection_with_a_freshly_authenticated_one() -> None:
    from streamcore.client.cluster import Cluster
    from streamcore.client.config import build_config

    async def main() -> None:
        clock = LoopClock()
        async with ScriptedBroker(session_lifetime_ms=200) as broker:
            cfg = build_config(
                "admin",
                f"127.0.0.1:{broker.port}",
                None,
                {
                    "security_protocol": "SASL_PLAINTEXT",
                    "sasl_username": "alice",
                    "sasl_password": "alice-secret",
                },
                environ={},
            )
            cluster = Cluster(cfg)
            first = await cluster.any_connection()
            await clock.advance(171)  # past 85 % of the session
            assert first.closed
            second = await cluster.any_connection()
            assert second is not first and not second.closed
            assert broker.authenticated == ["alice", "alice"]
            cluster.close()

    _run(main())


# ---------------------------------------------------------------------- TLS


@pytest.fixture
def ca(tmp_path: Path) -> TestCA:
    return TestCA(tmp_path / "ca")


def _server_context(ca: TestCA, hosts: tuple[str, ...], require_client_cert: bool = False) -> ssl.SSLContext:
    files = ca.issue("broker", "broker", server=True, hosts=hosts)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(files.cert, files.key)
    if require_client_cert:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(ca.ca_file)
    return ctx


def _tls(ctx: ssl.SSLContext, mechanism: str | None = None) -> Security:
    if mechanism is None:
        return Security("SSL", ctx)
    return Security("SASL_SSL", ctx, mechanism, "alice", "alice-secret")


def test_tls_verifies_the_broker_against_the_ca_and_carries_sasl(ca: TestCA) -> None:
    async def main() -> None:
        async with ScriptedBroker(ssl_context=_server_context(ca, ("127.0.0.1",))) as broker:
            ctx = build_ssl_context(cafile=str(ca.ca_file))
            conn = await _connect(broker, _tls(ctx))
            assert conn._transport is not None
            assert conn._transport.get_extra_info("ssl_object").version() in ("TLSv1.2", "TLSv1.3")
            conn.close()
            conn = await _connect(broker, _tls(ctx, "SCRAM-SHA-256"))
            assert broker.authenticated == ["alice"]
            conn.close()

    _run(main())


def test_a_certificate_for_another_host_fails_unless_host_names_are_not_checked(ca: TestCA) -> None:
    async def main() -> None:
        async with ScriptedBroker(ssl_context=_server_context(ca, ("broker.example",))) as broker:
            with pytest.raises(
                AuthenticationError, match="TLS handshake with .* failed: .*certificate verify failed"
            ):
                await _connect(broker, _tls(build_ssl_context(cafile=str(ca.ca_file))))
            conn = await _connect(
                broker, _tls(build_ssl_context(cafile=str(ca.ca_file), check_hostname=False))
            )
            conn.close()

    _run(main())


def test_a_broker_signed_by_an_unknown_ca_is_refused(ca: TestCA, tmp_path: Path) -> None:
    other = TestCA(tmp_path / "other", cn="someone else's CA")

    async def main() -> None:
        async with ScriptedBroker(ssl_context=_server_context(ca, ("127.0.0.1",))) as broker:
            with pytest.raises(AuthenticationError, match="certificate verify failed"):
                await _connect(broker, _tls(build_ssl_context(cafile=str(other.ca_file))))

    _run(main())


def test_client_certificates_with_an_encrypted_key(ca: TestCA) -> None:
    # (Without one, asyncio's TLS server drops the connection without an alert, so the
    # client cannot tell it from a lost connection; Apache Kafka sends the alert, and
    # test_security_brokers checks that it is an AuthenticationError.)
    client = ca.issue("client", "alice", server=False, key_password="key-pass")

    async def main() -> None:
        server_ctx = _server_context(ca, ("127.0.0.1",), require_client_cert=True)
        async with ScriptedBroker(ssl_context=server_ctx) as broker:
            ctx = build_ssl_context(str(ca.ca_file), str(client.cert), str(client.key), "key-pass")
            conn = await _connect(broker, _tls(ctx))
            await conn.request(ApiVersionsRequest())
            conn.close()
            assert (
                (("organizationName", "streamcore tests"),),
                (("commonName", "alice"),),
            ) in broker.peer_subjects

    _run(main())


def test_tls_to_a_plaintext_listener_is_a_lost_connection_not_an_authentication_error() -> None:
    async def main() -> None:
        async with ScriptedBroker() as broker:  # no TLS: it reads the ClientHello as a frame
            ctx = build_ssl_context()
            with pytest.raises(Exception) as info:
                await _connect(broker, _tls(ctx), connect_timeout_ms=3000)
            assert not isinstance(info.value, AuthenticationError) and info.value.retriable  # type: ignore[attr-defined]

    _run(main())
