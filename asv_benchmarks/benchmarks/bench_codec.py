"""Codec hot paths: CRC-32C, record batch v2 encode/decode/validate, varints.

Every benchmark is parametrized over the implementation: ``native`` (the Rust
``streamcore._native`` submodule, or the Cython ``streamcore._cy_wire`` for varints)
and ``reference`` (the pure-Python twin). A native module that is not built makes
``setup`` raise NotImplementedError, which asv reports as skipped, not as a failure.
"""

from __future__ import annotations

import functools
import importlib
from types import ModuleType

from streamcore.bench.workload import CodecWorkload, make_codec_workload
from streamcore.client.types import ConsumerRecord

IMPLEMENTATIONS = ["native", "reference"]
CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]
RECORDS = 1000
VALUE_SIZE = 100


@functools.lru_cache(maxsize=1)
def _workload() -> CodecWorkload:
    return make_codec_workload(records=RECORDS, value_size=VALUE_SIZE)


def _capability(implementation: str, name: str) -> ModuleType:
    if implementation == "reference":
        return importlib.import_module(f"streamcore._reference.{name}")
    try:
        if name == "wire":
            return importlib.import_module("streamcore._cy_wire")
        native = importlib.import_module("streamcore._native")
    except ImportError as exc:
        raise NotImplementedError(f"native {name} not built: {exc}") from exc
    sub = getattr(native, name, None)
    if sub is None:
        raise NotImplementedError(f"streamcore._native has no {name}")
    return sub


@functools.cache
def _batch(codec: str) -> bytes:
    # Both implementations decode the same bytes: the reference twin's encoding.
    w = _workload()
    rb = _capability("reference", "record_batch")
    return rb.encode_batch(w.values, w.keys, None, w.timestamps_ms, compression=codec)


class CRC32C:
    """CRC-32C of a 1 MiB buffer (bandwidth) and of 100 bytes (per-call overhead)."""

    params = (IMPLEMENTATIONS, ["1MiB", "100B"])
    param_names = ["implementation", "size"]

    def setup(self, implementation: str, size: str) -> None:
        self.crc32c = _capability(implementation, "crc32c").crc32c
        w = _workload()
        self.data = w.crc_large if size == "1MiB" else w.crc_small

    def time_crc32c(self, implementation: str, size: str) -> None:
        self.crc32c(self.data)


class BatchEncode:
    """Encode 1000 records of 100-byte values (12-byte keys) into one batch."""

    params = (IMPLEMENTATIONS, CODECS)
    param_names = ["implementation", "codec"]

    def setup(self, implementation: str, codec: str) -> None:
        self.encode_batch = _capability(implementation, "record_batch").encode_batch
        self.w = _workload()

    def time_encode_batch(self, implementation: str, codec: str) -> None:
        w = self.w
        self.encode_batch(w.values, w.keys, None, w.timestamps_ms, compression=codec)


class BatchDecode:
    """Decode one 1000-record batch: to Record objects, to columns, or validate only."""

    params = (IMPLEMENTATIONS, CODECS)
    param_names = ["implementation", "codec"]

    def setup(self, implementation: str, codec: str) -> None:
        self.rb = _capability(implementation, "record_batch")
        self.data = _batch(codec)

    def time_decode_records(self, implementation: str, codec: str) -> None:
        # Read every value, as a consumer does.
        total = 0
        for record in self.rb.decode_batch(self.data):
            total += len(record.value)

    def time_decode_consumer_records(self, implementation: str, codec: str) -> None:
        # The consumer's conversion: (topic, partition) + fields as one named tuple each.
        self.rb.decode_batch(self.data).records_as(ConsumerRecord, ("topic", 0))

    def time_decode_columns(self, implementation: str, codec: str) -> None:
        self.rb.decode_batch(self.data).to_columns()

    def time_validate_batch(self, implementation: str, codec: str) -> None:
        self.rb.validate_batch(self.data)


class Varint:
    """Zigzag varints: encode 1000 ints one call each; decode them back from one buffer."""

    params = IMPLEMENTATIONS
    param_names = ["implementation"]

    def setup(self, implementation: str) -> None:
        wire = _capability(implementation, "wire")
        self.encode_varint = wire.encode_varint
        self.decode_varint = wire.decode_varint
        w = _workload()
        self.values = w.varints
        self.buffer = w.varint_buffer

    def time_encode_varint(self, implementation: str) -> None:
        encode = self.encode_varint
        for v in self.values:
            encode(v)

    def time_decode_varint(self, implementation: str) -> None:
        decode = self.decode_varint
        buf = self.buffer
        pos = 0
        for _ in range(len(self.values)):
            _, pos = decode(buf, pos)
