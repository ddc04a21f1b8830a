"""The cleaner's I/O rate limit (``log.cleaner.io.max.bytes.per.second``).

The cleaner reports every batch it reads or writes; once a check interval has
passed, the throttle compares the bytes seen in that interval with the allowed rate
and sleeps long enough to bring the interval's average back to it (Kafka's cleaner
throttler, 300 ms interval). A burst shorter than the interval is never delayed.
"""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["CHECK_INTERVAL_MS", "Throttle"]

#: How often the throttle compares the observed rate with the limit (ms).
CHECK_INTERVAL_MS = 300


class Throttle:
    """A bytes-per-second limit on reads and writes; ``None`` never sleeps.

    ``now_ns`` (monotonic ns) and ``sleep_ms`` are injectable for tests.
    """

    def __init__(
        self,
        bytes_per_second: float | None,
        now_ns: Callable[[], int] = time.monotonic_ns,
        sleep_ms: Callable[[int], None] = lambda ms: time.sleep(ms / 1000),
    ) -> None:
        self._rate = None if bytes_per_second is None else float(bytes_per_second)
        self._now_ns = now_ns
        self._sleep_ms = sleep_ms
        self._period_start_ns = now_ns()
        self._observed = 0.0
        self.slept_ms = 0

    def account(self, nbytes: int) -> None:
        """Account ``nbytes`` of I/O and sleep if the current interval ran too fast."""
        rate = self._rate
        if rate is None:
            return
        self._observed += float(nbytes)
        elapsed_ns = max(0, self._now_ns() - self._period_start_ns)
        if elapsed_ns <= CHECK_INTERVAL_MS * 1_000_000 or self._observed <= 0.0:
            return
        if self._observed * 1e9 / elapsed_ns > rate:
            # The sleep that makes observed / (elapsed + sleep) equal the rate.
            # Rounded half away from zero, as the native twin's f64::round.
            exact = self._observed / (rate / 1000.0) - float(elapsed_ns // 1_000_000)
            sleep = int(exact + 0.5) if exact >= 0 else 0
            if sleep > 0:
                self._sleep_ms(sleep)
                self.slept_ms += sleep
        self._period_start_ns = self._now_ns()
        self._observed = 0.0
