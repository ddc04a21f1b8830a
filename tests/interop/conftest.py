"""Interop fixtures: a broker with three partitions per new topic, and the Java client build."""

from __future__ import annotations

import shutil
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
JAVA_POM = REPO / "interop" / "java" / "pom.xml"
JAVA_VERSIONS = ("3.9.1", "4.1.1")
MVN_TIMEOUT_S = 600


@pytest.fixture
def interop_broker(streamcore_broker_factory: Callable[..., Any]) -> Any:
    """A fresh broker; auto-created topics get 3 partitions (kcat has no admin API)."""
    return streamcore_broker_factory(default_partitions=3)


def _require_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(
            f"`{name}` is not installed or not on PATH; the Java interop tests need it", pytrace=False
        )
    return path


class JavaBuilds:
    """Builds interop/java once per Kafka client version per session; gives the classpath."""

    def __init__(self) -> None:
        self._classpaths: dict[str, str] = {}
        self._lock = threading.Lock()

    def classpath(self, version: str) -> str:
        with self._lock:
            if version not in self._classpaths:
                self._classpaths[version] = self._build(version)
            return self._classpaths[version]

    @staticmethod
    def _build(version: str) -> str:
        mvn = _require_tool("mvn")
        _require_tool("java")
        target = JAVA_POM.parent / "target" / f"kafka-{version}"
        cp_file = target / "classpath.txt"
        cmd = [
            mvn, "-q", "-B", "-f", str(JAVA_POM), f"-Dkafka.version={version}",
            "package", "dependency:build-classpath", f"-Dmdep.outputFile={cp_file}",
        ]  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=MVN_TIMEOUT_S)
        if proc.returncode != 0:
            pytest.fail(
                f"building the Java client {version} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
            )
        return f"{target / 'classes'}:{cp_file.read_text().strip()}"


@pytest.fixture(scope="session")
def java_builds() -> JavaBuilds:
    return JavaBuilds()
