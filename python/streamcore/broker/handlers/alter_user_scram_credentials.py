"""AlterUserScramCredentials (51): add, replace and delete users' SCRAM credentials.

The client sends the salt and SaltedPassword (never the password); the broker keeps the
StoredKey and ServerKey derived from them in its credential store, written atomically
before the answer. Kafka's rules, per user: one alteration per user per request
(DUPLICATE_RESOURCE), an empty name or fewer than 4096 / more than 16384 iterations is
UNACCEPTABLE_CREDENTIAL, an unknown mechanism UNSUPPORTED_SASL_MECHANISM, deleting a
credential that does not exist RESOURCE_NOT_FOUND. A user's failed alteration leaves that
user unchanged; the others are applied. With an authorizer the sender needs ALTER on the
cluster. New credentials serve the next authentication; sessions already authenticated
are kept (as in Kafka).
"""

from __future__ import annotations

import asyncio
import threading
from typing import TYPE_CHECKING

from streamcore.broker.authorizer import CLUSTER_NAME, AclOperation, ResourceType, denied
from streamcore.broker.security.credentials import MAX_ITERATIONS, ScramCredential, mechanism_by_type
from streamcore.errors import ErrorCode
from streamcore.protocol.messages import (
    AlterUserScramCredentialsRequest,
    AlterUserScramCredentialsResponse,
    AlterUserScramCredentialsResponse_AlterUserScramCredentialsResult,
)

if TYPE_CHECKING:
    from streamcore.broker.context import RequestContext
    from streamcore.broker.security.credentials import CredentialStore
    from streamcore.broker.state import BrokerState

API_KEY = 51
REQUEST = AlterUserScramCredentialsRequest

_Result = AlterUserScramCredentialsResponse_AlterUserScramCredentialsResult
# Validation and the write happen together, one request at a time (off the event loop:
# the write fsyncs).
_LOCK = threading.Lock()


async def handle(
    state: BrokerState, ctx: RequestContext, request: AlterUserScramCredentialsRequest
) -> AlterUserScramCredentialsResponse:
    if denied(state, ctx, AclOperation.ALTER, ResourceType.CLUSTER, CLUSTER_NAME):
        users = dict.fromkeys([d.name for d in request.deletions] + [u.name for u in request.upsertions])
        return AlterUserScramCredentialsResponse(
            results=[
                _Result(
                    user=name,
                    error_code=ErrorCode.CLUSTER_AUTHORIZATION_FAILED.code,
                    error_message="Cluster authorization failed: ALTER on the cluster is needed",
                )
                for name in users
            ]
        )
    store = state.scram_credentials
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(None, _alter, store, request)


def _alter(
    store: CredentialStore, request: AlterUserScramCredentialsRequest
) -> AlterUserScramCredentialsResponse:
    with _LOCK:
        return _alter_locked(store, request)


def _alter_locked(
    store: CredentialStore, request: AlterUserScramCredentialsRequest
) -> AlterUserScramCredentialsResponse:
    errors: dict[str, tuple[int, str]] = {}
    deletions: dict[str, str] = {}
    upsertions: dict[str, tuple[str, ScramCredential]] = {}
    order: dict[str, None] = {}
    duplicate = (
        ErrorCode.DUPLICATE_RESOURCE.code,
        "A user credential cannot be altered twice in the same request",
    )

    def check(name: str, mechanism_type: int) -> tuple[int, str] | str:
        if not name:
            return ErrorCode.UNACCEPTABLE_CREDENTIAL.code, "Username must not be empty"
        mechanism = mechanism_by_type(mechanism_type)
        if mechanism is None:
            return ErrorCode.UNSUPPORTED_SASL_MECHANISM.code, "Unknown SCRAM mechanism"
        return mechanism.name

    for deletion in request.deletions:
        name = deletion.name
        order[name] = None
        if name in errors:
            continue
        if deletions.pop(name, None) is not None:
            errors[name] = duplicate
            continue
        outcome = check(name, deletion.mechanism)
        if isinstance(outcome, tuple):
            errors[name] = outcome
        elif store.get(name, outcome) is None:
            errors[name] = (
                ErrorCode.RESOURCE_NOT_FOUND.code,
                "Attempt to delete a user credential that does not exist",
            )
        else:
            deletions[name] = outcome
    for upsertion in request.upsertions:
        name = upsertion.name
        order[name] = None
        if name in errors:
            continue
        if deletions.pop(name, None) is not None or upsertions.pop(name, None) is not None:
            errors[name] = duplicate
            continue
        outcome = check(name, upsertion.mechanism)
        if isinstance(outcome, tuple):
            errors[name] = outcome
            continue
        mechanism = mechanism_by_type(upsertion.mechanism)
        assert mechanism is not None
        if upsertion.iterations < mechanism.min_iterations:
            errors[name] = (ErrorCode.UNACCEPTABLE_CREDENTIAL.code, "Too few iterations")
        elif upsertion.iterations > MAX_ITERATIONS:
            errors[name] = (ErrorCode.UNACCEPTABLE_CREDENTIAL.code, "Too many iterations")
        elif not upsertion.salt or not upsertion.salted_password:
            errors[name] = (
                ErrorCode.UNACCEPTABLE_CREDENTIAL.code,
                "Salt and salted password must not be empty",
            )
        else:
            credential = ScramCredential.from_salted_password(
                mechanism, bytes(upsertion.salt), bytes(upsertion.salted_password), upsertion.iterations
            )
            upsertions[name] = (mechanism.name, credential)
    if deletions or upsertions:
        try:
            store.apply(
                deletions=deletions.items(),
                upsertions=[(name, mech, cred) for name, (mech, cred) in upsertions.items()],
            )
        except OSError as exc:
            failure = (ErrorCode.KAFKA_STORAGE_ERROR.code, f"the credentials could not be stored: {exc}")
            for name in [*deletions, *upsertions]:
                errors[name] = failure
    return AlterUserScramCredentialsResponse(
        results=[
            _Result(user=name, error_code=errors[name][0], error_message=errors[name][1])
            if name in errors
            else _Result(user=name, error_code=0, error_message=None)
            for name in order
        ]
    )
