"""Fixtures of the native-WAL tests."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator

import pytest


@pytest.fixture
def fast_dir() -> Iterator[str]:
    """A scratch directory on tmpfs when available: fsync is free there, for loops of reopens."""
    root = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
    path = tempfile.mkdtemp(prefix="streamcore-native-test-", dir=root)
    yield path
    shutil.rmtree(path, ignore_errors=True)
