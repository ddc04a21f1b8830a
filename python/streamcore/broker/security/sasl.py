"""The SASL exchange of one connection on a SASL listener, as Kafka's SaslServerAuthenticator
runs it, and the broker-wide pieces it uses (PLAIN users, the failure throttle).

States of a :class:`SaslSession`:

* ``INITIAL``: only ApiVersions and SaslHandshake are served. A handshake naming an
  enabled mechanism moves on; v0 means the tokens that follow are raw size-prefixed
  SASL bytes (the framing of clients from before KIP-152), v1 means SaslAuthenticate
  requests.
* ``AUTHENTICATE``: only SaslAuthenticate requests (v1) or raw tokens (v0).
* ``COMPLETE``: every request is served. With ``sasl.connections_max_reauth_ms`` the
  session expires (KIP-368): after that only a new SaslHandshake (re-authentication, with
  the same mechanism and principal) is served; anything else closes the connection.
* ``FAILED``: the connection is being closed.

A request the state does not allow closes the connection, as Kafka does.
"""

from __future__ import annotations

import collections
import logging
import secrets
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from streamcore.broker.config import SaslConfig
from streamcore.broker.security.credentials import SCRAM_MECHANISMS, CredentialStore
from streamcore.broker.security.mechanisms import AuthenticationFailed, Mechanism, PlainServer, ScramServer
from streamcore.errors import ConfigError, ErrorCode
from streamcore.protocol.headers import ApiKey

__all__ = [
    "SaslSession",
    "SaslAuthenticator",
    "FailureThrottle",
    "load_plain_users",
    "AuthenticationFailed",
]

log = logging.getLogger("streamcore.broker")

INITIAL = "INITIAL"
AUTHENTICATE = "AUTHENTICATE"
COMPLETE = "COMPLETE"
FAILED = "FAILED"

#: The longest wait before a failed authentication is answered (seconds).
MAX_FAILURE_DELAY_S = 5.0


def load_plain_users(cfg: SaslConfig) -> dict[str, str]:
    """PLAIN users of ``sasl.plain_users`` and ``sasl.plain_users_file`` (``user:password``
    lines, ``#`` comments, blank lines ignored; the file wins for a user in both).
    ConfigError naming the file and line (never the password) when one is malformed."""
    users: dict[str, str] = {}
    for entry in cfg.plain_users:
        user, _, password = entry.partition(":")
        users[user] = password
    if cfg.plain_users_file:
        path = Path(cfg.plain_users_file)
        try:
            text = path.read_text("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise ConfigError(f"sasl.plain_users_file {path}: cannot be read: {reason}") from None
        for number, line in enumerate(text.splitlines(), 1):
            entry = line.strip()
            if not entry or entry.startswith("#"):
                continue
            user, sep, password = entry.partition(":")
            if not sep or not user.strip() or not password:
                raise ConfigError(f"sasl.plain_users_file {path}: line {number} is not user:password")
            users[user.strip()] = password
    return users


class FailureThrottle:
    """Consecutive failed authentications per client address, and how long to wait before
    answering the next: min(2^N x base, 5 s) for the Nth. A success from the address resets
    it; so does a quiet minute. At most ``max_addresses`` are remembered (oldest dropped)."""

    QUIET_S = 60.0

    def __init__(
        self, base_ms: int, max_addresses: int = 10_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.base_s = base_ms / 1000.0
        self._max = max_addresses
        self._clock = clock
        # ip -> (consecutive failures, monotonic time of the last one), oldest first.
        self._failures: collections.OrderedDict[str, tuple[int, float]] = collections.OrderedDict()

    def failed(self, ip: str) -> float:
        """Count a failure of ``ip``; returns the seconds to wait before answering it."""
        now = self._clock()
        count, last = self._failures.pop(ip, (0, now))
        if now - last > self.QUIET_S:
            count = 0
        count += 1
        self._failures[ip] = (count, now)
        while len(self._failures) > self._max:
            self._failures.popitem(last=False)
        if self.base_s <= 0:
            return 0.0
        return min(self.base_s * 2.0 ** min(count, 32), MAX_FAILURE_DELAY_S)

    def succeeded(self, ip: str) -> None:
        self._failures.pop(ip, None)

    def failures(self, ip: str) -> int:
        """Consecutive failures of ``ip`` counted now."""
        return self._failures.get(ip, (0, 0.0))[0]


class SaslAuthenticator:
    """What every SASL connection of a broker shares: the enabled mechanisms, the PLAIN
    users, the SCRAM store, the session lifetime and the failure throttle."""

    def __init__(self, cfg: SaslConfig, scram: CredentialStore | None) -> None:
        self.mechanisms: tuple[str, ...] = tuple(cfg.mechanisms)
        self.plain_users: Mapping[str, str] = load_plain_users(cfg)
        self.scram = scram
        self.max_reauth_ms = cfg.connections_max_reauth_ms
        self.throttle = FailureThrottle(cfg.failed_authentication_delay_ms)
        self._cfg = cfg
        # Salts of unknown users are derived from this, so that they are stable per broker run.
        self._secret = secrets.token_bytes(32)

    def reload_plain_users(self) -> int:
        """Read ``sasl.plain_users_file`` again (SIGHUP); returns the number of PLAIN users.
        ConfigError, the old users kept, when the file is malformed."""
        self.plain_users = load_plain_users(self._cfg)
        return len(self.plain_users)

    def new_mechanism(self, name: str) -> Mechanism:
        if name == "PLAIN":
            return PlainServer(self.plain_users.get)
        mechanism = SCRAM_MECHANISMS[name]
        store = self.scram

        def lookup(user: str) -> object:
            return store.get(user, name) if store is not None else None

        return ScramServer(mechanism, lookup, self._secret)  # type: ignore[arg-type]


class SaslSession:
    """One connection's SASL state machine (see the module doc)."""

    def __init__(self, authenticator: SaslAuthenticator, clock: Callable[[], float] = time.monotonic) -> None:
        self._auth = authenticator
        self._clock = clock
        self.state = INITIAL
        #: Handshake v0: SASL tokens arrive as raw size-prefixed frames.
        self.raw = False
        self.mechanism_name: str | None = None
        self._mechanism: Mechanism | None = None
        #: The authenticated user name (None before the first success).
        self.username: str | None = None
        #: monotonic() after which the session has expired; None = never.
        self.expires_at: float | None = None
        self._reauthenticating = False

    # -- what may be served ------------------------------------------------------------------

    def expired(self) -> bool:
        return self.expires_at is not None and self._clock() > self.expires_at

    @property
    def expects_raw_token(self) -> bool:
        return self.state == AUTHENTICATE and self.raw

    def refusal(self, api_key: int) -> str | None:
        """None when a request of ``api_key`` may be served now, else why the connection closes."""
        state = self.state
        if state == FAILED:
            return "authentication failed"
        if state == INITIAL:
            if api_key in (ApiKey.API_VERSIONS, ApiKey.SASL_HANDSHAKE):
                return None
            return f"api key {api_key} before SASL authentication"
        if state == AUTHENTICATE:
            if api_key == ApiKey.SASL_AUTHENTICATE:
                return None
            return f"api key {api_key} during SASL authentication"
        # COMPLETE
        if api_key == ApiKey.SASL_HANDSHAKE:
            return None
        if self.expired():
            return "the SASL session expired without re-authentication (sasl.connections_max_reauth_ms)"
        return None

    # -- the exchange ------------------------------------------------------------------------

    def handshake(self, version: int, mechanism: str) -> tuple[int, list[str]]:
        """SaslHandshake: (error code, enabled mechanisms). A non-zero code fails the session
        (the connection closes after the answer)."""
        enabled = list(self._auth.mechanisms)
        if self.state == COMPLETE:
            # Re-authentication (KIP-368) is only for clients that use SaslAuthenticate.
            if version < 1:
                self.state = FAILED
                return ErrorCode.ILLEGAL_SASL_STATE.code, enabled
            if mechanism != self.mechanism_name:
                self.state = FAILED
                return ErrorCode.UNSUPPORTED_SASL_MECHANISM.code, enabled
            self._reauthenticating = True
        if mechanism not in enabled:
            self.state = FAILED
            return ErrorCode.UNSUPPORTED_SASL_MECHANISM.code, enabled
        self.mechanism_name = mechanism
        self._mechanism = self._auth.new_mechanism(mechanism)
        self.raw = version == 0
        self.state = AUTHENTICATE
        return 0, enabled

    def authenticate(self, token: bytes, *, supports_reauth: bool) -> tuple[bytes, int]:
        """One client token: (server token, session lifetime in ms, 0 until complete).
        Raises AuthenticationFailed (the session is FAILED)."""
        mechanism = self._mechanism
        if self.state != AUTHENTICATE or mechanism is None:
            self.state = FAILED
            raise AuthenticationFailed("Unexpected SASL token: no SASL handshake came first")
        try:
            response = mechanism.evaluate(token)
            if mechanism.complete and self._reauthenticating and mechanism.username != self.username:
                raise AuthenticationFailed(
                    f"Cannot change principals during re-authentication from User:{self.username}: "
                    f"User:{mechanism.username}"
                )
        except AuthenticationFailed:
            self.state = FAILED
            raise
        lifetime_ms = 0
        if mechanism.complete:
            self.username = mechanism.username
            self.state = COMPLETE
            self._mechanism = None
            self._reauthenticating = False
            max_ms = self._auth.max_reauth_ms
            if max_ms > 0:
                # An old client (SaslAuthenticate v0, or raw tokens) cannot re-authenticate:
                # Kafka closes its connection when the session ends all the same (KIP-368).
                self.expires_at = self._clock() + max_ms / 1000.0
                lifetime_ms = max_ms if supports_reauth else 0
        return response, lifetime_ms

    @property
    def principal(self) -> str | None:
        return f"User:{self.username}" if self.username is not None else None
