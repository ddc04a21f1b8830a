"""The broker's typed configuration tree: one dataclass per section (listeners,
storage, limits, quotas, ...) under :class:`BrokerConfig`, which also remembers where
each value came from, and the parsing of ``listeners`` entries."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from streamcore.broker.config_settings import (
    DAY_MS,
    DEFAULT_SASL_MECHANISMS,
    MAX_PORT,
    SECURITY_PROTOCOLS,
    attr_path,
    source_rank,
)
from streamcore.errors import ConfigError


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
    if not 0 <= port <= MAX_PORT:
        raise ConfigError(f"{setting}: port {port} of {entry!r} is outside 0-{MAX_PORT}")
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
    segment_ms: int = 7 * DAY_MS
    #: -1 keeps data forever.
    retention_ms: int = 7 * DAY_MS
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
    offsets_retention_ms: int = 7 * DAY_MS


@dataclass
class TransactionsConfig:
    """Transaction coordinator settings (Kafka's names in each setting's help)."""

    #: Largest transaction timeout a producer may ask for, in ms.
    max_timeout_ms: int = 15 * 60 * 1000
    #: How often (ms) timed-out transactions are aborted and unfinished ones completed.
    abort_interval_ms: int = 10_000
    #: A transactional id idle this long (ms) is forgotten.
    id_expiration_ms: int = 7 * DAY_MS


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
        for part in attr_path(name):
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
            rank = source_rank(self.source("listeners"))
            first = specs[0]
            host = (
                lc.host
                if self.source("listeners.host") != "default"
                and source_rank(self.source("listeners.host")) >= rank
                else first.host
            )
            port = (
                lc.port
                if self.source("listeners.port") != "default"
                and source_rank(self.source("listeners.port")) >= rank
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
