"""Random KRaft cluster ids, in the form Kafka's own tools make and accept."""

from __future__ import annotations

import base64
import uuid

__all__ = ["new_cluster_id"]


def new_cluster_id() -> str:
    """A random UUID as 22 characters of unpadded URL-safe base64 (Kafka's ``Uuid``).

    Never one that starts with ``-``: command-line parsers such as Kafka's
    ``StorageTool format -t ID`` take it for an option (Kafka's ``Uuid.randomUuid``
    skips those for the same reason); one random id in 64 would start with it.
    """
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode("ascii").rstrip("=")
        if not text.startswith("-"):
            return text
