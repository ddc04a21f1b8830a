"""A topic exists for clients only once the catalogue that makes it survive a restart is on disk.

The fault is real, not mocked: the catalogue's temporary file path is taken by a
directory, so opening it fails with EISDIR (even as root, where permission bits
would not stop a write).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from streamcore.broker.embedded import Broker
from streamcore.errors import ErrorCode
from streamcore.protocol import messages as m

from .wire_client import (
    WireClient,
    batch,
    create_topic,
    fetch_request,
    fetched_partition,
    produce,
    records_of,
)


def _block_catalogue(data_dir: Path) -> Path:
    blocker = data_dir / "topics.json.tmp"
    blocker.mkdir()
    return blocker


def _create(c: WireClient, name: str) -> int:
    resp = c.request(
        m.CreateTopicsRequest(
            topics=[m.CreateTopicsRequest_CreatableTopic(name=name, num_partitions=2, replication_factor=1)],
            timeout_ms=10_000,
        ),
        5,
    )
    [t] = resp.topics
    return t.error_code


def _metadata_topics(c: WireClient, names: list[str], allow_auto: bool) -> dict[str, int]:
    resp = c.request(
        m.MetadataRequest(
            topics=[m.MetadataRequest_MetadataRequestTopic(name=n) for n in names],
            allow_auto_topic_creation=allow_auto,
        ),
        9,
    )
    return {t.name: t.error_code for t in resp.topics}


def test_failed_catalogue_write_refuses_create_and_produce_and_leaves_nothing(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with Broker(str(data_dir), port=0) as broker, WireClient(broker.bootstrap_servers) as c:
        blocker = _block_catalogue(data_dir)
        # CreateTopics answers the storage error instead of closing the connection.
        assert _create(c, "ghost") == ErrorCode.KAFKA_STORAGE_ERROR.code
        # Auto-creation by Metadata and by Produce takes the same path.
        assert _metadata_topics(c, ["ghost"], allow_auto=True)["ghost"] != 0
        p = produce(c, "ghost", 0, batch([b"never acknowledged"]))
        assert p.error_code != 0
        assert p.base_offset == -1
        assert _metadata_topics(c, ["ghost"], allow_auto=False)["ghost"] == (
            ErrorCode.UNKNOWN_TOPIC_OR_PARTITION.code
        )
        assert not any(d.name.startswith("ghost") for d in data_dir.iterdir())
        # Once the disk is writable again, the same connection creates the topic normally.
        blocker.rmdir()
        create_topic(c, "healed")
        assert produce(c, "healed", 0, batch([b"kept"])).error_code == 0
    with Broker(str(data_dir), port=0) as broker, WireClient(broker.bootstrap_servers) as c:
        topics = _metadata_topics(c, ["ghost", "healed"], allow_auto=False)
        assert topics == {"ghost": ErrorCode.UNKNOWN_TOPIC_OR_PARTITION.code, "healed": 0}
        fetched: Any = fetched_partition(c.request(fetch_request("healed", 0, 0), 11), "healed", 0)
        assert [v for _, _, v in records_of(fetched.records)] == [b"kept"]
        assert not any(d.name.startswith("ghost") for d in data_dir.iterdir())


def test_failed_catalogue_write_keeps_a_topic_that_was_being_deleted(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with Broker(str(data_dir), port=0) as broker, WireClient(broker.bootstrap_servers) as c:
        create_topic(c, "keep")
        assert produce(c, "keep", 0, batch([b"v1"])).error_code == 0
        blocker = _block_catalogue(data_dir)
        resp = c.request(m.DeleteTopicsRequest(topic_names=["keep"], timeout_ms=10_000), 3)
        assert [r.error_code for r in resp.responses] == [ErrorCode.KAFKA_STORAGE_ERROR.code]
        # Still readable and writable: nothing was closed or moved.
        assert produce(c, "keep", 0, batch([b"v2"])).error_code == 0
        blocker.rmdir()
    with Broker(str(data_dir), port=0) as broker, WireClient(broker.bootstrap_servers) as c:
        fetched: Any = fetched_partition(c.request(fetch_request("keep", 0, 0), 11), "keep", 0)
        assert [v for _, _, v in records_of(fetched.records)] == [b"v1", b"v2"]
