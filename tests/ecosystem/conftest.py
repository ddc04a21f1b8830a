"""Ecosystem acceptance fixtures: the broker under test, the Java classpath, the Quix venv.

Each case is parametrized over the brokers it passes on (``ecosystem_broker`` is
indirect): ``apache-kafka`` is the control, ``streamcore`` joins a case once streamcore
serves what that tool needs (docs/ecosystem.md keeps the list). To see where a case
stands on streamcore today, set STREAMCORE_TEST_ECOSYSTEM_TRY=streamcore: every case then also
runs against streamcore, and its failure message carries the tool's logs and the broker's.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from .harness import java_classpath, quix_python

APACHE_KAFKA = "apache-kafka"
STREAMCORE = "streamcore"


@dataclass(frozen=True)
class BrokerUnderTest:
    name: str
    bootstrap: str
    log: Path | None  # streamcore's log for this case; Apache Kafka's is in its session directory


def brokers(*passing: str) -> pytest.MarkDecorator:
    """Parametrize a case over ``passing`` brokers (plus streamcore when STREAMCORE_TEST_ECOSYSTEM_TRY says so)."""
    chosen = list(passing)
    if (
        STREAMCORE in os.environ.get("STREAMCORE_TEST_ECOSYSTEM_TRY", "").split(",")
        and STREAMCORE not in chosen
    ):
        chosen.append(STREAMCORE)
    return pytest.mark.parametrize("ecosystem_broker", chosen, indirect=True)


@pytest.fixture
def ecosystem_broker(
    request: pytest.FixtureRequest,
    streamcore_broker_factory: Callable[..., Any],
    tmp_path: Path,
) -> Iterator[BrokerUnderTest]:
    if request.param == APACHE_KAFKA:
        yield BrokerUnderTest(APACHE_KAFKA, request.getfixturevalue("apache_kafka_bootstrap"), None)
        return
    assert request.param == STREAMCORE, request.param
    log = tmp_path / "streamcore-broker.log"
    handler = logging.FileHandler(log)
    handler.setFormatter(logging.Formatter("[%(asctime)s] %(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger("streamcore")
    level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    try:
        broker = streamcore_broker_factory()
        yield BrokerUnderTest(STREAMCORE, broker.bootstrap_servers, log)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        handler.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """A failed case against streamcore shows the broker's log beside the tool's."""
    outcome = yield
    report = outcome.get_result()
    broker = getattr(item, "funcargs", {}).get("ecosystem_broker")
    if (
        report.failed
        and isinstance(broker, BrokerUnderTest)
        and broker.log is not None
        and broker.log.exists()
    ):
        report.sections.append(("streamcore broker log", broker.log.read_text(errors="replace")[-8000:]))


@pytest.fixture(scope="session")
def ecosystem_classpath() -> str:
    """Kafka Connect, Kafka Streams and the compiled interop/ecosystem programs (Kafka 4.1.1)."""
    return java_classpath()


@pytest.fixture(scope="session")
def quix_interpreter() -> str:
    """The Python interpreter of the venv that has Quix Streams."""
    return quix_python()
