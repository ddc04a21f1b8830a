"""Fixtures for the client tests: a Kafka-protocol broker to talk to.

``kafka_bootstrap`` is parametrized by broker kind so the same test code runs
against each: "streamcore" (our embedded broker), and "apache-kafka" when the
interop fixture ``apache_kafka_bootstrap`` (tests/interop/apache_kafka.py) exists.
"""

from __future__ import annotations

import importlib.util
import pathlib

import pytest

_APACHE = pathlib.Path(__file__).resolve().parent.parent / "interop" / "apache_kafka.py"
BROKER_KINDS = ["streamcore"] + (["apache-kafka"] if _APACHE.exists() else [])

if _APACHE.exists():
    _spec = importlib.util.spec_from_file_location("_client_apache_kafka", _APACHE)
    assert _spec is not None and _spec.loader is not None
    _apache = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(_apache)
    # Re-export its fixtures (apache_kafka_bootstrap and whatever it depends on).
    globals().update({k: v for k, v in vars(_apache).items() if not k.startswith("__")})


@pytest.fixture(params=BROKER_KINDS)
def kafka_bootstrap(request: pytest.FixtureRequest) -> str:
    """Bootstrap address of a fresh broker of each kind."""
    if request.param == "streamcore":
        return request.getfixturevalue("streamcore_broker")
    return request.getfixturevalue("apache_kafka_bootstrap")


_counter = iter(range(1_000_000))


@pytest.fixture
def topic_name(request: pytest.FixtureRequest) -> str:
    """A topic name unique within the session (brokers may be shared)."""
    base = "".join(c if c.isalnum() else "-" for c in request.node.name)[:80]
    return f"{base}-{next(_counter)}"
