"""Client settings: one typed table shared by the producer, the consumer and the admin client.

Settings are given as snake_case keywords (``linger_ms=5``) or as a dict of Kafka-style
dotted properties (``{"linger.ms": 5}``); both spell the same names. An unknown name,
a value of the wrong type or a value outside its choices raises
:class:`streamcore.errors.ConfigError` at construction, naming the valid choices, so a
typo never turns silently into a default.

Other spellings of the same setting are accepted where they mean exactly the same
thing (``ALIASES``): librdkafka's names (``queue.buffering.max.ms`` is ``linger_ms``,
``message.timeout.ms`` is ``delivery_timeout_ms`` ...) and the retry guide's
``retry.*`` properties. librdkafka names without an exact equivalent here are refused
by name, with the setting that comes closest (``NOT_EQUIVALENT``).

Retry tuning at deploy time: ``STREAMCORE_RETRY_STRATEGY``, ``_INTERVAL``,
``_MULTIPLIER`` and ``_MAX_DELAY`` (``streamcore.retry.RETRY_ENV_VARS``) set the
retry settings a client was not given explicitly. Precedence: keyword > property >
environment > default.
"""

from __future__ import annotations

import difflib
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from streamcore.client.security import SASL_MECHANISMS, SECURITY_PROTOCOLS, jaas_credentials
from streamcore.errors import ConfigError
from streamcore.retry import RETRY_ENV_VARS, STRATEGIES, parse_duration

__all__ = [
    "Setting",
    "SETTINGS",
    "ALIASES",
    "NOT_EQUIVALENT",
    "ClientConfig",
    "build_config",
    "java_pem_stores",
    "COMPRESSION_TYPES",
]

COMPRESSION_TYPES = ("none", "gzip", "snappy", "lz4", "zstd")
ASSIGNORS = ("range", "cooperative-sticky")

_COMMON = frozenset({"producer", "consumer", "admin"})
_P = frozenset({"producer"})
_C = frozenset({"consumer"})


@dataclass(frozen=True)
class Setting:
    """One setting: its name, kind (int/float/bool/str/str?/choice/upper-choice/acks/assignors/
    callable/token-provider/ssl-context), default, who uses it and its bounds (``minimum``/``maximum``, inclusive)."""

    name: str
    kind: str
    default: Any
    help: str
    used_by: frozenset[str] = _COMMON
    choices: tuple[Any, ...] = ()
    minimum: float | None = None
    maximum: float | None = None


def _s(
    name: str, kind: str, default: Any, help: str, used_by: frozenset[str] = _COMMON, **kw: Any
) -> Setting:
    return Setting(name, kind, default, help, used_by, **kw)


SETTINGS: tuple[Setting, ...] = (
    _s("client_id", "str", "streamcore", "Name sent in every request header."),
    _s("request_timeout_ms", "int", 30_000, "Time to wait for one response (ms).", minimum=1),
    _s(
        "metadata_max_age_ms", "int", 300_000, "Refresh cluster metadata at least this often (ms).", minimum=0
    ),
    _s(
        "retry_strategy",
        "choice",
        "exponential",
        "How the delay between retries grows: exponential, fixed or linear (streamcore.retry).",
        choices=STRATEGIES,
    ),
    _s(
        "retry_backoff_ms",
        "int",
        100,
        "Delay before the first retry of a failed request; the strategy's interval (ms).",
        minimum=0,
    ),
    _s("retry_backoff_max_ms", "int", 1_000, "Largest delay between retries (ms).", minimum=0),
    _s(
        "retry_multiplier",
        "float",
        2.0,
        "Growth factor of the exponential strategy (>= 1.0; ignored by fixed and linear).",
        minimum=1.0,
    ),
    _s(
        "retry_jitter",
        "float",
        0.2,
        "Fraction of each retry delay drawn at random, in [0, 1], so failing clients do not retry in step.",
        minimum=0.0,
        maximum=1.0,
    ),
    _s(
        "high_priority_channel_capacity",
        "int",
        64,
        "Requests (Metadata, Heartbeat ...) queued per connection before senders wait for room.",
        minimum=1,
    ),
    _s(
        "normal_priority_channel_capacity",
        "int",
        256,
        "Requests (Produce, Fetch ...) queued per connection before senders wait for room.",
        minimum=1,
    ),
    _s(
        "security_protocol",
        "upper-choice",
        "PLAINTEXT",
        "Transport to the brokers: PLAINTEXT, SSL (TLS), SASL_PLAINTEXT or SASL_SSL (SASL over TLS).",
        choices=SECURITY_PROTOCOLS,
    ),
    _s(
        "ssl_cafile",
        "str?",
        None,
        "PEM file of the CA certificates that verify the brokers (None: the system's default CAs).",
    ),
    _s(
        "ssl_certfile",
        "str?",
        None,
        "PEM file of this client's certificate (chain), for brokers that require client certificates.",
    ),
    _s(
        "ssl_keyfile",
        "str?",
        None,
        "PEM file of ssl_certfile's private key (None: the key is in ssl_certfile).",
    ),
    _s("ssl_password", "str?", None, "Password of an encrypted ssl_keyfile."),
    _s(
        "ssl_check_hostname",
        "bool",
        True,
        "Match the broker's certificate against the host name or address connected to.",
    ),
    _s(
        "ssl_context",
        "ssl-context",
        None,
        "A ready ssl.SSLContext used as is, instead of the other ssl_* settings.",
    ),
    _s(
        "sasl_mechanism",
        "upper-choice",
        "PLAIN",
        "SASL mechanism under SASL_PLAINTEXT/SASL_SSL: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER.",
        choices=SASL_MECHANISMS,
    ),
    _s("sasl_username", "str?", None, "User name for PLAIN and SCRAM."),
    _s("sasl_password", "str?", None, "Password for PLAIN and SCRAM."),
    _s(
        "sasl_jaas_config",
        "str?",
        None,
        "A Java client's JAAS entry (PlainLoginModule/ScramLoginModule with username and password): "
        "fills sasl_username and sasl_password when those are not given.",
    ),
    _s(
        "sasl_oauth_token_provider",
        "token-provider",
        None,
        "OAUTHBEARER: a callable returning a token or (token, expiry in seconds since the epoch), "
        "or an object with a token() method; called for each new connection.",
    ),
    _s("connections_per_broker", "int", 1, "TCP connections per broker, used round-robin.", minimum=1),
    _s(
        "max_in_flight_requests_per_connection",
        "int",
        5,
        "Upper bound of pipelined requests per connection.",
        minimum=1,
    ),
    _s(
        "min_in_flight_requests_per_connection",
        "int",
        1,
        "Lower bound the adaptive in-flight window shrinks to.",
        minimum=1,
    ),
    _s("socket_connection_setup_timeout_ms", "int", 10_000, "Time to open a TCP connection (ms).", minimum=1),
    # producer
    _s("acks", "acks", -1, "0 = no answer, 1 = leader appended, all/-1 = all in-sync replicas.", _P),
    _s(
        "linger_ms",
        "int",
        5,
        "Wait this long for more records before sending a partly full batch (ms).",
        _P,
        minimum=0,
    ),
    # 256 KiB rather than the Java client's 16 KiB (librdkafka allows 1 MB): in Python
    # the cost per batch (request, answer, futures) dominates, and linger_ms, not the
    # size, bounds how long records wait.
    _s("batch_size", "int", 262_144, "Largest record batch per partition (bytes).", _P, minimum=1),
    # send_batch has all its records at once: 512 KiB batches (two per default 1 MiB
    # request) measured 1.3x the records/s of 256 KiB ones (client_bench, 2026-12-07);
    # a topic whose max.message.bytes is smaller gets them split (client/splitting.py).
    _s(
        "send_batch_size",
        "int",
        524_288,
        "Batch size send_batch() aims at (bytes): all its records are there at once, so it need not wait "
        "for batch_size ones.",
        _P,
        minimum=1,
    ),
    _s(
        "buffer_memory",
        "int",
        33_554_432,
        "Records waiting to be sent may use this much memory (bytes).",
        _P,
        minimum=1,
    ),
    _s(
        "max_block_ms",
        "int",
        60_000,
        "How long send() waits for buffer space or metadata (ms).",
        _P,
        minimum=0,
    ),
    _s("compression_type", "choice", "none", "Codec of produced batches.", _P, choices=COMPRESSION_TYPES),
    _s(
        "enable_idempotence",
        "bool",
        True,
        "Producer id + per-partition sequences so retries never duplicate.",
        _P,
    ),
    _s(
        "retries",
        "int",
        2_147_483_647,
        "Resends of a failed batch (bounded by delivery_timeout_ms).",
        _P,
        minimum=0,
    ),
    _s(
        "delivery_timeout_ms",
        "int",
        120_000,
        "Upper bound from send() to success or failure (ms).",
        _P,
        minimum=1,
    ),
    _s("max_request_size", "int", 1_048_576, "Largest produce request (bytes).", _P, minimum=1),
    _s(
        "max_in_flight_per_partition",
        "int",
        5,
        "Batches of one partition in flight at once (<= 5 for idempotence).",
        _P,
        minimum=1,
    ),
    _s(
        "transactional_id",
        "str?",
        None,
        "Transactional producer id (implies idempotence): init_transactions() fences older producers of it.",
        _P,
    ),
    _s(
        "transaction_timeout_ms",
        "int",
        60_000,
        "The coordinator aborts a transaction left open this long (ms); the broker caps it.",
        _P,
        minimum=1,
    ),
    _s("key_serializer", "callable", None, "Callable turning a key into bytes.", _P),
    _s("value_serializer", "callable", None, "Callable turning a value into bytes.", _P),
    # consumer
    _s("group_id", "str?", None, "Consumer group; None for manual assignment without commits.", _C),
    _s(
        "group_instance_id", "str?", None, "Static membership id (survives restarts without a rebalance).", _C
    ),
    _s(
        "auto_offset_reset",
        "choice",
        "latest",
        "Where to start without a committed offset.",
        _C,
        choices=("earliest", "latest", "none"),
    ),
    _s("enable_auto_commit", "bool", True, "Commit consumed positions in the background.", _C),
    _s("auto_commit_interval_ms", "int", 5_000, "Interval of automatic commits (ms).", _C, minimum=1),
    _s(
        "session_timeout_ms",
        "int",
        45_000,
        "The coordinator drops a member silent this long (ms).",
        _C,
        minimum=1,
    ),
    _s("heartbeat_interval_ms", "int", 3_000, "Interval of heartbeats (ms).", _C, minimum=1),
    _s(
        "max_poll_interval_ms",
        "int",
        300_000,
        "Rebalance timeout: longest gap between polls (ms).",
        _C,
        minimum=1,
    ),
    _s("fetch_min_bytes", "int", 1, "The broker waits for this much data (bytes) ...", _C, minimum=0),
    _s("fetch_max_wait_ms", "int", 500, "... or this long (ms) before answering a fetch.", _C, minimum=0),
    _s("fetch_max_bytes", "int", 52_428_800, "Upper bound of one fetch response (bytes).", _C, minimum=1),
    _s(
        "max_partition_fetch_bytes",
        "int",
        1_048_576,
        "Upper bound per partition in one fetch (bytes).",
        _C,
        minimum=1,
    ),
    _s("max_poll_records", "int", 500, "Records returned by one poll() at most.", _C, minimum=1),
    _s(
        "partition_assignment_strategy",
        "assignors",
        ("range", "cooperative-sticky"),
        "Assignors offered to the group, in order of preference.",
        _C,
    ),
    _s("columnar", "bool", False, "poll() returns numpy columns per partition instead of records.", _C),
    _s("check_crcs", "bool", True, "Verify the CRC32C of fetched batches.", _C),
    _s(
        "isolation_level",
        "choice",
        "read_uncommitted",
        "Which records a fetch may return.",
        _C,
        choices=("read_uncommitted", "read_committed"),
    ),
    _s("key_deserializer", "callable", None, "Callable turning key bytes into a key.", _C),
    _s("value_deserializer", "callable", None, "Callable turning value bytes into a value.", _C),
)

_BY_NAME: dict[str, Setting] = {s.name: s for s in SETTINGS}

#: Other names of a setting, normalized (dots and dashes as underscores), each meaning
#: exactly what the setting means, in the same unit.
ALIASES: dict[str, str] = {
    "retries_max": "retries",
    # the retry guide's properties (streamcore.retry.RetryPolicy.from_properties)
    "retry_interval": "retry_backoff_ms",
    "retry_max_delay": "retry_backoff_max_ms",
    # librdkafka
    "metadata_broker_list": "bootstrap_servers",
    "queue_buffering_max_ms": "linger_ms",
    "message_timeout_ms": "delivery_timeout_ms",
    "message_send_max_retries": "retries",
    "request_required_acks": "acks",
    "compression_codec": "compression_type",
    "max_in_flight": "max_in_flight_requests_per_connection",
    "fetch_wait_max_ms": "fetch_max_wait_ms",
    "fetch_message_max_bytes": "max_partition_fetch_bytes",
    "ssl_ca_location": "ssl_cafile",
    "ssl_certificate_location": "ssl_certfile",
    "ssl_key_location": "ssl_keyfile",
    "ssl_key_password": "ssl_password",
    # "https" checks the host name, "none" (or empty) does not: see _coerce
    "ssl_endpoint_identification_algorithm": "ssl_check_hostname",
    "sasl_mechanisms": "sasl_mechanism",
    # kafka-python
    "sasl_plain_username": "sasl_username",
    "sasl_plain_password": "sasl_password",
}

#: librdkafka names whose nearest setting here differs in unit or meaning: refused,
#: with what to use instead.
NOT_EQUIVALENT: dict[str, str] = {
    "queue_buffering_max_kbytes": "buffer_memory (in bytes; librdkafka counts KiB)",
    "queue_buffering_max_messages": "buffer_memory (a byte budget; there is no record-count bound)",
    "batch_num_messages": "batch_size (in bytes; there is no record-count bound)",
    "message_max_bytes": "max_request_size (producer) or max_partition_fetch_bytes (consumer)",
    "socket_timeout_ms": "request_timeout_ms",
    "topic_metadata_refresh_interval_ms": "metadata_max_age_ms",
    "retry_backoff": "retry_backoff_ms",
    "enable_ssl_certificate_verification": "ssl_context (one built with verify_mode=ssl.CERT_NONE); "
    "there is no setting that turns verification off",
    "ssl_truststore_location": "ssl_cafile (PEM; export the truststore's certificates to a PEM file)",
    "ssl_keystore_location": "ssl_certfile and ssl_keyfile (PEM; export the keystore's entry)",
    "ssl_certificate_pem": "ssl_certfile (a file name, not the PEM text)",
    "ssl_ca_pem": "ssl_cafile (a file name, not the PEM text)",
    "ssl_key_pem": "ssl_keyfile (a file name, not the PEM text)",
}

#: Settings whose values are never shown (repr of a ClientConfig).
SECRET_SETTINGS = frozenset({"ssl_password", "sasl_password", "sasl_jaas_config"})

#: librdkafka's auto.offset.reset spellings that mean ours.
_OFFSET_RESET_SYNONYMS = {
    "smallest": "earliest",
    "beginning": "earliest",
    "largest": "latest",
    "end": "latest",
}


def _normalize_name(name: str) -> str:
    key = name.strip().replace(".", "_").replace("-", "_").lower()
    return ALIASES.get(key, key)


def _check_range(setting: Setting, value: float) -> None:
    if setting.minimum is not None and value < setting.minimum:
        raise ConfigError(f"setting {setting.name!r}: must be >= {setting.minimum:g}, got {value}")
    if setting.maximum is not None and value > setting.maximum:
        raise ConfigError(f"setting {setting.name!r}: must be <= {setting.maximum:g}, got {value}")


def _coerce(setting: Setting, value: Any) -> Any:
    """Check and convert ``value`` for ``setting``; ConfigError says what was expected."""
    name, kind = setting.name, setting.kind

    def bad(expected: str) -> ConfigError:
        return ConfigError(f"setting {name!r}: expected {expected}, got {value!r}")

    if kind == "int":
        if isinstance(value, bool):
            raise bad("an integer")
        if isinstance(value, str):
            # Millisecond settings may be written "100ms", "30s", "5m" (the one duration
            # parser, streamcore.retry's); other integers are plain digits.
            if name.endswith("_ms"):
                try:
                    value = parse_duration(value)
                except ConfigError:
                    raise bad("an integer or a duration such as 100ms, 30s, 5m, 1h") from None
            elif value.strip().isdigit():
                value = int(value)
            else:
                raise bad("an integer")
        if not isinstance(value, int):
            raise bad("an integer")
        _check_range(setting, value)
        return value
    if kind == "float":
        if isinstance(value, bool):
            raise bad("a number")
        if isinstance(value, str):
            try:
                value = float(value.strip())
            except ValueError:
                raise bad("a number") from None
        if not isinstance(value, (int, float)) or not math.isfinite(value):
            raise bad("a finite number")
        value = float(value)
        _check_range(setting, value)
        return value
    if kind == "upper-choice":
        if not isinstance(value, str) or value.strip().upper() not in setting.choices:
            raise ConfigError(
                f"setting {name!r}: {value!r} is not supported; supported: {', '.join(setting.choices)}"
            )
        return value.strip().upper()
    if kind == "bool":
        if isinstance(value, bool):
            return value
        if name == "ssl_check_hostname" and isinstance(value, str) and value.lower() in ("https", "none", ""):
            # librdkafka's and Java's ssl.endpoint.identification.algorithm
            return value.lower() == "https"
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise bad("true or false")
    if kind == "str":
        if not isinstance(value, str):
            raise bad("a string")
        return value
    if kind == "str?":
        if value is not None and not isinstance(value, str):
            raise bad("a string or None")
        return value
    if kind == "choice":
        if name == "auto_offset_reset" and isinstance(value, str):
            value = _OFFSET_RESET_SYNONYMS.get(value, value)
        if value not in setting.choices:
            raise ConfigError(
                f"setting {name!r}: {value!r} is not one of {', '.join(map(str, setting.choices))}"
            )
        return value
    if kind == "acks":
        if value in ("all", "-1", -1):
            return -1
        if value in (0, 1, "0", "1") and not isinstance(value, bool):
            return int(value)
        raise ConfigError(f"setting 'acks': {value!r} is not one of 0, 1, all (-1)")
    if kind == "assignors":
        items = [v.strip() for v in value.split(",")] if isinstance(value, str) else list(value)
        if not items or any(i not in ASSIGNORS for i in items):
            raise ConfigError(f"setting {name!r}: {value!r} must list assignors among {', '.join(ASSIGNORS)}")
        return tuple(items)
    if kind == "callable":
        if value is not None and not callable(value):
            raise bad("a callable or None")
        return value
    if kind == "token-provider":
        if value is not None and not callable(value) and not callable(getattr(value, "token", None)):
            raise bad("a callable or an object with a token() method")
        return value
    if kind == "ssl-context":
        import ssl

        if value is not None and not isinstance(value, ssl.SSLContext):
            raise bad("an ssl.SSLContext or None")
        return value
    raise AssertionError(f"unknown kind {kind}")  # the table above is the only source of kinds


class ClientConfig:
    """The checked settings of one client; read them as attributes (``config.linger_ms``)."""

    def __init__(
        self,
        role: str,
        bootstrap_servers: list[tuple[str, int]],
        values: dict[str, Any],
        sources: dict[str, str] | None = None,
    ) -> None:
        self.role = role
        self.bootstrap_servers = bootstrap_servers
        self._values = values
        self._sources = sources if sources is not None else dict.fromkeys(values, "argument")
        for k, v in values.items():
            setattr(self, k, v)

    def source(self, name: str) -> str:
        """Where the value of setting ``name`` came from: "default", "argument" (a keyword
        or property) or the environment variable's name."""
        return self._sources[name]

    def as_dict(self) -> dict[str, Any]:
        """Every setting of this client's role with its effective value."""
        return dict(self._values)

    def __repr__(self) -> str:
        shown = {k: ("***" if k in SECRET_SETTINGS and v is not None else v) for k, v in self._values.items()}
        return f"ClientConfig({self.role}, {self.bootstrap_servers}, {shown})"

    def __getattr__(self, name: str) -> Any:  # only for names not set in __init__
        raise AttributeError(f"no client setting {name!r}")


def parse_bootstrap(servers: str | list[str] | tuple[str, ...]) -> list[tuple[str, int]]:
    """``"host:port,host2:port"`` or a list of ``host:port`` to (host, port) pairs (default port 9092)."""
    items = servers.split(",") if isinstance(servers, str) else list(servers)
    out: list[tuple[str, int]] = []
    for item in items:
        item = str(item).strip()
        if not item:
            continue
        host, sep, port = item.rpartition(":")
        if not sep:
            host, port = item, "9092"
        host = host.strip("[]")
        if not port.isdigit() or not host:
            raise ConfigError(f"bootstrap_servers: {item!r} is not host:port")
        out.append((host, int(port)))
    if not out:
        raise ConfigError("bootstrap_servers is empty: give at least one host:port")
    return out


#: The environment variable -> the setting it fills when the client was not given it.
_ENV_SETTINGS = dict(
    zip(
        RETRY_ENV_VARS,
        ("retry_strategy", "retry_backoff_ms", "retry_multiplier", "retry_backoff_max_ms"),
        strict=True,
    )
)


def _from_environment(environ: Mapping[str, str]) -> dict[str, tuple[str, Any]]:
    """Setting -> (variable, text) for each non-empty STREAMCORE_RETRY_* variable."""
    out: dict[str, tuple[str, Any]] = {}
    for var, key in _ENV_SETTINGS.items():
        text = environ.get(var, "").strip()
        if text:
            out[key] = (var, text.lower() if key == "retry_strategy" else text)
    return out


def _unknown(role: str, key: str, raw: str) -> ConfigError:
    valid = sorted(s.name for s in SETTINGS if role in s.used_by)
    setting = _BY_NAME.get(key)
    if setting is not None:
        return ConfigError(
            f"{raw!r} is not a {role} setting (it is for: {', '.join(sorted(setting.used_by))})"
        )
    instead = NOT_EQUIVALENT.get(key)
    if instead is not None:
        return ConfigError(f"unknown {role} setting {raw!r}: it has no exact equivalent here; use {instead}")
    # Aliases are offered too, so a librdkafka-style typo is matched to the spelling it resembles.
    candidates = valid + [
        a for a, target in ALIASES.items() if target in valid or target == "bootstrap_servers"
    ]
    near = difflib.get_close_matches(key, candidates, n=3)
    hint = ""
    if near:
        named = [n if n in _BY_NAME else f"{n} (= {ALIASES[n]})" for n in near]
        hint = f" (did you mean {', '.join(named)}?)"
    return ConfigError(
        f"unknown {role} setting {raw!r}{hint}; valid settings: {', '.join(['bootstrap_servers', *valid])}"
    )


#: Java's store properties: the setting a PEM store's location stands for.
_JAVA_STORES = {"truststore": "ssl_cafile", "keystore": "ssl_certfile"}


def java_pem_stores(source: Mapping[str, Any]) -> Mapping[str, Any]:
    """``source`` with Java's PEM stores as ssl_cafile/ssl_certfile.

    ``ssl.truststore.type=PEM`` makes ``ssl.truststore.location`` the CA file, and
    ``ssl.keystore.type=PEM`` makes ``ssl.keystore.location`` (key and chain in one
    file) the certificate file. Another store type is refused: JKS and PKCS12 files
    are not read here.
    """
    keys = {_normalize_name(k): k for k in source}
    if not any(f"ssl_{kind}_type" in keys for kind in _JAVA_STORES):
        return source
    out = dict(source)
    for kind, setting in _JAVA_STORES.items():
        type_raw = keys.get(f"ssl_{kind}_type")
        if type_raw is None:
            continue
        store_type = str(out.pop(type_raw)).strip().upper()
        if store_type != "PEM":
            raise ConfigError(
                f"{type_raw!r} is {store_type}: only PEM files are read; export the store to PEM "
                f"and give it as {setting}"
            )
        location_raw = keys.get(f"ssl_{kind}_location")
        if location_raw is not None:
            out[setting] = out.pop(location_raw)
    return out


def build_config(
    role: str,
    bootstrap_servers: str | list[str] | None,
    properties: Mapping[str, Any] | None,
    kwargs: Mapping[str, Any],
    *,
    environ: Mapping[str, str] | None = None,
) -> ClientConfig:
    """Merge dotted ``properties``, snake_case ``kwargs`` and the retry environment for ``role``.

    ``role`` is "producer", "consumer" or "admin". Keywords win over properties, which
    win over the ``STREAMCORE_RETRY_*`` variables of ``environ`` (``os.environ`` when
    None), which win over defaults. Raises ConfigError for an unknown name (with the
    closest valid names and the full list), a librdkafka name with no exact
    equivalent (naming what to use), one setting given twice under two names in one
    source, an ill-typed value, a value outside its choices, a setting of another
    role (e.g. ``linger_ms`` on a consumer), or a bad environment value (naming the
    variable).
    """
    merged: dict[str, Any] = {}
    for source in (properties or {}), kwargs:
        spelled: dict[str, str] = {}
        for raw, value in java_pem_stores(source).items():
            key = _normalize_name(raw)
            if key in spelled:
                raise ConfigError(f"setting {key!r} is given twice, as {spelled[key]!r} and {raw!r}")
            spelled[key] = raw
            if key == "bootstrap_servers":
                bootstrap_servers = value
                continue
            setting = _BY_NAME.get(key)
            if setting is None or role not in setting.used_by:
                raise _unknown(role, key, raw)
            merged[key] = value
    if bootstrap_servers is None:
        raise ConfigError("bootstrap_servers is required (host:port[,host:port])")
    values: dict[str, Any] = {s.name: s.default for s in SETTINGS if role in s.used_by}
    sources = dict.fromkeys(values, "default")
    env = _from_environment(os.environ if environ is None else environ)
    for key, (var, text) in env.items():
        if key in merged:
            continue
        try:
            values[key] = _coerce(_BY_NAME[key], text)
        except ConfigError as exc:
            raise ConfigError(f"environment variable {var}: {exc}") from None
        sources[key] = var
    for key, value in merged.items():
        values[key] = _coerce(_BY_NAME[key], value)
        sources[key] = "argument"
    if role == "producer" and "enable_idempotence" not in merged:
        if values["transactional_id"] is not None:
            # Transactions are built on idempotence (the Java client's rule).
            values["enable_idempotence"] = True
        elif values["acks"] != -1:
            # Like the Java client: idempotence is on by default only where it can hold.
            values["enable_idempotence"] = False
    if values["sasl_jaas_config"] is not None and values["sasl_username"] is None:
        values["sasl_username"], jaas_password = jaas_credentials(
            values["sasl_jaas_config"], values["sasl_mechanism"]
        )
        if values["sasl_password"] is None:
            values["sasl_password"] = jaas_password
    if (
        sources["retry_backoff_max_ms"] == "default"
        and values["retry_backoff_max_ms"] < values["retry_backoff_ms"]
    ):
        # Only the first delay was given, and it exceeds the default largest: it is both.
        values["retry_backoff_max_ms"] = values["retry_backoff_ms"]
    cfg = ClientConfig(role, parse_bootstrap(bootstrap_servers), values, sources)
    _check_consistency(cfg)
    return cfg


def _check_security(v: Mapping[str, Any]) -> None:
    protocol = v["security_protocol"]
    tls = protocol in ("SSL", "SASL_SSL")
    sasl = protocol in ("SASL_PLAINTEXT", "SASL_SSL")
    ssl_given = [n for n in ("ssl_cafile", "ssl_certfile", "ssl_keyfile", "ssl_password") if v[n] is not None]
    if v["ssl_context"] is not None:
        ssl_given.append("ssl_context")
    if not tls and ssl_given:
        # A forgotten security_protocol would otherwise send in the clear what was meant to be encrypted.
        raise ConfigError(
            f"{', '.join(ssl_given)} given but security_protocol is {protocol}: use SSL or SASL_SSL"
        )
    if v["ssl_context"] is not None and len(ssl_given) > 1:
        raise ConfigError(
            "ssl_context is used as is: do not give ssl_cafile/ssl_certfile/ssl_keyfile/ssl_password too"
        )
    sasl_given = [
        n
        for n in ("sasl_username", "sasl_password", "sasl_jaas_config", "sasl_oauth_token_provider")
        if v[n] is not None
    ]
    if not sasl:
        if sasl_given:
            raise ConfigError(
                f"{', '.join(sasl_given)} given but security_protocol is {protocol}: "
                "use SASL_PLAINTEXT or SASL_SSL"
            )
        return
    mech = v["sasl_mechanism"]
    if mech == "OAUTHBEARER":
        if v["sasl_oauth_token_provider"] is None:
            raise ConfigError("sasl_mechanism OAUTHBEARER needs sasl_oauth_token_provider")
    elif v["sasl_username"] is None or v["sasl_password"] is None:
        raise ConfigError(f"sasl_mechanism {mech} needs sasl_username and sasl_password")


def _check_consistency(cfg: ClientConfig) -> None:
    v = cfg.as_dict()
    _check_security(v)
    if v["retry_backoff_max_ms"] < v["retry_backoff_ms"]:
        raise ConfigError(
            f"retry_backoff_max_ms ({v['retry_backoff_max_ms']} ms) is below retry_backoff_ms "
            f"({v['retry_backoff_ms']} ms): the largest delay cannot be shorter than the first"
        )
    if v["min_in_flight_requests_per_connection"] > v["max_in_flight_requests_per_connection"]:
        raise ConfigError(
            "min_in_flight_requests_per_connection exceeds max_in_flight_requests_per_connection"
        )
    if cfg.role == "producer" and v["transactional_id"] is not None:
        if not v["transactional_id"]:
            raise ConfigError("transactional_id must not be empty")
        if not v["enable_idempotence"]:
            raise ConfigError("transactional_id needs enable_idempotence=True (transactions are idempotent)")
        if v["acks"] != -1:
            raise ConfigError("transactional_id needs acks='all' (-1)")
    if cfg.role == "producer" and v["enable_idempotence"]:
        if v["acks"] != -1:
            raise ConfigError(
                "enable_idempotence=True needs acks='all' (-1); set enable_idempotence=False for acks 0/1"
            )
        if v["max_in_flight_per_partition"] > 5:
            raise ConfigError("enable_idempotence=True allows at most 5 batches in flight per partition")
    if cfg.role == "producer" and v["send_batch_size"] > v["max_request_size"]:
        raise ConfigError("send_batch_size must not exceed max_request_size")
    if cfg.role == "consumer" and v["heartbeat_interval_ms"] >= v["session_timeout_ms"]:
        raise ConfigError("heartbeat_interval_ms must be lower than session_timeout_ms")
