"""How an append's outcome reaches its caller (twin of ``completion.rs``).

Every queued request is an :class:`Item`. A blocking caller (``append``,
``flush``) waits on a lock the writer releases; ``submit`` leaves a callback
that runs with ``(result, exc)`` on the pool's notifier thread, to which the
writer hands each group's callbacks (see ``pool.py``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

__all__ = ["AppendTuple", "Callback", "Item"]

#: (base_offset, last_offset, log_append_time_ms)
AppendTuple = tuple[int, int, int]
Callback = Callable[[AppendTuple | None, BaseException | None], Any]


class Item:
    """One queued append (or, with ``buf`` None, a flush request) and its outcome."""

    __slots__ = ("buf", "last_delta", "lock", "callback", "result", "exc")

    def __init__(self, buf: bytearray | None, last_delta: int) -> None:
        self.buf = buf
        self.last_delta = last_delta
        self.lock: Any = None
        self.callback: Callback | None = None
        self.result: AppendTuple | None = None
        self.exc: BaseException | None = None

    def make_waitable(self) -> None:
        """Arm the lock that :meth:`wait` blocks on (before the item is queued)."""
        lock = threading.Lock()
        lock.acquire()
        self.lock = lock

    def wait(self) -> AppendTuple | None:
        """Block until the writer completes the item; raise its failure or return its result."""
        self.lock.acquire()
        if self.exc is not None:
            raise self.exc
        return self.result

    def complete(self, callbacks: list[tuple[Callback, AppendTuple | None, BaseException | None]]) -> None:
        """Hand the outcome (``result`` or ``exc``, already set) to the waiter, or add the
        callback and its arguments to ``callbacks`` (which the writer sends to the notifier)."""
        if self.lock is not None:
            self.lock.release()
        elif self.callback is not None:
            callbacks.append((self.callback, self.result, self.exc))
