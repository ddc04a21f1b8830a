"""Fixtures for the command-line tool tests: a broker of each kind.

``bootstrap`` is parametrized like the client tests: "streamcore" (a fresh embedded
broker per test) and "apache-kafka" (the session's real Apache Kafka broker, from
``apache_kafka_bootstrap`` in tests/conftest.py), so every tool test runs against both.
"""

from __future__ import annotations

import pytest

BROKER_KINDS = ["streamcore", "apache-kafka"]


@pytest.fixture(params=BROKER_KINDS)
def bootstrap(request: pytest.FixtureRequest) -> str:
    """Bootstrap address of a broker of each kind."""
    if request.param == "streamcore":
        return request.getfixturevalue("streamcore_broker")
    return request.getfixturevalue("apache_kafka_bootstrap")


_counter = iter(range(1_000_000))


@pytest.fixture
def name(request: pytest.FixtureRequest) -> str:
    """A topic or group name unique within the session (the Kafka broker is shared)."""
    base = "".join(c if c.isalnum() else "-" for c in request.node.name)[:60]
    return f"{base}-{next(_counter)}"
