"""FrameReceiver: frames come out whole and in order however the socket reads cut the stream,
and a partial frame never holds much more memory than what was received of it."""

from __future__ import annotations

import itertools
import random
import struct
from collections.abc import Iterable

import pytest

from streamcore.errors import ProtocolError
from streamcore.protocol.framing import FrameReceiver

READ = 1024  # a small scratch buffer, so that "large" frames stay small in tests


def _framed(payload: bytes) -> bytes:
    return struct.pack(">i", len(payload)) + payload


def _payload(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


def _receive(
    receiver: FrameReceiver, stream: bytes, read_sizes: Iterable[int]
) -> tuple[list[bytes | bytearray], list[int]]:
    """Feed ``stream`` as a socket would: each read fills at most the offered buffer.

    Returns the frames and the receiver's buffered() after each read.
    """
    frames: list[bytes | bytearray] = []
    buffered = []
    at = 0
    sizes = iter(read_sizes)
    while at < len(stream):
        buf = receiver.get_buffer()
        assert len(buf) >= 1
        n = min(len(buf), next(sizes), len(stream) - at)
        buf[:n] = stream[at : at + n]
        del buf  # as asyncio drops its reference once the read is handled
        frames += receiver.received(n)
        buffered.append(receiver.buffered())
        at += n
    return frames, buffered


def _forever(n: int) -> Iterable[int]:
    return itertools.repeat(n)


SIZES = [
    0,
    1,
    3,
    100,
    READ // 4 - 1,
    READ // 4,
    READ // 4 + 1,
    READ - 4,
    READ,
    READ + 1,
    3 * READ + 7,
    10 * READ,
]


def test_many_small_frames_in_one_read_come_out_in_order() -> None:
    payloads = [_payload(i % 37, i) for i in range(200)]
    stream = b"".join(_framed(p) for p in payloads)
    receiver = FrameReceiver(1 << 20, read_bytes=1 << 16)
    frames, buffered = _receive(receiver, stream, [len(stream)])
    assert frames == payloads
    assert buffered == [0]


@pytest.mark.parametrize("size", SIZES)
def test_a_frame_split_at_every_byte_boundary_comes_out_whole(size: int) -> None:
    payload = _payload(size, size)
    stream = _framed(payload) + _framed(b"next")
    for cut in range(1, len(stream)):
        receiver = FrameReceiver(1 << 20, read_bytes=READ)
        frames, _ = _receive(receiver, stream, itertools.chain([cut], _forever(len(stream))))
        assert [bytes(f) for f in frames] == [payload, b"next"], cut
        assert receiver.buffered() == 0


@pytest.mark.parametrize("read_size", [1, 2, 3, 5, 64, 255, READ - 1, READ, READ + 3])
def test_mixed_frames_survive_any_read_size(read_size: int) -> None:
    payloads = [_payload(size, i) for i, size in enumerate(SIZES * 2)]
    stream = b"".join(_framed(p) for p in payloads)
    receiver = FrameReceiver(1 << 20, read_bytes=READ)
    frames, _ = _receive(receiver, stream, _forever(read_size))
    assert [bytes(f) for f in frames] == payloads
    assert receiver.buffered() == 0


def test_random_reads_of_a_random_stream() -> None:
    rng = random.Random(7)
    payloads = [_payload(rng.choice([rng.randrange(64), rng.randrange(6 * READ)]), i) for i in range(300)]
    stream = b"".join(_framed(p) for p in payloads)
    receiver = FrameReceiver(1 << 20, read_bytes=READ)
    frames, _ = _receive(receiver, stream, (rng.randrange(1, 3 * READ) for _ in itertools.count()))
    assert [bytes(f) for f in frames] == payloads


def test_a_large_frame_is_received_into_its_own_buffer_and_handed_over_as_it_is() -> None:
    # Above a quarter of the scratch buffer, and within one read of what arrived first.
    payload = _payload(READ // 2, 1)
    stream = _framed(payload)
    receiver = FrameReceiver(1 << 20, read_bytes=READ)
    buf = receiver.get_buffer()
    buf[:10] = stream[:10]
    del buf
    assert receiver.received(10) == []
    # The rest of the frame is offered as one buffer: one read can complete it.
    buf = receiver.get_buffer()
    assert len(buf) == len(stream) - 10
    buf[:] = stream[10:]
    del buf
    (frame,) = receiver.received(len(stream) - 10)
    assert isinstance(frame, bytearray) and frame == payload


def test_a_frame_declaring_a_huge_size_holds_little_ahead_of_what_arrived() -> None:
    declared = 50 * READ
    receiver = FrameReceiver(1 << 20, read_bytes=READ)
    received = 0
    data = struct.pack(">i", declared) + bytes(20)
    buf = receiver.get_buffer()
    buf[: len(data)] = data
    del buf
    assert receiver.received(len(data)) == []
    received = len(data)
    for _ in range(30):
        buf = receiver.get_buffer()
        # The buffer never holds more than four times what arrived of the frame, or
        # what arrived plus one read: what it offers beyond that is at most the rest.
        assert len(buf) <= max(READ, 3 * (received - 4))
        n = min(len(buf), 300)
        buf[:n] = bytes(n)
        del buf
        assert receiver.received(n) == []
        received += n
        assert receiver.buffered() == received


def test_a_size_out_of_range_raises_and_the_receiver_stays_failed() -> None:
    for prefix in (struct.pack(">i", -1), struct.pack(">i", 1001)):
        receiver = FrameReceiver(1000, read_bytes=READ)
        buf = receiver.get_buffer()
        buf[:4] = prefix
        del buf
        with pytest.raises(ProtocolError, match="frame size"):
            receiver.received(4)
        buf = receiver.get_buffer()  # never raises: asyncio would log it as a fatal error
        del buf
        with pytest.raises(ProtocolError, match="unusable"):
            receiver.received(1)


def test_the_error_names_the_stream_byte_of_the_bad_prefix() -> None:
    stream = _framed(b"abc") + struct.pack(">i", -5)
    receiver = FrameReceiver(1000, read_bytes=READ)
    with pytest.raises(ProtocolError, match="at stream byte 7 "):
        _receive(receiver, stream, [len(stream)])


def test_a_frame_of_exactly_max_frame_bytes_is_accepted() -> None:
    payload = _payload(3000, 3)
    receiver = FrameReceiver(3000, read_bytes=READ)
    frames, _ = _receive(receiver, _framed(payload), _forever(700))
    assert [bytes(f) for f in frames] == [payload]


def test_receivers_sharing_one_scratch_buffer_keep_their_streams_apart() -> None:
    scratch = bytearray(READ)
    rng = random.Random(11)
    streams = []
    for k in range(3):
        payloads = [
            _payload(rng.choice([rng.randrange(40), rng.randrange(3 * READ)]), 100 * k + i) for i in range(60)
        ]
        streams.append((payloads, b"".join(_framed(p) for p in payloads)))
    receivers = [FrameReceiver(1 << 20, read_bytes=READ, scratch=scratch) for _ in streams]
    got: list[list[bytes]] = [[] for _ in streams]
    at = [0] * len(streams)
    # Reads of the three streams interleave, as reads of three connections on one loop do.
    while any(at[k] < len(s) for k, (_, s) in enumerate(streams)):
        k = rng.randrange(len(streams))
        stream = streams[k][1]
        if at[k] == len(stream):
            continue
        buf = receivers[k].get_buffer()
        n = min(len(buf), rng.randrange(1, READ), len(stream) - at[k])
        buf[:n] = stream[at[k] : at[k] + n]
        del buf
        got[k] += [bytes(f) for f in receivers[k].received(n)]
        at[k] += n
    assert got == [payloads for payloads, _ in streams]


def test_a_frame_buffer_still_viewed_elsewhere_grows_by_copy() -> None:
    payload = _payload(5 * READ, 5)
    stream = _framed(payload)
    receiver = FrameReceiver(1 << 20, read_bytes=READ)
    kept = []
    at = 0
    frames: list[bytes | bytearray] = []
    while at < len(stream):
        buf = receiver.get_buffer()
        n = min(len(buf), len(stream) - at)
        buf[:n] = stream[at : at + n]
        kept.append(buf)  # a transport that holds on to every view it was given
        frames += receiver.received(n)
        at += n
    assert [bytes(f) for f in frames] == [payload]


def test_awaiting_is_what_the_next_buffer_takes_of_a_large_frame() -> None:
    payload = _payload(3 * READ, 9)
    stream = _framed(payload)
    receiver = FrameReceiver(1 << 20, read_bytes=READ)
    assert receiver.awaiting() == 0
    at = 0
    while at < len(stream):
        buf = receiver.get_buffer()
        if receiver.awaiting():
            assert len(buf) == receiver.awaiting()
        n = min(len(buf), 100, len(stream) - at)
        buf[:n] = stream[at : at + n]
        del buf
        frames = receiver.received(n)
        at += n
        # Never more than what is left of the frame, nor more than three times what
        # came of it (or one read, while that is more).
        assert receiver.awaiting() <= min(len(stream) - at, max(READ, 3 * (at - 4)))
    assert [bytes(f) for f in frames] == [payload]
    assert receiver.awaiting() == 0


def test_a_large_frame_buffer_doubles_so_it_is_resized_few_times(monkeypatch: pytest.MonkeyPatch) -> None:
    # Growing by one read at a time resized (and often moved) a 1 MiB frame's buffer
    # at every read; doubling resizes it a logarithmic number of times, and the buffer
    # never holds more than twice what arrived plus one read.
    from streamcore.protocol import framing

    grows: list[int] = []
    extend = framing._extend_unfilled

    def counting(frame: bytearray, extra: int) -> None:
        grows.append(extra)
        extend(frame, extra)

    monkeypatch.setattr(framing, "_extend_unfilled", counting)
    payload = _payload(16 * READ, 4)
    stream = _framed(payload)
    receiver = FrameReceiver(1 << 24, read_bytes=READ)
    at = 0
    frames: list[bytes | bytearray] = []
    while at < len(stream):
        buf = receiver.get_buffer()
        n = min(len(buf), READ, len(stream) - at)
        buf[:n] = stream[at : at + n]
        del buf
        frames += receiver.received(n)
        at += n
        if receiver._frame is not None:
            assert len(receiver._frame) <= max(receiver._filled + READ, 4 * receiver._filled)
    assert [bytes(f) for f in frames] == [payload]
    # Four times the first read at first, doubled twice, then the last bytes: three
    # resizes (one read at a time took 14).
    assert len(grows) <= 3, grows


def test_a_frame_of_up_to_four_reads_is_received_without_a_resize(monkeypatch: pytest.MonkeyPatch) -> None:
    from streamcore.protocol import framing

    grows: list[int] = []
    extend = framing._extend_unfilled
    monkeypatch.setattr(framing, "_extend_unfilled", lambda f, extra: (grows.append(extra), extend(f, extra)))
    payload = _payload(4 * READ - 100, 6)
    receiver = FrameReceiver(1 << 24, read_bytes=READ)
    frames, _ = _receive(receiver, _framed(payload), _forever(READ))
    assert [bytes(f) for f in frames] == [payload]
    assert grows == []
