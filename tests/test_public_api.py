"""The package facade: public names, lazy imports, the version's one home, and what a type checker sees."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import streamcore

_PACKAGE_DIR = Path(streamcore.__file__).resolve().parent
_PACKAGE_PARENT = str(_PACKAGE_DIR.parent)
_PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"


def _child_env() -> dict[str, str]:
    # A child interpreter imports the same streamcore as this test run, installed or source tree.
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (_PACKAGE_PARENT, env.get("PYTHONPATH")) if p)
    return env


def _run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=_child_env(), timeout=120
    )


def test_aio_is_reachable_from_a_bare_import_streamcore():
    proc = _run_python(
        "import streamcore\n"
        "cls = streamcore.aio.Producer\n"
        "print(cls.__module__, cls is streamcore.Producer, streamcore.aio.__name__)\n"
    )
    assert proc.returncode == 0, proc.stderr
    module, same_as_blocking, aio_name = proc.stdout.split()
    assert module.startswith("streamcore.client.")
    assert same_as_blocking == "False"  # the asyncio class, not the blocking one
    assert aio_name == "streamcore.aio"


# Modules that `import streamcore` leaves unimported today; keep it that way.
_LAZY_MODULES = (
    "numpy",
    "streamcore.aio",
    "streamcore.bench",
    "streamcore.broker",
    "streamcore.cli",
    "streamcore.client",
    "streamcore.protocol",
    "streamcore.search",
)


def test_import_streamcore_imports_neither_broker_nor_client_nor_numpy():
    proc = _run_python(
        f"import sys, streamcore\nprint(' '.join(m for m in {_LAZY_MODULES!r} if m in sys.modules))\n"
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == []


def test_lazy_public_names_are_the_defining_modules_objects():
    from streamcore import aio, client
    from streamcore.broker.embedded import Broker

    assert streamcore.Broker is Broker
    assert streamcore.Producer is client.Producer
    assert streamcore.Consumer is client.Consumer
    assert streamcore.AdminClient is client.AdminClient
    assert streamcore.aio is aio


def test_search_is_a_module_that_can_be_called(tmp_path: Path) -> None:
    """``streamcore.search(where, topic, query)`` is ``streamcore.search.search``."""
    proc = _run_python(
        "import streamcore\n"
        "print(streamcore.search.__name__, callable(streamcore.search), streamcore.search.search.__name__)\n"
        "try:\n"
        f"    streamcore.search({str(tmp_path)!r}, 'nosuch', 'x')\n"
        "except FileNotFoundError as exc:\n"
        "    print('FileNotFoundError', 'nosuch' in str(exc))\n"
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["streamcore.search", "True", "search", "FileNotFoundError", "True"]


def test_every_name_in_all_resolves_and_is_listed_by_dir():
    for name in streamcore.__all__:
        assert getattr(streamcore, name) is not None, name
    assert set(streamcore.__all__) <= set(dir(streamcore))


def test_unknown_attribute_raises_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'NoSuchThing'"):
        streamcore.NoSuchThing  # noqa: B018


def test_crc32c_is_the_active_implementation():
    assert streamcore.crc32c(b"123456789") == 0xE3069283


def test_version_has_one_home():
    from streamcore._version import __version__

    assert streamcore.__version__ is __version__
    assert re.fullmatch(r"\d+\.\d+\.\d+\S*", __version__)


@pytest.mark.skipif(not _PYPROJECT.is_file(), reason="needs the source tree's pyproject.toml")
def test_version_matches_the_distribution_metadata_in_pyproject():
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads(_PYPROJECT.read_text(encoding="utf-8"))["project"]
    assert project["version"] == streamcore.__version__


def test_no_module_reads_the_version_from_the_package_facade():
    # The client and the bench import streamcore._version; going through the facade
    # would tie them to its public surface and lazy imports.
    facade_use = re.compile(r"from streamcore import (.*\b)?__version__\b|\bstreamcore\.__version__\b")
    offenders = [
        str(path.relative_to(_PACKAGE_DIR))
        for path in sorted(_PACKAGE_DIR.rglob("*.py"))
        if path.name != "__init__.py" or path.parent != _PACKAGE_DIR
        if facade_use.search(path.read_text(encoding="utf-8"))
    ]
    assert offenders == []


def _mypy_reveal(tmp_path: Path, source: str) -> list[str]:
    """Run mypy on ``source`` and return its revealed types, failing on any mypy error."""
    pytest.importorskip("mypy", reason="mypy is not installed")
    (tmp_path / "snippet.py").write_text(textwrap.dedent(source))
    env = _child_env()
    # mypy refuses a site-packages directory on MYPYPATH and finds an installed (py.typed)
    # streamcore by itself; only a source tree has to be pointed at.
    if not _PACKAGE_PARENT.endswith("site-packages"):
        env["MYPYPATH"] = _PACKAGE_PARENT
    # cwd is the empty tmp_path so that no project mypy configuration applies, and imports
    # are followed silently: this is about what the facade offers, not the whole package.
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-incremental", "--cache-dir", os.devnull, "--follow-imports",
         "silent", "--python-version", "3.10", "snippet.py"],
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0 and "error:" not in proc.stdout, proc.stdout + proc.stderr
    # Older mypy spells builtins with their module ("builtins.int"), newer ones do not.
    revealed = [t.removeprefix("builtins.") for t in re.findall(r'Revealed type is "(.*)"', proc.stdout)]
    assert len(revealed) == source.count("reveal_type("), proc.stdout
    return revealed


def test_lazy_public_names_type_check_as_their_classes(tmp_path):
    revealed = _mypy_reveal(
        tmp_path,
        """\
        import streamcore

        reveal_type(streamcore.Producer("127.0.0.1:9092"))
        reveal_type(streamcore.Consumer)
        reveal_type(streamcore.AdminClient)
        reveal_type(streamcore.Broker())
        reveal_type(streamcore.crc32c(b"x"))
        reveal_type(streamcore.__version__)
        """,
    )
    for text in revealed:
        assert text not in ("object", "Any"), revealed
    producer, consumer, admin, broker, crc, version = revealed
    assert producer == "streamcore.client.blocking.Producer"
    assert consumer.endswith("-> streamcore.client.blocking.Consumer")
    assert admin.endswith("-> streamcore.client.blocking.AdminClient")
    assert broker == "streamcore.broker.embedded.Broker"
    assert crc == "int"
    assert version == "str"


def test_aio_type_checks_without_its_own_import(tmp_path):
    (producer,) = _mypy_reveal(
        tmp_path,
        """\
        import streamcore

        reveal_type(streamcore.aio.Producer("127.0.0.1:9092"))
        """,
    )
    assert re.fullmatch(r"streamcore\.client\.\w+\.Producer", producer), producer
    assert producer != "streamcore.client.blocking.Producer"
