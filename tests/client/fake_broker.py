"""A scripted Kafka-protocol broker on 127.0.0.1 for client tests that need answers a real
broker does not give on demand: a retriable error N times, a throttle time.

It serves ApiVersions, Metadata (one broker, itself, leading every partition of the
topics asked for), InitProducerId and Produce. Each Produce is answered with the next
``(error_code, throttle_time_ms)`` of ``produce_script`` (then success), and the
``time.monotonic()`` of its arrival is kept in ``produce_arrivals`` (seconds), so a test
sees the gaps the client really waited between attempts. It runs its own event loop on
a thread, so both the asyncio and the blocking clients can talk to it.
"""

from __future__ import annotations

import asyncio
import struct
import threading
import time
from collections import deque
from typing import Any

from streamcore.protocol.api_versions import REQUEST_CLASSES
from streamcore.protocol.headers import ApiKey, encode_response, parse_request_header
from streamcore.protocol.messages import (
    ApiVersionsResponse,
    ApiVersionsResponse_ApiVersion,
    InitProducerIdResponse,
    MetadataResponse,
    MetadataResponse_MetadataResponseBroker,
    MetadataResponse_MetadataResponsePartition,
    MetadataResponse_MetadataResponseTopic,
    ProduceResponse,
    ProduceResponse_PartitionProduceResponse,
    ProduceResponse_TopicProduceResponse,
)

# The versions this fake answers: enough for the streamcore client, no more.
_VERSIONS = {
    ApiKey.PRODUCE: (3, 12),
    ApiKey.METADATA: (1, 12),
    ApiKey.API_VERSIONS: (0, 3),
    ApiKey.INIT_PRODUCER_ID: (0, 5),
}
_BOUNDED_WAIT_S = 10.0


class FakeBroker:
    """Start with ``with FakeBroker(partitions=1) as broker:``; ``broker.bootstrap`` is host:port."""

    def __init__(self, partitions: int = 1) -> None:
        self.partitions = partitions
        self.produce_script: deque[tuple[int, int]] = deque()
        self.produce_arrivals: list[float] = []
        self.produce_records: int = 0
        self.api_log: list[int] = []
        self._next_offset = 0
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.AbstractServer | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, name="fake-broker", daemon=True)
        self.port = 0

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def __enter__(self) -> FakeBroker:
        self._thread.start()
        fut = asyncio.run_coroutine_threadsafe(asyncio.start_server(self._serve, "127.0.0.1", 0), self._loop)
        self._server = fut.result(_BOUNDED_WAIT_S)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def __exit__(self, *exc: object) -> None:
        async def stop() -> None:
            assert self._server is not None
            self._server.close()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(_BOUNDED_WAIT_S)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(_BOUNDED_WAIT_S)
        self._loop.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                size = struct.unpack(">i", await reader.readexactly(4))[0]
                frame = await reader.readexactly(size)
                arrived = time.monotonic()
                h = parse_request_header(frame)
                self.api_log.append(h.api_key)
                body = REQUEST_CLASSES[h.api_key].decode(memoryview(frame)[h.body_offset :], h.api_version)
                resp = self._answer(h.api_key, body, arrived)
                if resp is not None:
                    writer.write(encode_response(h.correlation_id, h.api_key, h.api_version, resp))
                    await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    def _answer(self, api_key: int, req: Any, arrived: float) -> Any:
        if api_key == ApiKey.API_VERSIONS:
            return ApiVersionsResponse(
                error_code=0,
                api_keys=[
                    ApiVersionsResponse_ApiVersion(api_key=k, min_version=lo, max_version=hi)
                    for k, (lo, hi) in sorted(_VERSIONS.items())
                ],
            )
        if api_key == ApiKey.METADATA:
            names = [t.name for t in req.topics or []]
            return MetadataResponse(
                brokers=[
                    MetadataResponse_MetadataResponseBroker(node_id=0, host="127.0.0.1", port=self.port)
                ],
                cluster_id="fake",
                controller_id=0,
                topics=[
                    MetadataResponse_MetadataResponseTopic(
                        name=name,
                        partitions=[
                            MetadataResponse_MetadataResponsePartition(
                                partition_index=p,
                                leader_id=0,
                                leader_epoch=0,
                                replica_nodes=[0],
                                isr_nodes=[0],
                            )
                            for p in range(self.partitions)
                        ],
                    )
                    for name in names
                ],
            )
        if api_key == ApiKey.INIT_PRODUCER_ID:
            return InitProducerIdResponse(producer_id=1000, producer_epoch=0)
        if api_key == ApiKey.PRODUCE:
            self.produce_arrivals.append(arrived)
            error, throttle = self.produce_script.popleft() if self.produce_script else (0, 0)
            topics = []
            for t in req.topic_data:
                parts = []
                for p in t.partition_data:
                    base = -1
                    if error == 0:
                        # records count: bytes 57..61 of a record batch v2 header
                        count = struct.unpack_from(">i", p.records, 57)[0]
                        base, self._next_offset = self._next_offset, self._next_offset + count
                        self.produce_records += count
                    parts.append(
                        ProduceResponse_PartitionProduceResponse(
                            index=p.index, error_code=error, base_offset=base
                        )
                    )
                topics.append(ProduceResponse_TopicProduceResponse(name=t.name, partition_responses=parts))
            if req.acks == 0:
                return None
            return ProduceResponse(responses=topics, throttle_time_ms=throttle)
        raise AssertionError(f"the fake broker does not serve api key {api_key}")
