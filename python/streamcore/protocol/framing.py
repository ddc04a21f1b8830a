"""Receiving size-prefixed Kafka frames straight into their own buffers.

``FrameReceiver`` is the receiving side of an ``asyncio.BufferedProtocol``: the
transport asks it for a buffer (:meth:`FrameReceiver.get_buffer`), the socket read
fills it, and :meth:`FrameReceiver.received` returns the frames that read completed.
Where ``headers.FrameSplitter`` is given each socket read as a new ``bytes`` and copies
it into a growing buffer, then copies every frame out again, here the rest of a large
frame goes to the socket reads as the frame's own buffer, so the kernel writes it in
place and that buffer is the frame handed on:

* While no large frame is being received, reads land in a scratch buffer of
  ``read_bytes`` (256 KiB). The scratch buffer may be shared by every receiver of one
  event loop (reads are handled one at a time, and nothing of a read stays in it): the
  complete frames in a read are cut out as ``bytes`` (one copy, as before), and the
  start of a small frame left incomplete is kept aside and put back in front of the
  next read.
* A frame above a quarter of ``read_bytes`` that a read leaves incomplete gets a
  ``bytearray`` of its own, which the part of it already read is copied into; from
  then on each read is given the rest of that buffer. When the frame is complete, the
  ``bytearray`` is the frame.
* Memory stays proportional to what was received, whatever size a frame declares: a
  frame's buffer is never more than four times what arrived of it, or what arrived
  plus one read if that is more. It starts at the frame's size within that bound (up to
  ``4 * read_bytes``, 1 MiB: a usual Produce request, whose first read brings 256 KiB,
  then needs no resize), and once full it grows by as much as it holds (at least
  ``read_bytes``, at most what is left of the frame). Resizing a block this large
  often moves it: growing a 1 MiB request 256 KiB at a time copied 1.3 MB per request
  (about 2.5 % of the broker's CPU under send_batch), doubling keeps the resizes of
  larger frames logarithmic. The broker's request budget counts the bytes received,
  so a peer that declares large frames and sends little holds at most four times its
  share of the budget (what arrived plus one read, twice, before).

A size prefix below 0 or above ``max_frame_bytes`` raises ProtocolError, as the splitter
does, and so does any later call: the stream cannot be resynchronised.
"""

from __future__ import annotations

import struct

from streamcore import _impl
from streamcore.errors import ProtocolError

__all__ = ["FrameReceiver", "READ_BYTES"]

#: Default size of the scratch buffer, and the least a full frame buffer grows by (bytes).
READ_BYTES = 256 * 1024

_PREFIX = 4
_unpack_size = struct.Struct(">i").unpack_from
# A large frame's buffer is allocated, and grown, without zero-filling it first (native
# twin; zeros in pure Python): socket reads fill every byte before the frame is handed
# on, and a frame a connection leaves incomplete is dropped unread. Zero-filling cost
# about 4 % of the broker's CPU when receiving 1 MiB Produce requests.
_unfilled = _impl.buffer_pool.unfilled_bytearray
_extend_unfilled = _impl.buffer_pool.extend_unfilled


class FrameReceiver:
    """Assembles frames (without their int32 size prefix) from reads into its buffers.

    ``max_frame_bytes``: the largest frame accepted (bytes). ``read_bytes``: the scratch
    buffer's size, and the least a full frame buffer grows by (bytes).
    ``scratch``: a ``bytearray`` of ``read_bytes`` to read small frames into, which
    receivers used from one thread may share (one is made when not given).
    """

    __slots__ = (
        "_consumed",
        "_failed",
        "_filled",
        "_first",
        "_frame",
        "_held",
        "_max",
        "_own",
        "_read",
        "_scratch",
        "_size",
    )

    def __init__(
        self, max_frame_bytes: int, read_bytes: int = READ_BYTES, scratch: bytearray | None = None
    ) -> None:
        if not 0 <= max_frame_bytes <= 0x7FFFFFFF:
            raise ValueError(f"max_frame_bytes must be in [0, 2**31 - 1], got {max_frame_bytes}")
        if read_bytes < 64:
            raise ValueError(f"read_bytes must be at least 64, got {read_bytes}")
        if scratch is not None and len(scratch) != read_bytes:
            raise ValueError(f"scratch must be read_bytes ({read_bytes}) long, got {len(scratch)}")
        self._max = max_frame_bytes
        self._read = read_bytes
        # Frames above this size that a read leaves incomplete get a buffer of their own;
        # smaller ones are completed in the scratch buffer and copied out.
        self._own = read_bytes // 4
        # A large frame's first buffer holds up to this much without a resize.
        self._first = 4 * read_bytes
        self._scratch = memoryview(bytearray(read_bytes) if scratch is None else scratch)
        # The start of a small frame (at most _own + 4 bytes) kept between reads.
        self._held = b""
        # The large frame being received (None when there is none), how much of it is
        # filled, and its declared size, which its buffer grows towards (see get_buffer).
        self._frame: bytearray | None = None
        self._filled = 0
        self._size = 0
        self._consumed = 0  # stream offset of the next frame's size prefix (for error messages)
        self._failed: str | None = None

    def buffered(self) -> int:
        """Bytes received of frames not yet complete (size prefixes included)."""
        if self._frame is not None:
            return _PREFIX + self._filled
        return len(self._held)

    def awaiting(self) -> int:
        """Bytes of the large frame being received that the next :meth:`get_buffer` view
        will take (0 when there is none): what is left of its buffer, or, once that is
        full, of the frame up to what was received of it (at least ``read_bytes``). All
        of them are yet to arrive."""
        frame = self._frame
        if frame is None:
            return 0
        filled = self._filled
        room = len(frame) - filled
        return room if room else min(self._size - filled, max(self._read, filled))

    def get_buffer(self) -> memoryview:
        """Where the next read goes: a writable view of at least one byte."""
        frame = self._frame
        if frame is None:
            held = len(self._held)
            if held:
                self._scratch[:held] = self._held
            return self._scratch[held:]
        filled = self._filled
        if filled == len(frame):
            frame = self._grow(frame, min(self._size - filled, max(self._read, filled)))
        return memoryview(frame)[filled:]

    def received(self, nbytes: int) -> list[bytes | bytearray]:
        """``nbytes`` were written at the start of the last :meth:`get_buffer` view: the frames
        they completed, in order (``bytes``, or ``bytearray`` for a frame received in place).

        Raises ProtocolError for a size prefix below 0 or above ``max_frame_bytes``, and
        on every call after that.
        """
        if self._failed is not None:
            raise ProtocolError(f"frame receiver is unusable after an earlier error: {self._failed}")
        frames: list[bytes | bytearray] = []
        frame = self._frame
        if frame is not None:
            self._filled += nbytes
            if self._filled == self._size:
                frames.append(frame)
                self._consumed += _PREFIX + self._size
                self._frame = None
                self._filled = self._size = 0
            return frames
        view = self._scratch
        start = 0
        end = len(self._held) + nbytes
        limit = self._max
        while end - start >= _PREFIX:
            size = _unpack_size(view, start)[0]
            if size < 0 or size > limit:
                reason = "is negative" if size < 0 else f"exceeds max_frame_size {limit}"
                self._failed = f"frame size {size} at stream byte {self._consumed} {reason}"
                self._held = b""
                raise ProtocolError(self._failed)
            body = start + _PREFIX
            if end - body >= size:
                frames.append(view[body : body + size].tobytes())
                self._consumed += _PREFIX + size
                start = body + size
                continue
            if size > self._own:
                # Incomplete (so every byte after its prefix is its own) and large: the
                # rest of it is received into a buffer of its own.
                have = end - body
                first = _unfilled(min(size, max(have + self._read, min(self._first, 4 * have))))
                # Through a view: a bytearray slice assigned from a non-bytearray copies twice.
                memoryview(first)[:have] = view[body:end]
                self._frame = first
                self._filled = have
                self._size = size
                start = end
            break
        self._held = view[start:end].tobytes() if start < end else b""
        return frames

    def _grow(self, frame: bytearray, extra: int) -> bytearray:
        """``frame`` longer by ``extra`` bytes for reads to fill: in place, or a copy if it
        cannot be resized."""
        target = len(frame) + extra
        try:
            _extend_unfilled(frame, extra)
        except BufferError:
            # A view of the frame is still held somewhere (a transport kept the last one
            # it was given): move to a larger copy instead.
            filled = self._filled
            grown = _unfilled(target)
            memoryview(grown)[:filled] = memoryview(frame)[:filled]
            self._frame = frame = grown
        return frame
