"""SaslAuthenticate (36): one step of the SASL exchange chosen by SaslHandshake v1.

On a SASL listener the server calls :func:`handle_session`: the client's token goes to
the mechanism; its answer comes back with NONE, and once the exchange completes with the
session lifetime (KIP-368, v1+; 0 = no re-authentication needed). A failed step is
answered SASL_AUTHENTICATION_FAILED with a message (delayed for repeated failures from one
address) and the connection closes.

On a listener without SASL, :func:`handle` answers ILLEGAL_SASL_STATE, as Kafka does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from streamcore.broker.security.mechanisms import AuthenticationFailed
from streamcore.errors import ErrorCode
from streamcore.protocol.messages import SaslAuthenticateRequest, SaslAuthenticateResponse

if TYPE_CHECKING:
    from streamcore.broker.context import RequestContext
    from streamcore.broker.security.sasl import SaslSession
    from streamcore.broker.state import BrokerState

API_KEY = 36
REQUEST = SaslAuthenticateRequest


def handle(
    state: BrokerState, ctx: RequestContext, request: SaslAuthenticateRequest
) -> SaslAuthenticateResponse:
    return SaslAuthenticateResponse(
        error_code=ErrorCode.ILLEGAL_SASL_STATE.code,
        error_message="SaslAuthenticate request received on a listener without SASL authentication",
    )


def handle_session(
    session: SaslSession, ctx: RequestContext, request: SaslAuthenticateRequest
) -> tuple[SaslAuthenticateResponse, str | None]:
    """The answer, and None or why the authentication failed (the connection then closes)."""
    try:
        token, lifetime_ms = session.authenticate(
            bytes(request.auth_bytes), supports_reauth=ctx.api_version >= 1
        )
    except AuthenticationFailed as exc:
        message = str(exc)
        response = SaslAuthenticateResponse(
            error_code=ErrorCode.SASL_AUTHENTICATION_FAILED.code, error_message=message
        )
        return response, message
    return SaslAuthenticateResponse(
        error_code=0, error_message=None, auth_bytes=token, session_lifetime_ms=lifetime_ms
    ), None
