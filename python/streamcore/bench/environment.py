"""What this process runs on: active implementations, CPU features, library versions.

Shared by ``streamcore info`` and the benchmark JSON files, so that a figure can
always be traced back to the code and machine that produced it.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import platform
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from streamcore import _impl
from streamcore._version import __version__

__all__ = [
    "BASELINE_DISTRIBUTIONS",
    "CPU_FLAGS_OF_INTEREST",
    "RUNTIME_DISTRIBUTIONS",
    "collect_environment",
    "cpuinfo_flags",
    "distribution_version",
    "native_module",
]

#: x86 flags the CRC-32C and codec code can use: sse4_2 (crc32 instruction),
#: pclmulqdq (carry-less multiply folding), avx2/avx512f/vpclmulqdq (wide folding).
CPU_FLAGS_OF_INTEREST = ("sse4_2", "pclmulqdq", "avx2", "avx512f", "vpclmulqdq")
#: The aarch64 equivalents (``Features`` line of /proc/cpuinfo).
ARM_FEATURES_OF_INTEREST = ("crc32", "pmull", "sha3")

#: Libraries streamcore needs at run time (the reference twins use them).
RUNTIME_DISTRIBUTIONS = ("crc32c", "cramjam", "numpy")
#: Libraries the benchmarks compare against; optional.
BASELINE_DISTRIBUTIONS = ("kafka-python", "python-snappy", "lz4", "zstandard")


def distribution_version(name: str) -> str | None:
    """Installed version of distribution ``name``, or None; does not import it."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def native_module() -> ModuleType | None:
    """``streamcore._native`` if it is built and not disabled, else None."""
    if _impl.NO_EXTENSIONS:
        return None
    try:
        return importlib.import_module("streamcore._native")
    except ImportError:
        return None


def cpuinfo_flags(path: str = "/proc/cpuinfo") -> dict[str, bool] | None:
    """Which of the CPU features of interest the kernel reports, or None off Linux."""
    try:
        text = Path(path).read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        name, _, rest = line.partition(":")
        name = name.strip()
        if name == "flags":
            present = set(rest.split())
            return {flag: flag in present for flag in CPU_FLAGS_OF_INTEREST}
        if name == "Features":
            present = set(rest.split())
            return {flag: flag in present for flag in ARM_FEATURES_OF_INTEREST}
    return None


def _as_feature_list(raw: object) -> list[str]:
    # The native side may report a list of names or a {name: bool} mapping.
    if isinstance(raw, str):
        return raw.split()
    if isinstance(raw, dict):
        return [str(k) for k, v in raw.items() if v]
    return [str(x) for x in raw]  # type: ignore[attr-defined]


def _cython_modules() -> dict[str, bool]:
    # Which compiled Cython modules exist, whether or not they were selected.
    capabilities = getattr(_impl, "_CAPABILITIES", {})
    names = sorted(where for kind, where in capabilities.values() if kind == "cython")
    return {name: importlib.util.find_spec(name) is not None for name in names}


def collect_environment() -> dict[str, Any]:
    """Describe the running streamcore: JSON-serialisable, no heavy imports.

    Keys: ``implementation`` (capability -> active implementation),
    ``native_load_errors``, ``no_extensions``, ``crc32c`` (implementation detail,
    CPU features detected by the active code, /proc/cpuinfo flags), ``versions``
    (python, streamcore, native extension, Cython modules, libraries, native crates).
    """
    crc_impl = _impl.crc32c
    detail_fn = getattr(crc_impl, "implementation_detail", None)
    features_fn = getattr(crc_impl, "cpu_features", None)
    native = native_module()
    codec_versions: dict[str, str] = {}
    native_rb = getattr(native, "record_batch", None) if native is not None else None
    if native_rb is not None:
        codec_versions = {str(k): str(v) for k, v in dict(getattr(native_rb, "CODEC_VERSIONS", {})).items()}
    libraries = {name: distribution_version(name) for name in RUNTIME_DISTRIBUTIONS}
    baselines = {name: distribution_version(name) for name in BASELINE_DISTRIBUTIONS}
    return {
        "implementation": _impl.implementation(),
        "native_load_errors": dict(_impl.native_load_errors),
        "no_extensions": _impl.NO_EXTENSIONS,
        "crc32c": {
            "implementation_detail": detail_fn() if detail_fn is not None else None,
            "active_code_uses": _as_feature_list(features_fn()) if features_fn is not None else None,
            "cpu_has": cpuinfo_flags(),
            "machine": platform.machine(),
        },
        "versions": {
            "python": platform.python_version(),
            "python_implementation": platform.python_implementation(),
            "python_executable": sys.executable,
            "streamcore": __version__,
            "native_extension": getattr(native, "__version__", None) if native is not None else None,
            "cython_modules": _cython_modules(),
            "libraries": libraries,
            "baseline_libraries": baselines,
            "native_codec_crates": codec_versions,
        },
    }
