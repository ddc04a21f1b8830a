"""``streamcore acls add|list|remove``: manage a broker's ACLs (CreateAcls, DescribeAcls, DeleteAcls).

Works against any Kafka-protocol broker with an authorizer (streamcore with
``authorizer = "acl"``, Apache Kafka with ``authorizer.class.name``); one without answers
SECURITY_DISABLED. The sender needs ALTER on the cluster to add or remove ACLs and
DESCRIBE on it to list them (a super user has both). Requests go through the public
client's connection (``AdminClient.cluster``), so ``--command-config`` security settings
apply as in every tool.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from typing import Any

from streamcore.tools._common import (
    Subparsers,
    UsageError,
    action_parser,
    client_settings,
    format_table,
    run_tool,
    tool_parser,
)

__all__ = ["add_acls_command", "parse_operation"]

_EPILOG = """\
examples:
  streamcore acls add --allow User:alice --operation WRITE --topic orders
  streamcore acls add --allow User:etl --operation READ --operation DESCRIBE --topic raw. --prefixed
  streamcore acls add --allow User:etl --operation READ --group etl-
  streamcore acls add --deny User:mallory --operation ALL --topic '*' --host 10.0.0.7
  streamcore acls add --allow User:ops --operation ALTER --cluster
  streamcore acls list --topic orders --pattern-type match
  streamcore acls remove --allow User:alice --operation WRITE --topic orders
"""


def parse_operation(text: str) -> Any:
    """An AclOperation from Kafka's spellings (``Read``, ``READ``, ``DescribeConfigs``,
    ``describe-configs``, ``IDEMPOTENT_WRITE``); UsageError otherwise."""
    from streamcore.broker.authorizer import AclOperation

    key = text.replace("-", "").replace("_", "").upper()
    for op in AclOperation:
        if op.name.replace("_", "") == key and op not in (AclOperation.UNKNOWN, AclOperation.ANY):
            return op
    names = ", ".join(o.name for o in AclOperation if o > AclOperation.ANY)
    raise UsageError(f"unknown operation {text!r}; one of {names}")


def _principal(text: str) -> str:
    kind, sep, name = text.partition(":")
    if not sep or not kind or not name:
        raise argparse.ArgumentTypeError(f"principal {text!r} is not Type:name, such as User:alice")
    return text


def add_acls_command(subparsers: Subparsers) -> None:
    """Add ``streamcore acls`` and its actions."""
    p = tool_parser(
        subparsers,
        "acls",
        help="add, list and remove ACLs (access control lists)",
        description="Manage the ACLs of a broker that has an authorizer (Kafka's ACL model).",
        epilog=_EPILOG,
    )
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)

    a = _action(
        actions, "add", "add ACLs: each principal x operation x resource", _EPILOG.splitlines()[1].strip()
    )
    _principal_options(a, required=True)
    a.add_argument(
        "--operation",
        action="append",
        required=True,
        metavar="OP",
        help="READ, WRITE, CREATE, DELETE, ALTER, DESCRIBE, CLUSTER_ACTION, DESCRIBE_CONFIGS, "
        "ALTER_CONFIGS, IDEMPOTENT_WRITE, ALL, ... (repeatable)",
    )
    _resource_options(a)
    a.add_argument(
        "--prefixed", action="store_true", help="the names are prefixes (PREFIXED), not exact names"
    )
    a.add_argument(
        "--host", default="*", help="the client address the ACL applies to: an IP or * (the default)"
    )
    a.set_defaults(tool_handler=run_add)

    a = _action(actions, "list", "print the ACLs (all, or those the filters select)", "streamcore acls list")
    a.add_argument("--principal", type=_principal, help="only ACLs of this principal")
    _resource_options(a)
    _filter_options(a)
    a.set_defaults(tool_handler=run_list)

    a = _action(
        actions,
        "remove",
        "remove the ACLs the filters select (name at least a principal or a resource)",
        "streamcore acls remove --allow User:alice --operation WRITE --topic orders",
    )
    _principal_options(a, required=False)
    a.add_argument("--principal", type=_principal, help="ACLs of this principal, ALLOW or DENY")
    a.add_argument("--operation", action="append", metavar="OP", help="only this operation (repeatable)")
    _resource_options(a)
    _filter_options(a)
    a.set_defaults(tool_handler=run_remove)

    p.set_defaults(handler=_dispatch)


def _action(actions: Subparsers, name: str, help: str, example: str) -> argparse.ArgumentParser:
    return action_parser(actions, name, help, example, label="example")


def _principal_options(a: argparse.ArgumentParser, *, required: bool) -> None:
    who = a.add_argument_group("principals" + (" (at least one)" if required else ""))
    who.add_argument(
        "--allow",
        action="append",
        default=[],
        type=_principal,
        metavar="PRINCIPAL",
        help="User:NAME (repeatable)",
    )
    who.add_argument(
        "--deny",
        action="append",
        default=[],
        type=_principal,
        metavar="PRINCIPAL",
        help="User:NAME (repeatable)",
    )


def _resource_options(a: argparse.ArgumentParser) -> None:
    res = a.add_argument_group("resources")
    res.add_argument(
        "--topic", action="append", default=[], metavar="TOPIC", help="a topic (* = every topic)"
    )
    res.add_argument("--group", action="append", default=[], metavar="GROUP", help="a consumer group")
    res.add_argument(
        "--transactional-id", action="append", default=[], metavar="ID", help="a transactional id"
    )
    res.add_argument("--cluster", action="store_true", help="the cluster (kafka-cluster)")


def _filter_options(a: argparse.ArgumentParser) -> None:
    a.add_argument(
        "--pattern-type",
        choices=("any", "match", "literal", "prefixed"),
        default=None,
        help="literal or prefixed patterns only; any: exact name, either pattern (the default); "
        "match: every ACL that applies to the named resource (wildcard and prefixes included)",
    )
    a.add_argument("--prefixed", action="store_true", help="short for --pattern-type prefixed")
    a.add_argument("--host", default=None, help="only ACLs for this host (an IP or *)")


def _dispatch(args: argparse.Namespace) -> int:
    return run_tool("acls", args.tool_handler, args)


def _resources(args: argparse.Namespace) -> list[tuple[Any, str]]:
    from streamcore.broker.authorizer import CLUSTER_NAME, ResourceType

    out = [(ResourceType.TOPIC, t) for t in args.topic]
    out += [(ResourceType.GROUP, g) for g in args.group]
    out += [(ResourceType.TRANSACTIONAL_ID, t) for t in args.transactional_id]
    if args.cluster:
        out.append((ResourceType.CLUSTER, CLUSTER_NAME))
    for _, name in out:
        if not name:
            raise UsageError("a resource name cannot be empty")
    return out


def _call(args: argparse.Namespace, requests: list[Any]) -> list[Any]:
    """Send ``requests`` to any broker in turn; their responses."""
    import asyncio

    from streamcore.client.admin import AdminClient

    async def run() -> list[Any]:
        async with AdminClient(config=client_settings(args, "admin")) as admin:
            return [await admin.cluster.request_node(None, r) for r in requests]

    return asyncio.run(run())


def _failure(code: int, message: str | None, what: str) -> Exception:
    from streamcore.client.errors import broker_error

    return broker_error(code, f"{what}: {message}" if message else what)


def run_add(args: argparse.Namespace) -> int:
    """Create one ACL per (principal, operation, resource); print each."""
    from streamcore.broker.authorizer import SUPPORTED_OPERATIONS, AclBinding, AclError, AclOperation
    from streamcore.protocol.messages import CreateAclsRequest, CreateAclsRequest_AclCreation

    if not args.allow and not args.deny:
        raise UsageError("name a principal with --allow or --deny")
    resources = _resources(args)
    if not resources:
        raise UsageError("name a resource: --topic, --group, --transactional-id or --cluster")
    ops = [parse_operation(o) for o in args.operation]
    pattern = "PREFIXED" if args.prefixed else "LITERAL"
    bindings = []
    for rtype, name in resources:
        for op in ops:
            if op != AclOperation.ALL and op not in SUPPORTED_OPERATIONS[rtype]:
                valid = ", ".join(o.name for o in (*SUPPORTED_OPERATIONS[rtype], AclOperation.ALL))
                raise UsageError(f"operation {op.name} does not apply to a {rtype.name}; use one of {valid}")
            for perm, principals in (("ALLOW", args.allow), ("DENY", args.deny)):
                for principal in principals:
                    try:
                        bindings.append(AclBinding.of(rtype, name, pattern, principal, args.host, op, perm))
                    except AclError as exc:
                        raise UsageError(exc.message) from None
    request = CreateAclsRequest(
        creations=[
            CreateAclsRequest_AclCreation(
                resource_type=int(b.resource_type),
                resource_name=b.name,
                resource_pattern_type=int(b.pattern_type),
                principal=b.principal,
                host=b.host,
                operation=int(b.operation),
                permission_type=int(b.permission),
            )
            for b in bindings
        ]
    )
    (response,) = _call(args, [request])
    failed = None
    for b, result in zip(bindings, response.results, strict=True):
        if result.error_code:
            failed = failed or _failure(result.error_code, result.error_message, f"CreateAcls ({b})")
        else:
            print(f"added: {b}")
    if failed is not None:
        raise failed
    return 0


def _filter(
    args: argparse.Namespace, resource: tuple[Any, str] | None, principal: str | None, perm: str, op: Any
) -> Any:
    from streamcore.broker.authorizer import AclBindingFilter, AclError

    pattern = args.pattern_type or ("prefixed" if args.prefixed else "any")
    if args.prefixed and args.pattern_type not in (None, "prefixed"):
        raise UsageError("--prefixed and --pattern-type disagree")
    try:
        return AclBindingFilter.of(
            resource[0] if resource else "ANY",
            resource[1] if resource else None,
            pattern,
            principal,
            args.host,
            op,
            perm,
        )
    except AclError as exc:
        raise UsageError(exc.message) from None


def _filters(args: argparse.Namespace, who: Iterable[tuple[str | None, str]], ops: list[Any]) -> list[Any]:
    resources: list[tuple[Any, str] | None] = list(_resources(args)) or [None]
    return [_filter(args, r, p, perm, op) for r in resources for p, perm in who for op in ops]


def _filter_request(f: Any, cls: Any) -> Any:
    return cls(
        resource_type_filter=int(f.resource_type),
        resource_name_filter=f.name,
        pattern_type_filter=int(f.pattern_type),
        principal_filter=f.principal,
        host_filter=f.host,
        operation=int(f.operation),
        permission_type=int(f.permission),
    )


def _binding_row(rtype: int, name: str, pattern: int, principal: str, host: str, op: int, perm: int) -> tuple:
    from streamcore.broker.authorizer import AclOperation, AclPermissionType, PatternType, ResourceType

    def label(kind: Any, code: int) -> str:
        try:
            return str(kind(code).name)
        except ValueError:
            return str(code)

    return (
        principal,
        host,
        label(AclOperation, op),
        label(AclPermissionType, perm),
        label(ResourceType, rtype),
        label(PatternType, pattern),
        name,
    )


_HEADER = ["PRINCIPAL", "HOST", "OPERATION", "PERMISSION", "RESOURCE-TYPE", "PATTERN", "NAME"]


def run_list(args: argparse.Namespace) -> int:
    """Print the selected ACLs as a table sorted by resource, then principal."""
    from streamcore.protocol.messages import DescribeAclsRequest

    filters = _filters(args, [(args.principal, "ANY")], ["ANY"])
    responses = _call(args, [_filter_request(f, DescribeAclsRequest) for f in filters])
    rows = set()
    for response in responses:
        if response.error_code:
            raise _failure(response.error_code, response.error_message, "DescribeAcls")
        for res in response.resources:
            for a in res.acls:
                rows.add(
                    _binding_row(
                        res.resource_type,
                        res.resource_name,
                        res.pattern_type,
                        a.principal,
                        a.host,
                        a.operation,
                        a.permission_type,
                    )
                )
    ordered = sorted(rows, key=lambda r: (r[4], r[6], r[5], r[0], r[2], r[3], r[1]))
    print(format_table(_HEADER, ordered))
    return 0


def run_remove(args: argparse.Namespace) -> int:
    """Delete the selected ACLs; print each one removed."""
    from streamcore.protocol.messages import DeleteAclsRequest, DeleteAclsRequest_DeleteAclsFilter

    who: list[tuple[str | None, str]] = [(p, "ALLOW") for p in args.allow] + [(p, "DENY") for p in args.deny]
    if args.principal:
        who.append((args.principal, "ANY"))
    if not who and not _resources(args):
        raise UsageError("name what to remove: a principal (--allow, --deny, --principal) or a resource")
    ops = [parse_operation(o) for o in args.operation] if args.operation else ["ANY"]
    filters = _filters(args, who or [(None, "ANY")], ops)
    request = DeleteAclsRequest(
        filters=[_filter_request(f, DeleteAclsRequest_DeleteAclsFilter) for f in filters]
    )
    (response,) = _call(args, [request])
    removed = set()
    for result in response.filter_results:
        if result.error_code:
            raise _failure(result.error_code, result.error_message, "DeleteAcls")
        for a in result.matching_acls:
            removed.add(
                _binding_row(
                    a.resource_type,
                    a.resource_name,
                    a.pattern_type,
                    a.principal,
                    a.host,
                    a.operation,
                    a.permission_type,
                )
            )
    for row in sorted(removed, key=lambda r: (r[4], r[6], r[5], r[0], r[2], r[3], r[1])):
        principal, host, op, perm, rtype, pattern, name = row
        print(f"removed: {perm} {principal} from {host} {op} on {rtype}:{pattern}:{name}")
    return 0
