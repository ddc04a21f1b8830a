"""Reference twin of the ``crc32c`` capability: the ``crc32c`` PyPI package."""

from __future__ import annotations

import crc32c as _crc32c_pkg

__all__ = ["crc32c", "implementation_detail"]


def crc32c(data: object, value: int = 0) -> int:
    """CRC-32C (Castagnoli) of a buffer-protocol object, continuing from ``value``."""
    return _crc32c_pkg.crc32c(data, value)  # type: ignore[arg-type]  # any buffer; the package checks


def implementation_detail() -> str:
    """Which code computes the checksum (for ``streamcore info``)."""
    return f"crc32c package {getattr(_crc32c_pkg, '__version__', '?')} ({_crc32c_pkg.hardware_based and 'hardware' or 'software'})"
