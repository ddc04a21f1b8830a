"""SaslHandshake (17): choose the SASL mechanism of a connection on a SASL listener.

On a SASL listener the server calls :func:`handle_session` with the connection's
:class:`~streamcore.broker.security.sasl.SaslSession`: an enabled mechanism is answered
NONE with the enabled list (v0: raw SASL tokens follow; v1: SaslAuthenticate requests);
another is answered UNSUPPORTED_SASL_MECHANISM with the list, and the connection closes.
A handshake on an authenticated connection starts a re-authentication (KIP-368).

On a PLAINTEXT or SSL listener there is nothing to negotiate: :func:`handle` answers
UNSUPPORTED_SASL_MECHANISM with an empty mechanism list, so a client configured for SASL
fails at once with a clear error instead of waiting for an exchange that never comes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from streamcore.errors import ErrorCode
from streamcore.protocol.messages import SaslHandshakeRequest, SaslHandshakeResponse

if TYPE_CHECKING:
    from streamcore.broker.context import RequestContext
    from streamcore.broker.security.sasl import SaslSession
    from streamcore.broker.state import BrokerState

API_KEY = 17
REQUEST = SaslHandshakeRequest


def handle(state: BrokerState, ctx: RequestContext, request: SaslHandshakeRequest) -> SaslHandshakeResponse:
    return SaslHandshakeResponse(error_code=ErrorCode.UNSUPPORTED_SASL_MECHANISM.code, mechanisms=[])


def handle_session(
    session: SaslSession, ctx: RequestContext, request: SaslHandshakeRequest
) -> tuple[SaslHandshakeResponse, str | None]:
    """The answer, and None or why the authentication failed (the connection then closes)."""
    code, enabled = session.handshake(ctx.api_version, request.mechanism)
    response = SaslHandshakeResponse(error_code=code, mechanisms=enabled)
    if code == ErrorCode.UNSUPPORTED_SASL_MECHANISM.code:
        return (
            response,
            f"SASL mechanism {request.mechanism[:64]!r} is not enabled (enabled: {', '.join(enabled)})",
        )
    if code:
        return response, "SaslHandshake v0 on an authenticated connection"
    return response, None
