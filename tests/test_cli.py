"""The ``streamcore`` command: ``info``, usage errors, ``python -m`` entry points."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import streamcore
from streamcore import cli
from streamcore.bench.environment import collect_environment, cpuinfo_flags

# The directory holding the streamcore package, so that a child interpreter imports
# the same code as this test process even when the package is not installed.
_PACKAGE_PARENT = str(Path(streamcore.__file__).resolve().parent.parent)


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (_PACKAGE_PARENT, env.get("PYTHONPATH")) if p)
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, env=env, timeout=120, check=False
    )


def test_info_names_every_capability_with_its_active_implementation():
    proc = _run("-m", "streamcore.cli", "info")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    for capability, active in streamcore.implementation().items():
        assert any(line.split()[:2] == [capability, active.split()[0]] for line in lines if line.strip()), (
            capability,
            proc.stdout,
        )
    assert "CRC-32C:" in proc.stdout
    assert f"streamcore        {streamcore.__version__}" in proc.stdout


def test_info_json_matches_implementation_of_this_process():
    proc = _run("-m", "streamcore.cli", "info", "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["implementation"] == streamcore.implementation()
    assert data["versions"]["streamcore"] == streamcore.__version__
    assert set(data["versions"]["libraries"]) == {"crc32c", "cramjam", "numpy"}
    assert isinstance(data["crc32c"]["implementation_detail"], str)


def test_python_dash_m_streamcore_is_the_same_command():
    proc = _run("-m", "streamcore", "info", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["implementation"] == streamcore.implementation()


def test_unknown_subcommand_exits_with_status_2():
    proc = _run("-m", "streamcore.cli", "no-such-command")
    assert proc.returncode == 2
    assert "invalid choice" in proc.stderr


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["bench"],
        ["bench", "no-such-target"],
        ["bench", "codec", "--records", "0"],
        ["bench", "produce", "--messages", "0"],
        ["bench", "consume", "--acks", "2"],
        ["info", "--bogus"],
    ],
    ids=[
        "no-command",
        "bench-without-target",
        "unknown-bench-target",
        "zero-records",
        "zero-messages",
        "bad-acks",
        "unknown-option",
    ],
)
def test_usage_errors_exit_with_status_2(argv, capsys):
    with pytest.raises(SystemExit) as excinfo:
        cli.main(argv)
    assert excinfo.value.code == 2
    assert "usage: streamcore" in capsys.readouterr().err


def test_every_registered_command_appears_in_help(capsys):
    with pytest.raises(SystemExit) as excinfo:
        cli.main(["--help"])
    assert excinfo.value.code == 0
    out = capsys.readouterr().out
    for command in ("info", "broker", "config", "topics", "produce", "consume", "groups", "log", "bench"):
        assert f"    {command} " in out, command


def test_log_command_verifies_a_log_through_the_main_entry_point(tmp_path, capsys):
    from streamcore.codec import encode_batch
    from streamcore.storage import Log

    with Log(tmp_path / "t-0") as log:
        log.append(encode_batch([b"a", b"b"], None, None, [0, 1]))
    assert cli.main(["log", "verify", str(tmp_path / "t-0")]) == 0
    assert "sound" in capsys.readouterr().out


def test_bench_help_lists_every_target_of_the_bench_package(capsys):
    with pytest.raises(SystemExit) as excinfo:
        cli.main(["bench", "--help"])
    assert excinfo.value.code == 0
    out = capsys.readouterr().out
    assert all(target in out for target in ("codec", "produce", "consume"))


def test_info_text_says_why_a_capability_fell_back_to_reference():
    env = collect_environment()
    env["no_extensions"] = False
    env["implementation"] = {"crc32c": "reference", "wire": "reference", "wal": "native (rust)"}
    env["native_load_errors"] = {"_native": "ImportError('boom')", "wire": "ModuleNotFoundError('cy')"}
    text = cli.format_info(env)
    crc_line = next(line for line in text.splitlines() if line.strip().startswith("crc32c "))
    wire_line = next(line for line in text.splitlines() if line.strip().startswith("wire "))
    assert "streamcore._native did not load" in crc_line
    assert "ModuleNotFoundError('cy')" in wire_line
    assert "ImportError('boom')" in text


def test_cpuinfo_flags_reports_presence_of_each_x86_flag(tmp_path):
    path = tmp_path / "cpuinfo"
    path.write_text("processor\t: 0\nflags\t\t: fpu sse4_2 avx2 pclmulqdq\n\nprocessor\t: 1\nflags\t: fpu\n")
    assert cpuinfo_flags(str(path)) == {
        "sse4_2": True,
        "pclmulqdq": True,
        "avx2": True,
        "avx512f": False,
        "vpclmulqdq": False,
    }


def test_cpuinfo_flags_reads_aarch64_features_line(tmp_path):
    path = tmp_path / "cpuinfo"
    path.write_text("processor\t: 0\nFeatures\t: fp asimd aes pmull crc32\n")
    assert cpuinfo_flags(str(path)) == {"crc32": True, "pmull": True, "sha3": False}


def test_cpuinfo_flags_is_none_without_cpuinfo(tmp_path):
    assert cpuinfo_flags(str(tmp_path / "missing")) is None
