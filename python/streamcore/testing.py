"""pytest plugin (entry point ``pytest11``): a real broker for your tests.

``streamcore_broker`` starts an embedded broker on 127.0.0.1 with a free port and a
temporary data directory, and yields its bootstrap address (``"127.0.0.1:PORT"``).
It is function-scoped, so every test gets an empty broker; ``streamcore_broker_factory``
starts brokers with settings of your choice.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from streamcore.broker.embedded import Broker

__all__ = ["streamcore_broker", "streamcore_broker_factory"]


@pytest.fixture
def streamcore_broker_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Broker]]:
    """Call it with Broker keyword settings; every broker started is stopped afterwards."""
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
