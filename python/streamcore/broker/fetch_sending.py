"""Sending a Fetch response given as parts: bytes through the transport, segment-file
ranges (:class:`FileRecords`) with ``os.sendfile``.

:class:`FetchResponseSender` is a part of :class:`~streamcore.broker.connection.KafkaConnection`
(a mixin, so that the connection's hot path keeps plain attribute access): a response
whose ranges the socket takes at once goes out in the call that queued it
(:meth:`~FetchResponseSender._send_parts_now`); the rest is sent by a task that waits for
room with ``loop.sendfile``. A segment file cut short under a response closes only that
connection (the frame cannot be finished), and so does a bug of ours while sending.
"""

from __future__ import annotations

import asyncio
import collections
import errno
import logging
import os
import time
from typing import TYPE_CHECKING, Any

from streamcore.broker.fetch_records import FileRecords
from streamcore.errors import StorageError
from streamcore.protocol import headers

if TYPE_CHECKING:
    from streamcore.broker.state import BrokerState

log = logging.getLogger("streamcore.broker")

__all__ = ["FetchResponseSender", "close_parts"]

# Bytes per loop.sendfile call: the stall timeout counts from the start of each chunk, so
# a client that reads slowly but steadily is never closed for one long record set.
_SENDFILE_CHUNK_BYTES = 1 << 20


class _FileCutShort(Exception):
    """A segment file ended before the range being sent from it (args: the byte where)."""


def close_parts(parts: list[bytes | headers.OutOfLine]) -> None:
    """Close the files of a response's record sets (a response that will not be sent, or was)."""
    for part in parts:
        if isinstance(part, headers.OutOfLine):
            part.close()


# Errors of a direct sendfile that loop.sendfile knows how to judge (the socket or the
# file cannot do sendfile after all): the chunk is handed to it, which decides.
_SENDFILE_UNSURE_ERRNOS = frozenset({errno.ENOTSOCK, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP})


def _sendfile_now(sock_fd: int, fd: int, offset: int, count: int) -> int:
    """One non-blocking ``os.sendfile``: bytes sent (0: the file ends at ``offset``), or
    -1 when the socket has no room or the error is for ``loop.sendfile`` to judge."""
    try:
        return os.sendfile(sock_fd, fd, offset, count)
    except (BlockingIOError, InterruptedError):
        return -1
    except OSError as exc:
        if exc.errno in _SENDFILE_UNSURE_ERRNOS:
            return -1
        raise


class FetchResponseSender:
    """The connection's sending of responses given as parts (see module doc).

    The attributes below belong to the connection, which sets them up; a response
    queue slot whose parts a task is sending stays at the head of ``_pending`` until
    :meth:`_parts_sent` flushes the queue again.
    """

    _transport: asyncio.Transport | None
    _closed: bool
    _reading_paused: bool
    #: Whether record sets may go out with os.sendfile (a plain socket).
    _sendfile: bool
    #: The socket's descriptor for direct os.sendfile calls (-1 when not sending files).
    _sock_fd: int
    #: True while the response at the head of the queue is being sent by a task.
    _sending: bool
    _pending: collections.deque[Any]
    _tasks: set[asyncio.Task[Any]]
    _state: BrokerState
    peer: str
    last_active: float
    write_stalled_since: float

    if TYPE_CHECKING:
        # Defined by the connection.
        def _write(self, data: bytes | bytearray | memoryview) -> None: ...

        def _flush(self) -> None: ...

        def close(self, reason: str | None, *, kind: str | None = None) -> None: ...

    def _write_parts(self, parts: list[bytes | headers.OutOfLine]) -> bool:
        """Send a response given as parts; False when a task sends it (sendfile), True when done."""
        if self._transport is None or self._closed:
            close_parts(parts)
            return True
        if self._sendfile and any(type(p) is FileRecords for p in parts):
            # [part index, range index, bytes of that range sent]: where sending stands.
            cursor = [0, 0, 0]
            if self._sock_fd >= 0:
                try:
                    sent_all = self._send_parts_now(parts, cursor)
                except _FileCutShort as exc:
                    close_parts(parts)
                    self._cut_short(exc)
                    return True
                except OSError:
                    close_parts(parts)
                    self.close(None)  # the client went away mid-response
                    return True
                except Exception:
                    # Our bug, as in _parts_sent: logged, and only this connection closes.
                    close_parts(parts)
                    log.exception("sending a fetch response to %s failed; closing", self.peer)
                    self.close(None)
                    return True
                if sent_all:
                    close_parts(parts)
                    return True
            self._sending = True
            task = asyncio.get_running_loop().create_task(self._send_parts(parts, cursor))
            self._tasks.add(task)
            task.add_done_callback(self._parts_sent)
            return False
        try:
            # Everything in memory before the first byte goes out: a file that cannot be
            # read then fails the response, not the middle of a frame.
            pieces = [p.materialize() if isinstance(p, headers.OutOfLine) else p for p in parts]
        except (StorageError, OSError) as exc:
            self.close(f"could not read a record set for a response: {exc}", kind="closed on a storage error")
            return True
        finally:
            close_parts(parts)
        for piece in pieces:
            self._write(piece)
        return True

    def _send_parts_now(self, parts: list[bytes | headers.OutOfLine], cursor: list[int]) -> bool:
        """Send ``parts`` from ``cursor`` on while the socket takes them at once; True when
        all went out, False when the socket is full (``cursor`` says where it stopped).

        Most fetch responses fit the socket's send buffer, so they go out here, in one
        call on the loop; a task (:meth:`_send_parts`), which costs a coroutine, a
        wake-up and a callback per response, is left for the ones that must wait.
        Raises _FileCutShort or OSError as ``os.sendfile`` does.
        """
        transport = self._transport
        assert transport is not None
        sock_fd = self._sock_fd
        index, range_index, done = cursor
        count = len(parts)
        sent_bytes = 0
        try:
            while index < count:
                part = parts[index]
                if type(part) is FileRecords:
                    ranges = part.ranges
                    while range_index < len(ranges):
                        if transport.get_write_buffer_size():
                            return False  # bytes queued in the transport go first
                        fd, position, length = ranges[range_index]
                        while done < length:
                            sent = _sendfile_now(
                                sock_fd, fd, position + done, min(length - done, _SENDFILE_CHUNK_BYTES)
                            )
                            if sent < 0:
                                return False
                            if sent == 0:
                                raise _FileCutShort(position + done)
                            done += sent
                            sent_bytes += sent
                        range_index += 1
                        done = 0
                else:
                    data = part.materialize() if isinstance(part, headers.OutOfLine) else part
                    transport.write(data)
                    sent_bytes += len(data)
                index += 1
                range_index = 0
            return True
        finally:
            cursor[0], cursor[1], cursor[2] = index, range_index, done
            if sent_bytes:
                self._state.metrics.bytes_out(sent_bytes)
                self.last_active = time.monotonic()

    async def _send_parts(self, parts: list[bytes | headers.OutOfLine], cursor: list[int]) -> None:
        """Send ``parts`` in order from ``cursor`` (see :meth:`_send_parts_now`): bytes
        through the transport, FileRecords by sendfile."""
        loop = asyncio.get_running_loop()
        transport = self._transport
        assert transport is not None
        metrics = self._state.metrics
        start, range_index, done = cursor
        try:
            for part in parts[start:]:
                if self._closed:
                    return
                if type(part) is FileRecords:
                    for fd, position, length in part.ranges[range_index:]:
                        await self._send_range(loop, transport, fd, position + done, length - done)
                        metrics.bytes_out(length - done)
                        done = 0
                    range_index = 0
                else:
                    self._write(part.materialize() if isinstance(part, headers.OutOfLine) else part)
        finally:
            close_parts(parts)

    async def _send_range(
        self,
        loop: asyncio.AbstractEventLoop,
        transport: asyncio.Transport,
        fd: int,
        position: int,
        length: int,
    ) -> None:
        """``length`` bytes of file ``fd`` from byte ``position`` to the socket, in chunks.

        While the transport holds nothing and the socket has room, each chunk goes
        straight to ``os.sendfile``. ``loop.sendfile`` is used only once the socket is
        full (or the transport still holds bytes): it waits for room, and costs a pause
        and a resume of reading, a drain waiter and a writer registration per call,
        which was a fifth of the broker's CPU when serving ConsumerPerformance.
        """
        done = 0
        file = None
        try:
            while done < length:
                if self._closed or transport.is_closing():
                    raise ConnectionResetError("connection closed during sendfile")
                count = min(length - done, _SENDFILE_CHUNK_BYTES)
                if not self._sendfile:
                    # sendfile turned out unavailable on this socket: copy what is left.
                    data = os.pread(fd, count, position + done)
                    if len(data) != count:
                        raise _FileCutShort(position + done + len(data))
                    self._write(data)
                    done += count
                    continue
                if self._sock_fd >= 0 and not transport.get_write_buffer_size():
                    # Nothing of this connection is queued in the transport, so these
                    # bytes cannot overtake any.
                    sent = _sendfile_now(self._sock_fd, fd, position + done, count)
                    if sent == 0:
                        raise _FileCutShort(position + done)
                    if sent > 0:
                        done += sent
                        self.last_active = time.monotonic()
                        continue
                if file is None:
                    file = open(fd, "rb", buffering=0, closefd=False)
                self.write_stalled_since = time.monotonic()
                try:
                    sent = await loop.sendfile(transport, file, position + done, count, fallback=False)
                except asyncio.SendfileNotAvailableError:
                    self._sendfile = False
                    continue
                finally:
                    self.write_stalled_since = 0.0
                    self._reconcile_reading()
                if sent != count:
                    raise _FileCutShort(position + done + sent)
                done += count
                self.last_active = time.monotonic()
        finally:
            if file is not None:
                file.close()

    def _parts_sent(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._sending = False
        if task.cancelled() or self._closed:
            return
        exc = task.exception()
        if exc is not None:
            if isinstance(exc, _FileCutShort):
                self._cut_short(exc)
            elif isinstance(exc, (ConnectionError, OSError, RuntimeError)):
                self.close(None)  # the client went away mid-response
            else:
                log.error("sending a fetch response to %s failed; closing", self.peer, exc_info=exc)
                self.close(None)
            return
        if self._pending:
            self._pending[0].data = None
        self._flush()

    def _cut_short(self, exc: _FileCutShort) -> None:
        self.close(
            f"a segment file ended at byte {exc.args[0]} while a fetch response was sent from it",
            kind="closed on a storage error",
        )

    def _reconcile_reading(self) -> None:
        """loop.sendfile pauses reading and resumes it as it found it: keep our own decision."""
        transport = self._transport
        if transport is None or self._closed or transport.is_closing():
            return
        if self._reading_paused and transport.is_reading():
            transport.pause_reading()
        elif not self._reading_paused and not transport.is_reading():
            transport.resume_reading()
