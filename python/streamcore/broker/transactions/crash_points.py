"""Named crash points in the transaction coordinator: for crash-safety tests only.

A test starts a broker process with ``STREAMCORE_TEST_CRASH_AT=<point>[:<nth>]`` in
its environment; the coordinator reads it once, when it is built, and the ``nth``
time (default 1) the named point is reached the process sends itself SIGKILL: no
response leaves, nothing is flushed, no shutdown code runs, exactly as if the
machine's operator had killed it there. The test then restarts the broker on the same
data directory and checks that every transaction is completed or aborted as its
logged state says.

The points follow Kafka's transaction state machine (see docs/transactions.md,
"Testing crash safety"):

``before_add_partitions_logged``
    AddPartitionsToTxn/AddOffsetsToTxn accepted, its Ongoing record not yet appended.
``after_add_partitions_logged``
    That record is durable in ``__transaction_state``; no answer sent.
``after_txn_offset_commit``
    TxnOffsetCommit's transactional batch is in ``__consumer_offsets``; no answer sent.
``before_prepare_logged``
    EndTxn (or a coordinator-initiated abort: a timeout, a fencing InitProducerId)
    about to append PrepareCommit/PrepareAbort.
``after_prepare_commit_logged`` / ``after_prepare_abort_logged``
    The decision is durable; no marker written yet.
``between_markers``
    The marker of the transaction's first partition (sorted by topic, then partition:
    ``__consumer_offsets`` comes before lower-case topic names) is durable, the others
    not started. Armed, the coordinator writes that first marker alone instead of all
    at once; transactions of a single partition do not count.
``after_markers_before_complete``
    Every marker is durable; CompleteCommit/CompleteAbort not yet appended.

Unset (the normal case) the coordinator holds ``None`` and every point costs one
attribute test. An unknown point name or a bad count makes the broker refuse to start,
so that a misspelt variable cannot make a crash test pass without crashing.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable, Mapping

__all__ = ["ENV_VAR", "POINTS", "CrashPoint", "crash_point_from_environment"]

#: The environment variable read at coordinator start.
ENV_VAR = "STREAMCORE_TEST_CRASH_AT"

POINTS = frozenset(
    {
        "before_add_partitions_logged",
        "after_add_partitions_logged",
        "after_txn_offset_commit",
        "before_prepare_logged",
        "after_prepare_commit_logged",
        "after_prepare_abort_logged",
        "between_markers",
        "after_markers_before_complete",
    }
)


def _kill_self(point: str) -> None:
    # One unbuffered write so the test can tell which point ended the process; then
    # SIGKILL, which no handler, atexit hook or buffered writer gets to see.
    os.write(sys.stderr.fileno(), f"streamcore: test crash point {point} reached, SIGKILL\n".encode())
    kill = getattr(signal, "SIGKILL", None)
    if kill is None:  # pragma: no cover - Windows has no SIGKILL
        os._exit(137)
    os.kill(os.getpid(), kill)
    os._exit(137)  # pragma: no cover - not reached: SIGKILL cannot be caught


class CrashPoint:
    """One armed point: :meth:`reached` kills the process on its ``nth`` call for ``point``.

    ``die`` replaces the SIGKILL (unit tests pass a function that raises).
    """

    __slots__ = ("_die", "nth", "point", "seen")

    def __init__(self, point: str, nth: int = 1, *, die: Callable[[str], None] | None = None) -> None:
        if point not in POINTS:
            raise ValueError(f"{ENV_VAR}: unknown crash point {point!r} (known: {', '.join(sorted(POINTS))})")
        if nth < 1:
            raise ValueError(f"{ENV_VAR}: the count must be 1 or more, not {nth}")
        self.point = point
        self.nth = nth
        #: Times ``point`` was reached so far.
        self.seen = 0
        self._die = die or _kill_self

    @classmethod
    def parse(cls, spec: str, *, die: Callable[[str], None] | None = None) -> CrashPoint:
        """``"<point>"`` or ``"<point>:<nth>"``; ValueError when malformed."""
        point, sep, count = spec.strip().partition(":")
        try:
            nth = int(count) if sep else 1
        except ValueError:
            raise ValueError(f"{ENV_VAR}: {spec!r} is not <point>[:<nth>]") from None
        return cls(point, nth, die=die)

    def armed(self, point: str) -> bool:
        """True while ``point`` is the armed one and has not fired yet."""
        return point == self.point and self.seen < self.nth

    def reached(self, point: str) -> None:
        """Count a pass through ``point``; on the ``nth`` pass of the armed one, die."""
        if point != self.point:
            return
        self.seen += 1
        if self.seen == self.nth:
            self._die(point)

    def __repr__(self) -> str:
        return f"CrashPoint({self.point!r}, nth={self.nth}, seen={self.seen})"


def crash_point_from_environment(environ: Mapping[str, str] | None = None) -> CrashPoint | None:
    """The point ``STREAMCORE_TEST_CRASH_AT`` arms, or None when unset or empty."""
    spec = (os.environ if environ is None else environ).get(ENV_VAR, "")
    if not spec.strip():
        return None
    return CrashPoint.parse(spec)
