"""Running the real ``streamcore`` command in tests, and checking how it ended."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import streamcore

# The directory holding the streamcore package, so that the child interpreter runs
# the same code as this test process even when the package is not installed.
_PACKAGE_PARENT = str(Path(streamcore.__file__).resolve().parent.parent)

#: Upper bound of one tool run (seconds); the tools' own --timeout is far lower.
RUN_TIMEOUT_S = 90


def cli_env(**extra: str) -> dict[str, str]:
    """The environment of a tool run: this package first on the path, no STREAMCORE_BOOTSTRAP
    from the developer's shell unless given in ``extra``."""
    env = {k: v for k, v in os.environ.items() if k != "STREAMCORE_BOOTSTRAP"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (_PACKAGE_PARENT, env.get("PYTHONPATH")) if p)
    env.update(extra)
    return env


def run_cli(
    *args: str, input: bytes | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[bytes]:
    """``python -m streamcore.cli ARGS`` in a child process; stdout and stderr as bytes."""
    return subprocess.run(
        [sys.executable, "-m", "streamcore.cli", *args],
        input=input,
        capture_output=True,
        env=cli_env(**(env or {})),
        timeout=RUN_TIMEOUT_S,
        check=False,
    )


def ok(proc: subprocess.CompletedProcess[bytes]) -> str:
    """stdout of a run that must have succeeded (the assertion shows stderr otherwise)."""
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    return proc.stdout.decode()


def failed_with_one_line(proc: subprocess.CompletedProcess[bytes], status: int = 1) -> str:
    """The single stderr line of a run that must have failed with ``status`` and no traceback."""
    err = proc.stderr.decode(errors="replace")
    assert proc.returncode == status, (proc.returncode, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert lines[0].startswith("streamcore "), lines[0]
    return lines[0]


def table(stdout: str) -> list[dict[str, str]]:
    """Rows of a whitespace-separated table with a header line, as dicts by column name."""
    lines = [line.split() for line in stdout.strip().splitlines()]
    header, rows = lines[0], lines[1:]
    return [dict(zip(header, row, strict=True)) for row in rows]
