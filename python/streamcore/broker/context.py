"""What a request handler is given, and what it must look like.

The server decodes a frame's request header and body, then calls the handler module
of its api key as ``handle(state, ctx, request)``:

* ``state`` is the :class:`streamcore.broker.state.BrokerState` every connection
  shares (topics, logs, groups, offsets, producers, metrics);
* ``ctx`` is a :class:`RequestContext`: the request header and who sent it;
* ``request`` is the decoded body, an instance of the module's ``REQUEST`` class.

The handler returns the response object, an awaitable of one (for answers that wait:
appends, long polls, joins), or None when nothing is to be sent (Produce with acks=0).
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from streamcore.broker.state import BrokerState

__all__ = ["Handler", "HandlerModule", "HandlerResult", "RequestContext"]

#: A response object, an awaitable of one (or of None), or None for no response.
HandlerResult = Any | Awaitable[Any] | None


class RequestContext:
    """One request's header fields and its sender, as handlers see them."""

    __slots__ = (
        "api_key",
        "api_version",
        "client_host",
        "client_id",
        "correlation_id",
        "peer",
        "principal",
        "throttle_ms",
    )

    def __init__(
        self,
        api_key: int,
        api_version: int,
        correlation_id: int,
        client_id: str | None,
        peer: str,
        principal: str = "User:ANONYMOUS",
    ) -> None:
        #: The request's api key (``streamcore.protocol.headers.ApiKey``).
        self.api_key = api_key
        #: Version of the request (and of the response to build); within the module's range.
        self.api_version = api_version
        self.correlation_id = correlation_id
        #: The client.id the client sent ("" when it sent null).
        self.client_id = client_id or ""
        #: ``host:port`` of the client's socket ("?" when unknown).
        self.peer = peer
        #: ``/host`` as Kafka shows a member's host in DescribeGroups.
        self.client_host = "/" + peer.rsplit(":", 1)[0]
        #: Who sent it, as Kafka names principals: ``User:<name>`` once the connection
        #: authenticated (SASL username, TLS certificate subject), ``User:ANONYMOUS`` on
        #: an unauthenticated listener. Authorizers decide on it.
        self.principal = principal
        #: Quota throttle time of this request, ms, set by the server (produce bytes) or a
        #: handler (fetch bytes): the response carries it and the connection reads nothing
        #: more for that long (``streamcore.broker.quotas``).
        self.throttle_ms = 0

    def __repr__(self) -> str:
        return (
            f"<RequestContext api {self.api_key} v{self.api_version} "
            f"correlation {self.correlation_id} from {self.peer}>"
        )


class Handler(Protocol):
    """``handle(state, ctx, request)`` of a handler module."""

    def __call__(self, state: BrokerState, ctx: RequestContext, request: Any, /) -> HandlerResult: ...


class HandlerModule(Protocol):
    """A module under ``streamcore.broker.handlers``: one Kafka api key each."""

    #: The api key this module answers.
    API_KEY: int
    #: The generated request class its bodies decode to.
    REQUEST: Any
    #: The advertised version range (set by ``streamcore.broker.handlers`` from ADVERTISED).
    MIN_VERSION: int
    MAX_VERSION: int
    handle: Handler
