"""SaslHandshake (17): the broker speaks no SASL mechanism.

Answered with UNSUPPORTED_SASL_MECHANISM (33) and an empty mechanism list, so a
client configured for SASL fails at once with a clear error instead of waiting for an
authentication exchange that never comes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from streamcore.errors import ErrorCode
from streamcore.protocol.messages import SaslHandshakeRequest, SaslHandshakeResponse

if TYPE_CHECKING:
    from streamcore.broker.context import RequestContext
    from streamcore.broker.state import BrokerState

API_KEY = 17
REQUEST = SaslHandshakeRequest


def handle(state: BrokerState, ctx: RequestContext, request: SaslHandshakeRequest) -> SaslHandshakeResponse:
    return SaslHandshakeResponse(error_code=ErrorCode.UNSUPPORTED_SASL_MECHANISM.code, mechanisms=[])
