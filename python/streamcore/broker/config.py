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

The settings themselves are defined in ``streamcore.broker.config_settings``
(:data:`SETTINGS`; docs/configuration.md is checked against it by the tests) and the
typed tree they fill in ``streamcore.broker.config_tree``; this module loads and
shows them, and exports both, so callers import everything from here.
"""

from __future__ import annotations

import dataclasses
import difflib
import logging
import os
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from streamcore.broker.cluster_meta import load_or_create_cluster_id
from streamcore.broker.config_settings import (
    _BY_ENV,
    _BY_NAME,
    CLI_FLAGS,
    DEFAULT_SASL_MECHANISMS,
    IGNORED_ENV,
    IGNORED_ENV_PREFIXES,
    SASL_MECHANISMS,
    SECURITY_PROTOCOLS,
    SETTINGS,
    Setting,
    attr_path,
)
from streamcore.broker.config_tree import (
    BrokerConfig,
    FetchSessionsConfig,
    GroupsConfig,
    LimitsConfig,
    ListenerConfig,
    ListenerSpec,
    LogConfig,
    MetricsConfig,
    QuotasConfig,
    SaslConfig,
    SearchConfig,
    SslConfig,
    StorageConfig,
    TopicsConfig,
    TransactionsConfig,
    parse_listener,
)
from streamcore.broker.config_values import parse_duration_ms, parse_size_bytes
from streamcore.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib as _toml
else:  # pragma: no cover - Python 3.10 path, needs the `tomli` backport
    import tomli as _toml

__all__ = [
    "BrokerConfig",
    "ListenerConfig",
    "ListenerSpec",
    "SECURITY_PROTOCOLS",
    "SASL_MECHANISMS",
    "DEFAULT_SASL_MECHANISMS",
    "IGNORED_ENV_PREFIXES",
    "TransactionsConfig",
    "parse_listener",
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

log = logging.getLogger("streamcore.config")


def _set(cfg: BrokerConfig, name: str, value: Any, source: str) -> None:
    parts = attr_path(name)
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
