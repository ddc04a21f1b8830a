"""streamcore: Kafka-protocol streaming for Python.

Public names only; see ``__all__``. Heavy pieces (the broker, the client and the
asyncio client in :mod:`streamcore.aio`, numpy-backed columnar decoding) are
imported on first use so that ``import streamcore`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from streamcore import errors
from streamcore._impl import crc32c as _crc32c_impl
from streamcore._impl import implementation
from streamcore._version import __version__
from streamcore.buffer_pool import BufferPool

if TYPE_CHECKING:
    # What a type checker sees for the names that __getattr__ serves at run time;
    # without these, `streamcore.Producer(...)` would be `object` to it.
    from streamcore import aio, search
    from streamcore._reference.crc32c import crc32c
    from streamcore.broker.embedded import Broker
    from streamcore.client import AdminClient, Consumer, Producer
else:
    #: ``crc32c(data, value=0) -> int``: CRC-32C (Castagnoli) of any buffer-protocol
    #: object, continuing from ``value``; see streamcore._reference.crc32c.
    crc32c = _crc32c_impl.crc32c

__all__ = [
    "AdminClient",
    "Broker",
    "BufferPool",
    "Consumer",
    "Producer",
    "__version__",
    "aio",
    "crc32c",
    "errors",
    "implementation",
    "search",
]

# Public name -> module that defines it; imported on first access, then cached here.
_LAZY_NAMES = {
    "Broker": "streamcore.broker.embedded",
    "Producer": "streamcore.client",
    "Consumer": "streamcore.client",
    "AdminClient": "streamcore.client",
}
# Public submodules reachable as attributes without their own import statement.
# ``streamcore.search`` is also callable: ``streamcore.search(where, topic, query, ...)``
# runs ``streamcore.search.search`` (see the end of that module).
_LAZY_SUBMODULES = frozenset({"aio", "search"})


def __getattr__(name: str) -> object:
    # The broker and the client are imported on first use, keeping `import streamcore` light.
    if name in _LAZY_SUBMODULES:
        # Importing a submodule binds it on this package, so this runs once per name.
        return importlib.import_module(f"{__name__}.{name}")
    module = _LAZY_NAMES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
