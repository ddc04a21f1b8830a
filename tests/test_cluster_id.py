"""Random cluster ids: Kafka's form, and never one a command line takes for an option."""

from __future__ import annotations

import base64
import uuid

import pytest

from streamcore import _cluster_id
from streamcore._cluster_id import new_cluster_id


def test_kafka_form() -> None:
    ids = {new_cluster_id() for _ in range(2000)}
    assert len(ids) == 2000
    for text in ids:
        assert len(text) == 22 and not text.startswith("-")
        assert len(base64.urlsafe_b64decode(text + "==")) == 16


def test_an_id_starting_with_a_dash_is_drawn_again(monkeypatch: pytest.MonkeyPatch) -> None:
    # 0xF8 as the first byte encodes to "-" (62) in URL-safe base64.
    drawn = iter([uuid.UUID(bytes=b"\xf8" + bytes(15)), uuid.UUID(bytes=b"\x00" * 15 + b"\x01")])
    monkeypatch.setattr(_cluster_id.uuid, "uuid4", lambda: next(drawn))
    assert new_cluster_id() == "AAAAAAAAAAAAAAAAAAAAAQ"
