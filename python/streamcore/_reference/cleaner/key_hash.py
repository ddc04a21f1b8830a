"""The 16-byte digest the offset map stores per key: BLAKE2b with a 16-byte output.

Kafka's map stores an MD5 of each key; a distinct key colliding with another would
make the cleaner delete the wrong record, so the digest must resist crafted
collisions. ``hashlib.blake2b(digest_size=16)`` is what the native twin computes.
"""

from __future__ import annotations

import hashlib

__all__ = ["HASH_BYTES", "key_hash"]

#: Bytes of a key digest.
HASH_BYTES = 16


def key_hash(key: bytes) -> bytes:
    """The digest of a record key that the offset map stores (16 bytes)."""
    return hashlib.blake2b(key, digest_size=HASH_BYTES).digest()
