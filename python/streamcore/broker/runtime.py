"""The running broker process: lock, listener, ``/metrics`` and background loops.

:class:`BrokerRuntime` starts a broker around a :class:`~streamcore.broker.state.BrokerState`
and stops it again. Start order is what keeps a data directory safe: the
directory lock is taken before anything in it is read or written (a second broker
on the same directory would lose acknowledged writes of the first), the logs are
recovered before the listener accepts a connection, and stop closes the listener
and lets in-flight requests finish before the logs are flushed and closed.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import json
import logging
import resource
import socket
import urllib.parse
from pathlib import Path
from typing import Any

from streamcore.broker.config import BrokerConfig
from streamcore.broker.metrics import serve_metrics
from streamcore.broker.server import KafkaServer, Listener
from streamcore.broker.state import BrokerState
from streamcore.errors import ConfigError, DataDirLockedError, StorageError
from streamcore.storage.dir_lock import DirLock
from streamcore.storage.indexer import Indexer

log = logging.getLogger("streamcore.broker")

__all__ = ["BrokerRuntime"]


class BrokerRuntime:
    """Starts and stops one broker: its data-directory lock, Kafka listener, metrics
    endpoint and housekeeping loop. Handlers see only :attr:`state`."""

    def __init__(self, config: BrokerConfig) -> None:
        self.config = config
        self.state = BrokerState(config)
        self._dir_lock: DirLock | None = None
        self._server: KafkaServer | None = None
        self._metrics_server: asyncio.base_events.Server | None = None
        self._housekeeping_task: asyncio.Task[None] | None = None
        self._transactions_task: asyncio.Task[None] | None = None
        #: The search indexer; None when indexing is switched off (search.disable_realtime_index).
        self.indexer: Indexer | None = None
        self._started = False
        self._stopped = False

    # -- what callers of the old BrokerState lifecycle read --------------------------------

    @property
    def listen_host(self) -> str:
        return self.state.listen_host

    @property
    def listen_port(self) -> int:
        """The bound Kafka port (the real one when the config asked for port 0)."""
        return self.state.listen_port

    @property
    def advertised_host(self) -> str:
        return self.state.advertised_host

    @property
    def advertised_port(self) -> int:
        return self.state.advertised_port

    @property
    def metrics_port(self) -> int | None:
        """Port of the ``/metrics`` endpoint, None when it is not served."""
        return self.state.metrics_port

    def reload_certificates(self) -> int:
        """Read the TLS certificate, key and CA files again, for new connections (open ones
        are kept). Call on the broker's event loop. Returns the TLS listeners reloaded;
        ConfigError, with the old certificates still in use, when a file cannot be used."""
        if self._server is None:
            raise RuntimeError("the broker is not running")
        return self._server.reload_certificates()

    @property
    def listeners(self) -> list[Listener]:
        """The bound listeners, the first being the bootstrap one (empty before start)."""
        return list(self._server.listeners) if self._server is not None else []

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Lock and open the data directory, recover the logs, start listening.

        Raises DataDirLockedError when another process has the data directory open,
        StorageError when the data directory cannot be created or written, OSError (its
        message naming the address and the setting) when a port cannot be bound; on any
        failure everything started so far is stopped again.
        """
        if self._started:
            raise RuntimeError("this broker runtime was already started")
        self._started = True
        cfg = self.config
        _raise_open_file_limit(cfg)
        try:
            Path(cfg.data_dir).mkdir(parents=True, exist_ok=True)
            self._dir_lock = DirLock(cfg.data_dir).acquire()
        except DataDirLockedError:
            raise
        except OSError as exc:
            raise StorageError(
                f"data directory {cfg.data_dir!r} cannot be used: {exc.strerror or exc}"
                + (f" ({exc.filename})" if exc.filename and str(exc.filename) != cfg.data_dir else "")
                + "; choose a writable --data-dir"
            ) from exc
        try:
            await self._start_locked()
        except BaseException:
            if self.indexer is not None:
                self.indexer.stop()
            if self._server is not None:
                await self._server.stop()
            if self._metrics_server is not None:
                self._metrics_server.close()
            self.state.close()
            self._dir_lock.release()
            raise

    async def _start_locked(self) -> None:
        cfg = self.config
        state = self.state
        state.open()
        logs = state.topics.logs
        logs.start_retention(cfg.storage.retention_check_interval_ms)
        state.topics.start_cleaner()
        if logs.cleaner is not None:
            # The cleaner reads each partition's transaction state (LSO, aborted list) from
            # the broker, so that dropping an ABORT marker also drops the broker's entry for
            # it; a read_committed reader would otherwise skip that producer's later batches.
            partitions = state.transactions.partitions
            logs.cleaner.set_transaction_source(partitions.loaded)
        loop = asyncio.get_running_loop()

        def reopened(key: tuple[str, int], plog: object) -> None:
            # Called on the log manager's health thread; producer state belongs to the loop.
            try:
                loop.call_soon_threadsafe(self._partition_reopened, key, plog)
            except RuntimeError:
                pass  # the loop closed during shutdown: nobody produces any more

        logs.add_reopen_listener(reopened)
        logs.start_healing()
        state.metrics.set_storage_health(logs.health_figures)
        topics = state.topics
        state.metrics.set_partition_source(
            topics.open_logs, lambda: [t.name for t in topics.list_topics(include_internal=True)]
        )
        state.metrics.set_committed_source(self._committed_offsets)
        self._log_rebalances()
        self._start_indexer()
        self._server = KafkaServer(state)
        try:
            await self._server.start()
        except OSError as exc:
            failed = getattr(exc, "listener", None)
            if failed is None or not cfg.listeners.addresses:
                raise _bind_error(exc, "listeners.port", state.listen_host, cfg.listeners.port) from exc
            raise _bind_error(exc, f"listeners: {failed.name}", failed.host, failed.port) from exc
        listeners = self._server.listeners
        first = listeners[0]
        state.listeners = list(listeners)
        state.listen_host = first.host
        state.listen_port = first.port
        state.advertised_host = first.advertised_host
        state.advertised_port = first.advertised_port
        _warn_unauthenticated(listeners, cfg)
        self._housekeeping_task = asyncio.get_running_loop().create_task(self._housekeeping())
        self._transactions_task = asyncio.get_running_loop().create_task(self._transactions_loop())
        if cfg.metrics.http_port is not None:
            try:
                self._metrics_server = await serve_metrics(
                    state.metrics,
                    state.listen_host,
                    cfg.metrics.http_port,
                    health=self.health_problem,
                    routes={"/search": self._search_endpoint},
                )
            except OSError as exc:
                raise _bind_error(exc, "metrics.http_port", state.listen_host, cfg.metrics.http_port) from exc
            state.metrics_port = self._metrics_server.sockets[0].getsockname()[1]
        log.info(
            "broker %d (cluster %s) listening on %s",
            state.node_id,
            state.cluster_id,
            ", ".join(f"{lst.name}://{lst.host}:{lst.port}" for lst in listeners),
        )

    def _start_indexer(self) -> None:
        """One search indexer over the partitions of topics with search.index=true (read
        each round, so topics created or altered later are followed), unless indexing is
        switched off: then no thread at all."""
        cfg = self.config.search
        if cfg.disable_realtime_index:
            log.info("search indexing is switched off (search.disable_realtime_index)")
            return
        topics = self.state.topics
        partitions = self.state.transactions.partitions

        def indexed_logs() -> list[tuple[tuple[str, int], Any]]:
            return [
                (key, plog)
                for key, plog in topics.open_logs()
                if topics.search_indexed(key[0]) and not plog.is_offline
            ]

        def transactions(key: tuple[str, int], plog: Any) -> Any:
            # The broker's own state of the partition when it is loaded for this log
            # object (cleaner_view is safe from any thread); else the index follows the
            # log's headers itself.
            found = partitions.loaded(key)
            return found if found is not None and found.log is plog else None

        indexer = Indexer(
            indexed_logs,
            batch_records=cfg.batch_records,
            batch_ms=cfg.batch_ms,
            backoff_ms=min(50, cfg.backoff_max_ms),
            backoff_max_ms=cfg.backoff_max_ms,
            transactions=transactions,
        )
        # A deleted topic's indexes are dropped before its directories go, so the indexer
        # never writes into a removed (or re-created) partition directory.
        topics.add_deletion_listener(indexer.forget)
        self.state.metrics.set_search_source(indexer)
        indexer.start()
        self.indexer = indexer

    async def _search_endpoint(self, query_string: str) -> tuple[int, str, bytes]:
        """``GET /search?topic=T&q=QUERY[&limit=N][&since_ms=MS][&encoding=text|base64]``
        on the metrics port: the hits as JSON (streamcore.search.results_to_json), or an
        error status with ``{"error": message}``."""
        from streamcore.search import results_to_json, search_indexes

        def refuse(status: int, message: str) -> tuple[int, str, bytes]:
            return status, "application/json", json.dumps({"error": message}).encode() + b"\n"

        params = urllib.parse.parse_qs(query_string, keep_blank_values=True)

        def one(name: str) -> str | None:
            values = params.get(name)
            return values[-1] if values else None

        topic, query = one("topic"), one("q")
        if not topic:
            return refuse(400, "give the topic: /search?topic=T&q=QUERY")
        if query is None:
            return refuse(400, "give the query: q=QUERY (q= matches every record)")
        try:
            limit = int(one("limit") or "20")
            since_text = one("since_ms")
            since_ms = int(since_text) if since_text else None
        except ValueError:
            return refuse(400, "limit and since_ms must be integers")
        if not 0 <= limit <= _SEARCH_MAX_LIMIT:
            return refuse(400, f"limit must be between 0 and {_SEARCH_MAX_LIMIT}, not {limit}")
        encoding = one("encoding") or "text"
        if encoding not in ("text", "base64"):
            return refuse(400, f"encoding must be text or base64, not {encoding!r}")
        if self.config.authorizer != "none":
            # The metrics port authenticates nobody: with ACLs it would bypass them.
            return refuse(403, "/search is off on a broker with an authorizer (it cannot check ACLs)")
        indexer = self.indexer
        if indexer is None:
            return refuse(
                503,
                "search indexing is switched off on this broker "
                "(--no-search-index / STREAMCORE_DISABLE_REALTIME_INDEX)",
            )
        topics = self.state.topics
        info = topics.get(topic)
        if info is None or info.internal:
            return refuse(404, f"topic {topic!r} does not exist")
        if not topics.search_indexed(topic):
            return refuse(409, f"topic {topic!r} is not indexed: set its config search.index=true")
        logs = {}
        for p in range(info.partitions):
            plog = topics.logs.get((topic, p))
            if plog is not None and not plog.is_offline:
                logs[p] = plog
        indexes = indexer.partition_indexes(topic)

        def run() -> dict[str, Any]:
            results = search_indexes(logs, indexes, query, since_ms=since_ms, limit=limit)
            return results_to_json(topic, results, encoding=encoding)

        try:
            answer = await asyncio.get_running_loop().run_in_executor(None, run)
        except ValueError as exc:
            return refuse(400, str(exc))
        return 200, "application/json", json.dumps(answer).encode() + b"\n"

    def _committed_offsets(self) -> list[tuple[str, str, int, int]]:
        """(group, topic, partition, committed offset) of every group, for the lag metrics."""
        offsets = self.state.offsets
        return [
            (group, topic, partition, entry.offset)
            for group in offsets.groups()
            for (topic, partition), entry in offsets.fetch(group).items()
            if entry is not None
        ]

    def _log_rebalances(self) -> None:
        # The coordinator reports each completed rebalance to one callback (the state's
        # metric); the log line is added around it here, where the process's logging lives.
        coordinator = self.state.coordinator
        counted = coordinator.on_rebalance

        def rebalanced(group_id: str, generation: int) -> None:
            if counted is not None:
                counted(group_id, generation)
            log.info("group %s rebalanced: generation %d", group_id, generation)

        coordinator.on_rebalance = rebalanced

    def health_problem(self) -> str | None:
        """None while the broker is healthy; otherwise what ``/health`` answers 503 with:
        one line per offline partition, naming it and why."""
        offline = self.state.topics.logs.offline_partitions()
        if not offline:
            return None
        lines = [f"{len(offline)} partition(s) offline"]
        lines += [f"{topic}-{partition}: {reason}" for (topic, partition), reason in sorted(offline.items())]
        return "\n".join(lines)

    def _partition_reopened(self, key: tuple[str, int], plog: object) -> None:
        # Recovery may have kept batches whose append failed before an acknowledgement; the
        # producer state is rebuilt from the log so that a producer's retry of one is
        # answered as a duplicate instead of being written twice.
        state = self.state
        try:
            # Its open and aborted transactions come from the recovered log too.
            state.transactions.partitions.load(key, plog)
            largest = state.producers.rebuild_from_log(key, plog)  # type: ignore[arg-type]
            if largest >= 0:
                state.producer_ids.observe(largest)
        except Exception:
            log.exception("rebuilding producer state of %s-%d after its reopen failed", *key)

    async def stop(self) -> None:
        """Stop accepting, let in-flight requests finish, flush and close every log."""
        if self._stopped or not self._started:
            return
        self._stopped = True
        if self._server is not None:
            await self._server.stop()
        if self._metrics_server is not None:
            self._metrics_server.close()
            self.state.metrics_port = None
        if self._housekeeping_task is not None:
            self._housekeeping_task.cancel()
        if self._transactions_task is not None:
            self._transactions_task.cancel()
        if self.indexer is not None:
            # Before the logs close: it commits what is pending and releases every index.
            await asyncio.get_running_loop().run_in_executor(None, self.indexer.stop)
        # Markers still being written are abandoned: their Prepare* records make the next
        # start finish them.
        await self.state.transactions.stop()
        # Closing a log drains its queue, fsyncs, checkpoints and writes the clean-shutdown marker.
        await asyncio.get_running_loop().run_in_executor(None, self.state.close)
        if self._dir_lock is not None:
            self._dir_lock.release()

    async def _transactions_loop(self) -> None:
        """At start and every transactions.abort_interval_ms: finish transactions a stop
        left between decision and markers, abort timed-out ones, expire idle ids."""
        coordinator = self.state.transactions
        interval = self.config.transactions.abort_interval_ms / 1000.0
        while True:
            try:
                await coordinator.tick()
            except Exception:  # housekeeping failures must not stop the broker
                log.exception("transaction housekeeping failed")
            await asyncio.sleep(interval)

    async def _housekeeping(self) -> None:
        """On the retention interval: expired offsets of empty groups, idle producer state.
        (Segment retention and the cleaner, which compacts the offsets log as any
        compacted topic, are the log manager's own threads, started with the logs.)

        The state the handlers also touch (offsets, producers) is changed here, on the loop.
        """
        state = self.state
        interval = self.config.storage.retention_check_interval_ms / 1000.0
        while True:
            await asyncio.sleep(interval)
            try:
                now = state.now_ms()
                state.offsets.expire(
                    now, self.config.groups.offsets_retention_ms, state.coordinator.empty_since_ms
                )
                state.producers.expire(now)
            except Exception:  # housekeeping failures must not stop the broker
                log.exception("periodic housekeeping failed")


#: Most hits one /search request may ask for.
_SEARCH_MAX_LIMIT = 10_000


def _is_loopback(host: str) -> bool:
    """True for an address only this machine can reach (a name is resolved)."""
    if host in ("", "0.0.0.0", "::"):
        return False
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(str(info[4][0])).is_loopback for info in infos)


def _warn_unauthenticated(listeners: list[Listener], cfg: BrokerConfig) -> None:
    """One WARNING per listener that other machines can reach without authenticating:
    PLAINTEXT, and SSL without required client certificates."""
    for listener in listeners:
        authenticated = listener.spec.uses_sasl or (
            listener.protocol == "SSL" and cfg.ssl.client_auth == "required"
        )
        if not authenticated and not _is_loopback(listener.host):
            log.warning(
                "listener %s://%s:%d is reachable beyond this machine without authentication: anyone "
                "who can connect may read, write and delete every topic and group (use a SASL listener, "
                "SSL with ssl.client_auth=required, or bind 127.0.0.1)",
                listener.name,
                listener.host or "0.0.0.0",
                listener.port,
            )


def _bind_error(exc: OSError, setting: str, host: str, port: int) -> OSError:
    """The bind failure as one line naming the address and the setting that chose it."""
    reason = "address already in use" if exc.errno == errno.EADDRINUSE else (exc.strerror or str(exc))
    return OSError(exc.errno, f"cannot listen on {host}:{port} ({setting}): {reason}")


# Descriptors the broker needs besides client connections: the listener, the metrics
# endpoint, the event loop, log files being opened, executor threads' files.
_FD_RESERVE = 128


def _raise_open_file_limit(cfg: BrokerConfig) -> None:
    """Raise the open-file soft limit to the hard limit (as the JVM does for Kafka), then
    check that ``limits.max_connections`` fits in it.

    An explicitly configured limit that cannot fit is refused with ConfigError; the default
    is lowered to fit, with one WARNING, so that a default broker starts on any machine.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError) as exc:
            log.warning("could not raise the open-file limit from %d to %d: %s", soft, hard, exc)
    if soft == resource.RLIM_INFINITY:
        return
    wanted = cfg.limits.max_connections + _FD_RESERVE
    if wanted <= soft:
        return
    fits = soft - _FD_RESERVE
    if cfg.source("limits.max_connections") != "default" or fits < 1:
        raise ConfigError(
            f"limits.max_connections ({cfg.limits.max_connections}) plus {_FD_RESERVE} descriptors "
            f"for the broker itself does not fit in the open-file limit of {soft} (hard limit "
            f"{hard}); lower limits.max_connections to at most {max(fits, 0)} or raise the hard "
            "limit (ulimit -Hn, LimitNOFILE= in a systemd unit)"
        )
    log.warning(
        "limits.max_connections lowered from its default %d to %d to fit the open-file limit of %d",
        cfg.limits.max_connections,
        fits,
        soft,
    )
    cfg.limits.max_connections = fits
