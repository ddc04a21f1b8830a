"""Asyncio client classes: ``Producer``, ``Consumer``, ``AdminClient``.

Each is an async context manager::

    async with streamcore.aio.Producer("127.0.0.1:9092") as producer:
        meta = await (await producer.send("events", b"value"))

The blocking equivalents are ``streamcore.Producer`` / ``Consumer`` / ``AdminClient``.
"""

from streamcore.client.admin import AdminClient
from streamcore.client.consumer import Consumer
from streamcore.client.producer import Producer

__all__ = ["AdminClient", "Consumer", "Producer"]
