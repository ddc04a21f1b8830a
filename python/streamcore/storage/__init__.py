"""Durable partition logs: segmented files, group commit, retention and crash recovery.

``Log`` is one partition directory on top of the active WAL implementation
(native Rust or the pure-Python twin, chosen by ``streamcore._impl``). The
on-disk format and recovery rules are described in docs/storage.md.
``LogManager`` keeps a data directory's partition logs (opening, the retention
thread, removal, closing).
"""

from __future__ import annotations

from streamcore.storage.log import AppendResult, BatchHeader, Log
from streamcore.storage.log_manager import LogManager
from streamcore.storage.profiles import PROFILES, WalProfile, resolve_profile
from streamcore.storage.retention import RetentionScheduler

__all__ = [
    "AppendResult",
    "BatchHeader",
    "Log",
    "LogManager",
    "PROFILES",
    "RetentionScheduler",
    "WalProfile",
    "resolve_profile",
]
