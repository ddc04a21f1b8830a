"""Garbage and mutated request bodies make decode raise ProtocolError and nothing else.

The total number of decoded bodies across all request classes and versions is
STREAMCORE_FUZZ_EXAMPLES (CI: 100000; default 2000 for development runs).
"""

from __future__ import annotations

import os
import random

from hypothesis import given, settings
from hypothesis import strategies as st
from protocol_strategies import all_versions, random_instance

from streamcore.errors import ProtocolError
from streamcore.protocol import messages as m

FUZZ_EXAMPLES = int(os.environ.get("STREAMCORE_FUZZ_EXAMPLES", "2000"))
REQUEST_CASES = all_versions(sorted(m.REQUESTS.values(), key=lambda c: c.API_KEY))


def _seeds(rng: random.Random) -> list[tuple[type, int, list[bytes]]]:
    out = []
    for cls, version in REQUEST_CASES:
        bodies = [cls().encode(version)]
        bodies += [random_instance(cls, version, rng).encode(version) for _ in range(3)]
        out.append((cls, version, bodies))
    return out


def _mutate(body: bytes, rng: random.Random) -> bytes:
    kind = rng.randrange(6)
    if kind == 0 or not body:  # pure garbage
        return rng.randbytes(rng.randrange(64))
    if kind == 1:  # truncation
        return body[: rng.randrange(len(body))]
    data = bytearray(body)
    if kind == 2:  # flip a few bytes
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(len(data))] = rng.randrange(256)
    elif kind == 3:  # a length or count turned huge or negative
        at = rng.randrange(len(data))
        data[at : at + 4] = rng.choice(
            (b"\xff\xff\xff\xff", b"\x7f\xff\xff\xff", b"\x80\x00\x00\x00", b"\xff\xff\xff\xff\x0f")
        )
    elif kind == 4:  # insert or delete bytes
        at = rng.randrange(len(data))
        if rng.random() < 0.5:
            del data[at : at + rng.randint(1, 3)]
        else:
            data[at:at] = rng.randbytes(rng.randint(1, 3))
    else:  # trailing junk after a valid-looking prefix
        data += rng.randbytes(rng.randint(1, 8))
    return bytes(data)


def test_mutated_request_bodies_raise_only_protocol_error():
    rng = random.Random(0x5EED)
    seeds = _seeds(rng)
    decoded = rejected = 0
    for i in range(FUZZ_EXAMPLES):
        cls, version, bodies = seeds[i % len(seeds)]
        data = _mutate(rng.choice(bodies), rng)
        try:
            cls.decode(data, version)
        except ProtocolError:
            rejected += 1
        except Exception as exc:
            raise AssertionError(f"{cls.__name__} v{version} raised {exc!r} for {data!r}") from exc
        else:
            decoded += 1
    assert decoded + rejected == FUZZ_EXAMPLES
    assert rejected > 0


@settings(max_examples=max(50, FUZZ_EXAMPLES // 100), deadline=None, database=None)
@given(case=st.sampled_from(REQUEST_CASES), data=st.binary(max_size=96))
def test_arbitrary_bytes_raise_only_protocol_error(case, data):
    cls, version = case
    try:
        cls.decode(data, version)
    except ProtocolError:
        pass
