"""What AlterConfigs and IncrementalAlterConfigs share: resource types and the broker's answer.

Resource type 2 is a topic, 4 a broker, 8 a broker logger (Kafka's ConfigResource.Type).
streamcore's broker settings come from its config file, environment and command line
when it starts; none can change at run time, so every change to a broker resource is
refused with INVALID_REQUEST, the answer Apache Kafka gives for a config it cannot update
dynamically (such as log.dirs; tests/interop/test_admin_interop.py compares the two).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from streamcore.errors import ErrorCode

if TYPE_CHECKING:
    from streamcore.broker.state import BrokerState

TOPIC, BROKER, BROKER_LOGGER = 2, 4, 8


def broker_change_error(state: BrokerState, resource_name: str, names: list[str]) -> tuple[int, str]:
    """(error code, message) for a request to change configs ``names`` of broker ``resource_name``."""
    if resource_name not in ("", str(state.node_id)):
        return (
            ErrorCode.INVALID_REQUEST.code,
            f"this is broker {state.node_id}, not {resource_name!r} (streamcore is a single broker)",
        )
    listed = ", ".join(sorted(names)) or "(none)"
    # Kafka answers INVALID_REQUEST for a config it cannot update dynamically (log.dirs).
    return (
        ErrorCode.INVALID_REQUEST.code,
        f"cannot update these broker configs at run time: {listed}; streamcore's broker settings are "
        "static (config file, STREAMCORE_* environment, command line) and apply at the next start",
    )


def unsupported_type(resource_type: int) -> tuple[int, str]:
    """(error code, message) for a resource type other than topic and broker."""
    return (
        ErrorCode.INVALID_REQUEST.code,
        f"resource type {resource_type} cannot be altered here (2 = topic, 4 = broker)",
    )
