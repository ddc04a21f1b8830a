"""The type stubs of the native modules match the built extensions (mypy.stubtest).

Runs in both passes of `make test`: the extensions are built and installed either
way (the pure-Python pass only stops *using* them), and a stub is checked against the
compiled module itself, imported directly rather than through streamcore._impl.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

import streamcore

PACKAGE_PARENT = str(Path(streamcore.__file__).resolve().parent.parent)


def _built(module: str) -> bool:
    spec = importlib.util.find_spec(module)
    return spec is not None and spec.origin is not None and spec.origin.endswith(".so")


@pytest.mark.parametrize("module", ["streamcore._native", "streamcore._cy_wire"])
def test_stub_matches_the_built_extension(module: str, tmp_path: Path) -> None:
    if not _built(module):
        pytest.skip(f"{module} is not built here (make build / tools/dev_build.sh builds it)")
    env = {k: v for k, v in os.environ.items() if k != "STREAMCORE_NO_EXTENSIONS"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [PACKAGE_PARENT, env.get("PYTHONPATH")]))
    proc = subprocess.run(
        [sys.executable, "-m", "mypy.stubtest", "--mypy-config-file", os.devnull, module],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Success" in proc.stdout
