"""Retry policies, duration parsing, error categories and retry metrics.

Durations
    ``parse_duration`` turns ``"100ms"``, ``"30s"``, ``"5m"``, ``"1h"``, ``"7d"`` (any ASCII
    case, blanks allowed around and between) or a bare number / ``int`` of milliseconds
    into **whole milliseconds (int)**, by the one set of rules in ``streamcore._units``
    that the broker's settings follow too. Each distinct string is parsed once (LRU cache).

Backoff (all integer microseconds, no floating-point rounding)
    With ``e = min(attempt, MAX_EXPONENT)`` and attempt 0 the first retry:

    * ``fixed``:       ``min(max_delay, interval)``
    * ``linear``:      ``min(max_delay, interval * (attempt + 1))``
    * ``exponential``: ``min(max_delay, floor(interval * m**e))`` where ``m = p/q`` is
      the exact fraction of the multiplier's shortest decimal form (``repr``): 1.7 is
      17/10, so 1 s * 1.7 is exactly 1.7 s. The exponent stops at 63; later attempts
      reuse attempt 63's delay (any practical policy hits ``max_delay`` long before).

    Multiplier 2.0 is a shift and 1.5 is ``interval * 3**e >> e`` from a table of powers
    of three; both equal the general formula for every exponent (tested). A policy also
    precomputes its first 64 delays, so ``delay_ms`` is a table lookup.

Jitter
    ``jitter`` is a fraction ``j`` in [0, 1]: the delay ``d`` becomes
    ``d - int(d * j * r)`` with ``r = random()`` in [0, 1), i.e. uniform in
    ``(d * (1 - j), d]``, never above ``max_delay``. The random source is injectable.
"""

from __future__ import annotations

import enum
import functools
import math
import os
import random as _random
from collections.abc import Callable, Iterable, Mapping
from fractions import Fraction

from streamcore import _units
from streamcore._impl import classifier as _classifier
from streamcore._impl import metrics as _cells
from streamcore.errors import BackpressureError, ConfigError, ErrorCode, KafkaError

__all__ = [
    "ErrorCategory",
    "classify",
    "classify_many",
    "classify_code",
    "categorize",
    "parse_duration",
    "backoff_us",
    "RetryPolicy",
    "RetryMetrics",
    "MAX_EXPONENT",
    "MAX_DURATION_MS",
    "STRATEGIES",
    "RETRY_ENV_VARS",
]


class ErrorCategory(enum.IntEnum):
    """Why an operation failed, as far as retrying is concerned: the project's one error category.

    Numbered as the ``classifier`` capability's integer results (native and
    reference), so every int they return is a member; ``_as_category`` is where
    those ints become members.
    """

    TOPIC_MISSING = 0
    NETWORK = 1
    TIMEOUT = 2
    AUTHORIZATION = 3
    BACKPRESSURE = 4
    RETRIABLE_BROKER = 5
    FATAL = 6
    UNKNOWN = 7


if _classifier.CATEGORY_COUNT != len(ErrorCategory):
    raise RuntimeError(
        f"the classifier answers {_classifier.CATEGORY_COUNT} categories, ErrorCategory has {len(ErrorCategory)}"
    )

#: The classifier's int -> its ErrorCategory member (a tuple index: no enum lookup per call).
_as_category = tuple(ErrorCategory).__getitem__


def classify(message: str) -> ErrorCategory:
    """Category of an error message from any Kafka client (librdkafka, kafka-python,
    the Java client, streamcore)."""
    return _as_category(_classifier.classify(message))


def classify_many(messages: Iterable[str]) -> list[ErrorCategory]:
    """Categories of many messages in one native call."""
    return list(map(_as_category, _classifier.classify_many(messages)))


def classify_code(code: int | ErrorCode) -> ErrorCategory:
    """Category of a Kafka protocol error code (an int or an ``ErrorCode``)."""
    if isinstance(code, ErrorCode):
        code = code.code
    return _as_category(_classifier.classify_code(code))


def categorize(exc: BaseException) -> ErrorCategory:
    """Category of an exception: ours by type and Kafka code, others by their text
    (``"ClassName: message"``, so a bare ``NoBrokersAvailable()`` is still network)."""
    if isinstance(exc, BackpressureError):
        return ErrorCategory.BACKPRESSURE
    if isinstance(exc, KafkaError):
        return classify_code(exc.error)
    category = classify(f"{type(exc).__name__}: {exc}")
    if category is ErrorCategory.UNKNOWN:
        if isinstance(exc, TimeoutError):
            return ErrorCategory.TIMEOUT
        if isinstance(exc, ConnectionError):
            return ErrorCategory.NETWORK
    return category


# -- durations ----------------------------------------------------------------------

#: Largest duration accepted, in milliseconds (fits a signed 64-bit integer).
MAX_DURATION_MS = _units.MAX_VALUE

# The cached text parse, for benchmarks that time it without the cache (``__wrapped__``).
_parse_duration_text = _units._duration_text_ms


def parse_duration(value: str | int, setting: str = "duration") -> int:
    """Whole milliseconds of ``value``: a duration string or an int of milliseconds.

    The rules are streamcore._units' (``"100ms"``, ``"30S"``, ``"5m"``, ``"1h"``, ``"7d"``,
    a bare number of ms). Raises ConfigError naming ``setting`` for malformed text, a
    negative (-1 included) or out-of-range value, or another type (bool and float
    included: say ``"1500ms"``, not ``1.5``).
    """
    if type(value) is str:
        # Settings are read again and again; a cached valid text skips the second call.
        ms = _parse_duration_text(value)
        if ms >= 0:
            return ms
    try:
        return _units.parse_duration_ms(value, setting)
    except _units.UnitValueError as exc:
        raise ConfigError(str(exc)) from None


# -- backoff ------------------------------------------------------------------------

#: Largest exponent the exponential strategy uses.
MAX_EXPONENT = 63
#: Strategy names accepted by ``RetryPolicy`` and ``backoff_us``.
STRATEGIES = ("exponential", "fixed", "linear")
#: The environment variables that tune retries at deploy time: strategy, interval,
#: multiplier, max delay (read by ``RetryPolicy.from_env`` and the client's settings).
RETRY_ENV_VARS = (
    "STREAMCORE_RETRY_STRATEGY",
    "STREAMCORE_RETRY_INTERVAL",
    "STREAMCORE_RETRY_MULTIPLIER",
    "STREAMCORE_RETRY_MAX_DELAY",
)

_POW3: tuple[int, ...] = tuple(3**k for k in range(MAX_EXPONENT + 1))


@functools.lru_cache(maxsize=256)
def _ratio(multiplier: float) -> tuple[int, int]:
    """(p, q): the multiplier's shortest decimal form as a fraction in lowest terms."""
    if not (math.isfinite(multiplier) and multiplier >= 1.0):
        raise ConfigError(f"retry multiplier must be a finite number >= 1.0, got {multiplier!r}")
    f = Fraction(repr(float(multiplier)))
    return f.numerator, f.denominator


def _exponential_general_us(interval_us: int, p: int, q: int, max_delay_us: int, e: int) -> int:
    """The exponential formula with no fast path: what the fast paths must equal."""
    return min(max_delay_us, interval_us * p**e // q**e)


def _exponential_us(interval_us: int, p: int, q: int, max_delay_us: int, e: int) -> int:
    if q == 1 and p == 2:
        return min(max_delay_us, interval_us << e)
    if q == 2 and p == 3:
        return min(max_delay_us, (interval_us * _POW3[e]) >> e)
    return _exponential_general_us(interval_us, p, q, max_delay_us, e)


def backoff_us(strategy: str, interval_us: int, multiplier: float, max_delay_us: int, attempt: int) -> int:
    """Delay before retry ``attempt`` (0 = first retry) in integer microseconds, by the
    formula in the module docstring. ConfigError for an unknown strategy or a
    multiplier that is not a finite number >= 1.0; ValueError for negative inputs."""
    if attempt < 0 or interval_us < 0 or max_delay_us < 0:
        raise ValueError("attempt, interval_us and max_delay_us must be >= 0")
    if strategy == "exponential":
        p, q = _ratio(float(multiplier))
        return _exponential_us(interval_us, p, q, max_delay_us, min(attempt, MAX_EXPONENT))
    if strategy == "fixed":
        return min(max_delay_us, interval_us)
    if strategy == "linear":
        return min(max_delay_us, interval_us * (attempt + 1))
    raise ConfigError(f"unknown retry strategy {strategy!r}: expected one of {', '.join(STRATEGIES)}")


class RetryPolicy:
    """How long to wait before each retry.

    ``interval`` and ``max_delay`` are durations (``"1s"``, ``"120s"``, or int
    milliseconds); ``multiplier`` only matters for ``"exponential"``; ``jitter`` is a
    fraction in [0, 1]; ``max_attempts`` bounds retries (None: unbounded);
    ``wait_timeout`` is an overall deadline for waiting on a topic (None: none), kept
    here for the caller. ``random`` returns floats in [0, 1) and is only called when
    ``jitter`` is non-zero.
    """

    __slots__ = (
        "strategy",
        "interval_ms",
        "multiplier",
        "max_delay_ms",
        "jitter",
        "max_attempts",
        "wait_timeout_ms",
        "_random",
        "_table",
    )

    def __init__(
        self,
        strategy: str = "exponential",
        interval: str | int = "1s",
        multiplier: float = 2.0,
        max_delay: str | int = "120s",
        jitter: float = 0.0,
        max_attempts: int | None = None,
        *,
        wait_timeout: str | int | None = None,
        random: Callable[[], float] = _random.random,
    ) -> None:
        strategy = str(strategy).strip().lower()
        if strategy not in STRATEGIES:
            raise ConfigError(f"unknown retry strategy {strategy!r}: expected one of {', '.join(STRATEGIES)}")
        try:
            multiplier = float(multiplier)
        except (TypeError, ValueError):
            raise ConfigError(f"retry multiplier must be a number, got {multiplier!r}") from None
        _ratio(multiplier)  # validates
        try:
            jitter = float(jitter)
        except (TypeError, ValueError):
            raise ConfigError(f"retry jitter must be a number, got {jitter!r}") from None
        if not 0.0 <= jitter <= 1.0:
            raise ConfigError(f"retry jitter must be a fraction in [0, 1], got {jitter!r}")
        if max_attempts is not None and (
            isinstance(max_attempts, bool) or not isinstance(max_attempts, int) or max_attempts < 0
        ):
            raise ConfigError(f"max_attempts must be None or an int >= 0, got {max_attempts!r}")
        self.strategy = strategy
        self.interval_ms = parse_duration(interval, "retry interval")
        self.multiplier = multiplier
        self.max_delay_ms = parse_duration(max_delay, "retry max delay")
        if self.max_delay_ms < self.interval_ms:
            raise ConfigError(
                f"retry max delay ({self.max_delay_ms} ms) is below the interval ({self.interval_ms} ms)"
            )
        self.jitter = jitter
        self.max_attempts = max_attempts
        self.wait_timeout_ms = (
            None if wait_timeout is None else parse_duration(wait_timeout, "topic wait timeout")
        )
        self._random = random
        self._table: tuple[int, ...] = tuple(self._compute_us(k) for k in range(MAX_EXPONENT + 1))

    def _compute_us(self, attempt: int) -> int:
        return backoff_us(
            self.strategy, self.interval_ms * 1000, self.multiplier, self.max_delay_ms * 1000, attempt
        )

    def base_delay_us(self, attempt: int) -> int:
        """Delay before retry ``attempt`` without jitter, in microseconds."""
        if 0 <= attempt <= MAX_EXPONENT:
            return self._table[attempt]
        if attempt < 0:
            raise ValueError(f"attempt must be >= 0, got {attempt}")
        return self._compute_us(attempt)

    def delay_us(self, attempt: int) -> int:
        """Delay before retry ``attempt`` (0 = first retry) in microseconds, jittered."""
        d = self._table[attempt] if 0 <= attempt <= MAX_EXPONENT else self.base_delay_us(attempt)
        if self.jitter:
            d -= int(d * self.jitter * self._random())
        return d

    def delay_ms(self, attempt: int) -> int:
        """Delay before retry ``attempt`` (0 = first retry) in whole milliseconds
        (microseconds rounded down), jittered."""
        return self.delay_us(attempt) // 1000

    def should_retry(self, attempts_made: int) -> bool:
        """Whether another retry is allowed after ``attempts_made`` retries."""
        return self.max_attempts is None or attempts_made < self.max_attempts

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: object) -> RetryPolicy:
        """A policy from STREAMCORE_RETRY_STRATEGY, _INTERVAL, _MULTIPLIER and _MAX_DELAY
        (``os.environ`` when ``environ`` is None); unset or empty variables keep the
        defaults, keyword ``overrides`` are passed to the constructor first."""
        env = os.environ if environ is None else environ
        kwargs: dict[str, object] = dict(overrides)
        for var, key in zip(RETRY_ENV_VARS, ("strategy", "interval", "multiplier", "max_delay"), strict=True):
            text = env.get(var, "").strip()
            if text:
                kwargs[key] = _setting(var, key, text)
        return cls(**kwargs)  # type: ignore[arg-type]

    @classmethod
    def from_properties(cls, props: Mapping[str, object]) -> RetryPolicy:
        """A policy from ``retry.strategy``, ``retry.interval``, ``retry.multiplier``,
        ``retry.max.delay`` and ``topic.wait.timeout``; other keys are ignored (they
        belong to other settings)."""
        kwargs: dict[str, object] = {}
        for prop, key in (
            ("retry.strategy", "strategy"),
            ("retry.interval", "interval"),
            ("retry.multiplier", "multiplier"),
            ("retry.max.delay", "max_delay"),
            ("topic.wait.timeout", "wait_timeout"),
        ):
            if prop in props and props[prop] is not None:
                value = props[prop]
                kwargs[key] = _setting(prop, key, value) if isinstance(value, str) else value
        return cls(**kwargs)  # type: ignore[arg-type]

    def __repr__(self) -> str:
        return (
            f"RetryPolicy(strategy={self.strategy!r}, interval={self.interval_ms}, "
            f"multiplier={self.multiplier!r}, max_delay={self.max_delay_ms}, jitter={self.jitter!r}, "
            f"max_attempts={self.max_attempts!r}, wait_timeout={self.wait_timeout_ms!r})"
        )


def _setting(source: str, key: str, text: str) -> object:
    """Converts one textual setting, naming its source in any error."""
    text = text.strip()
    if key == "strategy":
        return text
    if key == "multiplier":
        try:
            return float(text)
        except ValueError:
            raise ConfigError(f"{source}: retry multiplier must be a number, got {text!r}") from None
    return parse_duration(text, source)


# -- metrics ------------------------------------------------------------------------

_ATTEMPTS = 0
_SUCCESSES = 1
_FIRST_CATEGORY = 2
_N_CATEGORIES = len(ErrorCategory)
_RETRIES = _FIRST_CATEGORY + _N_CATEGORIES
_BACKOFF_US = _RETRIES + 1


class RetryMetrics:
    """Counts of attempts, successes and failures by category, on the metric cells
    (lock-free atomics natively). Every attempt is recorded once, either as a success
    or with the category of its failure, and one call counts both the attempt and
    its outcome (``CounterArray.inc_pair``). Retries scheduled after a failure and the
    backoff they wait are counted apart (``record_backoff``)."""

    __slots__ = ("_cells",)

    def __init__(self) -> None:
        self._cells = _cells.CounterArray(_BACKOFF_US + 1)

    def record(self, category: ErrorCategory | int) -> None:
        """Count one failed attempt of ``category``."""
        if not 0 <= category < _N_CATEGORIES:
            raise ValueError(f"not an ErrorCategory: {category!r}")
        self._cells.inc_pair(_ATTEMPTS, _FIRST_CATEGORY + category)

    def record_exception(self, exc: BaseException) -> ErrorCategory:
        """Count one failed attempt, categorized from ``exc``; returns the category."""
        category = categorize(exc)
        self._cells.inc_pair(_ATTEMPTS, _FIRST_CATEGORY + category)
        return category

    def record_success(self) -> None:
        """Count one successful attempt."""
        self._cells.inc_pair(_ATTEMPTS, _SUCCESSES)

    def record_backoff(self, delay_us: int) -> None:
        """Count one retry scheduled to wait ``delay_us`` microseconds first."""
        if delay_us < 0:
            raise ValueError(f"a backoff cannot be negative, got {delay_us} us")
        self._cells.inc(_RETRIES)
        self._cells.inc(_BACKOFF_US, delay_us)

    @property
    def retries(self) -> int:
        """Retries scheduled (each after a failed attempt)."""
        return self._cells.values()[_RETRIES]

    @property
    def backoff_us(self) -> int:
        """Total backoff of the retries scheduled, in microseconds."""
        return self._cells.values()[_BACKOFF_US]

    @property
    def attempts(self) -> int:
        return self._cells.values()[_ATTEMPTS]

    @property
    def successes(self) -> int:
        return self._cells.values()[_SUCCESSES]

    @property
    def timeouts(self) -> int:
        return self._cells.values()[_FIRST_CATEGORY + ErrorCategory.TIMEOUT]

    def count(self, category: ErrorCategory | int) -> int:
        """Failed attempts of ``category``."""
        return self._cells.values()[_FIRST_CATEGORY + ErrorCategory(category)]

    @property
    def success_rate(self) -> float:
        """Successes / attempts as a fraction in [0, 1]; 0.0 before any attempt."""
        v = self._cells.values()
        return v[_SUCCESSES] / v[_ATTEMPTS] if v[_ATTEMPTS] else 0.0

    @property
    def timeout_rate(self) -> float:
        """Timeouts / attempts as a fraction in [0, 1]; 0.0 before any attempt."""
        v = self._cells.values()
        return v[_FIRST_CATEGORY + ErrorCategory.TIMEOUT] / v[_ATTEMPTS] if v[_ATTEMPTS] else 0.0

    def snapshot(self) -> dict[str, object]:
        """``attempts``, ``successes``, ``failures``, ``timeouts``, ``success_rate``,
        ``timeout_rate``, ``by_category`` (category name → failed attempts), ``retries``
        (scheduled) and ``backoff_us`` (their total wait, microseconds), all from one
        read of the counters."""
        v = self._cells.values()
        attempts, successes = v[_ATTEMPTS], v[_SUCCESSES]
        by_category = {c.name: v[_FIRST_CATEGORY + c] for c in ErrorCategory}
        return {
            "attempts": attempts,
            "successes": successes,
            "failures": sum(by_category.values()),
            "timeouts": by_category["TIMEOUT"],
            "success_rate": successes / attempts if attempts else 0.0,
            "timeout_rate": by_category["TIMEOUT"] / attempts if attempts else 0.0,
            "by_category": by_category,
            "retries": v[_RETRIES],
            "backoff_us": v[_BACKOFF_US],
        }
