"""The event-loop thread behind the blocking clients, and deadlock-free futures.

All blocking clients share one daemon thread running an asyncio loop. A blocking
call submits a coroutine to it and waits. No user code ever runs on that thread:
done-callbacks of the futures ``send`` returns, and rebalance callbacks, run on a
separate callback thread. So a callback may call any blocking method (``flush``,
``send(...).result()``, ``commit``) without waiting on the very thread it
occupies.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from streamcore.client.splitting import SplitOutcome
from streamcore.client.types import RecordMetadata

__all__ = ["LoopThread", "DeliveryFuture", "complete_batch", "loop_thread", "run_callback"]

T = TypeVar("T")


class LoopThread:
    """A daemon thread running one asyncio event loop."""

    def __init__(self, name: str = "streamcore-client") -> None:
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.thread.start()
        self._ready.wait()
        self.callbacks = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix=f"{name}-callbacks"
        )

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.ident = threading.get_ident()
        self._ready.set()
        self.loop.run_forever()

    def on_loop_thread(self) -> bool:
        """True when called from the loop's own thread."""
        return threading.get_ident() == self.ident

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``coro`` on the loop and wait for its result (``timeout`` in seconds).

        Raises RuntimeError when called from the loop thread itself (it would wait
        on itself forever); use the asyncio API there.
        """
        if self.on_loop_thread():
            coro.close()
            raise RuntimeError(
                "a blocking streamcore call was made on the client's event-loop thread; "
                "use streamcore.aio there (await the asyncio API)"
            )
        fut = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return fut.result(timeout)
        except concurrent.futures.TimeoutError:
            fut.cancel()
            raise TimeoutError(f"no result within {timeout} s") from None

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run plain ``fn(*args)`` on the loop thread and return its result."""

        async def wrapper() -> T:
            return fn(*args)

        return self.run(wrapper())


_shared: LoopThread | None = None
_shared_lock = threading.Lock()


def loop_thread() -> LoopThread:
    """The loop thread shared by every blocking client in this process (started on first use)."""
    global _shared
    if _shared is None:
        with _shared_lock:
            if _shared is None:
                _shared = LoopThread()
    return _shared


def run_callback(fn: Callable[..., Any], *args: Any) -> None:
    """Run ``fn(*args)`` now, or on the callback thread when called on the loop thread."""
    lt = _shared
    if lt is not None and lt.on_loop_thread():
        lt.callbacks.submit(fn, *args)
    else:
        fn(*args)


_LAZY = threading.Lock()
_PENDING = "PENDING"
_FINISHED = "FINISHED"


class DeliveryFuture(concurrent.futures.Future[Any]):
    """A concurrent.futures.Future that is cheap to create and to complete.

    A producer makes one per record. Two costs of the base class are avoided:

    * the per-instance Condition is created only when someone waits on it
      (``result()`` while in flight, ``wait()``, ``as_completed()``, a callback);
    * a record future bound to a producer batch (``_batch``, ``_index``) is
      completed by the batch: the sender stores the batch's outcome once and only
      notifies the futures somebody waits on; the others work out their
      RecordMetadata when first asked.

    ``_LAZY``, a lock shared by all instances, orders "start waiting" against
    "batch completed", so a waiter never misses its wake-up. Done-callbacks never
    run on the event-loop thread (see ``run_callback``).
    """

    # A new future holds no attribute of its own: the class gives the initial values
    # and the two lists of the base class are made on first use (``__getattr__``), so
    # a producer's send makes one with a bare ``DeliveryFuture()``. The base
    # ``__init__`` would build the Condition and both lists eagerly.
    _cond: threading.Condition | None = None
    _st = _PENDING
    _result: Any = None
    _exception: BaseException | None = None
    _batch: Any = None
    _index = 0

    __init__ = object.__init__

    def __getattr__(self, name: str) -> Any:
        # Only reached for attributes the instance does not have yet: the base
        # class's ``_waiters`` and ``_done_callbacks`` lists. setdefault keeps one
        # list when two threads get here at once.
        if name == "_waiters" or name == "_done_callbacks":
            return self.__dict__.setdefault(name, [])
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    # The base class reads and writes ``_state``; a bound future is finished as soon
    # as its batch has an outcome.
    @property
    def _state(self) -> str:
        st = self._st
        if st == _PENDING and self._batch is not None and self._batch.outcome is not None:
            self._resolve()
            st = self._st
        return st

    @_state.setter
    def _state(self, value: str) -> None:
        self._st = value

    def _resolve(self) -> None:
        b = self._batch
        out = b.outcome
        i = self._index
        at, first_ts = i, b.first_ts
        if type(out) is SplitOutcome:
            # The batch went out in parts (refused as too large): this record's part answers.
            out, first_ts, at = out.at(i)
        if isinstance(out, BaseException):
            self._exception = out
        else:
            base, append_time = out
            if append_time not in (-1, None):
                ts = append_time
            elif b.timestamps is not None:
                ts = b.timestamps[i]
            else:
                ts = first_ts
            self._result = RecordMetadata(b.tp.topic, b.tp.partition, base + at if base >= 0 else -1, ts)
        self._st = _FINISHED
        self._batch = None

    @property
    def _condition(self) -> threading.Condition:  # type: ignore[override]
        c = self._cond
        if c is None:
            with _LAZY:
                c = self._cond
                if c is None:
                    c = self._cond = threading.Condition()
                    b = self._batch
                    if b is not None and b.outcome is None:
                        b.watched.append(self)
        return c

    def _batch_done(self) -> None:
        """Called by the sender (after setting the batch outcome) for futures being waited on."""
        with self._condition:
            if self._st != _PENDING:
                return
            self._resolve()
            # wait() and as_completed() register waiters; tell them as the base class does.
            for waiter in self._waiters:
                if self._exception is not None:
                    waiter.add_exception(self)
                else:
                    waiter.add_result(self)
            self._condition.notify_all()
        self._invoke_callbacks()

    def _complete_fast(self, result: Any, exc: BaseException | None) -> bool:
        with _LAZY:
            if self._cond is not None:
                return False
            if self._st != _PENDING:
                raise concurrent.futures.InvalidStateError(f"{self._st}: {self!r}")
            self._result = result
            self._exception = exc
            self._st = _FINISHED
            self._batch = None
        if self.__dict__.get("_done_callbacks"):  # without making the list
            self._invoke_callbacks()
        return True

    def set_result(self, result: Any) -> None:
        """Complete with ``result``."""
        if not self._complete_fast(result, None):
            super().set_result(result)

    def set_exception(self, exception: BaseException | None) -> None:
        """Complete with ``exception``."""
        if not self._complete_fast(None, exception):
            super().set_exception(exception)

    def done(self) -> bool:
        """True once completed or cancelled."""
        return self._state not in (_PENDING, "RUNNING")

    def result(self, timeout: float | None = None) -> Any:
        """The RecordMetadata, waiting up to ``timeout`` seconds."""
        if self._state == _FINISHED:
            if self._exception is not None:
                raise self._exception
            return self._result
        return super().result(timeout)

    def add_done_callback(self, fn: Callable[[concurrent.futures.Future[Any]], object]) -> None:
        """Call ``fn(self)`` when done (on the callback thread if completed by the loop)."""
        super().add_done_callback(lambda f: run_callback(fn, f))


def complete_batch(batch: Any, outcome: Any) -> None:
    """Give ``batch`` its outcome ((base offset, log append time) or an exception) and wake its waiters."""
    with _LAZY:
        batch.outcome = outcome
        watched, batch.watched = batch.watched, []
    for f in watched:
        f._batch_done()
