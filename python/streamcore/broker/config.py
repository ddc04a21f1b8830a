"""The broker's typed configuration tree, its sources and its precedence.

Precedence, highest first: CLI flags > environment (``STREAMCORE_*``) > TOML
config file > defaults. Every setting remembers where its value came from, so
``streamcore config --show`` (:func:`config_show`) can print value and source.

Durations accept an int (milliseconds) or a string ``250ms``, ``30s``, ``5m``,
``1h``, ``7d``; sizes accept an int (bytes) or ``512KiB``, ``64MiB``, ``1GiB``
(``KB``/``MB``/``GB`` are decimal). ``-1`` means "unlimited" where a setting
says so. A malformed value or an unknown key raises
:class:`~streamcore.errors.ConfigError` in one line naming the setting (and, for an
unknown name, the closest valid one). An unknown ``STREAMCORE_*`` environment
variable is only a WARNING naming the closest valid one: the environment is shared
with other programs, so a stray variable must never stop a broker from starting.

The full list of settings lives in :data:`SETTINGS`; docs/configuration.md is
checked against it by the tests.
"""

from __future__ import annotations

import dataclasses
import difflib
import logging
import os
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from streamcore.broker.cluster_meta import load_or_create_cluster_id
from streamcore.broker.config_values import PARSERS, parse_duration_ms, parse_size_bytes
from streamcore.errors import ConfigError
from streamcore.retry import RETRY_ENV_VARS

if sys.version_info >= (3, 11):
    import tomllib as _toml
else:  # pragma: no cover - Python 3.10 path, needs the `tomli` backport
    import tomli as _toml

__all__ = [
    "BrokerConfig",
    "ListenerConfig",
    "ListenerSpec",
    "SECURITY_PROTOCOLS",
    "SslConfig",
    "SaslConfig",
    "StorageConfig",
    "TopicsConfig",
    "LimitsConfig",
    "QuotasConfig",
    "GroupsConfig",
    "FetchSessionsConfig",
    "MetricsConfig",
    "SearchConfig",
    "LogConfig",
    "Setting",
    "SETTINGS",
    "CLI_FLAGS",
    "IGNORED_ENV",
    "closest",
    "load_config",
    "config_show",
    "parse_duration_ms",
    "parse_size_bytes",
    "load_or_create_cluster_id",
    "settings_table",
]

_DAY_MS = 24 * 3600 * 1000
_MAX_PORT = 65535

log = logging.getLogger("streamcore.config")


@dataclass
class ListenerConfig:
    """Where the broker listens and what address it tells clients to use."""

    host: str = "127.0.0.1"
    port: int = 9092
    #: Host put in Metadata/FindCoordinator answers; None = ``host`` (or
    #: "localhost" when ``host`` is a wildcard address).
    advertised_host: str | None = None
    #: Port put in Metadata answers; None = ``port``.
    advertised_port: int | None = None
    #: The ``listeners`` setting: ``PROTOCOL://HOST:PORT`` entries; empty = one PLAINTEXT
    #: listener on ``host``:``port``. :meth:`BrokerConfig.listener_specs` resolves them.
    addresses: tuple[str, ...] = ()
    #: The ``advertised_listeners`` setting: ``PROTOCOL://HOST:PORT`` per listener.
    advertised: tuple[str, ...] = ()

    def effective_advertised_host(self) -> str:
        """The host clients are told to connect to."""
        if self.advertised_host:
            return self.advertised_host
        if self.host in ("", "0.0.0.0", "::"):
            return "localhost"
        return self.host

    def effective_advertised_port(self) -> int:
        """The port clients are told to connect to."""
        return self.advertised_port if self.advertised_port is not None else self.port


#: Kafka's security protocols, the scheme of a ``listeners`` entry.
SECURITY_PROTOCOLS: tuple[str, ...] = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")

#: The SASL mechanisms the broker speaks.
SASL_MECHANISMS: tuple[str, ...] = ("SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN", "OAUTHBEARER")
#: Those offered unless ``sasl.mechanisms`` says otherwise (OAUTHBEARER needs a validator
#: to be more than a development aid, so it is asked for explicitly).
DEFAULT_SASL_MECHANISMS: tuple[str, ...] = ("SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN")


@dataclass(frozen=True)
class ListenerSpec:
    """One resolved listener: what to bind, which security protocol, what to advertise.

    ``name`` is the listener's name (the protocol: a broker has at most one listener per
    protocol). ``port`` 0 binds any free port. ``advertised_host``/``advertised_port``
    None mean the bind host (``localhost`` for a wildcard host) and the bound port.
    """

    name: str
    protocol: str
    host: str
    port: int
    advertised_host: str | None = None
    advertised_port: int | None = None

    @property
    def uses_tls(self) -> bool:
        """SSL and SASL_SSL listeners speak TLS."""
        return self.protocol in ("SSL", "SASL_SSL")

    @property
    def uses_sasl(self) -> bool:
        """SASL_PLAINTEXT and SASL_SSL listeners authenticate with SASL before anything else."""
        return self.protocol in ("SASL_PLAINTEXT", "SASL_SSL")

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.name}://{host}:{self.port}"


def parse_listener(text: str, setting: str = "listeners") -> ListenerSpec:
    """``PROTOCOL://HOST:PORT`` (IPv6 hosts in brackets, an empty host = every interface)
    to a ListenerSpec; ConfigError naming ``setting`` when malformed."""
    entry = text.strip()
    scheme, sep, rest = entry.partition("://")
    if not sep:
        raise ConfigError(
            f"{setting}: {entry!r} is not PROTOCOL://HOST:PORT (for example PLAINTEXT://127.0.0.1:9092)"
        )
    protocol = scheme.strip().upper()
    if protocol not in SECURITY_PROTOCOLS:
        raise ConfigError(
            f"{setting}: {scheme!r} in {entry!r} is not a security protocol; use one of {', '.join(SECURITY_PROTOCOLS)}"
        )
    host, colon, port_text = rest.rpartition(":")
    if not colon:
        raise ConfigError(f"{setting}: {entry!r} has no port (PROTOCOL://HOST:PORT)")
    if host.startswith("["):
        if not host.endswith("]"):
            raise ConfigError(f"{setting}: {entry!r}: an IPv6 address in brackets must end with ']'")
        host = host[1:-1]
    elif ":" in host:
        raise ConfigError(f"{setting}: {entry!r}: write an IPv6 address in brackets, [::1]:9092")
    try:
        port = int(port_text)
    except ValueError:
        raise ConfigError(f"{setting}: port {port_text!r} of {entry!r} is not a number") from None
    if not 0 <= port <= _MAX_PORT:
        raise ConfigError(f"{setting}: port {port} of {entry!r} is outside 0-{_MAX_PORT}")
    return ListenerSpec(name=protocol, protocol=protocol, host=host.strip(), port=port)


@dataclass
class SslConfig:
    """TLS of the SSL and SASL_SSL listeners."""

    #: PEM file of the broker's certificate (and its chain; the key too if ``keyfile`` is None).
    certfile: str | None = None
    #: PEM file of the private key.
    keyfile: str | None = None
    #: Password of an encrypted private key.
    key_password: str | None = None
    #: PEM file of the CAs that sign client certificates (needed for ``client_auth``).
    cafile: str | None = None
    #: Kafka's ssl.client.auth on SSL listeners: none, requested or required.
    client_auth: str = "none"


@dataclass
class SaslConfig:
    """SASL of the SASL_PLAINTEXT and SASL_SSL listeners."""

    #: Mechanisms offered, in the order SaslHandshake lists them.
    mechanisms: tuple[str, ...] = DEFAULT_SASL_MECHANISMS
    #: PLAIN users as ``user:password`` entries.
    plain_users: tuple[str, ...] = ()
    #: A file of ``user:password`` lines (``#`` comments), PLAIN users besides ``plain_users``.
    plain_users_file: str | None = None
    #: Kafka's connections.max.reauth.ms: a session lives this long before the client must
    #: re-authenticate (KIP-368); 0 = forever.
    connections_max_reauth_ms: int = 0
    #: The answer to the Nth consecutive failed authentication from one address waits
    #: min(2^N x this, 5 s); 0 = no wait.
    failed_authentication_delay_ms: int = 50
    #: OAUTHBEARER token validator, ``module:callable`` (token -> (principal, expiry ms));
    #: None = Kafka's unsecured-JWS validator (development only).
    oauthbearer_validator: str | None = None


@dataclass
class StorageConfig:
    """Defaults for every partition log (topics may override retention/segments)."""

    fsync: str = "interval"
    fsync_interval_ms: int = 1000
    profile: str = "medium"
    segment_bytes: int = 1 << 30
    segment_ms: int = 7 * _DAY_MS
    #: -1 keeps data forever.
    retention_ms: int = 7 * _DAY_MS
    #: -1 means no size limit.
    retention_bytes: int = -1
    retention_check_interval_ms: int = 5 * 60 * 1000
    #: A partition whose files are damaged at start: "offline" (the broker starts without
    #: it) or "refuse" (the broker does not start).
    on_damage: str = "offline"
    #: Kafka's log.cleaner.enable: compact the logs of topics whose policy has compact.
    cleaner_enable: bool = True
    #: Kafka's log.cleaner.io.max.bytes.per.second (reads and writes together); -1 = unlimited.
    cleaner_io_max_bytes_per_second: int = -1
    #: Kafka's log.cleaner.dedupe.buffer.size: memory of the cleaner's offset map (bytes).
    cleaner_dedupe_buffer_bytes: int = 128 * 1024 * 1024
    #: Kafka's log.cleaner.backoff.ms: the wait between rounds with nothing to clean (ms).
    cleaner_backoff_ms: int = 15_000


@dataclass
class TopicsConfig:
    """Topic creation policy."""

    auto_create: bool = True
    default_partitions: int = 1
    #: Most partitions one CreateTopics or CreatePartitions request may add, summed over its
    #: topics (Kafka's controller refuses more than 10,000 per request with POLICY_VIOLATION).
    max_partitions_per_request: int = 10_000
    #: Most partitions the broker holds, all topics together (internal ones included); a
    #: creation that would pass it is refused with INVALID_PARTITIONS.
    max_partitions: int = 50_000


@dataclass
class LimitsConfig:
    """Per-connection and per-request limits that protect the broker."""

    max_request_bytes: int = 100 * 1024 * 1024
    max_connections: int = 10000
    connection_idle_ms: int = 10 * 60 * 1000
    max_inflight_per_connection: int = 100
    #: Largest record batch accepted (Kafka's message.max.bytes default: 1 MiB + 12).
    max_message_bytes: int = 1024 * 1024 + 12
    #: Kafka's queued.max.request.bytes: bytes of requests read but not yet answered, and of
    #: partial frames, across all connections; reading from sockets pauses past it.
    queued_max_request_bytes: int = 100 * 1024 * 1024
    #: Response bytes a connection may have waiting in its send buffer before no further
    #: requests of that connection are dispatched (a client that does not read).
    max_buffered_response_bytes: int = 4 * 1024 * 1024
    #: A request must arrive completely within this long of its first byte, and a connection
    #: whose responses do not drain for this long is closed (Kafka clients' request.timeout.ms).
    request_timeout_ms: int = 30_000
    #: Kafka's fetch.max.bytes: the most record bytes one Fetch response carries (KIP-74 aside).
    fetch_max_bytes: int = 55 * 1024 * 1024
    #: Kafka's max.connections.per.ip.
    max_connections_per_ip: int = 2147483647
    #: Kafka's max.connections.per.ip.overrides: ``host:count`` pairs, comma-separated.
    max_connections_per_ip_overrides: str = ""
    #: Kafka's max.connection.creation.rate: new connections accepted per second.
    max_connection_creation_rate: int = 2147483647


@dataclass
class QuotasConfig:
    """Client quota defaults and the rate measurement (streamcore.broker.quotas).

    The byte rates and the request percentage apply to each client-id that no quota set
    with AlterClientQuotas covers (Kafka's former quota.producer.default and
    quota.consumer.default); None = unlimited.
    """

    #: Produce bytes per second of each such client-id.
    producer_byte_rate: int | None = None
    #: Fetch bytes per second of each such client-id.
    consumer_byte_rate: int | None = None
    #: Percentage of the request handler's time (100 = the whole event loop) of each such client-id.
    request_percentage: float | None = None
    #: New connections per second from each address without an ``ip`` quota (KIP-612).
    connection_creation_rate: int | None = None
    #: Kafka's quota.window.num: samples a rate is measured over.
    window_num: int = 11
    #: Kafka's quota.window.size.seconds, in ms: the length of one sample.
    window_size_ms: int = 1000


@dataclass
class GroupsConfig:
    """Consumer-group coordinator settings."""

    min_session_timeout_ms: int = 6000
    max_session_timeout_ms: int = 30 * 60 * 1000
    #: 0 answers the first join of a new group at once (see DESIGN "Joins must be prompt").
    initial_rebalance_delay_ms: int = 0
    #: Committed offsets of a group without members are dropped after this long.
    offsets_retention_ms: int = 7 * _DAY_MS


@dataclass
class TransactionsConfig:
    """Transaction coordinator settings (Kafka's names in each setting's help)."""

    #: Largest transaction timeout a producer may ask for, in ms.
    max_timeout_ms: int = 15 * 60 * 1000
    #: How often (ms) timed-out transactions are aborted and unfinished ones completed.
    abort_interval_ms: int = 10_000
    #: A transactional id idle this long (ms) is forgotten.
    id_expiration_ms: int = 7 * _DAY_MS


@dataclass
class FetchSessionsConfig:
    """KIP-227 incremental fetch session cache."""

    max_cache_slots: int = 1000
    #: A session unused this long may be evicted by any new session.
    eviction_ms: int = 120_000


@dataclass
class MetricsConfig:
    """Prometheus exposition."""

    #: HTTP port of the /metrics endpoint; None disables it.
    http_port: int | None = None


@dataclass
class SearchConfig:
    """Real-time search indexing (docs/search.md)."""

    #: The search.index topic config's default: index topics that do not set it.
    index_default: bool = False
    #: Start no indexer thread at all (search.index is then stored but not acted on).
    disable_realtime_index: bool = False
    #: Commit a partition's index once this many records are pending.
    batch_records: int = 1000
    #: ... or once the oldest pending record has waited this long (ms).
    batch_ms: int = 500
    #: Longest pause of the indexer while a WAL queue is under pressure (ms).
    backoff_max_ms: int = 5000


@dataclass
class LogConfig:
    """Logging of the ``streamcore broker`` command (an embedded broker leaves logging to its program)."""

    #: debug, info, warning or error.
    level: str = "warning"
    #: ``text`` (one readable line per event) or ``json`` (one JSON object per line).
    format: str = "text"


@dataclass
class BrokerConfig:
    """The whole broker configuration; ``sources`` maps a setting name to where it came from."""

    listeners: ListenerConfig = field(default_factory=ListenerConfig)
    data_dir: str = "./streamcore-data"
    node_id: int = 0
    #: None = generated once and persisted in ``<data_dir>/meta.properties``.
    cluster_id: str | None = None
    storage: StorageConfig = field(default_factory=StorageConfig)
    topics: TopicsConfig = field(default_factory=TopicsConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    quotas: QuotasConfig = field(default_factory=QuotasConfig)
    groups: GroupsConfig = field(default_factory=GroupsConfig)
    transactions: TransactionsConfig = field(default_factory=TransactionsConfig)
    fetch_sessions: FetchSessionsConfig = field(default_factory=FetchSessionsConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    search: SearchConfig = field(default_factory=SearchConfig)
    log: LogConfig = field(default_factory=LogConfig)
    ssl: SslConfig = field(default_factory=SslConfig)
    sasl: SaslConfig = field(default_factory=SaslConfig)
    #: ``none`` (every principal may do everything) or ``acl`` (streamcore.broker.authorizer).
    authorizer: str = "none"
    #: Principals the ACL authorizer allows everything (``User:admin``).
    super_users: tuple[str, ...] = ()
    #: Kafka's allow.everyone.if.no.acl.found: a resource without ACLs is open to everyone.
    allow_everyone_if_no_acl_found: bool = False
    sources: dict[str, str] = field(default_factory=dict, repr=False, compare=False)

    def get(self, name: str) -> Any:
        """Value of the dotted setting ``name`` (e.g. ``"storage.fsync"``)."""
        obj: Any = self
        for part in _attr_path(name):
            obj = getattr(obj, part)
        return obj

    def source(self, name: str) -> str:
        """Where setting ``name`` came from: ``default``, ``file <path>``, ``env NAME`` or ``cli --flag``."""
        return self.sources.get(name, "default")

    def listener_specs(self) -> list[ListenerSpec]:
        """The listeners to open, the first being the one advertised for bootstrap.

        ``listeners`` empty: one PLAINTEXT listener on ``listeners.host``:``listeners.port``.
        Otherwise ``listeners.host``/``listeners.port``, when set at the same or a higher
        precedence than ``listeners``, name the first listener's address (so ``--host`` and
        ``--port`` given beside ``--listener`` change that address). ``advertised_listeners``
        gives a listener's advertised address (port 0 = its bound port); the first
        listener without one takes ``listeners.advertised_host``/``advertised_port``.
        Raises ConfigError for a malformed entry, two listeners of one protocol, or an
        advertised entry naming no listener.
        """
        lc = self.listeners
        if not lc.addresses:
            specs = [ListenerSpec("PLAINTEXT", "PLAINTEXT", lc.host, lc.port)]
        else:
            specs = [parse_listener(entry) for entry in lc.addresses]
            rank = _rank(self.source("listeners"))
            first = specs[0]
            host = (
                lc.host
                if self.source("listeners.host") != "default" and _rank(self.source("listeners.host")) >= rank
                else first.host
            )
            port = (
                lc.port
                if self.source("listeners.port") != "default" and _rank(self.source("listeners.port")) >= rank
                else first.port
            )
            specs[0] = dataclasses.replace(first, host=host, port=port)
        names = [s.name for s in specs]
        for name in names:
            if names.count(name) > 1:
                raise ConfigError(
                    f"listeners: two {name} listeners; a broker has at most one listener per security protocol"
                )
        advertised: dict[str, ListenerSpec] = {}
        for entry in lc.advertised:
            adv = parse_listener(entry, "advertised_listeners")
            if adv.name not in names:
                raise ConfigError(
                    f"advertised_listeners: {entry!r} names no listener (listeners: {', '.join(names)})"
                )
            if adv.name in advertised:
                raise ConfigError(f"advertised_listeners: {adv.name} is given twice")
            if adv.host in ("", "0.0.0.0", "::"):
                raise ConfigError(f"advertised_listeners: {entry!r} must name a host clients can connect to")
            advertised[adv.name] = adv
        out = []
        for i, spec in enumerate(specs):
            adv_host: str | None = None
            adv_port: int | None = None
            if spec.name in advertised:
                adv_host = advertised[spec.name].host
                adv_port = advertised[spec.name].port or None
            elif i == 0:
                adv_host, adv_port = lc.advertised_host, lc.advertised_port
            out.append(dataclasses.replace(spec, advertised_host=adv_host, advertised_port=adv_port))
        return out


@dataclass(frozen=True)
class Setting:
    """One configurable value: its dotted name, kind, env variable, CLI flag and help text."""

    name: str
    kind: str  # int | number | duration | size | bool | str | choice | list | principals
    env: str
    help: str
    choices: tuple[str, ...] = ()
    optional: bool = False  # accepts "none"/"" (env/CLI) or is absent; None means "off/derived"
    minimum: int | None = None
    cli: str | None = None
    maximum: int | None = None
    #: The CLI flag may be given more than once (each value is one more list entry).
    repeatable: bool = False
    #: Where the value lives in BrokerConfig when that is not the dotted name itself
    #: (``listeners`` is a list kept beside the ``listeners.*`` section's fields).
    attr: str | None = None
    #: Holds a password: ``config --show`` prints it masked.
    secret: bool = False

    def parse(self, value: object) -> Any:
        """Convert a raw value (TOML value, env string, CLI string) to the typed value."""
        if self.optional and (
            value is None or (isinstance(value, str) and value.strip().lower() in ("", "none"))
        ):
            return None
        # A minimum of -1 is how a setting says "-1 means forever / unlimited".
        forever = self.minimum == -1
        parsed: Any
        if self.kind == "duration":
            parsed = parse_duration_ms(value, self.name, allow_forever=forever)
        elif self.kind == "size":
            parsed = parse_size_bytes(value, self.name, allow_forever=forever)
        else:
            parsed = PARSERS[self.kind](value, self.name)
        if self.kind == "choice":
            parsed = parsed.strip().lower()
            if parsed not in self.choices:
                raise ConfigError(f"{self.name}: {parsed!r} is not one of {', '.join(self.choices)}")
        if self.kind == "list" and self.choices:
            canonical = {c.upper(): c for c in self.choices}
            unknown = [v for v in parsed if v.upper() not in canonical]
            if unknown:
                raise ConfigError(f"{self.name}: {unknown[0]!r} is not one of {', '.join(self.choices)}")
            parsed = tuple(dict.fromkeys(canonical[v.upper()] for v in parsed))
        if self.minimum is not None and isinstance(parsed, (int, float)) and parsed < self.minimum:
            raise ConfigError(f"{self.name}: {parsed} is below the minimum {self.minimum}")
        if self.maximum is not None and isinstance(parsed, (int, float)) and parsed > self.maximum:
            raise ConfigError(f"{self.name}: {parsed} is above the maximum {self.maximum}")
        return parsed


def _s(
    name: str, kind: str, help: str, *, env: str | None = None, cli: str | None = None, **kw: Any
) -> Setting:
    env = env or "STREAMCORE_" + name.replace(".", "_").upper()
    return Setting(name=name, kind=kind, env=env, help=help, cli=cli, **kw)


#: Every setting, in display order.
SETTINGS: tuple[Setting, ...] = (
    _s("listeners.host", "str", "Address to bind.", env="STREAMCORE_HOST", cli="--host"),
    _s("listeners.port", "int", "TCP port to bind (0 = any free port).", env="STREAMCORE_PORT", cli="--port",
       minimum=0, maximum=_MAX_PORT),
    _s("listeners.advertised_host", "str", "Host given to clients (default: host, or localhost for 0.0.0.0).",
       env="STREAMCORE_ADVERTISED_HOST", cli="--advertised-host", optional=True),
    _s("listeners.advertised_port", "int", "Port given to clients (default: port).",
       env="STREAMCORE_ADVERTISED_PORT", cli="--advertised-port", optional=True, minimum=1, maximum=_MAX_PORT),
    _s("listeners", "list",
       "Listeners as PROTOCOL://HOST:PORT (PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL); the first is "
       "advertised for bootstrap (default: PLAINTEXT on host:port).",
       cli="--listener", repeatable=True, attr="listeners.addresses"),
    _s("advertised_listeners", "list",
       "Address given to clients per listener, PROTOCOL://HOST:PORT (port 0 = the bound port).",
       cli="--advertised-listener", repeatable=True, attr="listeners.advertised"),
    _s("data_dir", "str", "Directory holding all logs and metadata.", cli="--data-dir"),
    _s("node_id", "int", "This broker's node id.", cli="--node-id", minimum=0),
    _s("cluster_id", "str", "Cluster id (default: generated once, kept in data_dir/meta.properties).",
       optional=True),
    _s("storage.fsync", "choice", "When appends are fsynced.", choices=("always", "interval", "never"),
       cli="--fsync"),
    _s("storage.fsync_interval_ms", "duration", "Interval between fsyncs under fsync=interval.", minimum=1),
    _s("storage.profile", "choice", "WAL queue depth / group size / max wait profile.",
       choices=("low", "medium", "high", "ultra"), cli="--profile"),
    _s("storage.segment_bytes", "size", "Roll a segment before it would exceed this size.", minimum=1024),
    _s("storage.segment_ms", "duration", "Roll a segment older than this.", minimum=1),
    _s("storage.retention_ms", "duration", "Delete segments older than this (-1 = keep forever).", minimum=-1),
    _s("storage.retention_bytes", "size", "Per-partition size limit (-1 = none).", minimum=-1),
    _s("storage.retention_check_interval_ms", "duration", "How often retention runs.", minimum=1),
    _s("storage.on_damage", "choice", "A damaged partition at start: keep it offline, or refuse to start.",
       choices=("offline", "refuse")),
    _s("storage.cleaner_enable", "bool", "Compact the logs of topics with cleanup.policy compact."),
    _s("storage.cleaner_io_max_bytes_per_second", "size",
       "The cleaner's reads and writes together, bytes/s (-1 = unlimited).", minimum=-1),
    _s("storage.cleaner_dedupe_buffer_bytes", "size", "Memory of the cleaner's offset map.", minimum=1024),
    _s("storage.cleaner_backoff_ms", "duration", "The cleaner's wait when nothing needs cleaning.", minimum=1),
    _s("topics.auto_create", "bool", "Create unknown topics on Metadata/Produce.",
       env="STREAMCORE_AUTO_CREATE_TOPICS"),
    _s("topics.default_partitions", "int", "Partitions of auto-created topics and CreateTopics(-1).",
       env="STREAMCORE_DEFAULT_PARTITIONS", cli="--default-partitions", minimum=1),
    _s("topics.max_partitions_per_request", "int",
       "Partitions one CreateTopics/CreatePartitions request may add (more: POLICY_VIOLATION).", minimum=1),
    _s("topics.max_partitions", "int",
       "Partitions of all topics together (a creation passing it: INVALID_PARTITIONS).", minimum=1),
    _s("limits.max_request_bytes", "size", "Largest request frame accepted.", minimum=1024),
    _s("limits.max_connections", "int", "Connections accepted at once.", minimum=1),
    _s("limits.connection_idle_ms", "duration", "Close a connection idle this long.", minimum=1),
    _s("limits.max_inflight_per_connection", "int", "Requests processed at once per connection.", minimum=1),
    _s("limits.max_message_bytes", "size", "Largest record batch accepted.", minimum=1024),
    _s("limits.queued_max_request_bytes", "size",
       "Bytes of requests read and not yet answered (and partial frames), all connections; reading pauses past it.",
       minimum=1024),
    _s("limits.max_buffered_response_bytes", "size",
       "Unsent response bytes of one connection before its further requests wait.", minimum=1024),
    _s("limits.request_timeout_ms", "duration",
       "A request must arrive within this long of its first byte; unread responses may wait this long.",
       minimum=1),
    _s("limits.fetch_max_bytes", "size", "Most record bytes in one Fetch response.", minimum=1024),
    _s("limits.max_connections_per_ip", "int", "Connections accepted at once from one address.", minimum=0),
    _s("limits.max_connections_per_ip_overrides", "str",
       "Per-address exceptions, 'host:count,host:count'."),
    _s("limits.max_connection_creation_rate", "int", "New connections accepted per second.", minimum=1),
    _s("quotas.producer_byte_rate", "size",
       "Produce bytes/s of each client-id no AlterClientQuotas quota covers (none = unlimited).",
       optional=True, minimum=1),
    _s("quotas.consumer_byte_rate", "size",
       "Fetch bytes/s of each client-id no AlterClientQuotas quota covers (none = unlimited).",
       optional=True, minimum=1),
    _s("quotas.request_percentage", "number",
       "Percent of the request handler's time of each client-id no quota covers (none = unlimited).",
       optional=True),
    _s("quotas.connection_creation_rate", "int",
       "New connections/s accepted from each address without an ip quota (none = unlimited).",
       optional=True, minimum=1),
    _s("quotas.window_num", "int", "Samples a quota's rate is measured over (quota.window.num).", minimum=1),
    _s("quotas.window_size_ms", "duration",
       "Length of one quota sample (quota.window.size.seconds).", minimum=1),
    _s("groups.min_session_timeout_ms", "duration", "Smallest session timeout a member may ask.", minimum=1),
    _s("groups.max_session_timeout_ms", "duration", "Largest session timeout a member may ask.", minimum=1),
    _s("groups.initial_rebalance_delay_ms", "duration", "Wait before the first rebalance of an empty group.",
       minimum=0),
    _s("groups.offsets_retention_ms", "duration", "Drop offsets of member-less groups after this.", minimum=1),
    _s("transactions.max_timeout_ms", "duration",
       "Largest transaction timeout a producer may ask for (transaction.max.timeout.ms).", minimum=1),
    _s("transactions.abort_interval_ms", "duration",
       "How often timed-out transactions are aborted "
       "(transaction.abort.timed.out.transaction.cleanup.interval.ms).", minimum=1),
    _s("transactions.id_expiration_ms", "duration",
       "Forget a transactional id idle this long (transactional.id.expiration.ms).", minimum=1),
    _s("fetch_sessions.max_cache_slots", "int", "Incremental fetch sessions kept.", minimum=0),
    _s("fetch_sessions.eviction_ms", "duration", "A session idle this long may be evicted.", minimum=0),
    _s("metrics.http_port", "int", "Port of the Prometheus /metrics endpoint (none = off, 0 = any free port).",
       cli="--metrics-port", optional=True, minimum=0, maximum=_MAX_PORT),
    _s("search.index_default", "bool", "Index topics that do not set search.index (its default)."),
    _s("search.disable_realtime_index", "bool",
       "Start no search indexer at all (search.index is stored but not acted on).",
       env="STREAMCORE_DISABLE_REALTIME_INDEX", cli="--no-search-index"),
    _s("search.batch_records", "int", "Commit a partition's search index once this many records are pending.",
       minimum=1),
    _s("search.batch_ms", "duration", "... or once the oldest pending record has waited this long.",
       minimum=0),
    _s("search.backoff_max_ms", "duration", "Longest pause of the indexer while a WAL queue is under pressure.",
       minimum=1),
    _s("log.level", "choice", "Least severe log events written (streamcore broker).",
       choices=("debug", "info", "warning", "error"), env="STREAMCORE_LOG_LEVEL", cli="--log-level"),
    _s("log.format", "choice", "Log lines as text, or one JSON object per line for log shippers.",
       choices=("text", "json"), env="STREAMCORE_LOG_FORMAT", cli="--log-format"),
    _s("ssl.certfile", "str", "PEM certificate (chain) of the SSL and SASL_SSL listeners.",
       cli="--ssl-certfile", optional=True),
    _s("ssl.keyfile", "str", "PEM private key of that certificate (default: in the certfile).",
       cli="--ssl-keyfile", optional=True),
    _s("ssl.key_password", "str", "Password of an encrypted private key.", optional=True, secret=True),
    _s("ssl.cafile", "str", "PEM CA certificates that client certificates must chain to.",
       cli="--ssl-cafile", optional=True),
    _s("ssl.client_auth", "choice", "Client certificates on SSL listeners: none, requested or required.",
       choices=("none", "requested", "required"), cli="--ssl-client-auth"),
    _s("sasl.mechanisms", "list", "SASL mechanisms offered on SASL listeners, in order.",
       choices=SASL_MECHANISMS, cli="--sasl-mechanisms"),
    _s("sasl.plain_users", "list", "PLAIN users as user:password entries.", secret=True),
    _s("sasl.plain_users_file", "str", "File of user:password lines, PLAIN users besides sasl.plain_users.",
       cli="--sasl-plain-users-file", optional=True),
    _s("sasl.oauthbearer_validator", "str",
       "OAUTHBEARER token validator as module:callable (default: unsecured JWS, development only).",
       optional=True),
    _s("sasl.connections_max_reauth_ms", "duration",
       "A SASL session's lifetime before the client must re-authenticate (0 = forever).", minimum=0),
    _s("sasl.failed_authentication_delay_ms", "duration",
       "The Nth consecutive failed authentication from one address is answered after "
       "min(2^N x this, 5 s) (0 = at once).", minimum=0),
    _s("authorizer", "choice", "none (everyone may do everything) or acl (Kafka's ACL model).",
       choices=("none", "acl"), cli="--authorizer"),
    _s("super_users", "principals", "Principals the ACL authorizer allows everything (User:admin).",
       cli="--super-user", repeatable=True),
    _s("allow_everyone_if_no_acl_found", "bool", "A resource without any ACL is open to every principal."),
)  # fmt: skip

_BY_NAME: dict[str, Setting] = {s.name: s for s in SETTINGS}
_BY_ENV: dict[str, Setting] = {s.env: s for s in SETTINGS}

#: CLI flag -> setting name, for cli.py's argument parser.
CLI_FLAGS: dict[str, str] = {s.cli: s.name for s in SETTINGS if s.cli}

#: ``STREAMCORE_*`` variables that are not broker settings but are read elsewhere: the
#: build and test switches, the config file name, the client's retry tuning
#: (``streamcore.retry.RETRY_ENV_VARS``) and the command-line tools' bootstrap address
#: (``streamcore.tools``). Known, so never even a warning.
IGNORED_ENV: frozenset[str] = frozenset(
    {
        "STREAMCORE_NO_EXTENSIONS",
        "STREAMCORE_REQUIRE_EXTENSIONS",
        "STREAMCORE_DEV_PARTIAL",
        "STREAMCORE_FUZZ_EXAMPLES",
        "STREAMCORE_CONFIG",
        "STREAMCORE_BOOTSTRAP",
        *RETRY_ENV_VARS,
    }
)
#: Prefixes of ``STREAMCORE_*`` variables owned by tooling (tests, benchmarks), never a warning.
IGNORED_ENV_PREFIXES: tuple[str, ...] = ("STREAMCORE_TEST_", "STREAMCORE_BENCH_")


def _attr_path(name: str) -> list[str]:
    """Attribute path of setting ``name`` inside BrokerConfig."""
    setting = _BY_NAME.get(name)
    return ((setting.attr if setting is not None and setting.attr else None) or name).split(".")


_SOURCE_RANKS = {"default": 0, "file": 1, "env": 2, "cli": 3}


def _rank(source: str) -> int:
    """Precedence of a source (``cli --port`` > ``env ...`` > ``file ...`` > ``default``)."""
    return _SOURCE_RANKS.get(source.split(" ", 1)[0], 0)


def _set(cfg: BrokerConfig, name: str, value: Any, source: str) -> None:
    parts = _attr_path(name)
    obj: Any = cfg
    for part in parts[:-1]:
        obj = getattr(obj, part)
    setattr(obj, parts[-1], value)
    cfg.sources[name] = source


def _flatten_toml(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten_toml(value, name + "."))
        else:
            out[name] = value
    return out


def closest(name: str, candidates: Iterable[str], *, strip: str = "") -> str | None:
    """The candidate most like ``name`` (difflib's ratio), None when there is none.

    ``strip``: a prefix all share (``STREAMCORE_``), left out of the comparison so that
    it does not make every candidate look alike.
    """
    options = list(candidates)
    if not options:
        return None
    key = name.removeprefix(strip).lower()

    def score(option: str) -> float:
        return difflib.SequenceMatcher(None, key, option.removeprefix(strip).lower()).ratio()

    return max(options, key=score)


def _did_you_mean(name: str, candidates: Iterable[str], *, strip: str = "") -> str:
    best = closest(name, candidates, strip=strip)
    return f"; did you mean {best!r}?" if best is not None else ""


def _check_consistency(cfg: BrokerConfig) -> None:
    g = cfg.groups
    if g.min_session_timeout_ms > g.max_session_timeout_ms:
        raise ConfigError(
            f"groups.min_session_timeout_ms ({g.min_session_timeout_ms}) exceeds "
            f"groups.max_session_timeout_ms ({g.max_session_timeout_ms})"
        )
    if cfg.limits.max_message_bytes > cfg.limits.max_request_bytes:
        raise ConfigError(
            f"limits.max_message_bytes ({cfg.limits.max_message_bytes}) exceeds "
            f"limits.max_request_bytes ({cfg.limits.max_request_bytes})"
        )
    if cfg.quotas.request_percentage is not None and cfg.quotas.request_percentage <= 0:
        raise ConfigError(
            f"quotas.request_percentage: {cfg.quotas.request_percentage:g} must be greater than 0 "
            "(none = unlimited)"
        )
    if cfg.cluster_id is not None and not cfg.cluster_id.strip():
        raise ConfigError("cluster_id: must not be blank (omit it to generate one)")
    specs = cfg.listener_specs()
    if any(spec.uses_tls for spec in specs):
        if not cfg.ssl.certfile:
            tls = ", ".join(str(spec) for spec in specs if spec.uses_tls)
            raise ConfigError(f"ssl.certfile: the TLS listener {tls} needs a certificate (--ssl-certfile)")
    if cfg.ssl.client_auth != "none" and not cfg.ssl.cafile and any(s.protocol == "SSL" for s in specs):
        raise ConfigError(
            f"ssl.client_auth {cfg.ssl.client_auth}: client certificates are checked against ssl.cafile; set it"
        )
    if any(spec.uses_sasl for spec in specs) and not cfg.sasl.mechanisms:
        raise ConfigError("sasl.mechanisms: a SASL listener needs at least one mechanism")
    for i, entry in enumerate(cfg.sasl.plain_users, 1):
        user, sep, _ = entry.partition(":")
        if not sep or not user:
            # The entry may hold a password: name its position only.
            raise ConfigError(f"sasl.plain_users: entry {i} is not user:password")


def load_config(
    config_file: str | os.PathLike[str] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    cli: Mapping[str, Any] | None = None,
) -> BrokerConfig:
    """Build the configuration from defaults, a TOML file, the environment and CLI values.

    ``config_file``: TOML path; None = ``$STREAMCORE_CONFIG`` if set, else no file.
    ``env``: the environment to read (default ``os.environ``; ``{}`` for none); only
    ``STREAMCORE_*`` names matter, and one that is neither a setting nor in
    :data:`IGNORED_ENV` is logged at WARNING with the closest valid name, then ignored.
    ``cli``: setting name (``"storage.fsync"``) or flag (``"--fsync"``) -> raw value; values
    that are None are skipped so an argparse namespace can be passed through ``vars()``.
    Raises ConfigError, in one line, on an unknown file key or CLI setting (naming the
    closest valid one), a malformed value or a missing or unreadable file.
    """
    env = os.environ if env is None else env
    cfg = BrokerConfig()
    if config_file is None and env.get("STREAMCORE_CONFIG"):
        config_file = env["STREAMCORE_CONFIG"]

    if config_file is not None:
        path = Path(config_file)
        try:
            with path.open("rb") as fh:
                data = _toml.load(fh)
        except OSError as exc:
            raise ConfigError(f"config file {str(path)!r}: {exc.strerror or exc}") from None
        except _toml.TOMLDecodeError as exc:
            raise ConfigError(f"config file {str(path)!r}: invalid TOML: {exc}") from None
        for name, raw in _flatten_toml(data).items():
            setting = _BY_NAME.get(name)
            if setting is None:
                raise ConfigError(
                    f"config file {str(path)!r}: unknown setting {name!r}{_did_you_mean(name, _BY_NAME)} "
                    "(`streamcore config --show` lists every setting)"
                )
            _set(cfg, name, setting.parse(raw), f"file {path}")

    for var in sorted(env):
        if not var.startswith("STREAMCORE_") or var in IGNORED_ENV or var.startswith(IGNORED_ENV_PREFIXES):
            continue
        setting = _BY_ENV.get(var)
        if setting is None:
            best = closest(var, [*_BY_ENV, *sorted(IGNORED_ENV)], strip="STREAMCORE_")
            log.warning("ignoring unknown environment variable %s (did you mean %s?)", var, best)
            continue
        _set(cfg, setting.name, setting.parse(env[var]), f"env {var}")

    for key, raw in (cli or {}).items():
        if raw is None:
            continue
        name = CLI_FLAGS.get(key, key)
        setting = _BY_NAME.get(name)
        if setting is None:
            candidates = [*CLI_FLAGS, *_BY_NAME] if key.startswith("-") else list(_BY_NAME)
            raise ConfigError(
                f"unknown setting {key!r}{_did_you_mean(key, candidates)} "
                "(`streamcore config --show` lists every setting)"
            )
        label = setting.cli if setting.cli else key
        _set(cfg, name, setting.parse(raw), f"cli {label}")

    _check_consistency(cfg)
    return cfg


def config_show(cfg: BrokerConfig) -> str:
    """Render every setting as ``name = value  # source`` lines (for ``streamcore config --show``)."""
    width = max(len(s.name) for s in SETTINGS)
    lines = []
    for s in SETTINGS:
        value = cfg.get(s.name)
        if s.secret and value:
            value = [e.partition(":")[0] + ":***" for e in value] if isinstance(value, tuple) else "***"
        if isinstance(value, (tuple, list)):
            shown = ",".join(value) if value else '""'
        else:
            shown = (
                "none" if value is None else (str(value).lower() if isinstance(value, bool) else str(value))
            )
        lines.append(f"{s.name.ljust(width)} = {shown}  # {cfg.source(s.name)}")
    return "\n".join(lines) + "\n"


def settings_table() -> list[dict[str, Any]]:
    """Every setting with its default, env variable and CLI flag (for docs and --help)."""
    defaults = BrokerConfig()
    return [{**dataclasses.asdict(s), "default": defaults.get(s.name)} for s in SETTINGS]
