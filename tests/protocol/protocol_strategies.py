"""Hypothesis strategies for generated protocol messages, built from each class's FIELDS table."""

from __future__ import annotations

import functools

from hypothesis import strategies as st

INT_BOUNDS = {
    "int8": (-(1 << 7), (1 << 7) - 1),
    "int16": (-(1 << 15), (1 << 15) - 1),
    "uint16": (0, (1 << 16) - 1),
    "int32": (-(1 << 31), (1 << 31) - 1),
    "uint32": (0, (1 << 32) - 1),
    "int64": (-(1 << 63), (1 << 63) - 1),
}


def in_range(version: int, rng: tuple[int, int] | None) -> bool:
    """True if ``version`` lies in the inclusive range ``rng`` (None = never)."""
    return rng is not None and rng[0] <= version <= rng[1]


def _scalar(type_name: str) -> st.SearchStrategy:
    if type_name in INT_BOUNDS:
        lo, hi = INT_BOUNDS[type_name]
        return st.integers(lo, hi)
    if type_name == "bool":
        return st.booleans()
    if type_name == "float64":
        return st.floats(allow_nan=False)
    if type_name == "string":
        return st.text(max_size=12)
    if type_name in ("bytes", "records"):
        return st.binary(max_size=24)
    if type_name == "uuid":
        return st.binary(min_size=16, max_size=16)
    raise AssertionError(f"no strategy for {type_name}")


def field_strategy(info, version: int) -> st.SearchStrategy:
    """Values of one field valid at ``version`` (None only where the spec allows it)."""
    if info.struct is not None:
        elem = instances(info.struct, version)
    else:
        elem = _scalar(info.type)
    base = st.lists(elem, max_size=3) if info.array else elem
    if in_range(version, info.nullable_versions):
        return st.none() | base
    return base


@functools.cache
def instances(cls, version: int) -> st.SearchStrategy:
    """Random instances of generated class ``cls`` whose fields all exist at ``version``.

    Fields the version does not carry keep their defaults, so a round trip must
    return an equal object.
    """
    fields = {f.attr: field_strategy(f, version) for f in cls.FIELDS if in_range(version, f.versions)}
    return st.fixed_dictionaries(fields).map(lambda kw: cls(**kw))


def all_versions(classes):
    """(class, version) for every version of every class."""
    return [(c, v) for c in classes for v in range(c.MIN_VERSION, c.MAX_VERSION + 1)]


def random_instance(cls, version: int, rng, depth: int = 0):
    """A cheap random instance (``random.Random`` rather than hypothesis) for seeding fuzz inputs."""
    kw = {}
    for f in cls.FIELDS:
        if not in_range(version, f.versions):
            continue
        if in_range(version, f.nullable_versions) and rng.random() < 0.2:
            kw[f.attr] = None
            continue

        def one(f=f):
            if f.struct is not None:
                return random_instance(f.struct, version, rng, depth + 1)
            if f.type in INT_BOUNDS:
                lo, hi = INT_BOUNDS[f.type]
                return rng.choice((lo, hi, 0, -1 if lo < 0 else 1, rng.randint(lo, hi)))
            if f.type == "bool":
                return rng.random() < 0.5
            if f.type == "float64":
                return rng.uniform(-1e9, 1e9)
            if f.type == "string":
                return "".join(rng.choice("ab\u00e9\u4e16") for _ in range(rng.randint(0, 6)))
            if f.type == "uuid":
                return rng.randbytes(16)
            return rng.randbytes(rng.randint(0, 12))

        kw[f.attr] = [one() for _ in range(rng.randint(0, 3 if depth < 2 else 1))] if f.array else one()
    return cls(**kw)
