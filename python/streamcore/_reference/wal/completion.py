"""How an append's outcome reaches its caller (twin of ``completion.rs``).

Every queued request is an :class:`Item`. A blocking caller (``append``,
``flush``) waits on a lock the writer releases; ``submit`` leaves a callback
that runs with ``(result, exc)`` on the pool's notifier thread, to which the
writer hands each group's callbacks (see ``pool.py``); ``submit_to`` leaves its
outcome in a :class:`CompletionQueue`, put there by the writer itself.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from collections.abc import Callable
from typing import Any

__all__ = ["AppendTuple", "Callback", "CompletionQueue", "Item"]

log = logging.getLogger("streamcore.storage")

#: (base_offset, last_offset, log_append_time_ms)
AppendTuple = tuple[int, int, int]
Callback = Callable[[AppendTuple | None, BaseException | None], Any]


class Item:
    """One queued append (or, with ``buf`` None, a flush request) and its outcome."""

    __slots__ = ("buf", "last_delta", "lock", "callback", "inline", "result", "exc")

    def __init__(self, buf: bytearray | None, last_delta: int) -> None:
        self.buf = buf
        self.last_delta = last_delta
        self.lock: Any = None
        self.callback: Callback | None = None
        #: Run by the writer itself with (result, exc): hands the outcome on, never waits.
        self.inline: Callback | None = None
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
        elif self.inline is not None:
            try:
                self.inline(self.result, self.exc)
            except Exception:  # a delivery's own bug must not stop the writer
                log.exception("an append's completion could not be delivered")


class CompletionQueue:
    """Where ``WalLog.submit_to`` delivers outcomes, for an event loop to read (twin of
    the native class): the writer puts each (token, result, exc) here and writes one
    byte to a pipe when the queue was empty; the loop watches :meth:`fileno` and
    calls :meth:`drain`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: list[tuple[Any, AppendTuple | None, BaseException | None]] = []
        self._reader, self._writer = os.pipe()
        # Neither end may block: drain reads whatever is there, and a writer must
        # never wait on the pipe (it holds at most a few bytes anyway).
        os.set_blocking(self._reader, False)
        os.set_blocking(self._writer, False)
        self._close = weakref.finalize(self, _close_pipe, self._reader, self._writer)

    def fileno(self) -> int:
        """The pipe's read end: readable while completions may be waiting."""
        return self._reader

    def put(self, token: Any, result: AppendTuple | None, exc: BaseException | None) -> None:
        """Deliver one outcome (any thread)."""
        with self._lock:
            self._items.append((token, result, exc))
            was_empty = len(self._items) == 1
        # One byte per empty-to-non-empty change: drain reads the pipe before it takes
        # the items, so an item it does not take always leaves a byte behind.
        if was_empty:
            try:
                os.write(self._writer, b"\x01")
            except BlockingIOError:
                pass  # the pipe is full of wake-ups already

    def drain(self) -> list[tuple[Any, AppendTuple | None, BaseException | None]]:
        """Every outcome delivered so far, in the order the writers finished them."""
        try:
            while len(os.read(self._reader, 64)) == 64:
                pass
        except BlockingIOError:
            pass
        with self._lock:
            items, self._items = self._items, []
        return items


def _close_pipe(reader: int, writer: int) -> None:
    os.close(reader)
    os.close(writer)
