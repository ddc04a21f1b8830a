"""One module per Kafka API key; this package maps api keys to them.

Every handler module defines ``API_KEY``, ``REQUEST`` (the generated request class)
and ``handle(state, ctx, request)`` (``BrokerState``, ``RequestContext``, decoded body;
see ``streamcore.broker.context``), which returns a response object, an awaitable
of one, or None (no response: acks=0). The version range each module answers is the
one the broker advertises (``streamcore.protocol.api_versions.ADVERTISED``); the
server checks it before decoding, so a handler sees only versions it supports and
reads the version from ``ctx.api_version``.
"""

from __future__ import annotations

from types import ModuleType
from typing import cast

from streamcore.broker.context import HandlerModule
from streamcore.broker.handlers import (
    add_offsets_to_txn,
    add_partitions_to_txn,
    alter_client_quotas,
    alter_configs,
    alter_user_scram_credentials,
    api_versions,
    create_acls,
    create_partitions,
    create_topics,
    delete_acls,
    delete_groups,
    delete_records,
    delete_topics,
    describe_acls,
    describe_client_quotas,
    describe_cluster,
    describe_configs,
    describe_groups,
    describe_log_dirs,
    describe_producers,
    describe_transactions,
    describe_user_scram_credentials,
    end_txn,
    fetch,
    find_coordinator,
    heartbeat,
    incremental_alter_configs,
    init_producer_id,
    join_group,
    leave_group,
    list_groups,
    list_offsets,
    list_transactions,
    metadata,
    offset_commit,
    offset_delete,
    offset_fetch,
    offset_for_leader_epoch,
    produce,
    sasl_authenticate,
    sasl_handshake,
    sync_group,
    txn_offset_commit,
)
from streamcore.protocol.api_versions import ADVERTISED

_MODULES: tuple[ModuleType, ...] = (
    produce,
    fetch,
    list_offsets,
    metadata,
    offset_commit,
    offset_fetch,
    find_coordinator,
    join_group,
    heartbeat,
    leave_group,
    sync_group,
    describe_groups,
    list_groups,
    sasl_handshake,
    api_versions,
    create_topics,
    delete_topics,
    init_producer_id,
    offset_for_leader_epoch,
    describe_configs,
    describe_cluster,
    delete_records,
    alter_configs,
    describe_log_dirs,
    create_partitions,
    delete_groups,
    incremental_alter_configs,
    offset_delete,
    describe_producers,
    sasl_authenticate,
    describe_client_quotas,
    alter_client_quotas,
    describe_user_scram_credentials,
    alter_user_scram_credentials,
    describe_acls,
    create_acls,
    delete_acls,
    add_partitions_to_txn,
    add_offsets_to_txn,
    end_txn,
    txn_offset_commit,
    describe_transactions,
    list_transactions,
)

HANDLERS: dict[int, HandlerModule] = {}
for _mod in _MODULES:
    _handler = cast(HandlerModule, _mod)
    _handler.MIN_VERSION, _handler.MAX_VERSION = ADVERTISED[_handler.API_KEY]
    HANDLERS[_handler.API_KEY] = _handler

if set(HANDLERS) != set(ADVERTISED):
    raise RuntimeError(f"advertised APIs without a handler: {sorted(set(ADVERTISED) - set(HANDLERS))}")
