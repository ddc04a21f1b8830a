"""``_reference.search``: the pure-Python twin of ``_native.search`` (one partition's full-text index).

``analyze`` (what a value becomes, how text is cut into terms), ``query`` (the
query language) and ``index`` (``SearchIndex``) mirror ``rust/core/src/search/``.
"""

from streamcore._reference.search.index import (
    DEFAULT_WRITER_MEMORY_BYTES,
    ENGINE,
    MIN_WRITER_MEMORY_BYTES,
    SearchIndex,
)

__all__ = ["DEFAULT_WRITER_MEMORY_BYTES", "ENGINE", "MIN_WRITER_MEMORY_BYTES", "SearchIndex"]
