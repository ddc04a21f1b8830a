"""The data directory's cluster identity: ``meta.properties`` (cluster.id, node.id),
written once and checked at every start, as Kafka's storage format keeps it."""

from __future__ import annotations

import os
from pathlib import Path

from streamcore._atomic_file import write_atomic
from streamcore._cluster_id import new_cluster_id
from streamcore.errors import ConfigError

__all__ = ["load_or_create_cluster_id"]


_META_FILE = "meta.properties"


def load_or_create_cluster_id(
    data_dir: str | os.PathLike[str], node_id: int, configured: str | None = None
) -> str:
    """Return the cluster id kept in ``<data_dir>/meta.properties``, creating the file once.

    A configured id that differs from the stored one raises ConfigError (the data
    belongs to another cluster). The file is written with ``_atomic_file.write_atomic``.
    """
    directory = Path(data_dir)
    directory.mkdir(parents=True, exist_ok=True)
    meta = directory / _META_FILE
    if meta.exists():
        props: dict[str, str] = {}
        for line in meta.read_text("utf-8").splitlines():
            if "=" in line and not line.lstrip().startswith("#"):
                k, v = line.split("=", 1)
                props[k.strip()] = v.strip()
        stored = props.get("cluster.id")
        if not stored:
            raise ConfigError(f"{meta}: has no cluster.id line; fix or delete the file")
        if configured is not None and configured != stored:
            raise ConfigError(
                f"cluster_id {configured!r} differs from {stored!r} stored in {meta}; "
                "the data directory belongs to another cluster"
            )
        return stored
    cluster_id = configured or new_cluster_id()
    write_atomic(meta, f"version=1\ncluster.id={cluster_id}\nnode.id={node_id}\n")
    return cluster_id
