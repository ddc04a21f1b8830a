"""The broker's runtime (lock, listener, /metrics, housekeeping) apart from its plain state."""

from __future__ import annotations

import ast
import asyncio
import socket
import subprocess
import sys
from pathlib import Path

import pytest

import streamcore
from streamcore.broker import handlers
from streamcore.broker.config import load_config
from streamcore.broker.context import RequestContext
from streamcore.broker.runtime import BrokerRuntime
from streamcore.broker.state import BrokerState
from streamcore.codec import encode_batch, validate_batch
from streamcore.storage import Log

BROKER_DIR = Path(streamcore.__file__).parent / "broker"


def _config(data_dir: Path, **cli: object):
    return load_config(
        None, cli={"data_dir": str(data_dir), "listeners.host": "127.0.0.1", "listeners.port": 0, **cli}
    )


def test_state_opens_appends_and_closes_without_a_server_or_a_lock(tmp_path):
    state = BrokerState(_config(tmp_path))
    state.open()
    try:
        state.topics.create_topic("t", 1)
        plog = state.topics.log("t", 0)
        batch = encode_batch([b"a", b"b"])

        async def append() -> int:
            return (await state.appender.append("t", 0, plog, batch, validate_batch(batch))).base_offset

        assert asyncio.run(append()) == 0
    finally:
        state.close()
    state.close()  # idempotent
    # No lock was taken: a standalone Log may open the same partition now.
    with Log(tmp_path / "t-0") as again:
        assert again.high_watermark == 2


def test_importing_the_state_does_not_import_the_server_or_the_runtime():
    code = (
        "import sys, streamcore.broker.state\n"
        "assert 'streamcore.broker.server' not in sys.modules\n"
        "assert 'streamcore.broker.runtime' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=str(Path(streamcore.__file__).parents[1]))


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return found


def test_the_server_reads_headers_through_protocol_headers_not_the_wire_capability():
    # The connection module parses the frames; neither it nor the server reaches past
    # protocol/headers.py into the wire capability.
    for module in ("server.py", "connection.py"):
        imported = _imports(BROKER_DIR / module)
        assert not {m for m in imported if m.startswith("streamcore._impl")}, module
    assert "streamcore.protocol.headers" in _imports(BROKER_DIR / "connection.py")


def test_every_handler_module_satisfies_the_handler_protocol():
    import inspect

    for key, module in handlers.HANDLERS.items():
        assert module.API_KEY == key
        assert module.MIN_VERSION <= module.MAX_VERSION
        params = list(inspect.signature(module.handle).parameters)
        assert params == ["state", "ctx", "request"], module


def test_request_context_carries_the_header_and_the_sender():
    ctx = RequestContext(3, 12, 99, None, "10.1.2.3:5555")
    assert (ctx.api_key, ctx.api_version, ctx.correlation_id, ctx.client_id) == (3, 12, 99, "")
    assert ctx.client_host == "/10.1.2.3"


def test_a_failed_start_releases_the_data_directory(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        async def main() -> None:
            runtime = BrokerRuntime(_config(tmp_path, **{"listeners.port": port}))
            with pytest.raises(OSError):
                await runtime.start()
            # The lock and the logs were given back: a second runtime starts on the same directory.
            second = BrokerRuntime(_config(tmp_path))
            await second.start()
            try:
                assert second.listen_port != port
                assert second.state.topics.get("__consumer_offsets") is not None
            finally:
                await second.stop()

        asyncio.run(main())


def test_runtime_serves_metrics_and_stops_everything(tmp_path):
    async def main() -> None:
        runtime = BrokerRuntime(_config(tmp_path, **{"metrics.http_port": 0}))
        await runtime.start()
        port = runtime.metrics_port
        assert port is not None and runtime.state.metrics_port == port
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /metrics HTTP/1.0\r\n\r\n")
        body = await reader.read()
        writer.close()
        assert b"streamcore_" in body
        await runtime.stop()
        assert runtime.metrics_port is None
        await runtime.stop()  # idempotent

    asyncio.run(main())


def test_the_runtime_runs_segment_retention_on_the_configured_interval(tmp_path):
    async def main() -> int:
        runtime = BrokerRuntime(_config(tmp_path, **{"storage.retention_check_interval_ms": 20}))
        await runtime.start()
        try:
            topics = runtime.state.topics
            topics.create_topic("t", 1, configs={"internal.segment.bytes": "1024", "retention.bytes": "1"})
            plog = topics.log("t", 0)
            for _ in range(8):
                plog.append(encode_batch([b"x" * 400]))
            for _ in range(500):
                if plog.log_start_offset > 0:
                    break
                await asyncio.sleep(0.01)
            return plog.log_start_offset
        finally:
            await runtime.stop()

    assert asyncio.run(main()) > 0


def test_the_cleaner_reads_transaction_state_from_the_broker(tmp_path):
    # Without this wiring the cleaner would drop ABORT markers the broker still lists.
    async def main() -> None:
        runtime = BrokerRuntime(_config(tmp_path))
        await runtime.start()
        try:
            cleaner = runtime.state.topics.logs.cleaner
            assert cleaner is not None
            topics = runtime.state.topics
            topics.create_topic("t", 1, configs={"cleanup.policy": "compact"})
            partitions = runtime.state.transactions.partitions
            loaded = partitions.state("t", 0)
            assert cleaner._txn_source(("t", 0), topics.log("t", 0)) is loaded
        finally:
            await runtime.stop()

    asyncio.run(main())
