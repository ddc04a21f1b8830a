"""AlterClientQuotas (49): set and remove client quotas (KIP-546), applied at once.

Each entry names an entity (``user``, ``client-id``, both, or ``ip``; a null name is the
default entity) and ops: a key with a value, or a removal. The rules are Apache Kafka
4.1's (``streamcore.broker.quotas.plan_alter``): user and client-id entities take
producer_byte_rate and consumer_byte_rate (whole numbers), request_percentage and
controller_mutation_rate; ip entities take connection_creation_rate (a whole number), and
their name must be an address or a resolvable host; every value must be greater than 0.
A failed entry gets INVALID_REQUEST with Kafka's message and leaves its entity as it was;
the other entries apply. The new quotas are written to ``<data_dir>/client-quotas.json``
(atomically, off the event loop) before the answer, and the next request is throttled by
them; ``validate_only`` checks without changing anything. With an authorizer the sender
needs ALTER_CONFIGS on the cluster, else every entry is CLUSTER_AUTHORIZATION_FAILED.
v1 is flexible.
"""

from __future__ import annotations

import asyncio
import threading
from typing import TYPE_CHECKING

from streamcore.broker.authorizer import CLUSTER_NAME, AclOperation, ResourceType, denied
from streamcore.broker.quotas import AlterOutcome, Entity, canonical_entity, plan_alter, resolve_ip_quotas
from streamcore.errors import ErrorCode
from streamcore.protocol.messages import (
    AlterClientQuotasRequest,
    AlterClientQuotasResponse,
    AlterClientQuotasResponse_EntityData,
    AlterClientQuotasResponse_EntryData,
)

if TYPE_CHECKING:
    from streamcore.broker.context import RequestContext
    from streamcore.broker.quotas import QuotaStore
    from streamcore.broker.state import BrokerState

API_KEY = 49
REQUEST = AlterClientQuotasRequest

# Plan and write happen together, one request at a time (off the event loop: the write
# fsyncs and ip names may be resolved).
_LOCK = threading.Lock()

_Entries = list[tuple[list[tuple[str, str | None]], list[tuple[str, float, bool]]]]


def _entry(code: int, message: str | None, entity: Entity) -> AlterClientQuotasResponse_EntryData:
    return AlterClientQuotasResponse_EntryData(
        error_code=code,
        error_message=message,
        entity=[AlterClientQuotasResponse_EntityData(entity_type=k, entity_name=n) for k, n in entity],
    )


async def handle(
    state: BrokerState, ctx: RequestContext, request: AlterClientQuotasRequest
) -> AlterClientQuotasResponse:
    entries: _Entries = [
        (
            [(e.entity_type, e.entity_name) for e in entry.entity],
            [(op.key, op.value, op.remove) for op in entry.ops],
        )
        for entry in request.entries
    ]
    if denied(state, ctx, AclOperation.ALTER_CONFIGS, ResourceType.CLUSTER, CLUSTER_NAME):
        code = ErrorCode.CLUSTER_AUTHORIZATION_FAILED.code
        state.metrics.error(code)
        return AlterClientQuotasResponse(
            entries=[
                _entry(code, "Cluster authorization failed.", entity)
                for entity in dict.fromkeys(canonical_entity(pairs) for pairs, _ in entries)
            ]
        )
    store = state.quota_store
    loop = asyncio.get_running_loop()
    outcome, ip_rates = await loop.run_in_executor(None, _alter, store, entries, request.validate_only)
    if ip_rates is not None:
        # Whatever the store holds now (a later request may have written after this one).
        state.quotas.install(store.quotas, ip_rates)
    for code, _, _ in outcome.results:
        state.metrics.error(code)
    return AlterClientQuotasResponse(entries=[_entry(*result) for result in outcome.results])


def _alter(
    store: QuotaStore, entries: _Entries, validate_only: bool
) -> tuple[AlterOutcome, dict[str | None, float] | None]:
    with _LOCK:
        outcome = plan_alter(store.quotas, entries)
        if outcome.quotas is None or validate_only:
            return outcome, None
        try:
            store.replace(outcome.quotas)
        except OSError as exc:
            # Nothing was changed: every entry that would have applied says why.
            message = f"the client quotas file cannot be written: {exc.strerror or exc}"
            code = ErrorCode.UNKNOWN_SERVER_ERROR.code
            outcome.results = [
                (code if c == 0 else c, message if c == 0 else m, e) for c, m, e in outcome.results
            ]
            return outcome, None
        return outcome, resolve_ip_quotas(store.quotas)
