"""``_native.crc32c``: CRC-32C (Castagnoli) of any C-contiguous buffer, without copying."""

from typing_extensions import Buffer

__all__ = ["crc32c", "_software_crc32c", "implementation_detail", "cpu_features"]

def crc32c(data: Buffer, value: int | None = None) -> int:
    """CRC-32C of ``data`` continuing from ``value`` (so chunks can be chained)."""

def _software_crc32c(data: Buffer, value: int | None = None) -> int:
    """Same as :func:`crc32c` but always on the portable table code."""

def implementation_detail() -> str:
    """Which code computes the checksum on this machine."""

def cpu_features() -> list[str]:
    """CRC-relevant CPU features detected at run time."""
