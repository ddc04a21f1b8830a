"""streamcore: Kafka-protocol streaming for Python.

Public names only; see ``__all__``. Heavy pieces (the broker, numpy-backed
columnar decoding) are imported on first use so that ``import streamcore``
stays cheap.
"""

from __future__ import annotations

from streamcore import errors
from streamcore._impl import crc32c as _crc32c_impl
from streamcore._impl import implementation
from streamcore._version import __version__

__all__ = [
    "AdminClient",
    "Broker",
    "Consumer",
    "Producer",
    "__version__",
    "crc32c",
    "errors",
    "implementation",
]

#: ``crc32c(data, value=0) -> int``: CRC-32C (Castagnoli) of any buffer-protocol
#: object, continuing from ``value``; see streamcore._reference.crc32c.
crc32c = _crc32c_impl.crc32c


def __getattr__(name: str) -> object:
    # The broker and the client are imported on first use, keeping `import streamcore` light.
    if name == "Broker":
        from streamcore.broker.embedded import Broker

        return Broker
    if name in ("Producer", "Consumer", "AdminClient"):
        from streamcore import client

        return getattr(client, name)
    raise AttributeError(f"module 'streamcore' has no attribute {name!r}")
