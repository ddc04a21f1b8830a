"""Types of ``streamcore._native``, the PyO3 extension over the Rust core.

Each native capability is a submodule with the same public names and results as its
pure-Python twin in ``streamcore._reference``; ``streamcore._impl`` picks one of the
two. Checked against the built extension with
``python -m mypy.stubtest streamcore._native``.
"""

from streamcore._native import accumulator as accumulator
from streamcore._native import buffer_pool as buffer_pool
from streamcore._native import classifier as classifier
from streamcore._native import cleaner as cleaner
from streamcore._native import crc32c as crc32c
from streamcore._native import metrics as metrics
from streamcore._native import partitioner as partitioner
from streamcore._native import record_batch as record_batch
from streamcore._native import search as search
from streamcore._native import wal as wal

__all__ = [
    "__version__",
    "crc32c",
    "record_batch",
    "buffer_pool",
    "wal",
    "metrics",
    "classifier",
    "cleaner",
    "partitioner",
    "accumulator",
    "search",
]

#: Version of the Rust crates the extension was built from.
__version__: str
