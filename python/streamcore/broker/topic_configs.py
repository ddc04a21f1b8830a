"""Every per-topic config the broker accepts: the one table.

CreateTopics and AlterConfigs validate against it, DescribeConfigs lists it (value,
source and Kafka ConfigType), and ``TopicManager`` resolves a topic's effective
settings from it. A new topic config is one :class:`TopicConfigDef` row in
:data:`TOPIC_CONFIGS`; nothing else lists them.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from streamcore.errors import ErrorCode, StreamcoreError

__all__ = [
    "CONFIG_SOURCE_DEFAULT",
    "CONFIG_SOURCE_STATIC_BROKER",
    "CONFIG_SOURCE_TOPIC",
    "OP_APPEND",
    "OP_DELETE",
    "OP_SET",
    "OP_SUBTRACT",
    "TOPIC_CONFIGS",
    "TOPIC_CONFIG_NAMES",
    "ConfigEntry",
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


class TopicError(StreamcoreError):
    """A topic operation was refused; ``error_code`` is the Kafka error code to answer with."""

    def __init__(self, error_code: ErrorCode | int, message: str) -> None:
        super().__init__(message)
        self.error_code = error_code.code if isinstance(error_code, ErrorCode) else int(error_code)
        self.message = message


class ConfigType(enum.IntEnum):
    """Kafka's ConfigType codes, as DescribeConfigs v3+ reports them."""

    STRING = 2
    INT = 3
    LONG = 5


class ConfigEntry(NamedTuple):
    """One DescribeConfigs row: value as text, whether default, read-only, ConfigSource code."""

    value: str
    is_default: bool
    read_only: bool
    source: int


@dataclass(frozen=True)
class TopicConfig:
    """A topic's effective settings (overrides merged over broker defaults). -1 = unlimited."""

    retention_ms: int
    retention_bytes: int
    segment_bytes: int
    segment_ms: int
    cleanup_policy: str
    max_message_bytes: int


@dataclass(frozen=True)
class TopicConfigDef:
    """One topic config: its Kafka name, type, where its default comes from, how its text is read."""

    #: Kafka's name (``retention.ms``).
    name: str
    config_type: ConfigType
    #: The broker setting (dotted ``streamcore config --show`` name) a topic without an
    #: override inherits; None when the default is :attr:`default`.
    broker_setting: str | None
    #: The default as text, for configs without a broker setting.
    default: str | None
    #: Reads a value given as text; raises TopicError INVALID_CONFIG when it is not allowed.
    parse: Callable[[str], Any]
    #: The :class:`TopicConfig` field it fills.
    field: str
    #: A comma-separated list in Kafka (IncrementalAlterConfigs may APPEND to or SUBTRACT from it).
    is_list: bool = False


def _int_value(name: str, minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(str(text).strip())
        except ValueError:
            raise TopicError(ErrorCode.INVALID_CONFIG, f"{name}: {text!r} is not an integer") from None
        if value < minimum:
            raise TopicError(ErrorCode.INVALID_CONFIG, f"{name}: {value} is below the minimum {minimum}")
        return value

    return parse


def _cleanup_policy(text: str) -> str:
    if str(text).strip() != "delete":
        raise TopicError(
            ErrorCode.INVALID_CONFIG,
            f"cleanup.policy: {text!r} is not supported; streamcore supports only 'delete' (no compaction)",
        )
    return "delete"


def _int_config(name: str, config_type: ConfigType, setting: str, minimum: int, field: str) -> TopicConfigDef:
    return TopicConfigDef(name, config_type, setting, None, _int_value(name, minimum), field)


#: Every topic config, by name, in the order DescribeConfigs lists them.
TOPIC_CONFIGS: Mapping[str, TopicConfigDef] = {
    d.name: d
    for d in (
        _int_config("retention.ms", ConfigType.LONG, "storage.retention_ms", -1, "retention_ms"),
        _int_config("retention.bytes", ConfigType.LONG, "storage.retention_bytes", -1, "retention_bytes"),
        _int_config("segment.bytes", ConfigType.INT, "storage.segment_bytes", 1024, "segment_bytes"),
        _int_config("segment.ms", ConfigType.LONG, "storage.segment_ms", 1, "segment_ms"),
        TopicConfigDef(
            "cleanup.policy",
            ConfigType.STRING,
            None,
            "delete",
            _cleanup_policy,
            "cleanup_policy",
            is_list=True,
        ),
        _int_config("max.message.bytes", ConfigType.INT, "limits.max_message_bytes", 0, "max_message_bytes"),
    )
}
#: Names of the per-topic configs that may be set.
TOPIC_CONFIG_NAMES: tuple[str, ...] = tuple(TOPIC_CONFIGS)

# A row that names a TopicConfig field that does not exist (or misses one) fails at import.
assert {d.field for d in TOPIC_CONFIGS.values()} == set(TopicConfig.__dataclass_fields__)


def check_topic_configs(configs: Mapping[str, str | None]) -> dict[str, str]:
    """Validate configs given as text (CreateTopics, AlterConfigs); returns them stripped.

    Raises TopicError INVALID_CONFIG for an unknown name, a missing value or a value
    its definition refuses.
    """
    clean: dict[str, str] = {}
    for key, value in configs.items():
        definition = TOPIC_CONFIGS.get(key)
        if definition is None:
            raise TopicError(
                ErrorCode.INVALID_CONFIG,
                f"unknown or unsupported topic config {key!r}; supported: {', '.join(TOPIC_CONFIGS)}",
            )
        if value is None:
            raise TopicError(ErrorCode.INVALID_CONFIG, f"{key}: a value is required")
        definition.parse(value)
        clean[key] = str(value).strip()
    return clean


#: IncrementalAlterConfigs operations (Kafka's AlterConfigOp.OpType codes).
OP_SET, OP_DELETE, OP_APPEND, OP_SUBTRACT = 0, 1, 2, 3


def incremental_change(name: str, op: int, value: str | None, current: str) -> str | None:
    """The value ``name`` has after one IncrementalAlterConfigs operation; None = back to the default.

    ``current`` is the config's effective value now (text). APPEND adds each
    comma-separated item not yet in the list, SUBTRACT removes each, as Kafka does;
    both are for list configs only. Raises TopicError INVALID_CONFIG for an unknown
    name, APPEND/SUBTRACT on a non-list config or a SET/APPEND/SUBTRACT without a
    value, INVALID_REQUEST for an unknown operation. The result is not validated here.
    """
    definition = TOPIC_CONFIGS.get(name)
    if definition is None:
        raise TopicError(
            ErrorCode.INVALID_CONFIG,
            f"unknown or unsupported topic config {name!r}; supported: {', '.join(TOPIC_CONFIGS)}",
        )
    if op == OP_DELETE:
        return None
    if op not in (OP_SET, OP_APPEND, OP_SUBTRACT):
        raise TopicError(ErrorCode.INVALID_REQUEST, f"{name}: unknown config operation {op}")
    if value is None:
        raise TopicError(ErrorCode.INVALID_CONFIG, f"{name}: a value is required")
    if op == OP_SET:
        return value
    if not definition.is_list:
        verb = "append" if op == OP_APPEND else "subtract"
        raise TopicError(
            ErrorCode.INVALID_CONFIG, f"{name} is not a list config: {verb} is not allowed for it"
        )
    items = [item.strip() for item in current.split(",") if item.strip()]
    given = [item.strip() for item in value.split(",") if item.strip()]
    if op == OP_APPEND:
        items.extend(item for item in given if item not in items)
    else:
        items = [item for item in items if item not in given]
    return ",".join(items)
