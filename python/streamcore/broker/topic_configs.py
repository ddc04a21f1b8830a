"""Every per-topic config Kafka 4.1 defines: the one table.

CreateTopics, AlterConfigs and IncrementalAlterConfigs validate against it,
DescribeConfigs lists it (value, source, Kafka ConfigType and synonyms) and
``TopicManager`` resolves a topic's effective settings from it. A topic config is
one :class:`TopicConfigDef` row in :data:`TOPIC_CONFIGS`; nothing else lists them.

The names, types, defaults, ranges and the server properties Kafka names as their
synonyms are Kafka 4.1's (``LogConfig``), and so are the error messages a bad value
gets (INVALID_CONFIG, "Invalid value X for configuration N: ..."). Rows with
``acts=True`` change what this broker does; the others are validated, stored and
described, and have no effect on one node (replication, flushing by count, index
sizing, tiered storage).
docs/broker.md lists which is which.

Streamcore's own topic configs (``search.index``) are a second table,
:data:`STREAMCORE_TOPIC_CONFIGS`: accepted and stored like Kafka's, acted on outside
:class:`TopicConfig`, and kept apart so that the Kafka table stays exactly Kafka's.
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from streamcore.errors import ErrorCode, StreamcoreError

__all__ = [
    "CONFIG_SOURCE_DEFAULT",
    "CONFIG_SOURCE_STATIC_BROKER",
    "CONFIG_SOURCE_TOPIC",
    "DESCRIBED_CONFIG_NAMES",
    "OP_APPEND",
    "OP_DELETE",
    "OP_SET",
    "OP_SUBTRACT",
    "ALL_TOPIC_CONFIGS",
    "STREAMCORE_TOPIC_CONFIGS",
    "TOPIC_CONFIGS",
    "TOPIC_CONFIG_NAMES",
    "ConfigEntry",
    "ConfigSynonym",
    "ConfigType",
    "TopicConfig",
    "TopicConfigDef",
    "TopicError",
    "check_topic_configs",
    "incremental_change",
]

#: Kafka DescribeConfigs ConfigSource values used here.
CONFIG_SOURCE_TOPIC = 1  # DYNAMIC_TOPIC_CONFIG: set on the topic
CONFIG_SOURCE_STATIC_BROKER = 4  # STATIC_BROKER_CONFIG: broker setting from file/env/CLI
CONFIG_SOURCE_DEFAULT = 5  # DEFAULT_CONFIG

_LONG_MAX = (1 << 63) - 1
_LONG_MIN = -(1 << 63)
_INT_MAX = (1 << 31) - 1
_INT_MIN = -(1 << 31)


class TopicError(StreamcoreError):
    """A topic operation was refused; ``error_code`` is the Kafka error code to answer with."""

    def __init__(self, error_code: ErrorCode | int, message: str) -> None:
        super().__init__(message)
        self.error_code = error_code.code if isinstance(error_code, ErrorCode) else int(error_code)
        self.message = message


class ConfigType(enum.IntEnum):
    """Kafka's DescribeConfigs ConfigType codes (v3+)."""

    BOOLEAN = 1
    STRING = 2
    INT = 3
    SHORT = 4
    LONG = 5
    DOUBLE = 6
    LIST = 7
    CLASS = 8
    PASSWORD = 9


class ConfigSynonym(NamedTuple):
    """One DescribeConfigs synonym: the name it goes by there, its value as text, ConfigSource code."""

    name: str
    value: str
    source: int


class ConfigEntry(NamedTuple):
    """One DescribeConfigs row: value as text, whether default, read-only, ConfigSource code, synonyms."""

    value: str
    is_default: bool
    read_only: bool
    source: int
    synonyms: tuple[ConfigSynonym, ...] = ()


@dataclass(frozen=True)
class TopicConfig:
    """A topic's effective settings for what the broker acts on (overrides merged over defaults).

    Sizes in bytes, durations in milliseconds; -1 = unlimited for the retention limits.
    """

    retention_ms: int
    retention_bytes: int
    segment_bytes: int
    segment_ms: int
    #: cleanup.policy items, as given (``("compact", "delete")``; empty: neither).
    cleanup_policy: tuple[str, ...]
    max_message_bytes: int
    #: ``CreateTime`` or ``LogAppendTime``.
    message_timestamp_type: str
    message_timestamp_before_max_ms: int
    message_timestamp_after_max_ms: int
    #: Kafka's internal.segment.bytes (tests only): replaces segment.bytes when set.
    internal_segment_bytes: int | None
    #: How long the cleaner keeps a tombstone once its batch was first cleaned (ms).
    delete_retention_ms: int = 86_400_000
    #: Dirty share of the cleanable bytes at which the cleaner compacts the log.
    min_cleanable_dirty_ratio: float = 0.5
    #: A record stays uncompacted at least / at most this long (ms).
    min_compaction_lag_ms: int = 0
    max_compaction_lag_ms: int = (1 << 63) - 1
    #: compression.type: ``producer`` keeps the producer's codec; any other value is the
    #: codec the broker stores (``uncompressed``, ``gzip``, ``snappy``, ``lz4``, ``zstd``).
    compression_type: str = "producer"
    #: compression.gzip.level (-1: the codec's default), .lz4.level, .zstd.level.
    compression_gzip_level: int = -1
    compression_lz4_level: int = 9
    compression_zstd_level: int = 3

    @property
    def recompression(self) -> tuple[str, int | None] | None:
        """(codec, level) the broker re-encodes batches to, or None under ``producer``."""
        kind = self.compression_type
        if kind == "producer":
            return None
        if kind == "uncompressed":
            return "none", None
        level = {
            "gzip": None if self.compression_gzip_level == -1 else self.compression_gzip_level,
            "lz4": self.compression_lz4_level,
            "zstd": self.compression_zstd_level,
        }.get(kind)
        return kind, level

    @property
    def compact(self) -> bool:
        """The policy includes compact: records need a key; the log keeps the latest per key."""
        return "compact" in self.cleanup_policy

    @property
    def delete(self) -> bool:
        """The policy includes delete: retention.ms and retention.bytes remove old segments."""
        return "delete" in self.cleanup_policy

    @property
    def log_append_time(self) -> bool:
        """message.timestamp.type is LogAppendTime: the broker stamps batches with the append time."""
        return self.message_timestamp_type == "LogAppendTime"

    @property
    def effective_segment_bytes(self) -> int:
        """The segment size logs roll at (bytes): internal.segment.bytes if set, else segment.bytes."""
        return self.segment_bytes if self.internal_segment_bytes is None else self.internal_segment_bytes

    @property
    def retention_limits(self) -> tuple[int | None, int | None]:
        """(retention ms, retention bytes) to apply, None = no limit.

        Without delete in the policy neither applies, as in Kafka: a compact-only topic
        keeps every segment (the cleaner reclaims space), and an empty policy keeps all.
        """
        if not self.delete:
            return None, None
        return (
            None if self.retention_ms < 0 else self.retention_ms,
            None if self.retention_bytes < 0 else self.retention_bytes,
        )


@dataclass(frozen=True)
class TopicConfigDef:
    """One topic config: Kafka's name and type, its default, how its text is read, what it acts on."""

    #: Kafka's name (``retention.ms``).
    name: str
    config_type: ConfigType
    #: Reads a value given as text; raises TopicError INVALID_CONFIG when it is not allowed.
    parse: Callable[[str], Any]
    #: The default as text (Kafka's), for configs without a broker setting; None for none.
    default: str | None = None
    #: The broker setting (dotted ``streamcore config --show`` name) a topic without an
    #: override inherits; None when the default is :attr:`default`.
    broker_setting: str | None = None
    #: The server property Kafka names as this config's synonym (``log.retention.ms``).
    synonym: str | None = None
    #: Kafka lists the DEFAULT_CONFIG synonym (it does not for the ones whose server
    #: property has no default of its own, such as log.retention.ms).
    default_synonym: bool = True
    #: The :class:`TopicConfig` field it fills when the broker acts on it.
    field: str | None = None
    #: Kafka's internal configs are accepted but not described.
    internal: bool = False

    @property
    def is_list(self) -> bool:
        """A comma-separated list (IncrementalAlterConfigs may APPEND to or SUBTRACT from it)."""
        return self.config_type == ConfigType.LIST

    @property
    def acts(self) -> bool:
        """Whether the broker's behaviour on one node depends on it."""
        return self.field is not None


# ---------------------------------------------------------------------------- validators
# Kafka's ConfigDef trims every value before parsing; numbers are plain decimal.

_INTEGER = re.compile(r"^[+-]?[0-9]+$")


def _invalid(name: str, value: object, reason: str) -> TopicError:
    return TopicError(ErrorCode.INVALID_CONFIG, f"Invalid value {value} for configuration {name}: {reason}")


def _range_reason(value: float, low: float | None, high: float | None) -> str | None:
    if low is not None and value < low:
        return f"Value must be at least {low}"
    if high is not None and value > high:
        return f"Value must be no more than {high}"
    return None


def _number(
    name: str, kind: ConfigType, low: int | None = None, high: int | None = None
) -> Callable[[str], int]:
    lo_ok, hi_ok = (_INT_MIN, _INT_MAX) if kind == ConfigType.INT else (_LONG_MIN, _LONG_MAX)

    def parse(text: str) -> int:
        trimmed = str(text).strip()
        if not _INTEGER.match(trimmed) or not lo_ok <= int(trimmed) <= hi_ok:
            raise _invalid(name, trimmed, f"Not a number of type {kind.name}")
        value = int(trimmed)
        reason = _range_reason(value, low, high)
        if reason:
            raise _invalid(name, value, reason)
        return value

    return parse


def _double(name: str, low: int, high: int) -> Callable[[str], float]:
    def parse(text: str) -> float:
        trimmed = str(text).strip()
        try:
            if "_" in trimmed:
                raise ValueError(trimmed)
            value = float(trimmed)
        except ValueError:
            raise _invalid(name, trimmed, "Not a number of type DOUBLE") from None
        reason = None if math.isnan(value) else _range_reason(value, low, high)
        if reason:
            raise _invalid(name, trimmed, reason)
        return value

    return parse


def _gzip_level(text: str) -> int:
    value = _number("compression.gzip.level", ConfigType.INT)(text)
    if value != -1 and not 1 <= value <= 9:
        raise _invalid("compression.gzip.level", value, "Value must be between 1 and 9 or equal to -1")
    return value


def _boolean(name: str) -> Callable[[str], bool]:
    def parse(text: str) -> bool:
        trimmed = str(text).strip().lower()
        if trimmed not in ("true", "false"):
            raise _invalid(name, str(text).strip(), "Expected value to be either true or false")
        return trimmed == "true"

    return parse


def _one_of(name: str, allowed: tuple[str, ...]) -> Callable[[str], str]:
    def parse(text: str) -> str:
        trimmed = str(text).strip()
        if trimmed not in allowed:
            raise _invalid(name, trimmed, f"String must be one of: {', '.join(allowed)}")
        return trimmed

    return parse


def _items(text: str) -> list[str]:
    trimmed = str(text).strip()
    return [item.strip() for item in trimmed.split(",")] if trimmed else []


def _cleanup_policy(text: str) -> tuple[str, ...]:
    items = _items(text)
    for item in items:
        if item not in ("compact", "delete"):
            raise _invalid("cleanup.policy", item, "String must be one of: compact, delete")
    return tuple(items)


_REPLICA = re.compile(r"^[0-9]+:[0-9]+$")


def _throttled_replicas(name: str) -> Callable[[str], tuple[str, ...]]:
    def parse(text: str) -> tuple[str, ...]:
        items = _items(text)
        if items == ["*"] or all(_REPLICA.match(item) for item in items):
            return tuple(items)
        raise _invalid(
            name,
            f"[{', '.join(items)}]",
            f"{name} must be the literal '*' or a list of replicas in the following format: "
            "[partitionId]:[brokerId],[partitionId]:[brokerId],...",
        )

    return parse


def _remote_storage(text: str) -> bool:
    if _boolean("remote.storage.enable")(text):
        # Kafka's answer when the broker has tiered storage off, as streamcore always does.
        raise TopicError(
            ErrorCode.INVALID_CONFIG,
            "Tiered Storage functionality is disabled in the broker. "
            "Topic cannot be configured with remote log storage.",
        )
    return False


# ---------------------------------------------------------------------------- the table

_I, _L, _B = ConfigType.INT, ConfigType.LONG, ConfigType.BOOLEAN
_MAX = str(_LONG_MAX)


def _row(name: str, kind: ConfigType, parse: Callable[[str], Any], **kw: Any) -> TopicConfigDef:
    return TopicConfigDef(name, kind, parse, **kw)


def _long(name: str, low: int | None = None, **kw: Any) -> TopicConfigDef:
    return _row(name, _L, _number(name, _L, low), **kw)


def _int(name: str, low: int | None = None, high: int | None = None, **kw: Any) -> TopicConfigDef:
    return _row(name, _I, _number(name, _I, low, high), **kw)


def _bool(name: str, **kw: Any) -> TopicConfigDef:
    return _row(name, _B, _boolean(name), default="false", **kw)


#: Every topic config, by name, in the order DescribeConfigs lists them (Kafka's names, sorted).
TOPIC_CONFIGS: Mapping[str, TopicConfigDef] = {
    d.name: d
    for d in (
        _row(
            "cleanup.policy",
            ConfigType.LIST,
            _cleanup_policy,
            default="delete",
            synonym="log.cleanup.policy",
            field="cleanup_policy",
        ),
        _row(
            "compression.gzip.level",
            _I,
            _gzip_level,
            default="-1",
            synonym="compression.gzip.level",
            field="compression_gzip_level",
        ),
        _int(
            "compression.lz4.level",
            1,
            17,
            default="9",
            synonym="compression.lz4.level",
            field="compression_lz4_level",
        ),
        _row(
            "compression.type",
            ConfigType.STRING,
            _one_of("compression.type", ("uncompressed", "zstd", "lz4", "snappy", "gzip", "producer")),
            default="producer",
            synonym="compression.type",
            field="compression_type",
        ),
        _int(
            "compression.zstd.level",
            -131072,
            22,
            default="3",
            synonym="compression.zstd.level",
            field="compression_zstd_level",
        ),
        _long(
            "delete.retention.ms",
            0,
            default="86400000",
            synonym="log.cleaner.delete.retention.ms",
            field="delete_retention_ms",
        ),
        _long("file.delete.delay.ms", 0, default="60000", synonym="log.segment.delete.delay.ms"),
        _long("flush.messages", 1, default=_MAX, synonym="log.flush.interval.messages"),
        _long("flush.ms", 0, default=_MAX, synonym="log.flush.interval.ms", default_synonym=False),
        _row(
            "follower.replication.throttled.replicas",
            ConfigType.LIST,
            _throttled_replicas("follower.replication.throttled.replicas"),
            default="",
        ),
        _int("index.interval.bytes", 0, default="4096", synonym="log.index.interval.bytes"),
        _row(
            "leader.replication.throttled.replicas",
            ConfigType.LIST,
            _throttled_replicas("leader.replication.throttled.replicas"),
            default="",
        ),
        _long("local.retention.bytes", -2, default="-2", synonym="log.local.retention.bytes"),
        _long("local.retention.ms", -2, default="-2", synonym="log.local.retention.ms"),
        _long(
            "max.compaction.lag.ms",
            1,
            default=_MAX,
            synonym="log.cleaner.max.compaction.lag.ms",
            field="max_compaction_lag_ms",
        ),
        _int(
            "max.message.bytes",
            0,
            broker_setting="limits.max_message_bytes",
            synonym="message.max.bytes",
            field="max_message_bytes",
        ),
        _long(
            "message.timestamp.after.max.ms",
            0,
            default="3600000",
            synonym="log.message.timestamp.after.max.ms",
            field="message_timestamp_after_max_ms",
        ),
        _long(
            "message.timestamp.before.max.ms",
            0,
            default=_MAX,
            synonym="log.message.timestamp.before.max.ms",
            field="message_timestamp_before_max_ms",
        ),
        _row(
            "message.timestamp.type",
            ConfigType.STRING,
            _one_of("message.timestamp.type", ("CreateTime", "LogAppendTime")),
            default="CreateTime",
            synonym="log.message.timestamp.type",
            field="message_timestamp_type",
        ),
        _row(
            "min.cleanable.dirty.ratio",
            ConfigType.DOUBLE,
            _double("min.cleanable.dirty.ratio", 0, 1),
            default="0.5",
            synonym="log.cleaner.min.cleanable.ratio",
            field="min_cleanable_dirty_ratio",
        ),
        _long(
            "min.compaction.lag.ms",
            0,
            default="0",
            synonym="log.cleaner.min.compaction.lag.ms",
            field="min_compaction_lag_ms",
        ),
        # Any value >= 1 is accepted; on one broker with replication factor 1, Kafka 4.1
        # still acknowledges acks=all with min.insync.replicas above 1, and so does streamcore.
        _int("min.insync.replicas", 1, default="1", synonym="min.insync.replicas"),
        _bool("preallocate", synonym="log.preallocate"),
        _bool("remote.log.copy.disable"),
        _bool("remote.log.delete.on.disable"),
        _row("remote.storage.enable", _B, _remote_storage, default="false"),
        _long(
            "retention.bytes",
            broker_setting="storage.retention_bytes",
            synonym="log.retention.bytes",
            field="retention_bytes",
        ),
        _long(
            "retention.ms",
            -1,
            broker_setting="storage.retention_ms",
            synonym="log.retention.ms",
            default_synonym=False,
            field="retention_ms",
        ),
        _int(
            "segment.bytes",
            1024 * 1024,
            broker_setting="storage.segment_bytes",
            synonym="log.segment.bytes",
            field="segment_bytes",
        ),
        _int("segment.index.bytes", 4, default="10485760", synonym="log.index.size.max.bytes"),
        _long("segment.jitter.ms", 0, default="0", synonym="log.roll.jitter.ms", default_synonym=False),
        _long(
            "segment.ms",
            1,
            broker_setting="storage.segment_ms",
            synonym="log.roll.ms",
            default_synonym=False,
            field="segment_ms",
        ),
        _bool("unclean.leader.election.enable", synonym="unclean.leader.election.enable"),
        _int("internal.segment.bytes", internal=True, field="internal_segment_bytes"),
    )
}
#: Names of the per-topic configs that may be set (Kafka's, internal ones included).
TOPIC_CONFIG_NAMES: tuple[str, ...] = tuple(TOPIC_CONFIGS)
#: Names DescribeConfigs and CreateTopics list (Kafka's public topic configs).
DESCRIBED_CONFIG_NAMES: tuple[str, ...] = tuple(n for n, d in TOPIC_CONFIGS.items() if not d.internal)

# A row that names a TopicConfig field that does not exist (or misses one) fails at import.
assert {d.field for d in TOPIC_CONFIGS.values() if d.field} == set(TopicConfig.__dataclass_fields__)


#: Streamcore's own topic configs (not Kafka's): validated, stored and inherited like the
#: rows above; the broker reads them with ``TopicManager.search_indexed`` and the like.
STREAMCORE_TOPIC_CONFIGS: Mapping[str, TopicConfigDef] = {
    d.name: d
    for d in (
        # Index the topic's records for full-text search (docs/search.md).
        _row("search.index", _B, _boolean("search.index"), broker_setting="search.index_default"),
    )
}
#: Every topic config that may be set: Kafka's (internal ones included) and streamcore's.
ALL_TOPIC_CONFIGS: Mapping[str, TopicConfigDef] = {**TOPIC_CONFIGS, **STREAMCORE_TOPIC_CONFIGS}


def unknown_config(name: str) -> TopicError:
    """The error Kafka answers for a topic config name it does not define."""
    return TopicError(ErrorCode.INVALID_CONFIG, f"Unknown topic config name: {name}")


def check_topic_configs(
    configs: Mapping[str, str | None], *, null_code: ErrorCode = ErrorCode.INVALID_CONFIG
) -> dict[str, str]:
    """Validate configs given as text (CreateTopics, AlterConfigs); returns them stripped.

    Raises TopicError INVALID_CONFIG for a name Kafka does not define, a value its
    definition refuses, or min.compaction.lag.ms above max.compaction.lag.ms (both as
    they would be in effect). A missing value is ``null_code`` (CreateTopics answers
    INVALID_CONFIG, AlterConfigs INVALID_REQUEST, as Kafka does).
    """
    clean: dict[str, str] = {}
    parsed: dict[str, Any] = {}
    for key, value in configs.items():
        definition = ALL_TOPIC_CONFIGS.get(key)
        if definition is None:
            raise unknown_config(key)
        if value is None:
            # Kafka's two wordings: CreateTopics names "topic configs", AlterConfigs nothing.
            where = "topic configs" if null_code == ErrorCode.INVALID_CONFIG else ""
            raise TopicError(null_code, f"Null value not supported for {where}: {key}")
        parsed[key] = definition.parse(value)
        clean[key] = str(value).strip()
    low = parsed.get("min.compaction.lag.ms", 0)
    high = parsed.get("max.compaction.lag.ms", _LONG_MAX)
    if low > high:
        raise TopicError(
            ErrorCode.INVALID_CONFIG,
            f"conflict topic config setting min.compaction.lag.ms ({low}) > max.compaction.lag.ms ({high})",
        )
    return clean


#: IncrementalAlterConfigs operations (Kafka's AlterConfigOp.OpType codes).
OP_SET, OP_DELETE, OP_APPEND, OP_SUBTRACT = 0, 1, 2, 3
_OP_NAMES = {OP_APPEND: "APPEND", OP_SUBTRACT: "SUBTRACT"}


def incremental_change(name: str, op: int, value: str | None, current: str) -> str | None:
    """The value ``name`` has after one IncrementalAlterConfigs operation; None = back to the default.

    ``current`` is the config's effective value now (text). APPEND adds each
    comma-separated item not yet in the list, SUBTRACT removes each, as Kafka does;
    both are for list configs only. DELETE of a name Kafka does not define is a no-op,
    as in Kafka. Raises TopicError INVALID_CONFIG for an unknown name or APPEND/SUBTRACT
    on a non-list config, INVALID_REQUEST for a missing value or an unknown operation.
    The result is not validated here.
    """
    definition = ALL_TOPIC_CONFIGS.get(name)
    if op == OP_DELETE:
        return None
    if definition is None:
        raise unknown_config(name)
    if op not in (OP_SET, OP_APPEND, OP_SUBTRACT):
        raise TopicError(ErrorCode.INVALID_REQUEST, f"{name}: unknown config operation {op}")
    if value is None:
        raise TopicError(ErrorCode.INVALID_REQUEST, f"Null value not supported for : {name}")
    if op == OP_SET:
        return value
    if not definition.is_list:
        raise TopicError(
            ErrorCode.INVALID_CONFIG, f"Can't {_OP_NAMES[op]} to key {name} because its type is not LIST."
        )
    items = _items(current)
    given = _items(value)
    if op == OP_APPEND:
        items.extend(item for item in given if item not in items)
    else:
        items = [item for item in items if item not in given]
    return ",".join(items)
