"""pytest plugin (entry point ``pytest11``): a real broker for your tests.

``streamcore_broker`` starts an embedded broker on 127.0.0.1 with a free port and a
temporary data directory, and yields its bootstrap address (``"127.0.0.1:PORT"``).
It is function-scoped, so every test gets an empty broker. ``streamcore_broker_session``
is one broker for the whole test session (faster; tests share its topics and groups, so
use names of their own). ``streamcore_broker_factory`` starts brokers with settings of
your choice.

Every one of them is hermetic: the ``STREAMCORE_*`` environment is ignored, so settings
in a developer's shell cannot change what the tests see. Pass ``use_env=True`` to the
factory to read it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from streamcore.broker.embedded import Broker

__all__ = ["streamcore_broker", "streamcore_broker_factory", "streamcore_broker_session"]


@pytest.fixture
def streamcore_broker_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Broker]]:
    """Call it with Broker keyword settings (``use_env=True`` to read ``STREAMCORE_*``);
    every broker started is stopped after the test."""
    # Imported here so that loading the plugin (every pytest run in this environment)
    # does not import the broker.
    from streamcore.broker.embedded import Broker

    started: list[Broker] = []

    def make(**settings: Any) -> Broker:
        settings.setdefault("data_dir", str(tmp_path_factory.mktemp("streamcore")))
        broker = Broker(host="127.0.0.1", port=0, **settings).start()
        started.append(broker)
        return broker

    yield make
    for broker in reversed(started):
        broker.stop()


@pytest.fixture
def streamcore_broker(streamcore_broker_factory: Callable[..., Broker]) -> str:
    """The bootstrap address of a fresh broker on a temporary directory."""
    return streamcore_broker_factory().bootstrap_servers


@pytest.fixture(scope="session")
def streamcore_broker_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The bootstrap address of one broker shared by every test of the session, stopped at its end."""
    from streamcore.broker.embedded import Broker

    broker = Broker(str(tmp_path_factory.mktemp("streamcore-session")), host="127.0.0.1", port=0).start()
    try:
        yield broker.bootstrap_servers
    finally:
        broker.stop()
