"""The streamcore broker: wire-independent state and logic modules.

``config`` (settings tree), ``topics`` (topic metadata and partition logs),
``group_coordinator`` (classic consumer-group protocol), ``offset_store``
(committed offsets), ``producer_state`` (idempotent producers),
``fetch_sessions`` (KIP-227) and ``delayed_fetch`` (long-poll wakeups).
The asyncio server and per-API handlers live in ``server`` and ``handlers``
and are imported explicitly by whoever starts a broker.
"""
