"""The record batch v2 header layout, for code above the codec (broker, storage, benchmarks).

The layout has one Python home, ``streamcore._reference._batch_header`` (plain data
and ``struct`` formats, the same whichever codec implementation is active; its Rust
counterpart is ``rust/core/src/record_batch/header.rs``). This module re-exports it
so that nothing above the codec reaches into ``_reference`` directly.
"""

from __future__ import annotations

from streamcore._reference._batch_header import *  # noqa: F403 - a re-export, by design
from streamcore._reference._batch_header import __all__ as _layout_names
from streamcore._reference.record_types import BatchInfo

__all__ = ["BatchInfo", *_layout_names]
