"""The one place that chooses a native or a pure-Python implementation.

Each capability is a module-shaped object with the same public names in both
implementations:

* native Rust capabilities are submodules of ``streamcore._native``
  (``_native.crc32c``, ``_native.record_batch`` ...);
* native Cython capabilities are modules ``streamcore._cy_<capability>``;
* reference twins are ``streamcore._reference.<capability>``.

``STREAMCORE_NO_EXTENSIONS=1`` forces every capability to its reference twin.
It is read once, here, at import time. A native module that is present but
broken is *not* silently replaced: only a missing module (ImportError at the
top) falls back, and ``implementation()`` records why.
"""

from __future__ import annotations

import importlib
import os
import warnings
from types import ModuleType

__all__ = ["implementation", "NO_EXTENSIONS", "native_load_errors"]

NO_EXTENSIONS: bool = os.environ.get("STREAMCORE_NO_EXTENSIONS", "") == "1"

# capability -> ("rust" | "cython", where the native one lives)
_CAPABILITIES: dict[str, tuple[str, str]] = {
    "crc32c": ("rust", "crc32c"),
    "record_batch": ("rust", "record_batch"),
    "wire": ("cython", "streamcore._cy_wire"),
    "buffer_pool": ("rust", "buffer_pool"),
    "wal": ("rust", "wal"),
    "metrics": ("rust", "metrics"),
    "classifier": ("rust", "classifier"),
    "cleaner": ("rust", "cleaner"),
    "partitioner": ("rust", "partitioner"),
    "accumulator": ("rust", "accumulator"),
    "search": ("rust", "search"),
}

_active: dict[str, str] = {}
native_load_errors: dict[str, str] = {}

_native_mod: ModuleType | None = None
if not NO_EXTENSIONS:
    try:
        from streamcore import _native as _native_mod
    except ImportError as exc:
        # "cannot import name '_native'" is what a missing .so looks like from here.
        missing = "cannot import name '_native'" in str(exc)
        native_load_errors["_native"] = "streamcore._native is not built" if missing else repr(exc)
        _native_mod = None
    else:
        # Without the .so, the directory of type stubs (streamcore/_native/*.pyi) imports as an
        # empty namespace package; that is "not built", not a broken build.
        if getattr(_native_mod, "__file__", None) is None:
            native_load_errors["_native"] = "streamcore._native is not built"
            _native_mod = None


def _load(capability: str) -> ModuleType:
    kind, where = _CAPABILITIES[capability]
    if not NO_EXTENSIONS:
        if kind == "rust" and _native_mod is not None:
            sub = getattr(_native_mod, where, None)
            if sub is not None:
                _active[capability] = "native (rust)"
                return sub
            native_load_errors[capability] = f"streamcore._native has no submodule {where!r}"
        elif kind == "cython":
            try:
                mod = importlib.import_module(where)
            except ImportError as exc:
                native_load_errors[capability] = repr(exc)
            else:
                _active[capability] = "native (cython)"
                return mod
    _active[capability] = "reference"
    return importlib.import_module(f"streamcore._reference.{capability}")


crc32c = _load("crc32c")
record_batch = _load("record_batch")
wire = _load("wire")
buffer_pool = _load("buffer_pool")
wal = _load("wal")
metrics = _load("metrics")
classifier = _load("classifier")
cleaner = _load("cleaner")
partitioner = _load("partitioner")
accumulator = _load("accumulator")
search = _load("search")

if not NO_EXTENSIONS and native_load_errors:
    # Said once, at import: a user who did not ask for pure Python should know why
    # everything is several times slower. STREAMCORE_NO_EXTENSIONS=1 silences it.
    warnings.warn(
        "streamcore is running without its native code for "
        f"{', '.join(sorted(c for c, v in _active.items() if v == 'reference'))} "
        f"({'; '.join(sorted(set(native_load_errors.values())))}); it works, but more slowly. "
        "Reinstall a wheel with the native extensions, or set STREAMCORE_NO_EXTENSIONS=1 to choose "
        "pure Python and silence this warning.",
        RuntimeWarning,
        stacklevel=2,
    )


def implementation() -> dict[str, str]:
    """Return, per capability, which implementation is active.

    Values are ``"native (rust)"``, ``"native (cython)"`` or ``"reference"``.
    """
    return dict(_active)
