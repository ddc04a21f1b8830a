"""ApiVersions (18): which API versions this broker answers.

v0-v4 advertised. v3+ requests are flexible and carry the client's software name and
version. The response header is always v0, even for flexible versions (the framing
layer handles that). A request above our maximum never reaches this module: the
server answers it with UNSUPPORTED_VERSION and our ranges in a v0 body, and the client
retries with a version from that list.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from streamcore.protocol.api_versions import api_version_entries
from streamcore.protocol.messages import ApiVersionsRequest, ApiVersionsResponse

if TYPE_CHECKING:
    from streamcore.broker.context import RequestContext
    from streamcore.broker.state import BrokerState

API_KEY = 18
REQUEST = ApiVersionsRequest

_ENTRIES = api_version_entries()


def handle(state: BrokerState, ctx: RequestContext, request: ApiVersionsRequest) -> ApiVersionsResponse:
    return ApiVersionsResponse(error_code=0, api_keys=_ENTRIES, throttle_time_ms=0)
