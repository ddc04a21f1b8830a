"""Fixtures for the client tests: a Kafka-protocol broker to talk to.

``kafka_bootstrap`` is parametrized by broker kind so the same test code runs
against each: "streamcore" (a fresh embedded broker per test) and "apache-kafka"
(a real single-node Apache Kafka broker shared by the session, from
``apache_kafka_bootstrap`` in tests/conftest.py; needs java and mvn).
"""

from __future__ import annotations

import pytest

BROKER_KINDS = ["streamcore", "apache-kafka"]


@pytest.fixture(params=BROKER_KINDS)
def kafka_bootstrap(request: pytest.FixtureRequest) -> str:
    """Bootstrap address of a broker of each kind."""
    if request.param == "streamcore":
        return request.getfixturevalue("streamcore_broker")
    return request.getfixturevalue("apache_kafka_bootstrap")


_counter = iter(range(1_000_000))


@pytest.fixture
def topic_name(request: pytest.FixtureRequest) -> str:
    """A topic name unique within the session (brokers may be shared)."""
    base = "".join(c if c.isalnum() else "-" for c in request.node.name)[:80]
    return f"{base}-{next(_counter)}"
