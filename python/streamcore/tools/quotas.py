"""``streamcore quotas alter|describe``: client quotas of a broker, as ``kafka-configs`` sets them.

Works online only, through ``--bootstrap`` (and ``--command-config`` for a secured
listener), with AlterClientQuotas and DescribeClientQuotas, so it works against
streamcore and Apache Kafka alike. Entities are named as kafka-configs names them
(``--entity-type users --entity-name alice``, ``--entity-default``, the types ``users``,
``clients`` and ``ips``; several pairs name a user together with a client-id) or with the
shorter ``--user NAME``, ``--user-default``, ``--client-id NAME``, ``--client-default``,
``--ip ADDRESS``, ``--ip-default``.
"""

from __future__ import annotations

import argparse
import asyncio
import math
from typing import Any

from streamcore.tools._common import (
    Subparsers,
    ToolError,
    UsageError,
    add_connection_options,
    client_settings,
    format_table,
    run_tool,
    tool_parser,
)

__all__ = ["add_quotas_command"]

_EPILOG = """\
examples:
  streamcore quotas alter --entity-type users --entity-name alice --add-config producer_byte_rate=1048576
  streamcore quotas alter --user alice --client-id app --add-config consumer_byte_rate=2097152,request_percentage=50
  streamcore quotas alter --client-default --add-config producer_byte_rate=524288
  streamcore quotas alter --user alice --delete-config producer_byte_rate
  streamcore quotas alter --ip 10.0.0.7 --add-config connection_creation_rate=20
  streamcore quotas describe --entity-type users
  streamcore quotas describe --user alice --client-id app
  streamcore quotas describe
"""

# kafka-configs' entity types -> the protocol's.
_ENTITY_TYPES = {"users": "user", "clients": "client-id", "ips": "ip"}
_SHORT = {"--user": "user", "--client-id": "client-id", "--ip": "ip"}
_SHORT_DEFAULT = {"--user-default": "user", "--client-default": "client-id", "--ip-default": "ip"}


class _Entity(argparse.Action):
    """Collects entity options in the order given: ``args.entity`` gets (type or None,
    name or None) for ``--entity-type`` / ``--entity-name`` / ``--entity-default``, and
    (type, name) for the short forms."""

    def __call__(
        self, parser: Any, namespace: argparse.Namespace, values: Any, option: str | None = None
    ) -> None:
        items = list(getattr(namespace, "entity", None) or [])
        if option == "--entity-type":
            items.append(("type", values))
        elif option == "--entity-name":
            items.append(("name", values))
        elif option == "--entity-default":
            items.append(("name", None))
        elif option in _SHORT:
            items.append(("pair", (_SHORT[option], values)))
        elif option in _SHORT_DEFAULT:
            items.append(("pair", (_SHORT_DEFAULT[option], None)))
        namespace.entity = items


def _entity_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("entity (repeat to name a user together with a client-id)")
    g.add_argument(
        "--entity-type",
        action=_Entity,
        choices=sorted(_ENTITY_TYPES),
        help="users, clients or ips, as kafka-configs takes them",
    )
    g.add_argument("--entity-name", action=_Entity, metavar="NAME", help="the name of the entity before it")
    g.add_argument(
        "--entity-default", action=_Entity, nargs=0, help="the default entity of the type before it"
    )
    for option, kind in _SHORT.items():
        g.add_argument(option, action=_Entity, metavar="NAME", help=f"the {kind} NAME")
    for option, kind in _SHORT_DEFAULT.items():
        g.add_argument(option, action=_Entity, nargs=0, help=f"the default {kind} entity")


def add_quotas_command(subparsers: Subparsers) -> None:
    """Add ``streamcore quotas`` and its actions."""
    p = tool_parser(
        subparsers,
        "quotas",
        help="set and show client quotas (byte rates, request percentage, connection rate)",
        description="Set and show the client quotas of any Kafka-protocol broker (AlterClientQuotas, "
        "DescribeClientQuotas), as kafka-configs --entity-type users/clients/ips does.",
        epilog=_EPILOG,
    )
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)

    a = tool_parser(
        actions,
        "alter",
        help="set or delete quotas of one entity",
        description="Set (--add-config) or delete (--delete-config) quotas of one entity.",
        epilog="examples:\n  streamcore quotas alter --entity-type users --entity-name alice "
        "--add-config producer_byte_rate=1048576\n"
        "  streamcore quotas alter --user alice --delete-config producer_byte_rate\n",
    )
    _entity_options(a)
    a.add_argument(
        "--add-config",
        metavar="KEY=VALUE[,KEY=VALUE]",
        action="append",
        default=[],
        help="producer_byte_rate, consumer_byte_rate, request_percentage, controller_mutation_rate "
        "(users and clients) or connection_creation_rate (ips)",
    )
    a.add_argument(
        "--delete-config", metavar="KEY[,KEY]", action="append", default=[], help="quota keys to remove"
    )
    add_connection_options(a)
    a.set_defaults(tool_handler=run_alter)

    d = tool_parser(
        actions,
        "describe",
        help="show quotas",
        description="Show the quotas of the entities named (an entity type without a name: every "
        "entity of that type), or of every entity.",
        epilog="examples:\n  streamcore quotas describe --entity-type users\n"
        "  streamcore quotas describe --user alice --client-id app\n  streamcore quotas describe\n",
    )
    _entity_options(d)
    add_connection_options(d)
    d.set_defaults(tool_handler=run_describe)

    p.set_defaults(handler=_dispatch)


def _dispatch(args: argparse.Namespace) -> int:
    return run_tool("quotas", args.tool_handler, args)


def _entity(args: argparse.Namespace, *, names_required: bool) -> list[tuple[str, str | None, bool]]:
    """(protocol type, name or None for the default, named) in order; ``named`` False is an
    ``--entity-type`` without a name (describe: every entity of the type)."""
    out: list[tuple[str, str | None, bool]] = []
    pending: list[str] = []
    names: list[str | None] = []
    for kind, value in getattr(args, "entity", None) or []:
        if kind == "type":
            pending.append(_ENTITY_TYPES[value])
        elif kind == "name":
            names.append(value)
        else:
            out.append((value[0], value[1], True))
    if len(names) > len(pending):
        raise UsageError("--entity-name or --entity-default without an --entity-type before it")
    if names_required and len(names) < len(pending):
        raise UsageError("every --entity-type needs an --entity-name or --entity-default")
    for i, kind in enumerate(pending):
        out.append((kind, names[i], True) if i < len(names) else (kind, None, False))
    kinds = [kind for kind, _, _ in out]
    for kind in kinds:
        if kinds.count(kind) > 1:
            raise UsageError(f"the {kind} entity is named twice")
    return out


def _number(key: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise UsageError(f"--add-config: {key}={text!r} is not a number")
    return value


def _request(args: argparse.Namespace, request: Any) -> Any:
    """Send ``request`` to any broker of ``--bootstrap``; returns the response."""
    from streamcore.client.admin import AdminClient

    settings = client_settings(args, "admin")

    async def call() -> Any:
        async with AdminClient(config=settings) as admin:
            return await admin.cluster.request_node(None, request)

    return asyncio.run(call())


def _label(entity: list[tuple[str, str | None]]) -> str:
    return ", ".join(f"{kind}={'<default>' if name is None else name}" for kind, name in entity)


def run_alter(args: argparse.Namespace) -> int:
    """AlterClientQuotas for one entity; prints one confirmation line."""
    from streamcore.errors import ErrorCode
    from streamcore.protocol.messages import (
        AlterClientQuotasRequest,
        AlterClientQuotasRequest_EntityData,
        AlterClientQuotasRequest_EntryData,
        AlterClientQuotasRequest_OpData,
    )

    entity = [(kind, name) for kind, name, _ in _entity(args, names_required=True)]
    if not entity:
        raise UsageError("name an entity (--entity-type users --entity-name NAME, --user NAME, ...)")
    ops: dict[str, AlterClientQuotasRequest_OpData] = {}
    for text in args.add_config:
        for item in (part.strip() for part in text.split(",")):
            if not item:
                continue
            key, sep, value = item.partition("=")
            if not sep or not key.strip():
                raise UsageError(f"--add-config: expected KEY=VALUE, got {item!r}")
            key = key.strip()
            ops[key] = AlterClientQuotasRequest_OpData(
                key=key, value=_number(key, value.strip()), remove=False
            )
    for text in args.delete_config:
        for key in (part.strip() for part in text.split(",")):
            if key:
                if key in ops:
                    raise UsageError(f"{key} is both added and deleted")
                ops[key] = AlterClientQuotasRequest_OpData(key=key, value=0.0, remove=True)
    if not ops:
        raise UsageError("give --add-config KEY=VALUE or --delete-config KEY")
    request = AlterClientQuotasRequest(
        entries=[
            AlterClientQuotasRequest_EntryData(
                entity=[AlterClientQuotasRequest_EntityData(entity_type=k, entity_name=n) for k, n in entity],
                ops=list(ops.values()),
            )
        ],
        validate_only=False,
    )
    response = _request(args, request)
    for entry in response.entries:
        if entry.error_code:
            name = ErrorCode.from_code(entry.error_code).name
            raise ToolError(f"{_label(entity)}: {name}: {entry.error_message or ''}".rstrip(": "))
    print(f"Completed updating quotas of {_label(entity)}.")
    return 0


def _format_value(value: float) -> str:
    return str(int(value)) if value.is_integer() and abs(value) < 2**63 else repr(value)


def run_describe(args: argparse.Namespace) -> int:
    """One row per entity and quota key: USER CLIENT-ID IP QUOTA VALUE (``<default>`` for a
    default entity, ``-`` where the entity has no such part)."""
    from streamcore.errors import ErrorCode
    from streamcore.protocol.messages import (
        DescribeClientQuotasRequest,
        DescribeClientQuotasRequest_ComponentData,
    )

    entity = _entity(args, names_required=False)
    components = [
        DescribeClientQuotasRequest_ComponentData(
            entity_type=kind,
            match_type=(0 if name is not None else 1) if named else 2,
            match=name if named else None,
        )
        for kind, name, named in entity
    ]
    # As kafka-configs: the entities of exactly the named types (a user's quota, not also
    # those of the user with each client-id); nothing named: every quota.
    response = _request(args, DescribeClientQuotasRequest(components=components, strict=bool(components)))
    if response.error_code:
        name = ErrorCode.from_code(response.error_code).name
        raise ToolError(f"{name}: {response.error_message or 'describing the quotas failed'}")
    rows = []
    for entry in response.entries or []:
        parts = {
            e.entity_type: ("<default>" if e.entity_name is None else e.entity_name) for e in entry.entity
        }
        for value in sorted(entry.values, key=lambda v: v.key):
            rows.append(
                (
                    parts.get("user"),
                    parts.get("client-id"),
                    parts.get("ip"),
                    value.key,
                    _format_value(value.value),
                )
            )
    rows.sort(key=lambda r: tuple("" if c is None else str(c) for c in r))
    print(format_table(["USER", "CLIENT-ID", "IP", "QUOTA", "VALUE"], rows))
    return 0
