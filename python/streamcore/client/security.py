"""TLS and SASL for the client's broker connections.

``Security.from_config(config)`` turns a client's ``security_protocol``, ``ssl_*`` and
``sasl_*`` settings into what a connection needs: an ``ssl.SSLContext`` (built once
per client; an unreadable file is a ConfigError at construction) and a factory of
SASL conversations. ``BrokerConnection.connect`` wraps the socket in TLS, sends
ApiVersions, then (SASL_PLAINTEXT, SASL_SSL) runs SaslHandshake v1 and the
SaslAuthenticate round trips the mechanism needs:

* PLAIN (RFC 4616): one message, ``\\0user\\0password``.
* SCRAM-SHA-256 / SCRAM-SHA-512 (RFC 5802, RFC 7677): client-first, client-final
  with the proof; the server's signature in its final message is checked, so a
  server that does not know the password cannot pass for the broker.
* OAUTHBEARER (RFC 7628): ``auth=Bearer <token>``; the token comes from
  ``sasl_oauth_token_provider`` for every new connection.

A refusal raises :class:`streamcore.errors.AuthenticationError`, which no retry loop
of the client retries.
"""

from __future__ import annotations

import abc
import base64
import hashlib
import hmac
import re
import secrets
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from streamcore.errors import AuthenticationError, ConfigError

__all__ = [
    "SECURITY_PROTOCOLS",
    "SASL_MECHANISMS",
    "Security",
    "SaslClient",
    "PlainClient",
    "ScramClient",
    "OAuthBearerClient",
    "build_ssl_context",
    "parse_jaas_config",
]

SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER")

#: Kafka's bounds on SCRAM iterations (ScramMechanism): a server offering fewer would
#: make the proof cheap to brute-force; far more would stall the client.
SCRAM_MIN_ITERATIONS = 4096
SCRAM_MAX_ITERATIONS = 1_000_000

_SCRAM_HASHES = {"SCRAM-SHA-256": "sha256", "SCRAM-SHA-512": "sha512"}


def build_ssl_context(
    cafile: str | None = None,
    certfile: str | None = None,
    keyfile: str | None = None,
    password: str | None = None,
    check_hostname: bool = True,
) -> ssl.SSLContext:
    """A client TLS context (TLS 1.2 or newer) that verifies the broker's certificate.

    ``cafile``: PEM CA certificates (None: the system's defaults). ``certfile`` and
    ``keyfile`` (PEM; the key may sit in ``certfile``) present a client certificate,
    ``password`` decrypts an encrypted key. ``check_hostname`` also matches the
    certificate against the address connected to. Raises ConfigError naming the file
    that could not be loaded.
    """
    try:
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=cafile)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"ssl_cafile {cafile!r}: cannot load CA certificates ({exc})") from None
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.check_hostname = check_hostname
    if certfile is not None:
        try:
            ctx.load_cert_chain(certfile, keyfile, password)
        except (OSError, ssl.SSLError) as exc:
            named = f"ssl_certfile {certfile!r}" + (f" / ssl_keyfile {keyfile!r}" if keyfile else "")
            raise ConfigError(f"{named}: cannot load the certificate and key ({exc})") from None
    elif keyfile is not None:
        raise ConfigError("ssl_keyfile is set without ssl_certfile")
    return ctx


# ---------------------------------------------------------------------- SASL clients


class SaslClient(abc.ABC):
    """One SASL conversation, client side: ``initial()``, then ``evaluate(challenge)``
    for every server message until it returns None (done)."""

    mechanism = ""

    @abc.abstractmethod
    def initial(self) -> bytes:
        """The first message to send."""

    @abc.abstractmethod
    def evaluate(self, challenge: bytes) -> bytes | None:
        """The answer to the server's ``challenge``, or None when the exchange is complete.

        Raises AuthenticationError when the server's message is wrong.
        """


class PlainClient(SaslClient):
    """SASL PLAIN (RFC 4616): the password travels as is, so use it over TLS."""

    mechanism = "PLAIN"

    def __init__(self, username: str, password: str) -> None:
        self.username = username
        self.password = password

    def initial(self) -> bytes:
        # No authorization identity: the broker takes the authentication identity.
        return b"\x00" + self.username.encode() + b"\x00" + self.password.encode()

    def evaluate(self, challenge: bytes) -> bytes | None:
        return None


def _scram_name(name: str) -> str:
    # RFC 5802 5.1: ',' and '=' would end the attribute early.
    return name.replace("=", "=3D").replace(",", "=2C")


def _scram_attributes(message: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in message.split(","):
        key, sep, value = part.partition("=")
        if not sep or len(key) != 1:
            raise AuthenticationError(f"malformed SCRAM message from the broker: {message!r}")
        out.setdefault(key, value)
    return out


class ScramClient(SaslClient):
    """SCRAM-SHA-256 / SCRAM-SHA-512 (RFC 5802, RFC 7677) without channel binding.

    Only ``hashlib``/``hmac`` are used: PBKDF2 salts the password, HMAC signs the
    exchange. The server's final signature is compared in constant time; a mismatch
    raises AuthenticationError (the peer does not know the password).
    """

    def __init__(self, mechanism: str, username: str, password: str, nonce: str | None = None) -> None:
        self.mechanism = mechanism
        self.hash = _SCRAM_HASHES[mechanism]
        self.username = username
        self.password = password
        # 24 random bytes; urlsafe base64 has no ',' to escape.
        self.nonce = nonce if nonce is not None else secrets.token_urlsafe(24)
        self._first_bare = f"n={_scram_name(username)},r={self.nonce}"
        self._state = 0
        self._server_signature = b""

    def _hmac(self, key: bytes, msg: bytes) -> bytes:
        return hmac.new(key, msg, self.hash).digest()

    def initial(self) -> bytes:
        self._state = 1
        return ("n,," + self._first_bare).encode()

    def evaluate(self, challenge: bytes) -> bytes | None:
        if self._state == 1:
            self._state = 2
            return self._client_final(challenge)
        if self._state == 2:
            self._state = 3
            self._verify_server_final(challenge)
            return None
        raise AuthenticationError(f"{self.mechanism}: unexpected message after the exchange ended")

    def _client_final(self, challenge: bytes) -> bytes:
        try:
            server_first = challenge.decode()
        except UnicodeDecodeError:
            raise AuthenticationError(f"{self.mechanism}: server-first message is not UTF-8") from None
        attrs = _scram_attributes(server_first)
        if "e" in attrs:
            raise AuthenticationError(f"{self.mechanism}: the broker refused: {attrs['e']}")
        nonce, salt_b64, iterations_text = attrs.get("r"), attrs.get("s"), attrs.get("i")
        if nonce is None or salt_b64 is None or iterations_text is None:
            raise AuthenticationError(f"{self.mechanism}: server-first message lacks r, s or i")
        if not nonce.startswith(self.nonce) or len(nonce) == len(self.nonce):
            raise AuthenticationError(f"{self.mechanism}: the broker's nonce does not extend ours")
        if not iterations_text.isdigit():
            raise AuthenticationError(
                f"{self.mechanism}: iteration count {iterations_text!r} is not a number"
            )
        iterations = int(iterations_text)
        if not SCRAM_MIN_ITERATIONS <= iterations <= SCRAM_MAX_ITERATIONS:
            raise AuthenticationError(
                f"{self.mechanism}: the broker asks for {iterations} iterations; "
                f"accepted: {SCRAM_MIN_ITERATIONS}-{SCRAM_MAX_ITERATIONS}"
            )
        try:
            salt = base64.b64decode(salt_b64, validate=True)
        except ValueError:
            raise AuthenticationError(f"{self.mechanism}: the salt is not base64") from None
        salted = hashlib.pbkdf2_hmac(self.hash, self.password.encode(), salt, iterations)
        client_key = self._hmac(salted, b"Client Key")
        stored_key = hashlib.new(self.hash, client_key).digest()
        # "biws" is base64("n,,"): the GS2 header of a client without channel binding.
        without_proof = f"c=biws,r={nonce}"
        auth_message = f"{self._first_bare},{server_first},{without_proof}".encode()
        signature = self._hmac(stored_key, auth_message)
        proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
        self._server_signature = self._hmac(self._hmac(salted, b"Server Key"), auth_message)
        return f"{without_proof},p={base64.b64encode(proof).decode()}".encode()

    def _verify_server_final(self, challenge: bytes) -> None:
        try:
            attrs = _scram_attributes(challenge.decode())
        except UnicodeDecodeError:
            raise AuthenticationError(f"{self.mechanism}: server-final message is not UTF-8") from None
        if "e" in attrs:
            raise AuthenticationError(f"{self.mechanism}: the broker refused: {attrs['e']}")
        try:
            theirs = base64.b64decode(attrs.get("v", ""), validate=True)
        except ValueError:
            theirs = b""
        if not theirs or not hmac.compare_digest(theirs, self._server_signature):
            raise AuthenticationError(
                f"{self.mechanism}: the broker's server signature does not match: "
                "it does not hold this user's credentials"
            )


TokenProvider = Callable[[], Any]


class OAuthBearerClient(SaslClient):
    """OAUTHBEARER (RFC 7628) with a token already obtained from the provider."""

    mechanism = "OAUTHBEARER"

    def __init__(self, token: str) -> None:
        self.token = token
        self._sent_first = False
        self.error_detail: str | None = None

    def initial(self) -> bytes:
        self._sent_first = True
        return f"n,,\x01auth=Bearer {self.token}\x01\x01".encode()

    def evaluate(self, challenge: bytes) -> bytes | None:
        if not challenge:
            return None
        # A non-empty answer is the server's error (a JSON status); RFC 7628 3.2.3: the
        # client acknowledges with a lone 0x01 and the server then fails the exchange.
        self.error_detail = challenge.decode(errors="replace")
        return b"\x01"


def call_token_provider(provider: Any) -> tuple[str, float | None]:
    """Call ``provider`` and return (token, expiry as seconds since the epoch or None).

    The provider is a callable returning a token string or ``(token, expires_at)``
    (confluent-kafka's oauth_cb shape), or an object with a ``token()`` method
    (kafka-python's AbstractTokenProvider). Raises AuthenticationError when it fails,
    returns no token or a token that has already expired.
    """
    fn = provider.token if not callable(provider) and callable(getattr(provider, "token", None)) else provider
    try:
        out = fn()
    except Exception as exc:
        raise AuthenticationError(f"sasl_oauth_token_provider failed: {exc!r}") from exc
    expires_at: float | None = None
    if isinstance(out, (tuple, list)):
        if not out:
            raise AuthenticationError("sasl_oauth_token_provider returned an empty tuple")
        token = out[0]
        if len(out) > 1 and out[1] is not None:
            expires_at = float(out[1])
    else:
        token = out
    if isinstance(token, bytes):
        token = token.decode()
    if not isinstance(token, str) or not token:
        raise AuthenticationError(f"sasl_oauth_token_provider returned no token: {out!r}")
    if expires_at is not None and expires_at <= time.time():
        raise AuthenticationError(
            f"sasl_oauth_token_provider returned a token that expired {time.time() - expires_at:.0f} s ago"
        )
    return token, expires_at


# ---------------------------------------------------------------------- JAAS


_JAAS = re.compile(r"^\s*([\w.$]+)\s+(required|requisite|sufficient|optional)\s*(.*?)\s*;?\s*$", re.S)
_JAAS_OPTION = re.compile(r'([\w.$-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s;]+))')
_LOGIN_MODULES = {
    "org.apache.kafka.common.security.plain.PlainLoginModule": ("PLAIN",),
    "org.apache.kafka.common.security.scram.ScramLoginModule": ("SCRAM-SHA-256", "SCRAM-SHA-512"),
}


def parse_jaas_config(text: str) -> tuple[str, dict[str, str]]:
    """``sasl.jaas.config`` as Java clients write it: (login module class, options).

    Only one login module is accepted. Raises ConfigError for text that is not a
    JAAS entry.
    """
    m = _JAAS.match(text)
    if m is None:
        raise ConfigError(f"sasl_jaas_config: not a JAAS login module entry: {text!r}")
    options: dict[str, str] = {}
    for opt in _JAAS_OPTION.finditer(m.group(3)):
        quoted, bare = opt.group(2), opt.group(3)
        options[opt.group(1)] = re.sub(r"\\(.)", r"\1", quoted) if quoted is not None else bare
    return m.group(1), options


def jaas_credentials(text: str, mechanism: str) -> tuple[str, str]:
    """(username, password) from the ``sasl.jaas.config`` of a PLAIN or SCRAM login module."""
    module, options = parse_jaas_config(text)
    allowed = _LOGIN_MODULES.get(module)
    if allowed is None:
        raise ConfigError(
            f"sasl_jaas_config: login module {module} is not supported; give sasl_username/sasl_password "
            "(PLAIN, SCRAM) or sasl_oauth_token_provider (OAUTHBEARER)"
        )
    if mechanism not in allowed:
        raise ConfigError(f"sasl_jaas_config: {module.rsplit('.', 1)[-1]} does not serve {mechanism}")
    if "username" not in options or "password" not in options:
        raise ConfigError("sasl_jaas_config: username and password options are required")
    return options["username"], options["password"]


# ---------------------------------------------------------------------- per client


@dataclass(frozen=True)
class Security:
    """What every connection of one client needs to secure itself."""

    protocol: str = "PLAINTEXT"
    ssl_context: ssl.SSLContext | None = None
    mechanism: str | None = None
    username: str | None = None
    password: str | None = None
    token_provider: Any = None

    @property
    def uses_sasl(self) -> bool:
        """True for SASL_PLAINTEXT and SASL_SSL."""
        return self.mechanism is not None

    @classmethod
    def from_config(cls, config: Any) -> Security:
        """From a ClientConfig (settings already checked for consistency by build_config)."""
        protocol = config.security_protocol
        ctx: ssl.SSLContext | None = None
        if protocol in ("SSL", "SASL_SSL"):
            ctx = config.ssl_context or build_ssl_context(
                config.ssl_cafile,
                config.ssl_certfile,
                config.ssl_keyfile,
                config.ssl_password,
                config.ssl_check_hostname,
            )
        if protocol not in ("SASL_PLAINTEXT", "SASL_SSL"):
            return cls(protocol, ctx)
        return cls(
            protocol,
            ctx,
            config.sasl_mechanism,
            config.sasl_username,
            config.sasl_password,
            config.sasl_oauth_token_provider,
        )

    async def sasl_client(self) -> SaslClient:
        """A fresh conversation for one connection (the OAUTHBEARER token provider is
        called in a worker thread, so a slow identity provider does not stall the loop)."""
        mech = self.mechanism
        if mech == "PLAIN":
            assert self.username is not None and self.password is not None
            return PlainClient(self.username, self.password)
        if mech in _SCRAM_HASHES:
            assert self.username is not None and self.password is not None
            return ScramClient(mech, self.username, self.password)
        if mech == "OAUTHBEARER":
            import asyncio
            import inspect

            provider = self.token_provider
            if inspect.iscoroutinefunction(provider):
                result = await provider()
                token, _ = call_token_provider(lambda: result)
            else:
                token, _ = await asyncio.to_thread(call_token_provider, provider)
            return OAuthBearerClient(token)
        raise AuthenticationError(f"SASL mechanism {mech!r} is not supported")
