"""Ways to run the broker: inside an asyncio program, in a background thread
(``with Broker(...)``), or as the ``streamcore broker`` process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
import tempfile
import threading
from collections.abc import Mapping
from typing import Any

from streamcore.broker.config import CLI_FLAGS, SETTINGS, BrokerConfig, closest, load_config
from streamcore.broker.runtime import BrokerRuntime
from streamcore.broker.state import BrokerState
from streamcore.errors import ConfigError, StreamcoreError

log = logging.getLogger("streamcore.broker")

__all__ = ["Broker", "run_broker", "serve"]


def _keyword_forms() -> dict[str, str]:
    """Every keyword ``Broker`` accepts -> its setting name: the dotted name with
    underscores (``storage_fsync``) and the last part where only one setting has it (``fsync``)."""
    names = [s.name for s in SETTINGS]
    forms = {n.replace(".", "_"): n for n in names}
    last = [n.rsplit(".", 1)[-1] for n in names]
    for n, tail in zip(names, last, strict=True):
        if last.count(tail) == 1:
            forms.setdefault(tail, n)
    return forms


def _setting_name(key: str) -> str:
    """Map a keyword (``fsync``, ``default_partitions``, ``storage_fsync``) or a dotted
    name to a setting name; ConfigError naming the closest keyword for anything else."""
    if any(s.name == key for s in SETTINGS):
        return key
    forms = _keyword_forms()
    if key in forms:
        return forms[key]
    raise ConfigError(f"Broker: unknown setting {key!r}; did you mean {closest(key, forms)!r}?")


async def serve(config: BrokerConfig) -> BrokerRuntime:
    """Open the data directory, recover the logs and start listening.

    Returns the running ``BrokerRuntime`` (its ``state`` is what handlers share);
    ``await runtime.stop()`` shuts it down cleanly.
    """
    runtime = BrokerRuntime(config)
    await runtime.start()
    return runtime


class Broker:
    """A broker running in a background thread, for tests and embedding.

    >>> with Broker(port=0) as broker:          # doctest: +SKIP
    ...     producer = Producer({"bootstrap.servers": broker.bootstrap_servers})

    ``data_dir`` defaults to a fresh temporary directory removed on exit. ``port=0``
    picks a free port. Other keyword settings use the dotted names of
    ``streamcore config --show`` with underscores, or pass ``settings={"storage.fsync":
    "always"}``; an unknown name raises ConfigError naming the closest valid one.

    Hermetic by default: the ``STREAMCORE_*`` environment (``STREAMCORE_CONFIG`` too) is
    ignored, so that a user's shell cannot change a test's broker. ``use_env=True`` reads
    it as ``streamcore broker`` does (arguments still win).
    """

    def __init__(
        self,
        data_dir: str | None = None,
        *,
        host: str | None = None,
        port: int | None = None,
        settings: Mapping[str, Any] | None = None,
        config_file: str | None = None,
        use_env: bool = False,
        **kwargs: Any,
    ) -> None:
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if data_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="streamcore-")
            data_dir = self._tmp.name
        cli: dict[str, Any] = {"data_dir": data_dir}
        for key, value in (settings or {}).items():
            cli[key] = value
        for key, value in kwargs.items():
            cli[_setting_name(key)] = value
        # 127.0.0.1 and a free port, unless listeners name their own addresses; host and
        # port given beside listeners name the first listener's address.
        named_listeners = any(CLI_FLAGS.get(key, key) == "listeners" for key in cli)
        if host is not None or not named_listeners:
            cli["listeners.host"] = "127.0.0.1" if host is None else host
        if port is not None or not named_listeners:
            cli["listeners.port"] = 0 if port is None else port
        self.config = load_config(config_file, env=None if use_env else {}, cli=cli)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runtime: BrokerRuntime | None = None
        self._started = threading.Event()
        self._error: BaseException | None = None

    @property
    def host(self) -> str:
        return self.runtime.advertised_host

    @property
    def port(self) -> int:
        return self.runtime.advertised_port

    @property
    def metrics_port(self) -> int | None:
        """Port of the ``/metrics`` endpoint, None when it is not served."""
        return self.runtime.metrics_port

    @property
    def bootstrap_servers(self) -> str:
        """``host:port`` to give a Kafka client (of the first listener)."""
        return f"{self.host}:{self.port}"

    @property
    def listeners(self) -> dict[str, str]:
        """Listener name (its security protocol) -> ``host:port`` to give a client of it,
        in the configured order."""
        return {listener.name: listener.bootstrap for listener in self.runtime.listeners}

    def bootstrap_for(self, protocol: str) -> str:
        """``host:port`` of the listener of ``protocol`` (``"SASL_SSL"``); KeyError if none."""
        return self.listeners[protocol.upper()]

    @property
    def runtime(self) -> BrokerRuntime:
        assert self._runtime is not None, "broker not started"
        return self._runtime

    @property
    def state(self) -> BrokerState:
        """The running broker's shared state (topics, groups, offsets, metrics)."""
        return self.runtime.state

    def start(self, timeout_s: float = 30.0) -> Broker:
        """Start the broker thread and wait until it listens."""
        self._thread = threading.Thread(target=self._run, name="streamcore-broker", daemon=True)
        self._thread.start()
        if not self._started.wait(timeout_s):
            raise TimeoutError(f"broker did not start within {timeout_s} s")
        if self._error is not None:
            raise self._error
        return self

    def reload_certificates(self, timeout_s: float = 30.0) -> int:
        """Read the TLS certificate, key and CA files again (what SIGHUP does to ``streamcore
        broker``): new connections get them, open ones keep theirs. Returns the number of
        TLS listeners reloaded; raises ConfigError, the old certificates staying in use,
        when a file cannot be used."""
        loop = self._loop
        if loop is None or self._runtime is None:
            raise RuntimeError("broker not started")
        runtime = self._runtime

        async def reload() -> int:
            return runtime.reload_certificates()

        return asyncio.run_coroutine_threadsafe(reload(), loop).result(timeout_s)

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            self._runtime = loop.run_until_complete(serve(self.config))
        except BaseException as exc:  # reported to start()'s caller
            self._error = exc
            loop.close()  # before start() returns, so a stop() after it finds the loop closed
            self._started.set()
            return
        self._started.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(self._runtime.stop())
            loop.close()

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop accepting, finish in-flight requests, flush and close the logs."""
        if self._loop is not None and self._thread is not None and self._thread.is_alive():
            # The thread may be on its way out with the loop already closed (a start that
            # failed); then there is nothing to stop, only the thread to wait for.
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout_s)
        self._thread = None
        if self._tmp is not None:
            with contextlib.suppress(OSError):
                self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> Broker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def run_broker(config: BrokerConfig) -> int:
    """Run until SIGTERM/SIGINT, printing ``listening on HOST:PORT`` (the first listener) once
    ready, ``listener NAME on HOST:PORT`` for each further listener, then ``metrics on
    http://HOST:PORT/metrics`` when the metrics endpoint is served (its real port, also when
    ``metrics.http_port`` is 0).

    On a signal: stop accepting, finish in-flight requests, flush, write the
    clean-shutdown markers, return 0. A broker that cannot start (data directory in use
    or not writable, port taken, bad setting) prints one line on stderr and returns 1.
    """

    async def main() -> None:
        runtime = await serve(config)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        loop.add_signal_handler(signal.SIGHUP, _reload, runtime)
        print(f"listening on {runtime.listen_host}:{runtime.listen_port}", flush=True)
        for listener in runtime.listeners[1:]:
            print(f"listener {listener.name} on {listener.host}:{listener.port}", flush=True)
        if runtime.metrics_port is not None:
            print(f"metrics on http://{runtime.listen_host}:{runtime.metrics_port}/metrics", flush=True)
        await stop.wait()
        log.info("shutting down")
        await runtime.stop()

    try:
        asyncio.run(main())
    except (OSError, StreamcoreError) as exc:
        print(f"streamcore broker: {_one_line(exc)}", file=sys.stderr)
        return 1
    return 0


def _reload(runtime: BrokerRuntime) -> None:
    """SIGHUP: certificates (and the PLAIN users file) read again; a failure keeps the old
    ones and is logged, never fatal."""
    try:
        reloaded = runtime.reload_certificates()
    except (ConfigError, OSError) as exc:
        log.error("SIGHUP: certificate reload failed, keeping the previous ones: %s", _one_line(exc))
    else:
        log.info("SIGHUP: reloaded the certificates of %d TLS listener(s)", reloaded)
    sasl = runtime.state.sasl
    if sasl is not None and runtime.config.sasl.plain_users_file:
        try:
            users = sasl.reload_plain_users()
        except ConfigError as exc:
            log.error(
                "SIGHUP: PLAIN users file reload failed, keeping the previous users: %s", _one_line(exc)
            )
        else:
            log.info("SIGHUP: reloaded %d PLAIN user(s)", users)


def _one_line(exc: BaseException) -> str:
    # An OSError built with (errno, message) prints "[Errno 98] message": the message
    # alone is the sentence an operator needs.
    text = exc.strerror if isinstance(exc, OSError) and exc.strerror and exc.filename is None else str(exc)
    return " ".join(str(text).split())
