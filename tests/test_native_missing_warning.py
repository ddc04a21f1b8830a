"""A build without native code says so once at import, unless pure Python was asked for."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import streamcore

PACKAGE = Path(streamcore.__file__).resolve().parent


def _import_stderr(package_parent: Path, **env_extra: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMCORE_")}
    env.update(env_extra)
    env["PYTHONPATH"] = str(package_parent)
    proc = subprocess.run(
        [sys.executable, "-c", "import streamcore, streamcore.codec, streamcore.storage"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stderr


def test_missing_native_code_warns_once_naming_the_capabilities(tmp_path: Path) -> None:
    copy = tmp_path / "streamcore"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("*.so", "__pycache__"))
    err = _import_stderr(tmp_path)
    assert err.count("RuntimeWarning: streamcore is running without its native code") == 1, err
    assert "crc32c" in err and "STREAMCORE_NO_EXTENSIONS=1" in err
    # Asked for: silent.
    assert "RuntimeWarning" not in _import_stderr(tmp_path, STREAMCORE_NO_EXTENSIONS="1")
