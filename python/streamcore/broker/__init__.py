"""The streamcore broker: wire-independent state and logic modules.

``config`` (settings tree), ``topics`` (topic metadata and partition logs),
``group_coordinator`` (classic consumer-group protocol), ``offset_store``
(committed offsets), ``producer_state`` (idempotent producers),
``fetch_sessions`` (KIP-227), ``delayed_fetch`` (long-poll wakeups) and
``append`` (a validated batch to a partition log). ``state`` holds them for the
handlers; ``runtime`` starts and stops the process around it (data-directory lock,
the asyncio ``server``, ``/metrics``, housekeeping); ``handlers`` has one module per
api key, called with a ``context.RequestContext``. ``embedded`` runs all of it.
"""
