"""The server side of the SASL mechanisms: PLAIN (RFC 4616), SCRAM-SHA-256/512
(RFC 5802, RFC 7677) and OAUTHBEARER (RFC 7628), with Kafka's messages and checks.

A mechanism object serves one authentication exchange: :meth:`evaluate` takes the
client's next token and returns the server's answer, raising :class:`AuthenticationFailed`
(its message is what the client is told) when the exchange fails. ``complete`` and
``username`` tell the outcome.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import math
import re
import secrets
import time
from collections.abc import Callable

from streamcore.broker.security.credentials import ScramCredential, ScramMechanism

__all__ = [
    "AuthenticationFailed",
    "PlainServer",
    "ScramServer",
    "OAuthBearerServer",
    "InvalidToken",
    "TokenValidator",
    "validate_unsecured_jws",
    "Mechanism",
]


class AuthenticationFailed(Exception):
    """The exchange failed; ``str(exc)`` is the message sent to the client."""


class PlainServer:
    """SASL/PLAIN: ``[authzid] NUL authcid NUL passwd`` checked against ``lookup(user)``."""

    name = "PLAIN"

    def __init__(self, lookup: Callable[[str], str | None]) -> None:
        self._lookup = lookup
        self.complete = False
        self.username: str | None = None

    def evaluate(self, token: bytes) -> bytes:
        if self.complete:
            raise AuthenticationFailed("Authentication failed: the PLAIN exchange is already complete")
        try:
            text = token.decode("utf-8")
        except UnicodeDecodeError:
            raise AuthenticationFailed("Invalid SASL/PLAIN response: not UTF-8") from None
        parts = text.split("\0")
        if len(parts) != 3:
            raise AuthenticationFailed(f"Invalid SASL/PLAIN response: expected 3 tokens, got {len(parts)}")
        authzid, username, password = parts
        if not username:
            raise AuthenticationFailed("Authentication failed: username not specified")
        if not password:
            raise AuthenticationFailed("Authentication failed: password not specified")
        expected = self._lookup(username)
        # Digests of equal length, compared in constant time, whether or not the user exists.
        given = hashlib.sha256(password.encode("utf-8")).digest()
        wanted = hashlib.sha256(
            (expected if expected is not None else "\0" + password).encode("utf-8")
        ).digest()
        if not hmac.compare_digest(given, wanted) or expected is None:
            raise AuthenticationFailed("Authentication failed: Invalid username or password")
        if authzid and authzid != username:
            raise AuthenticationFailed(
                "Authentication failed: Client requested an authorization id that is different from username"
            )
        self.username = username
        self.complete = True
        return b""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unescape_saslname(name: str) -> str:
    """RFC 5802 saslname: ``=2C`` is ``,``, ``=3D`` is ``=``, any other ``=`` is an error."""
    out = []
    i = 0
    while i < len(name):
        ch = name[i]
        if ch == "=":
            code = name[i + 1 : i + 3]
            if code == "2C":
                out.append(",")
            elif code == "3D":
                out.append("=")
            else:
                raise ValueError("invalid escape in the user name")
            i += 3
        elif ch == ",":
            raise ValueError("unescaped ',' in the user name")
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def _attributes(text: str) -> list[tuple[str, str]]:
    """``k=v,k=v`` to pairs (a value may itself hold ``=``, never ``,``)."""
    pairs = []
    for item in text.split(","):
        key, sep, value = item.partition("=")
        if not sep or len(key) != 1:
            raise ValueError(f"malformed attribute {item[:20]!r}")
        pairs.append((key, value))
    return pairs


class ScramServer:
    """SCRAM-SHA-256/512 (no channel binding, as in Kafka).

    An unknown user gets a server-first message with a salt derived from ``secret`` and its
    name, like a known one, and fails at the proof: the exchange does not tell whether a
    user exists.
    """

    def __init__(
        self, mechanism: ScramMechanism, lookup: Callable[[str], ScramCredential | None], secret: bytes
    ) -> None:
        self.mechanism = mechanism
        self.name = mechanism.name
        self._lookup = lookup
        self._secret = secret
        self.complete = False
        self.username: str | None = None
        self._step = 0
        self._credential: ScramCredential | None = None
        self._gs2_header = ""
        self._client_first_bare = ""
        self._server_first = ""
        self._nonce = ""

    def _failed(self) -> AuthenticationFailed:
        self._step = -1
        return AuthenticationFailed(
            "Authentication failed during authentication due to invalid credentials with SASL mechanism "
            + self.mechanism.name
        )

    def evaluate(self, token: bytes) -> bytes:
        if self._step == 0:
            return self._client_first(token)
        if self._step == 1:
            return self._client_final(token)
        raise AuthenticationFailed(f"Unexpected SASL/{self.mechanism.name} message after the exchange ended")

    def _client_first(self, token: bytes) -> bytes:
        mech = self.mechanism
        try:
            text = token.decode("utf-8")
            # gs2-header: cbind-flag "," [authzid] ","
            flag, authz, bare = text.split(",", 2)
            if flag.startswith("p="):
                raise AuthenticationFailed(
                    f"Authentication failed: channel binding is not supported with {mech.name}"
                )
            if flag not in ("n", "y"):
                raise ValueError("bad channel binding flag")
            authzid = ""
            if authz:
                if not authz.startswith("a="):
                    raise ValueError("bad authorization id")
                authzid = _unescape_saslname(authz[2:])
            fields = bare.split(",")
            attrs = _attributes(",".join(fields[:2]))
            if len(attrs) < 2 or attrs[0][0] != "n" or attrs[1][0] != "r" or not attrs[1][1]:
                raise ValueError("expected n=<user>,r=<nonce>")
            username = _unescape_saslname(attrs[0][1])
            client_nonce = attrs[1][1]
            # Kafka's extensions (KIP-86): key=value pairs after the nonce.
            extensions = {}
            for item in fields[2:]:
                key, sep, value = item.partition("=")
                if not sep or not key:
                    raise ValueError(f"malformed extension {item[:20]!r}")
                extensions[key] = value
        except AuthenticationFailed:
            self._step = -1
            raise
        except (UnicodeDecodeError, ValueError) as exc:
            self._step = -1
            raise AuthenticationFailed(f"Invalid SASL/{mech.name} client-first message: {exc}") from None
        if extensions.get("tokenauth", "").lower() == "true":
            self._step = -1
            raise AuthenticationFailed("Authentication failed: delegation tokens are not supported")
        if authzid and authzid != username:
            self._step = -1
            raise AuthenticationFailed(
                "Authentication failed: Client requested an authorization id that is different from username"
            )
        credential = self._lookup(username)
        if credential is not None and credential.iterations < mech.min_iterations:
            credential = None
        if credential is None:
            # A stand-in that no proof matches, with a salt that is the same on every try.
            salt = hmac.new(self._secret, b"salt\0" + username.encode("utf-8"), "sha256").digest()
            credential = ScramCredential(salt, b"", b"", 4096)
        self._credential = credential
        self.username = username
        self._gs2_header = text[: len(text) - len(bare)]
        self._client_first_bare = bare
        self._nonce = client_nonce + secrets.token_urlsafe(24)
        self._server_first = f"r={self._nonce},s={_b64(credential.salt)},i={credential.iterations}"
        self._step = 1
        return self._server_first.encode("ascii")

    def _client_final(self, token: bytes) -> bytes:
        mech = self.mechanism
        credential = self._credential
        assert credential is not None
        try:
            text = token.decode("utf-8")
            without_proof, sep, proof_text = text.rpartition(",p=")
            if not sep:
                raise ValueError("no proof")
            attrs = dict(_attributes(without_proof))
            channel = base64.b64decode(attrs.get("c", ""), validate=True)
            proof = base64.b64decode(proof_text, validate=True)
        except (UnicodeDecodeError, ValueError, binascii.Error) as exc:
            self._step = -1
            raise AuthenticationFailed(f"Invalid SASL/{mech.name} client-final message: {exc}") from None
        # Kafka accepts a nonce that ends with the combined one: librdkafka before 2.1 sends its
        # own nonce in front of it a second time (and signs what it sent, so proofs still hold).
        if not attrs.get("r", "").endswith(self._nonce):
            self._step = -1
            raise AuthenticationFailed(
                "Authentication failed: Invalid client nonce in the final client message."
            )
        if channel != self._gs2_header.encode("utf-8") or len(proof) != mech.digest_size:
            raise self._failed()
        auth_message = f"{self._client_first_bare},{self._server_first},{without_proof}".encode()
        if not credential.stored_key:
            raise self._failed()
        client_signature = mech.hmac(credential.stored_key, auth_message)
        client_key = bytes(a ^ b for a, b in zip(proof, client_signature, strict=True))
        if not hmac.compare_digest(mech.hash(client_key), credential.stored_key):
            raise self._failed()
        server_signature = mech.hmac(credential.server_key, auth_message)
        self._credential = None
        self._step = 2
        self.complete = True
        return f"v={_b64(server_signature)}".encode("ascii")


class InvalidToken(Exception):
    """A bearer token was refused; ``str(exc)`` says why (logged, not sent to the client)."""


#: ``validate(token) -> (principal name, expiry in epoch ms or None)``; raises InvalidToken.
TokenValidator = Callable[[str], "tuple[str, int | None]"]


def _b64url_json(part: str) -> dict[str, object]:
    # JWS uses unpadded base64url; Kafka's own unsecured tokens decode with either alphabet.
    padded = part.replace("-", "+").replace("_", "/") + "=" * (-len(part) % 4)
    try:
        value = json.loads(base64.b64decode(padded, validate=True))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise InvalidToken("malformed Base64 URL encoded value or JSON") from None
    if not isinstance(value, dict):
        raise InvalidToken("a JWS part is not a JSON object")
    return value


def validate_unsecured_jws(
    token: str, *, now_ms: Callable[[], float] = lambda: time.time() * 1000
) -> tuple[str, int | None]:
    """Kafka's unsecured validator (OAuthBearerUnsecuredValidatorCallbackHandler): an
    unsigned JWS (``alg`` none, empty signature) whose ``sub`` claim names the principal
    and whose ``exp`` (seconds) is in the future; ``iat``, when present, must come before
    ``exp``. Anyone can make such a token: for development only."""
    if ".." in token:
        raise InvalidToken("Malformed compact serialization contains '..'")
    parts = token.split(".")
    if len(parts) != 3:
        raise InvalidToken(
            "Unsecured JWS compact serializations must have 3 dot-separated Base64URL-encoded values"
        )
    header, claims = _b64url_json(parts[0]), _b64url_json(parts[1])
    if header.get("alg") != "none":
        raise InvalidToken("Unsecured JWS must have 'none' for an algorithm")
    if parts[2]:
        raise InvalidToken("Unsecured JWS must not contain a digital signature")
    exp = claims.get("exp")
    if not isinstance(exp, (int, float)) or isinstance(exp, bool) or not math.isfinite(exp):
        raise InvalidToken("No expiration time in JWT")
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject.strip():
        raise InvalidToken("No principal name in JWT claim: sub")
    iat = claims.get("iat")
    if iat is not None:
        if not isinstance(iat, (int, float)) or isinstance(iat, bool):
            raise InvalidToken("The 'iat' claim is not a number")
        if exp <= iat:
            raise InvalidToken("The Expiration Time is not after the Issued At time")
    if now_ms() >= exp * 1000:
        raise InvalidToken("The token has expired")
    return subject, int(exp * 1000)


# RFC 7628 client initial response: gs2 header, then key=value pairs each ended by ^A,
# then a final ^A. Keys are letters; values printable ASCII, space, tab, CR, LF.
_OAUTH_MESSAGE = re.compile(
    r"n,(?:a=(?P<authzid>(?:[\x01-\x2b\x2d-\x3c\x3e-\x7f]|=2C|=3D)+))?,"
    r"\x01(?P<pairs>(?:[A-Za-z]+=[\x21-\x7e \t\r\n]+\x01)*)\x01"
)
_AUTH_VALUE = re.compile(r"(?P<scheme>\w+) +(?P<token>[-_~+/.a-zA-Z0-9]+=*)")


class OAuthBearerServer:
    """OAUTHBEARER (RFC 7628, Kafka's KIP-255) with a token validator.

    A refused token is answered, as Kafka does, with a JSON error challenge
    (``{"status":"invalid_token"}``); the client's ``%x01`` answer to it then fails the
    exchange. ``expires_at_ms`` is the token's expiry: the session ends with it (KIP-368).
    """

    name = "OAUTHBEARER"

    def __init__(self, validator: TokenValidator, on_invalid: Callable[[str], None] | None = None) -> None:
        self._validate = validator
        self._on_invalid = on_invalid
        self.complete = False
        self.username: str | None = None
        self.expires_at_ms: int | None = None
        self._error: str | None = None

    def evaluate(self, token: bytes) -> bytes:
        if self._error is not None:
            if token == b"\x01":
                raise AuthenticationFailed(self._error)
            raise AuthenticationFailed("Invalid OAUTHBEARER message after the server's error")
        try:
            text = token.decode("utf-8")
        except UnicodeDecodeError:
            raise AuthenticationFailed("Invalid OAUTHBEARER client first message") from None
        match = _OAUTH_MESSAGE.fullmatch(text)
        if match is None:
            raise AuthenticationFailed("Invalid OAUTHBEARER client first message")
        pairs = dict(item.split("=", 1) for item in match.group("pairs").split("\x01") if item)
        auth = _AUTH_VALUE.fullmatch(pairs.pop("auth", ""))
        if auth is None:
            raise AuthenticationFailed("Invalid OAUTHBEARER client first message: invalid 'auth' format")
        if auth.group("scheme").lower() != "bearer":
            raise AuthenticationFailed("Invalid scheme in OAUTHBEARER client first message")
        try:
            principal, expires_at_ms = self._validate(auth.group("token"))
        except InvalidToken as exc:
            if self._on_invalid is not None:
                self._on_invalid(str(exc))
            self._error = json.dumps({"status": "invalid_token"}, separators=(",", ":"))
            return self._error.encode("ascii")
        authzid = match.group("authzid")
        if authzid and _unescape_saslname(authzid) != principal:
            raise AuthenticationFailed(
                f"Authentication failed: Client requested an authorization id ({authzid}) that is different "
                f"from the token's principal name ({principal})"
            )
        self.username = principal
        self.expires_at_ms = expires_at_ms
        self.complete = True
        return b""


Mechanism = PlainServer | ScramServer | OAuthBearerServer
