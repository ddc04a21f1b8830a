"""Every broker setting, one :class:`Setting` each: its dotted name, kind, bounds,
environment variable, CLI flag and help text (:data:`SETTINGS`, in display order), and
the lookups built from it. ``streamcore.broker.config`` loads values by these
definitions into the typed tree of ``streamcore.broker.config_tree``;
docs/configuration.md is checked against :data:`SETTINGS` by the tests."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from streamcore.broker.config_values import PARSERS, parse_duration_ms, parse_size_bytes
from streamcore.errors import ConfigError
from streamcore.retry import RETRY_ENV_VARS

#: Milliseconds per day, and the highest TCP port.
DAY_MS = 24 * 3600 * 1000
MAX_PORT = 65535


#: Kafka's security protocols, the scheme of a ``listeners`` entry.
SECURITY_PROTOCOLS: tuple[str, ...] = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")

#: The SASL mechanisms the broker speaks.
SASL_MECHANISMS: tuple[str, ...] = ("SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN", "OAUTHBEARER")
#: Those offered unless ``sasl.mechanisms`` says otherwise (OAUTHBEARER needs a validator
#: to be more than a development aid, so it is asked for explicitly).
DEFAULT_SASL_MECHANISMS: tuple[str, ...] = ("SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN")


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
       minimum=0, maximum=MAX_PORT),
    _s("listeners.advertised_host", "str", "Host given to clients (default: host, or localhost for 0.0.0.0).",
       env="STREAMCORE_ADVERTISED_HOST", cli="--advertised-host", optional=True),
    _s("listeners.advertised_port", "int", "Port given to clients (default: port).",
       env="STREAMCORE_ADVERTISED_PORT", cli="--advertised-port", optional=True, minimum=1, maximum=MAX_PORT),
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
       cli="--metrics-port", optional=True, minimum=0, maximum=MAX_PORT),
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


def attr_path(name: str) -> list[str]:
    """Attribute path of setting ``name`` inside BrokerConfig."""
    setting = _BY_NAME.get(name)
    return ((setting.attr if setting is not None and setting.attr else None) or name).split(".")


_SOURCE_RANKS = {"default": 0, "file": 1, "env": 2, "cli": 3}


def source_rank(source: str) -> int:
    """Precedence of a source (``cli --port`` > ``env ...`` > ``file ...`` > ``default``)."""
    return _SOURCE_RANKS.get(source.split(" ", 1)[0], 0)
