"""Fixtures for the storage tests.

Most tests go through ``streamcore.storage.Log``, i.e. whichever WAL
``streamcore._impl`` selected (CI runs the suite once native, once with
STREAMCORE_NO_EXTENSIONS=1). ``twin`` parametrizes over both WAL classes
directly for the cross-implementation tests; its native case is skipped only
when ``streamcore._native`` has no ``wal`` submodule.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator

import pytest

from streamcore._reference import wal as reference_wal
from streamcore.storage import Log


def native_wal_module():
    """``streamcore._native.wal`` or None when the native build has no WAL."""
    try:
        from streamcore import _native  # type: ignore[attr-defined]
    except ImportError:
        return None
    return getattr(_native, "wal", None)


def native_buffer_pool_module():
    """``streamcore._native.buffer_pool`` or None when the native build has none."""
    try:
        from streamcore import _native  # type: ignore[attr-defined]
    except ImportError:
        return None
    return getattr(_native, "buffer_pool", None)


@pytest.fixture(params=["reference", "native"])
def twin(request):
    """The WalLog class of one implementation (reference, then native when built)."""
    if request.param == "reference":
        return reference_wal.WalLog
    mod = native_wal_module()
    if mod is None:
        pytest.skip("streamcore._native has no wal submodule (native WAL not built)")
    return mod.WalLog


@pytest.fixture
def fast_dir() -> Iterator[str]:
    """A scratch directory on tmpfs when available: fsync is free there, for loops of reopens."""
    root = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
    path = tempfile.mkdtemp(prefix="streamcore-test-", dir=root)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def open_log(tmp_path) -> Iterator[Callable[..., Log]]:
    """Factory: ``open_log(path=None, **kwargs)`` opens a Log (default: tmp_path/"p0") closed at teardown."""
    opened: list[Log] = []

    def factory(path: str | os.PathLike[str] | None = None, **kwargs) -> Log:
        log = Log(path if path is not None else tmp_path / "p0", **kwargs)
        opened.append(log)
        return log

    yield factory
    for log in opened:
        try:
            log.close()
        except Exception:
            pass
