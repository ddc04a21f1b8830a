"""The one-line checks handlers make: nothing to do (one attribute read) without an authorizer."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from streamcore.broker.context import RequestContext
    from streamcore.broker.state import BrokerState

__all__ = ["denied"]


def denied(state: BrokerState, ctx: RequestContext, operation: int, resource_type: int, name: str) -> bool:
    """True when the broker has an authorizer and it refuses the sender of ``ctx``
    ``operation`` on ``resource_type``/``name``; False without an authorizer."""
    authorizer = getattr(state, "authorizer", None)
    return authorizer is not None and not authorizer.allows(ctx, operation, resource_type, name)
