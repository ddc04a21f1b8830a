"""Fixtures for the live-broker wire tests: a fresh embedded broker and helpers to feed it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from .wire_client import WireClient


@pytest.fixture
def broker(streamcore_broker_factory: Callable[..., Any]) -> Any:
    """A fresh broker (auto-create on, one partition per new topic)."""
    return streamcore_broker_factory()


@pytest.fixture
def client(broker: Any):
    with WireClient(broker.bootstrap_servers) as c:
        yield c
