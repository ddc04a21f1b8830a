"""Deleting a topic deletes the committed offsets of every group for it, durably, as Kafka does."""

from __future__ import annotations

from pathlib import Path

import streamcore
from streamcore.client.types import TopicPartition


def test_deleting_a_topic_forgets_its_committed_offsets_across_restart(tmp_path: Path) -> None:
    data_dir = str(tmp_path / "data")
    tp = TopicPartition("doomed", 0)
    keep = TopicPartition("kept", 0)
    with streamcore.Broker(data_dir, port=0) as broker:
        admin = streamcore.AdminClient(broker.bootstrap_servers)
        try:
            admin.create_topic("doomed", 1)
            admin.create_topic("kept", 1)
            assert admin.alter_consumer_group_offsets("g", {tp: 0, keep: 0}) == {tp: None, keep: None}
            assert admin.list_consumer_group_offsets("g", [tp])[tp].offset == 0
            admin.delete_topics(["doomed"])
            admin.create_topic("doomed", 1)
            assert tp not in admin.list_consumer_group_offsets("g")
            assert admin.list_consumer_group_offsets("g")[keep].offset == 0
        finally:
            admin.close()
    with streamcore.Broker(data_dir, port=0) as broker:
        admin = streamcore.AdminClient(broker.bootstrap_servers)
        try:
            offsets = admin.list_consumer_group_offsets("g")
            assert tp not in offsets and offsets[keep].offset == 0
        finally:
            admin.close()
