"""Client quotas: Kafka's entity model, their file in the data directory, and throttling.

**Entities** (KIP-55, KIP-257; KIP-612 for ``ip``). A quota belongs to a ``user`` (the
principal's name, ``alice`` for ``User:alice``), a ``client-id``, a user together with a
client-id, or an ``ip``; a name of None is the *default* entity (``<default>`` in
kafka-configs), which stands for every user, client-id or address without a quota of its
own. User and client-id entities take ``producer_byte_rate`` and ``consumer_byte_rate``
(bytes per second, whole numbers), ``request_percentage`` (KIP-124: percent of the request
handler's time, 100 = the whole event loop) and ``controller_mutation_rate`` (accepted
and kept, not enforced: this broker has no controller mutation throttling). Ip entities
take ``connection_creation_rate`` (new connections per second, a whole number).

**Which quota applies** to a request of user U with client-id C is, per quota key, the
first entity that has that key in this order (Kafka's ClientQuotaManager):
``(U, C)``, ``(U, <default>)``, ``(U)``, ``(<default>, C)``, ``(<default>, <default>)``,
``(<default>)``, ``(C)``, ``(<default> client-id)``, then the broker's configured default
(``quotas.producer_byte_rate`` ... in the broker config). The entity that matched also says
who shares the measured rate: a user entity is shared by all of that user's client-ids, a
user and client-id entity (default parts too) is per user and client-id, a client-id
entity is per client-id (all users together).

**Measuring** (Kafka's SampledStat Rate): a rate is the sum of ``quotas.window_num``
samples (default 11) of ``quotas.window_size_ms`` each (1 s), divided by the time they span,
which is counted as at least ``window_num - 1`` windows. A new client may therefore send
about ``(window_num - 1) x window x quota`` at once before it is throttled, and the long-run
rate is the quota.

**Throttling.** When recording a request brings the rate above the quota, the throttle
time is ``(rate - quota) / quota x span`` (ms, the request percentage's capped at one
window): the response carries it in ``throttle_time_ms`` and the connection reads nothing
more for that long (``streamcore.broker.server``). Produce records the request's bytes;
Fetch the bytes of the records it would return, and a Fetch over its quota is answered
without records (those bytes are not counted), its size capped beforehand at what the
quota allows in one span; every request records the handler's time on the event loop.

The quotas live in ``<data_dir>/client-quotas.json`` (:class:`QuotaStore`), written with
``streamcore._atomic_file.write_atomic`` before a change is applied, and are changed with
AlterClientQuotas (``streamcore quotas alter``, kafka-configs) and read with
DescribeClientQuotas, whose rules here follow Apache Kafka 4.1's answers.
"""

from __future__ import annotations

import ipaddress
import json
import math
import socket
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from streamcore._atomic_file import write_atomic
from streamcore.errors import ErrorCode, StorageError

__all__ = [
    "CLIENT_ID",
    "CONNECTION_CREATION_RATE",
    "CONSUMER_BYTE_RATE",
    "CONTROLLER_MUTATION_RATE",
    "Entity",
    "canonical_entity",
    "FETCH",
    "IP",
    "PRODUCE",
    "PRODUCER_BYTE_RATE",
    "QUOTAS_FILE",
    "QUOTA_KINDS",
    "REQUEST",
    "REQUEST_PERCENTAGE",
    "USER",
    "AlterOutcome",
    "QuotaManager",
    "QuotaRequestError",
    "QuotaStore",
    "SampledRate",
    "describe_quotas",
    "format_entity",
    "plan_alter",
    "user_of",
]

USER = "user"
CLIENT_ID = "client-id"
IP = "ip"
_ENTITY_TYPES = (USER, CLIENT_ID, IP)
# The order an entity's parts are listed in: the order Kafka's answers list them.
_TYPE_ORDER = {CLIENT_ID: 0, USER: 1, IP: 2}

PRODUCER_BYTE_RATE = "producer_byte_rate"
CONSUMER_BYTE_RATE = "consumer_byte_rate"
REQUEST_PERCENTAGE = "request_percentage"
CONTROLLER_MUTATION_RATE = "controller_mutation_rate"
CONNECTION_CREATION_RATE = "connection_creation_rate"

_LONG_MAX = float(2**63 - 1)
_INT_MAX = float(2**31 - 1)
# Key -> the largest whole value it takes, or None for a decimal (Kafka's LONG/INT/DOUBLE).
_CLIENT_KEYS: dict[str, float | None] = {
    PRODUCER_BYTE_RATE: _LONG_MAX,
    CONSUMER_BYTE_RATE: _LONG_MAX,
    REQUEST_PERCENTAGE: None,
    CONTROLLER_MUTATION_RATE: None,
}
_IP_KEYS: dict[str, float | None] = {CONNECTION_CREATION_RATE: _INT_MAX}

#: The quotas enforced per request, each with the key that sets it (the metrics' label).
PRODUCE = "produce"
FETCH = "fetch"
REQUEST = "request"
QUOTA_KINDS: dict[str, str] = {
    PRODUCE: PRODUCER_BYTE_RATE,
    FETCH: CONSUMER_BYTE_RATE,
    REQUEST: REQUEST_PERCENTAGE,
}

#: The file of the quotas in a data directory.
QUOTAS_FILE = "client-quotas.json"
_FORMAT_VERSION = 1

# Describe's match types (DescribeClientQuotasRequest.ComponentData.match_type).
_MATCH_EXACT = 0
_MATCH_DEFAULT = 1
_MATCH_ANY = 2

_INVALID = ErrorCode.INVALID_REQUEST.code

#: An entity: (type, name) pairs (client-id, user, ip in that order), name None for the
#: default entity.
Entity = tuple[tuple[str, str | None], ...]
#: Every quota: entity -> key -> value.
Quotas = dict[Entity, dict[str, float]]


def canonical_entity(parts: Iterable[tuple[str, str | None]]) -> Entity:
    """An entity from (type, name) pairs, a type named twice keeping its last name."""
    return tuple(sorted(dict(parts).items(), key=lambda pair: (_TYPE_ORDER.get(pair[0], 3), pair[0])))


def user_of(principal: str) -> str:
    """The user a principal's quotas are looked up by: its name (``alice`` of ``User:alice``)."""
    return principal.partition(":")[2]


def format_entity(entity: Entity) -> str:
    """``user=alice, client-id=<default>`` (for messages and the tool's output)."""
    return ", ".join(f"{kind}={'<default>' if name is None else name}" for kind, name in entity)


def _java_entity(entity: Entity) -> str:
    # How Kafka names an entity in its messages: ClientQuotaEntity's toString.
    inner = ", ".join(f"{kind}={'null' if name is None else name}" for kind, name in entity)
    return f"ClientQuotaEntity(entries={{{inner}}})"


class QuotaRequestError(Exception):
    """A DescribeClientQuotas filter the broker refuses: Kafka's error code and message."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# -- DescribeClientQuotas ----------------------------------------------------------------


def describe_quotas(
    quotas: Mapping[Entity, Mapping[str, float]],
    components: Iterable[tuple[str, int, str | None]],
    strict: bool,
) -> list[tuple[Entity, dict[str, float]]]:
    """The entities matching a filter of (entity type, match type, match) components.

    Exact (0) matches the named entity of that type, default (1) its default entity, any
    (2) every entity of that type. An entity matches when it matches every component; with
    ``strict`` it must have no other types. No components: every entity (none if strict).
    Raises QuotaRequestError with Kafka's code and message for a malformed filter.
    """
    exact: dict[str, str | None] = {}
    any_of: set[str] = set()
    for entity_type, match_type, match in components:
        if not entity_type:
            raise QuotaRequestError(_INVALID, "Invalid empty entity type.")
        if entity_type in exact or entity_type in any_of:
            raise QuotaRequestError(
                _INVALID, f"Entity type {entity_type} cannot appear more than once in the filter."
            )
        if entity_type not in _ENTITY_TYPES:
            raise QuotaRequestError(
                ErrorCode.UNSUPPORTED_VERSION.code, f"Unsupported entity type {entity_type}"
            )
        if match_type == _MATCH_EXACT:
            if match is None:
                raise QuotaRequestError(
                    _INVALID, "Request specified MATCH_TYPE_EXACT, but set match string to null."
                )
            exact[entity_type] = match
        elif match_type == _MATCH_DEFAULT:
            if match is not None:
                raise QuotaRequestError(
                    _INVALID, "Request specified MATCH_TYPE_DEFAULT, but also specified a match string."
                )
            exact[entity_type] = None
        elif match_type == _MATCH_ANY:
            if match is not None:
                raise QuotaRequestError(
                    _INVALID, "Request specified MATCH_TYPE_SPECIFIED, but also specified a match string."
                )
            any_of.add(entity_type)
        else:
            raise QuotaRequestError(_INVALID, f"Unknown match type {match_type}")
    named = set(exact) | any_of
    if IP in named and (USER in named or CLIENT_ID in named):
        raise QuotaRequestError(
            _INVALID,
            "Invalid entity filter component combination. IP filter component should not be used "
            "with user or clientId filter component.",
        )
    out = []
    for entity, values in quotas.items():
        parts = dict(entity)
        if strict and len(parts) != len(named):
            continue
        if all(kind in parts and parts[kind] == name for kind, name in exact.items()) and all(
            kind in parts for kind in any_of
        ):
            out.append((entity, dict(values)))
    out.sort(key=lambda item: [(_TYPE_ORDER[kind], name is not None, name or "") for kind, name in item[0]])
    return out


# -- AlterClientQuotas -------------------------------------------------------------------


@dataclass
class AlterOutcome:
    """What an AlterClientQuotas request does: per entry (code, message or None, entity),
    and the quotas after it (None when nothing changes)."""

    results: list[tuple[int, str | None, Entity]]
    quotas: Quotas | None


def _resolvable(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        pass
    try:
        return bool(socket.getaddrinfo(host, None, type=socket.SOCK_STREAM))
    except (OSError, UnicodeError):
        return False


def _entity_error(parts: dict[str, str | None]) -> tuple[str | None, dict[str, float | None]]:
    """(error message or None, the keys the entity takes), Kafka's checks in its order."""
    if not parts:
        return "Invalid empty client quota entity", {}
    for kind, name in parts.items():
        if kind not in _ENTITY_TYPES:
            return f"Unhandled client quota entity type: {kind}", {}
        if name is not None and name == "":
            return f"Empty {kind} not supported", {}
    if IP in parts:
        if USER in parts or CLIENT_ID in parts:
            # Sic: Kafka's message lacks the space.
            return (
                "Invalid quota entity combination, IP entity shouldnot be combined with User or ClientId",
                {},
            )
        name = parts[IP]
        if name is not None and not _resolvable(name):
            return f"{name} is not a valid IP or resolvable host.", {}
        return None, _IP_KEYS
    return None, _CLIENT_KEYS


def _value_error(keys: Mapping[str, float | None], key: str, value: float) -> str | None:
    if key not in keys:
        return f"Invalid configuration key {key}"
    if not math.isfinite(value):
        return f"Quota {key} must be a finite number"
    if value <= 0.0:
        return f"Quota {key} must be greater than 0"
    largest = keys[key]
    if largest is None:
        return None
    if value > largest:
        kind = "an INT" if largest == _INT_MAX else "a LONG"
        return f"Proposed value for {key} is too large for {kind}."
    if abs(value % 1.0) > 1e-6:
        return f"{key} cannot be a fractional value."
    return None


def plan_alter(
    quotas: Mapping[Entity, Mapping[str, float]],
    entries: Iterable[tuple[Sequence[tuple[str, str | None]], Sequence[tuple[str, float, bool]]]],
) -> AlterOutcome:
    """Apply AlterClientQuotas entries (entity pairs, (key, value, remove) ops) to a copy of
    ``quotas``, with Kafka 4.1's rules.

    An entity whose check fails is left as it was and its entries get INVALID_REQUEST with
    Kafka's message; the others change. A key named twice for one entity, or an entity
    named by two entries, is "Ignoring duplicate entity" (the first entry of an entity
    named twice still applies, as in Kafka). Within one entry a type named twice keeps its
    last name. There is one result per entity, in the order the entities first appear. An ``ip`` name must be an address or a name that resolves (this may block).
    """
    new: Quotas = {entity: dict(values) for entity, values in quotas.items()}
    errors: dict[Entity, str | None] = {}
    order: list[Entity] = []
    changed = False
    for pairs, ops in entries:
        parts: dict[str, str | None] = {}
        for kind, name in pairs:
            parts[kind] = name
        entity = canonical_entity(parts.items())
        if entity not in order:
            order.append(entity)
        alterations: dict[str, float | None] = {}
        for key, value, remove in ops:
            if key in alterations:
                errors[entity] = f"Duplicate quota key {key} not updating quota for this entity"
            else:
                alterations[key] = None if remove else float(value)
        if entity in errors:
            errors[entity] = f"Ignoring duplicate entity {_java_entity(entity)}"
            continue
        message, keys = _entity_error(parts)
        if message is None:
            for key, new_value in alterations.items():
                if new_value is not None:
                    message = _value_error(keys, key, new_value)
                    if message is not None:
                        break
        errors[entity] = message
        if message is not None:
            continue
        current = new.get(entity, {})
        for key, new_value in alterations.items():
            if new_value is None:
                if key in current:
                    del current[key]
                    changed = True
            elif current.get(key) != new_value:
                current[key] = new_value
                changed = True
        if current:
            new[entity] = current
        else:
            new.pop(entity, None)
    results = [
        (0 if errors.get(entity) is None else _INVALID, errors.get(entity), entity) for entity in order
    ]
    return AlterOutcome(results, new if changed else None)


# -- the file ------------------------------------------------------------------------------


class QuotaStore:
    """Every quota set with AlterClientQuotas, kept in ``<directory>/client-quotas.json``.

    Read once when opened; :meth:`replace` writes the whole file atomically before the new
    quotas become visible, so a failed write changes nothing. Only the broker writes it,
    under the data-directory lock.
    """

    def __init__(self, directory: str | Path) -> None:
        self.path = Path(directory) / QUOTAS_FILE
        self._quotas: Quotas = self._load()

    @property
    def quotas(self) -> Quotas:
        """The quotas now (treat as read-only; :meth:`replace` swaps in a new mapping)."""
        return self._quotas

    def _load(self) -> Quotas:
        try:
            text = self.path.read_text("utf-8")
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise StorageError(f"{self.path}: cannot be read: {exc.strerror or exc}") from None
        try:
            data = json.loads(text)
            if not isinstance(data, dict) or data.get("version") != _FORMAT_VERSION:
                raise ValueError(f"not a version {_FORMAT_VERSION} client quotas file")
            out: Quotas = {}
            for item in data["quotas"]:
                entity = canonical_entity((str(k), None if n is None else str(n)) for k, n in item["entity"])
                values = {str(k): float(v) for k, v in item["values"].items()}
                if not entity or any(kind not in _ENTITY_TYPES for kind, _ in entity):
                    raise ValueError(f"bad entity {item['entity']!r}")
                if values:
                    out[entity] = values
            return out
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise StorageError(
                f"{self.path}: not a valid client quotas file ({exc}); restore it from a backup, or "
                "delete it and set the quotas again"
            ) from None

    def replace(self, quotas: Quotas) -> None:
        """Persist ``quotas`` and make them current; OSError (nothing changed) when the file
        cannot be written."""
        payload = {
            "version": _FORMAT_VERSION,
            "quotas": [
                {"entity": [list(pair) for pair in entity], "values": dict(sorted(values.items()))}
                for entity, values in sorted(quotas.items(), key=lambda item: format_entity(item[0]))
            ],
        }
        write_atomic(self.path, json.dumps(payload, indent=1) + "\n")
        self._quotas = quotas


def resolve_ip_quotas(quotas: Mapping[Entity, Mapping[str, float]]) -> dict[str | None, float]:
    """``connection_creation_rate`` by address (None: the default ip entity). A host name
    stands for every address it resolves to now (this may block); one that no longer
    resolves is left out."""
    out: dict[str | None, float] = {}
    for entity, values in quotas.items():
        rate = values.get(CONNECTION_CREATION_RATE)
        if rate is None or len(entity) != 1 or entity[0][0] != IP:
            continue
        name = entity[0][1]
        if name is None:
            out[None] = rate
            continue
        try:
            out[str(ipaddress.ip_address(name))] = rate
            continue
        except ValueError:
            pass
        try:
            infos = socket.getaddrinfo(name, None, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError):
            continue
        for info in infos:
            out[str(info[4][0])] = rate
    return out


# -- measuring -------------------------------------------------------------------------------


class SampledRate:
    """A rate over ``samples`` samples of ``window_ms`` each, measured as Kafka's Rate does.

    :meth:`record` adds a value at a time (ms, any monotonic clock) to the current sample,
    starting the next one (the oldest is reused) once the current is ``window_ms`` old;
    samples older than ``samples x window_ms`` are emptied when measured. :meth:`rate` is
    the sum of the samples per second of :meth:`span_ms`, the time since the oldest sample
    began, counted as at least ``samples - 1`` windows.
    """

    __slots__ = ("_current", "_n", "_starts", "_used", "_values", "_window", "last_ms")

    def __init__(self, samples: int, window_ms: float) -> None:
        self._n = max(1, samples)
        self._window = float(window_ms)
        self._starts = [0.0] * self._n
        self._values = [0.0] * self._n
        self._used = 0
        self._current = 0
        #: When a value was last recorded (ms).
        self.last_ms = 0.0

    def record(self, value: float, now_ms: float) -> None:
        self.last_ms = now_ms
        if self._used == 0:
            self._used = 1
            self._current = 0
            self._starts[0] = now_ms
            self._values[0] = 0.0
        elif now_ms - self._starts[self._current] >= self._window:
            self._current = (self._current + 1) % self._n
            if self._used < self._n:
                self._used += 1
            self._starts[self._current] = now_ms
            self._values[self._current] = 0.0
        self._values[self._current] += value

    def _purge(self, now_ms: float) -> None:
        expire = self._n * self._window
        for i in range(self._used):
            if now_ms - self._starts[i] >= expire:
                self._starts[i] = now_ms
                self._values[i] = 0.0

    def span_ms(self, now_ms: float) -> float:
        """The time the rate is measured over now (ms, at least 1)."""
        self._purge(now_ms)
        oldest = min(self._starts[: self._used]) if self._used else now_ms
        elapsed = now_ms - oldest
        full = int(elapsed // self._window)
        if full < self._n - 1:
            elapsed += (self._n - 1 - full) * self._window
        return max(elapsed, 1.0)

    def rate(self, now_ms: float) -> float:
        """Recorded values per second."""
        span = self.span_ms(now_ms)
        return sum(self._values[: self._used]) / (span / 1000.0)


class _Sensor:
    """One measured rate and the quota it was last checked against."""

    __slots__ = ("limit", "rate")

    def __init__(self, rate: SampledRate, limit: float) -> None:
        self.rate = rate
        self.limit = limit


# Sensors not recorded for this long are dropped (Kafka's quota sensors expire after an
# hour without use); the check runs at most this often.
_SENSOR_IDLE_MS = 3600_000.0
_EXPIRE_EVERY_MS = 60_000.0

_DEFAULT = object()  # the default entity's part in a lookup key

# The lookup order of Kafka's ClientQuotaManager: (user part, client part) of the entity to
# look for, and whether the measured rate is then shared per user (U), per client-id (C)
# or per both: the parts kept in the sensor's tags.
_PRECEDENCE = (
    ("u", "c", "uc"),
    ("u", "d", "uc"),
    ("u", None, "u"),
    ("d", "c", "uc"),
    ("d", "d", "uc"),
    ("d", None, "u"),
    (None, "c", "c"),
    (None, "d", "c"),
)


class QuotaManager:
    """Which quota applies to whom, the measured rates, and the throttle times.

    Built from the broker's ``quotas`` settings; :meth:`install` gives it the quotas of the
    store (again after each change). Methods take the time in ms of ``clock`` (monotonic by
    default) and are called on the broker's event loop.
    """

    def __init__(
        self,
        *,
        window_num: int = 11,
        window_size_ms: int = 1000,
        defaults: Mapping[str, float | None] | None = None,
        connection_creation_rate: float | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.window_num = max(1, window_num)
        self.window_size_ms = max(1, window_size_ms)
        self._clock = clock or (lambda: time.monotonic() * 1000.0)
        #: The broker config's defaults by quota key (the last step of the lookup).
        self._static: dict[str, float] = {k: float(v) for k, v in (defaults or {}).items() if v is not None}
        self._static_ip = None if connection_creation_rate is None else float(connection_creation_rate)
        # key -> {(user part, client part): value}; a part is a name, _DEFAULT or None (absent).
        self._by_key: dict[str, dict[tuple[object, object], float]] = {}
        self._ip_rates: dict[str | None, float] = {}
        self._resolved: dict[tuple[str, str, str], tuple[tuple[str, str], float | None]] = {}
        self._sensors: dict[tuple[str, str, str], _Sensor] = {}
        self._ip_sensors: dict[str, SampledRate] = {}
        self._expired_at = 0.0
        #: Whether any quota (set or configured) of each kind exists: without one nothing
        #: is measured for it.
        self.enabled: dict[str, bool] = dict.fromkeys(QUOTA_KINDS, False)
        #: Total throttle time handed out, ms, by kind.
        self.throttle_ms_total: dict[str, int] = dict.fromkeys(QUOTA_KINDS, 0)
        #: Responses throttled, by kind.
        self.throttled_total: dict[str, int] = dict.fromkeys(QUOTA_KINDS, 0)
        self.install({})

    def now_ms(self) -> float:
        return self._clock()

    def install(
        self, quotas: Mapping[Entity, Mapping[str, float]], ip_rates: Mapping[str | None, float] | None = None
    ) -> None:
        """Use these quotas from the next request on; measured rates are kept."""
        by_key: dict[str, dict[tuple[object, object], float]] = {}
        for entity, values in quotas.items():
            parts = dict(entity)
            if IP in parts:
                continue
            user: object = None
            client: object = None
            if USER in parts:
                user = _DEFAULT if parts[USER] is None else parts[USER]
            if CLIENT_ID in parts:
                client = _DEFAULT if parts[CLIENT_ID] is None else parts[CLIENT_ID]
            for key, value in values.items():
                by_key.setdefault(key, {})[(user, client)] = value
        self._by_key = by_key
        self._ip_rates = dict(ip_rates or {})
        self._resolved = {}
        for kind, key in QUOTA_KINDS.items():
            self.enabled[kind] = bool(by_key.get(key)) or key in self._static

    # -- which quota ----------------------------------------------------------------------

    def resolve(self, kind: str, user: str, client_id: str) -> tuple[tuple[str, str], float | None]:
        """((user tag, client-id tag), quota) for a request of ``kind``: the tags name who
        shares the rate ("" for a part not shared by); quota None = unlimited."""
        cache_key = (kind, user, client_id)
        hit = self._resolved.get(cache_key)
        if hit is not None:
            return hit
        table = self._by_key.get(QUOTA_KINDS[kind], {})
        names = {"u": user, "c": client_id, "d": _DEFAULT, None: None}
        result: tuple[tuple[str, str], float | None] = (("", client_id), self._static.get(QUOTA_KINDS[kind]))
        for user_part, client_part, shared in _PRECEDENCE:
            value = table.get((names[user_part], names[client_part]))
            if value is not None:
                tags = (user if "u" in shared else "", client_id if "c" in shared else "")
                result = (tags, value)
                break
        if len(self._resolved) > 100_000:
            self._resolved.clear()
        self._resolved[cache_key] = result
        return result

    def max_fetch_bytes(self, user: str, client_id: str) -> int | None:
        """The most bytes one Fetch of this client may return: what its quota allows over
        ``window_num - 1`` windows (Kafka's getMaxValueInQuotaWindow); None = no quota."""
        _, limit = self.resolve(FETCH, user, client_id)
        if limit is None:
            return None
        return max(1, int(limit * (self.window_num - 1) * self.window_size_ms / 1000.0))

    # -- recording ------------------------------------------------------------------------

    def record(self, kind: str, user: str, client_id: str, value: float) -> int:
        """Record ``value`` (bytes, or for REQUEST percent-seconds: handler seconds x 100)
        against the quota of ``kind`` that applies; returns the throttle time in ms (0 when
        within the quota or there is none)."""
        tags, limit = self.resolve(kind, user, client_id)
        if limit is None:
            return 0
        now = self._clock()
        self._maybe_expire(now)
        key = (kind, tags[0], tags[1])
        sensor = self._sensors.get(key)
        if sensor is None:
            sensor = self._sensors[key] = _Sensor(SampledRate(self.window_num, self.window_size_ms), limit)
        sensor.limit = limit
        sensor.rate.record(value, now)
        rate = sensor.rate.rate(now)
        if rate <= limit:
            return 0
        throttle = round((rate - limit) / limit * sensor.rate.span_ms(now))
        if kind == REQUEST:
            # Kafka caps the request-time throttle at one window (KIP-124).
            throttle = min(throttle, self.window_size_ms)
        return max(int(throttle), 1)

    def unrecord(self, kind: str, user: str, client_id: str, value: float) -> None:
        """Take back a recorded value (a throttled Fetch returns no records)."""
        tags, limit = self.resolve(kind, user, client_id)
        sensor = self._sensors.get((kind, tags[0], tags[1]))
        if limit is not None and sensor is not None:
            sensor.rate.record(-value, self._clock())

    def throttled(self, kind: str, throttle_ms: int) -> None:
        """Count a response throttled by the quota of ``kind`` (for the metrics)."""
        self.throttle_ms_total[kind] = self.throttle_ms_total.get(kind, 0) + throttle_ms
        self.throttled_total[kind] = self.throttled_total.get(kind, 0) + 1

    # -- connections ----------------------------------------------------------------------

    def connection_rate_limit(self, ip: str) -> float | None:
        """New connections per second allowed from ``ip`` (None = unlimited)."""
        rate = self._ip_rates.get(ip)
        if rate is None:
            rate = self._ip_rates.get(None, self._static_ip)
        return rate

    def accept_connection(self, ip: str) -> bool:
        """Record a new connection from ``ip``; False (and not counted) when it would
        exceed the address's connection creation rate."""
        limit = self.connection_rate_limit(ip)
        if limit is None:
            return True
        now = self._clock()
        self._maybe_expire(now)
        rate = self._ip_sensors.get(ip)
        if rate is None:
            rate = self._ip_sensors[ip] = SampledRate(self.window_num, self.window_size_ms)
        rate.record(1.0, now)
        if rate.rate(now) <= limit:
            return True
        rate.record(-1.0, now)
        return False

    # -- housekeeping and figures ---------------------------------------------------------

    def _maybe_expire(self, now: float) -> None:
        if now - self._expired_at < _EXPIRE_EVERY_MS:
            return
        self._expired_at = now
        for key in [k for k, s in self._sensors.items() if now - s.rate.last_ms > _SENSOR_IDLE_MS]:
            del self._sensors[key]
        for ip in [k for k, r in self._ip_sensors.items() if now - r.last_ms > _SENSOR_IDLE_MS]:
            del self._ip_sensors[ip]

    def sensors(self) -> list[tuple[str, str, str, float, float]]:
        """(kind, user tag, client-id tag, measured rate, quota) of every rate measured."""
        now = self._clock()
        return [
            (kind, user, client, sensor.rate.rate(now), sensor.limit)
            for (kind, user, client), sensor in sorted(self._sensors.items())
        ]
