"""Search on a running broker: topics opt in with search.index (at creation or altered on
the fly), the broker's indexer follows what real clients produce, ``/search`` on the
metrics port, ``streamcore search --metrics-url`` and a bootstrap address (through the
broker config ``streamcore.metrics.port``) answer, deleting a topic deletes
its index, aborted transactions are never found, and --no-search-index /
STREAMCORE_DISABLE_REALTIME_INDEX start no indexer. Every wait is bounded."""

from __future__ import annotations

import json
import os
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from confluent_kafka import Producer as CKProducer
from confluent_kafka.admin import AdminClient, ConfigResource, ConfigSource

from streamcore.cli import _load_broker_config, build_parser
from streamcore.cli import main as cli_main
from streamcore.client import Producer
from streamcore.search import search
from streamcore.storage.indexer import index_directory

WAIT_S = 60.0


def http_get(url: str) -> tuple[int, Any]:
    """(status, parsed JSON body or text) of a GET."""
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode()


def search_url(base: str, topic: str, query: str, **params: Any) -> str:
    return base + "/search?" + urllib.parse.urlencode({"topic": topic, "q": query, **params})


def wait_for(check: Callable[[], Any], what: str, timeout_s: float = WAIT_S) -> Any:
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what} (last: {last!r})")


def wait_indexed(base: str, topic: str, count: int) -> dict[str, Any]:
    """The /search answer for every record once ``count`` are found and nothing is behind."""

    def check() -> Any:
        status, body = http_get(search_url(base, topic, "", limit=10_000))
        if status == 200 and body["behind_records"] == 0 and len(body["hits"]) == count:
            return body
        return None

    return wait_for(check, f"{count} records of {topic} indexed")


def start(factory: Callable[..., Any], **settings: Any) -> tuple[Any, str]:
    broker = factory(metrics_http_port=0, search_batch_ms=20, **settings)
    return broker, f"http://127.0.0.1:{broker.metrics_port}"


def cli(*argv: str) -> int:
    return cli_main(list(argv))


def doc(level: str, service: str, n: int) -> bytes:
    return json.dumps({"level": level, "service": service, "n": n}).encode()


def test_records_from_two_clients_are_found_through_search_and_the_cli(
    streamcore_broker_factory: Callable[..., Any], capsys: pytest.CaptureFixture[str]
) -> None:
    broker, base = start(streamcore_broker_factory)
    bs = broker.bootstrap_servers
    assert (
        cli(
            "topics",
            "create",
            "logs",
            "--partitions",
            "2",
            "--config",
            "search.index=true",
            "--bootstrap",
            bs,
        )
        == 0
    )
    expected: list[bytes] = []
    with Producer(bs) as p:
        for n in range(60):
            value = doc("error" if n % 3 == 0 else "info", "payments" if n % 2 else "search", n)
            expected.append(value)
            p.send("logs", value, partition=n % 2)
        p.flush(30)
    ck = CKProducer({"bootstrap.servers": bs})
    for n in range(60, 100):
        value = doc("error" if n % 3 == 0 else "info", "payments" if n % 2 else "search", n)
        expected.append(value)
        ck.produce("logs", value, key=b"k%d" % n, partition=n % 2)
    assert ck.flush(30) == 0
    everything = wait_indexed(base, "logs", 100)
    assert sorted(h["value"].encode() for h in everything["hits"]) == sorted(expected)
    assert everything["lag"] == {"0": {"records": 0, "seconds": 0.0}, "1": {"records": 0, "seconds": 0.0}}

    def wanted(v: bytes) -> bool:
        d = json.loads(v)
        return d["level"] == "error" and d["service"] == "payments"

    status, body = http_get(search_url(base, "logs", "level:error AND service:payments", limit=1000))
    assert status == 200
    assert sorted(h["value"].encode() for h in body["hits"]) == sorted(v for v in expected if wanted(v))
    # The Python API against the broker: the exact bytes, keys included.
    results = search(base, "logs", "level:error AND service:payments", limit=1000)
    assert sorted(h.value for h in results) == sorted(v for v in expected if wanted(v))
    assert {h.key for h in results if json.loads(h.value)["n"] >= 60} <= {b"k%d" % n for n in range(60, 100)}
    assert {p: lag.records for p, lag in results.lag.items()} == {0: 0, 1: 0}
    ranged = search(base, "logs", "n:[10 TO 19]", limit=1000)
    assert sorted(json.loads(h.value)["n"] for h in ranged) == list(range(10, 20))
    # The command line against the broker.
    capsys.readouterr()
    assert (
        cli(
            "search",
            "logs",
            "level:error AND service:payments",
            "--metrics-url",
            base,
            "--json",
            "--limit",
            "1000",
        )
        == 0
    )
    lines = capsys.readouterr().out.splitlines()
    assert sorted(json.loads(line)["value"].encode() for line in lines) == sorted(
        v for v in expected if wanted(v)
    )
    # Metrics.
    status, text = http_get(base + "/metrics")
    assert status == 200
    assert 'streamcore_search_index_lag_records{topic="logs",partition="0"} 0' in text
    assert "streamcore_search_indexed_records_total 100" in text
    assert "streamcore_search_index_backoffs_total" in text


def test_bad_requests_are_refused_with_a_clear_status(
    streamcore_broker_factory: Callable[..., Any], capsys: pytest.CaptureFixture[str]
) -> None:
    broker, base = start(streamcore_broker_factory)
    bs = broker.bootstrap_servers
    assert cli("topics", "create", "idx", "--config", "search.index=true", "--bootstrap", bs) == 0
    assert cli("topics", "create", "plain", "--bootstrap", bs) == 0
    status, body = http_get(search_url(base, "idx", "level:error AND ("))
    assert status == 400 and "invalid search query" in body["error"]
    assert http_get(search_url(base, "nosuch", "x"))[0] == 404
    status, body = http_get(search_url(base, "plain", "x"))
    assert status == 409 and "search.index=true" in body["error"]
    assert http_get(search_url(base, "idx", "x", limit=-1))[0] == 400
    assert http_get(base + "/search?topic=idx")[0] == 400
    assert http_get(base + "/search?q=x")[0] == 400
    with pytest.raises(ValueError, match="invalid search query"):
        search(base, "idx", "a AND (")
    capsys.readouterr()
    assert cli("search", "idx", "a AND (", "--metrics-url", base) == 2
    assert cli("search", "nosuch", "a", "--metrics-url", base) == 1
    assert "does not exist" in capsys.readouterr().err


def test_altering_search_index_turns_indexing_on_and_off(
    streamcore_broker_factory: Callable[..., Any],
) -> None:
    broker, base = start(streamcore_broker_factory)
    bs = broker.bootstrap_servers
    assert cli("topics", "create", "t", "--bootstrap", bs) == 0
    with Producer(bs) as p:
        for n in range(10):
            p.send("t", json.dumps({"w": "alpha", "n": n}).encode())
        p.flush(30)
    assert http_get(search_url(base, "t", ""))[0] == 409
    assert cli("topics", "alter", "t", "--config", "search.index=true", "--bootstrap", bs) == 0
    assert broker.state.topics.describe_configs("t", extensions=True)["search.index"].value == "true"
    # A real client sees it over the wire too, as a topic override.
    admin = AdminClient({"bootstrap.servers": bs})
    resource = ConfigResource(ConfigResource.Type.TOPIC, "t")
    entry = admin.describe_configs([resource])[resource].result(timeout=30)["search.index"]
    assert (entry.value, entry.source) == ("true", ConfigSource.DYNAMIC_TOPIC_CONFIG.value)
    wait_indexed(base, "t", 10)
    assert cli("topics", "alter", "t", "--config", "search.index=false", "--bootstrap", bs) == 0
    indexer = broker.runtime.indexer
    wait_for(lambda: ("t", 0) not in indexer._parts, "the indexer to let go of t-0")
    with Producer(bs) as p:
        for n in range(5):
            p.send("t", json.dumps({"w": "beta", "n": n}).encode())
        p.flush(30)
    rounds = indexer.stats.rounds
    wait_for(lambda: indexer.stats.rounds >= rounds + 3, "three indexer rounds")
    assert http_get(search_url(base, "t", ""))[0] == 409
    with open(os.path.join(index_directory(os.path.join(broker.config.data_dir, "t-0")), "checkpoint")) as f:
        assert "next_offset 10\n" in f.read()
    # On again: it goes on from its checkpoint.
    assert cli("topics", "alter", "t", "--delete-config", "search.index", "--bootstrap", bs) == 0
    assert http_get(search_url(base, "t", ""))[0] == 409
    assert cli("topics", "alter", "t", "--config", "search.index=true", "--bootstrap", bs) == 0
    body = wait_indexed(base, "t", 15)
    assert sorted(json.loads(h["value"])["w"] for h in body["hits"]) == ["alpha"] * 10 + ["beta"] * 5


def test_deleting_a_topic_deletes_its_index_and_a_new_topic_starts_empty(
    streamcore_broker_factory: Callable[..., Any],
) -> None:
    broker, base = start(streamcore_broker_factory)
    bs = broker.bootstrap_servers
    partition_dir = os.path.join(broker.config.data_dir, "gone-0")
    assert cli("topics", "create", "gone", "--config", "search.index=true", "--bootstrap", bs) == 0
    with Producer(bs) as p:
        for n in range(20):
            p.send("gone", json.dumps({"w": "old", "n": n}).encode())
        p.flush(30)
    wait_indexed(base, "gone", 20)
    assert os.path.isdir(index_directory(partition_dir))
    indexer = broker.runtime.indexer
    assert cli("topics", "delete", "gone", "--bootstrap", bs) == 0
    assert not os.path.exists(partition_dir)
    rounds = indexer.stats.rounds
    wait_for(lambda: indexer.stats.rounds >= rounds + 3, "three indexer rounds")
    assert not os.path.exists(partition_dir), "the indexer recreated the deleted partition's directory"
    assert ("gone", 0) not in indexer._parts
    assert cli("topics", "create", "gone", "--config", "search.index=true", "--bootstrap", bs) == 0
    with Producer(bs) as p:
        for n in range(5):
            p.send("gone", json.dumps({"w": "new", "n": n}).encode())
        p.flush(30)
    body = wait_indexed(base, "gone", 5)
    assert [json.loads(h["value"])["w"] for h in body["hits"]] == ["new"] * 5
    assert http_get(search_url(base, "gone", "w:old"))[1]["hits"] == []


def test_records_of_aborted_transactions_are_never_found(
    streamcore_broker_factory: Callable[..., Any],
) -> None:
    broker, base = start(streamcore_broker_factory)
    bs = broker.bootstrap_servers
    assert cli("topics", "create", "txn", "--config", "search.index=true", "--bootstrap", bs) == 0
    with Producer(bs, transactional_id="search-" + uuid.uuid4().hex[:8]) as p:
        p.init_transactions(30)
        p.begin_transaction()
        for n in range(5):
            p.send("txn", json.dumps({"w": "committed", "n": n}).encode())
        p.commit_transaction(30)
        p.begin_transaction()
        for n in range(5):
            p.send("txn", json.dumps({"w": "aborted", "n": n}).encode())
        p.flush(30)
        p.abort_transaction(30)
        p.begin_transaction()
        for n in range(3):
            p.send("txn", json.dumps({"w": "committed", "n": 5 + n}).encode())
        p.commit_transaction(30)
    body = wait_indexed(base, "txn", 8)
    assert sorted(json.loads(h["value"])["n"] for h in body["hits"]) == list(range(8))
    assert http_get(search_url(base, "txn", "w:aborted"))[1]["hits"] == []
    assert len(http_get(search_url(base, "txn", "w:committed"))[1]["hits"]) == 8


def test_switched_off_indexing_starts_no_indexer(
    streamcore_broker_factory: Callable[..., Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    broker, base = start(streamcore_broker_factory, search_disable_realtime_index=True)
    assert broker.runtime.indexer is None
    assert not any(t.name == "streamcore-indexer" for t in threading.enumerate())
    bs = broker.bootstrap_servers
    assert cli("topics", "create", "t", "--config", "search.index=true", "--bootstrap", bs) == 0
    with Producer(bs) as p:
        p.send("t", b'{"w": "x"}')
        p.flush(30)
    status, body = http_get(search_url(base, "t", "x"))
    assert status == 503 and "switched off" in body["error"]
    assert "streamcore_search_" not in http_get(base + "/metrics")[1]
    assert not os.path.exists(index_directory(os.path.join(broker.config.data_dir, "t-0")))
    # The environment variable, read as `streamcore broker` reads it.
    monkeypatch.setenv("STREAMCORE_DISABLE_REALTIME_INDEX", "1")
    from_env = streamcore_broker_factory(use_env=True)
    assert from_env.runtime.indexer is None
    assert from_env.config.source("search.disable_realtime_index") == "env STREAMCORE_DISABLE_REALTIME_INDEX"
    monkeypatch.delenv("STREAMCORE_DISABLE_REALTIME_INDEX")
    # The flag of `streamcore broker` takes no value.
    args = build_parser().parse_args(["broker", "--no-search-index", "--data-dir", str(tmp_path)])
    config = _load_broker_config(args)
    assert config.search.disable_realtime_index is True
    assert config.source("search.disable_realtime_index") == "cli --no-search-index"
    plain = _load_broker_config(build_parser().parse_args(["broker", "--data-dir", str(tmp_path)]))
    assert plain.search.disable_realtime_index is False


def test_a_bootstrap_address_finds_the_metrics_port(
    streamcore_broker_factory: Callable[..., Any],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``search("HOST:PORT")`` and ``streamcore search --bootstrap`` look the metrics port up
    through DescribeConfigs (the Kafka protocol has no search request) and search there."""
    broker, base = start(streamcore_broker_factory)
    bs = broker.bootstrap_servers
    assert cli("topics", "create", "boot", "--config", "search.index=true", "--bootstrap", bs) == 0
    values = [doc("error" if n % 2 else "info", "edge", n) for n in range(20)]
    with Producer(bs) as p:
        for v in values:
            p.send("boot", v)
        p.flush(30)
    wait_indexed(base, "boot", 20)
    # Any Kafka client sees the port as a read-only broker config.
    admin = AdminClient({"bootstrap.servers": bs})
    resource = ConfigResource("BROKER", str(broker.state.node_id))
    entries = admin.describe_configs([resource])[resource].result(timeout=30)
    assert entries["streamcore.metrics.port"].value == str(broker.metrics_port)
    assert entries["streamcore.metrics.port"].is_read_only
    errors = sorted(v for v in values if json.loads(v)["level"] == "error")
    results = search(bs, "boot", "level:error", limit=100)
    assert sorted(h.value for h in results) == errors
    assert {p: lag.records for p, lag in results.lag.items()} == {0: 0}
    capsys.readouterr()
    assert cli("search", "boot", "level:error", "--bootstrap", bs, "--json", "--limit", "100") == 0
    lines = capsys.readouterr().out.splitlines()
    assert sorted(json.loads(line)["value"].encode() for line in lines) == errors
    # The bootstrap address comes from the environment as for every tool.
    monkeypatch.setenv("STREAMCORE_BOOTSTRAP", bs)
    assert cli("search", "boot", "level:info", "--json", "--limit", "100") == 0
    assert len(capsys.readouterr().out.splitlines()) == 10
    assert cli("search", "boot", "x", "--bootstrap", bs, "--metrics-url", base) == 2
    assert "--bootstrap goes with neither" in capsys.readouterr().err


def test_a_broker_without_a_metrics_port_says_how_to_search_it(
    streamcore_broker_factory: Callable[..., Any], capsys: pytest.CaptureFixture[str]
) -> None:
    from streamcore.search import RemoteSearchError

    broker = streamcore_broker_factory()
    bs = broker.bootstrap_servers
    admin = AdminClient({"bootstrap.servers": bs})
    resource = ConfigResource("BROKER", str(broker.state.node_id))
    assert "streamcore.metrics.port" not in admin.describe_configs([resource])[resource].result(timeout=30)
    with pytest.raises(RemoteSearchError, match="--metrics-port"):
        search(bs, "t", "x")
    capsys.readouterr()
    assert cli("search", "t", "x", "--bootstrap", bs) == 1
    assert "not a streamcore broker" in capsys.readouterr().err
    # Nothing listens there: a clear error within the timeout, not a hang.
    with pytest.raises(RemoteSearchError):
        search("127.0.0.1:1", "t", "x", timeout_s=2)
