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
import importlib
import logging
import secrets
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from streamcore.broker.config import SaslConfig
from streamcore.broker.security.credentials import SCRAM_MECHANISMS, CredentialStore
from streamcore.broker.security.mechanisms import (
    AuthenticationFailed,
    InvalidToken,
    Mechanism,
    OAuthBearerServer,
    PlainServer,
    ScramServer,
    TokenValidator,
    validate_unsecured_jws,
)
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


def load_token_validator(spec: str | None) -> TokenValidator:
    """The OAUTHBEARER validator named ``module:callable`` (None: the unsecured-JWS one).

    The callable takes the token and returns (principal name, expiry in epoch ms or None),
    raising ``streamcore.broker.security.mechanisms.InvalidToken`` to refuse it. Any other
    exception it raises refuses the token too (and is logged). ConfigError when the name
    cannot be imported.
    """
    if spec is None:
        return validate_unsecured_jws
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ConfigError(f"sasl.oauthbearer_validator: {spec!r} is not module:callable")
    try:
        target: object = importlib.import_module(module_name)
        for part in attr.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"sasl.oauthbearer_validator: cannot load {spec!r}: {exc}") from None
    if not callable(target):
        raise ConfigError(f"sasl.oauthbearer_validator: {spec!r} is not callable")
    validator: Callable[[str], object] = target

    def checked(token: str) -> tuple[str, int | None]:
        try:
            result = validator(token)
        except InvalidToken:
            raise
        except Exception as exc:
            log.exception("the OAUTHBEARER validator %s failed", spec)
            raise InvalidToken(f"the validator failed: {exc}") from None
        if (
            not isinstance(result, tuple)
            or len(result) != 2
            or not isinstance(result[0], str)
            or not result[0]
            or not (result[1] is None or (isinstance(result[1], int) and not isinstance(result[1], bool)))
        ):
            log.error(
                "the OAUTHBEARER validator %s returned %r, not (principal, expiry ms or None)", spec, result
            )
            raise InvalidToken("the validator returned no principal")
        return result[0], result[1]

    return checked


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
        self.token_validator: TokenValidator | None = None
        if "OAUTHBEARER" in self.mechanisms:
            self.token_validator = load_token_validator(cfg.oauthbearer_validator)
            if cfg.oauthbearer_validator is None:
                log.warning(
                    "OAUTHBEARER accepts unsigned tokens (Kafka's unsecured JWS validator): anyone can claim "
                    "any principal; for development only (set sasl.oauthbearer_validator)"
                )
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
        if name == "OAUTHBEARER":
            assert self.token_validator is not None
            return OAuthBearerServer(self.token_validator, _log_invalid_token)
        mechanism = SCRAM_MECHANISMS[name]
        store = self.scram

        def lookup(user: str) -> object:
            return store.get(user, name) if store is not None else None

        return ScramServer(mechanism, lookup, self._secret)  # type: ignore[arg-type]


def _log_invalid_token(reason: str) -> None:
    log.debug("OAUTHBEARER token refused: %s", reason)


class SaslSession:
    """One connection's SASL state machine (see the module doc)."""

    def __init__(
        self,
        authenticator: SaslAuthenticator,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._auth = authenticator
        self._clock = clock
        self._wall_clock = wall_clock
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
            # The session ends at connections.max.reauth.ms, or with the credential (a
            # token's expiry), whichever comes first (KIP-368).
            lifetimes = []
            if self._auth.max_reauth_ms > 0:
                lifetimes.append(self._auth.max_reauth_ms)
            expires_at_ms = getattr(mechanism, "expires_at_ms", None)
            if expires_at_ms is not None:
                lifetimes.append(max(0, expires_at_ms - int(self._wall_clock() * 1000)))
            if lifetimes:
                life_ms = min(lifetimes)
                # An old client (SaslAuthenticate v0, or raw tokens) cannot re-authenticate:
                # Kafka closes its connection when the session ends all the same.
                self.expires_at = self._clock() + life_ms / 1000.0
                lifetime_ms = life_ms if supports_reauth else 0
            else:
                self.expires_at = None
        return response, lifetime_ms

    @property
    def principal(self) -> str | None:
        return f"User:{self.username}" if self.username is not None else None
