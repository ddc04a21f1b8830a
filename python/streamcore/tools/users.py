"""``streamcore users add|list|delete``: SCRAM users of a broker.

Offline, with ``--data-dir DIR``: the credentials file of a data directory is changed
directly, before the broker starts (the tool takes the directory's lock, so it refuses
while a broker runs there). Online, with ``--bootstrap`` (and ``--command-config`` for a
secured listener): DescribeUserScramCredentials and AlterUserScramCredentials, so it
works against streamcore and Apache Kafka alike. Passwords never reach the broker:
the salted password is computed here, as Kafka's own tools do.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import secrets
import sys
from typing import Any

from streamcore.tools._common import (
    Subparsers,
    ToolError,
    UsageError,
    action_parser,
    add_connection_options,
    client_settings,
    format_table,
    run_tool,
    tool_parser,
)

__all__ = ["add_users_command"]

_MECHANISMS = ("SCRAM-SHA-512", "SCRAM-SHA-256")

_EPILOG = """\
examples:
  streamcore users add alice --password s3cret --mechanism SCRAM-SHA-512 --data-dir /var/lib/streamcore
  streamcore users list --data-dir /var/lib/streamcore
  streamcore users add bob --password-file bob.pw --bootstrap 127.0.0.1:9093 --command-config admin.properties
  streamcore users delete bob --bootstrap 127.0.0.1:9093 --command-config admin.properties
"""


def add_users_command(subparsers: Subparsers) -> None:
    """Add ``streamcore users`` and its actions."""
    p = tool_parser(
        subparsers,
        "users",
        help="add, list and delete SCRAM users (offline in a data directory, or through a broker)",
        description="Manage the SCRAM-SHA-256/512 credentials of a broker's users: offline in a data "
        "directory (--data-dir, before the broker starts) or online through any Kafka-protocol broker "
        "(--bootstrap, AlterUserScramCredentials).",
        epilog=_EPILOG,
    )
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)

    a = _action(
        actions,
        "add",
        "add a user, or set a new password for one",
        "streamcore users add alice --password s3cret --mechanism SCRAM-SHA-512 --data-dir DIR\n"
        "  streamcore users add bob --password-file bob.pw --bootstrap HOST:PORT --command-config admin.properties",
    )
    a.add_argument("name", metavar="NAME")
    secret = a.add_mutually_exclusive_group()
    secret.add_argument("--password", metavar="P", help="the password (visible to other local users in ps)")
    secret.add_argument(
        "--password-file", metavar="FILE", help="read the password from the first line of FILE"
    )
    a.add_argument(
        "--mechanism",
        type=str.upper,
        choices=_MECHANISMS,
        default="SCRAM-SHA-512",
        help="SCRAM mechanism (default SCRAM-SHA-512)",
    )
    a.add_argument("--iterations", type=int, default=4096, metavar="N", help="PBKDF2 iterations, 4096-16384")
    a.set_defaults(tool_handler=run_add)

    a = _action(
        actions,
        "list",
        "print every user with its mechanisms and iteration counts",
        "streamcore users list --data-dir DIR\n  streamcore users list --bootstrap HOST:PORT",
    )
    a.set_defaults(tool_handler=run_list)

    a = _action(
        actions,
        "delete",
        "delete a user's credentials",
        "streamcore users delete alice --data-dir DIR\n"
        "  streamcore users delete bob --mechanism SCRAM-SHA-256 --bootstrap HOST:PORT",
    )
    a.add_argument("name", metavar="NAME")
    a.add_argument(
        "--mechanism",
        type=str.upper,
        choices=_MECHANISMS,
        default=None,
        help="only this mechanism (default: all)",
    )
    a.set_defaults(tool_handler=run_delete)

    p.set_defaults(handler=_dispatch)


def _action(actions: Subparsers, name: str, help: str, examples: str) -> argparse.ArgumentParser:
    a = action_parser(actions, name, help, examples, connects=False)
    a.add_argument(
        "--data-dir",
        metavar="DIR",
        default=None,
        help="change the data directory directly (the broker must not be running on it)",
    )
    add_connection_options(a)
    return a


def _dispatch(args: argparse.Namespace) -> int:
    return run_tool("users", args.tool_handler, args)


# -- offline -----------------------------------------------------------------------------


class _Offline:
    """The credential store of ``--data-dir``, under the directory's lock."""

    def __init__(self, data_dir: str) -> None:
        from streamcore.broker.security.credentials import CredentialStore
        from streamcore.errors import DataDirLockedError, StorageError
        from streamcore.storage.dir_lock import DirLock

        try:
            os.makedirs(data_dir, exist_ok=True)
            self._lock = DirLock(data_dir).acquire()
        except DataDirLockedError as exc:
            raise ToolError(f"{exc}; change users of a running broker with --bootstrap instead") from None
        except OSError as exc:
            raise ToolError(f"data directory {data_dir!r} cannot be used: {exc.strerror or exc}") from None
        try:
            self.store = CredentialStore(data_dir)
        except StorageError as exc:
            self._lock.release()
            raise ToolError(str(exc)) from None

    def __enter__(self) -> _Offline:
        return self

    def __exit__(self, *exc: object) -> None:
        self._lock.release()


# -- online ------------------------------------------------------------------------------


def _request(args: argparse.Namespace, request: Any) -> Any:
    """Send ``request`` to any broker of ``--bootstrap``; returns the response."""
    from streamcore.client.admin import AdminClient

    settings = client_settings(args, "admin")

    async def call() -> Any:
        async with AdminClient(config=settings) as admin:
            return await admin.cluster.request_node(None, request)

    return asyncio.run(call())


def _check(results: Any) -> None:
    from streamcore.errors import ErrorCode

    for r in results:
        if r.error_code:
            raise ToolError(
                f"user {r.user!r}: {ErrorCode.from_code(r.error_code).name}: {r.error_message or ''}".rstrip(
                    ": "
                )
            )


# -- actions -----------------------------------------------------------------------------


def _password(args: argparse.Namespace) -> str:
    if args.password is not None:
        password = args.password
    elif args.password_file is not None:
        try:
            with open(args.password_file, encoding="utf-8") as fh:
                password = fh.readline().rstrip("\r\n")
        except OSError as exc:
            raise UsageError(f"--password-file {args.password_file}: {exc.strerror or exc}") from None
    elif sys.stdin.isatty():
        password = getpass.getpass(f"password for {args.name}: ")
    else:
        raise UsageError("give --password or --password-file (no terminal to ask on)")
    if not password:
        raise UsageError("the password must not be empty")
    return password


def run_add(args: argparse.Namespace) -> int:
    """Set the ``--mechanism`` credentials of a user; prints one confirmation line."""
    from streamcore.broker.security.credentials import MAX_ITERATIONS, SCRAM_MECHANISMS, ScramCredential

    mechanism = SCRAM_MECHANISMS[args.mechanism]
    if not args.name:
        raise UsageError("the user name must not be empty")
    if not mechanism.min_iterations <= args.iterations <= MAX_ITERATIONS:
        raise UsageError(
            f"--iterations must be {mechanism.min_iterations}-{MAX_ITERATIONS}, got {args.iterations}"
        )
    password = _password(args)
    if args.data_dir is not None:
        with _Offline(args.data_dir) as offline:
            credential = ScramCredential.from_password(mechanism, password, iterations=args.iterations)
            try:
                offline.store.apply(upsertions=[(args.name, mechanism.name, credential)])
            except OSError as exc:
                raise ToolError(f"{offline.store.path}: cannot be written: {exc.strerror or exc}") from None
    else:
        from streamcore.protocol.messages import (
            AlterUserScramCredentialsRequest,
            AlterUserScramCredentialsRequest_ScramCredentialUpsertion,
        )

        salt = secrets.token_bytes(32)
        salted = mechanism.salted_password(password.encode("utf-8"), salt, args.iterations)
        upsertion = AlterUserScramCredentialsRequest_ScramCredentialUpsertion(
            name=args.name,
            mechanism=mechanism.type,
            iterations=args.iterations,
            salt=salt,
            salted_password=salted,
        )
        response = _request(args, AlterUserScramCredentialsRequest(deletions=[], upsertions=[upsertion]))
        _check(response.results)
    print(f"set {mechanism.name} credentials of user {args.name} ({args.iterations} iterations)")
    return 0


def _describe(args: argparse.Namespace) -> dict[str, dict[str, int]]:
    """user -> mechanism -> iterations."""
    if args.data_dir is not None:
        with _Offline(args.data_dir) as offline:
            return {
                user: {mech: cred.iterations for mech, cred in mechs.items()}
                for user, mechs in offline.store.users().items()
            }
    from streamcore.broker.security.credentials import mechanism_by_type
    from streamcore.errors import ErrorCode
    from streamcore.protocol.messages import DescribeUserScramCredentialsRequest

    response = _request(args, DescribeUserScramCredentialsRequest(users=None))
    if response.error_code:
        name = ErrorCode.from_code(response.error_code).name
        raise ToolError(f"{name}: {response.error_message or 'describing the users failed'}")
    _check(response.results)
    out: dict[str, dict[str, int]] = {}
    for r in response.results:
        for info in r.credential_infos:
            mechanism = mechanism_by_type(info.mechanism)
            out.setdefault(r.user, {})[mechanism.name if mechanism else str(info.mechanism)] = info.iterations
    return out


def run_list(args: argparse.Namespace) -> int:
    """One line per user and mechanism: USER MECHANISM ITERATIONS, sorted by user."""
    users = _describe(args)
    rows = [(user, mech, it) for user in sorted(users) for mech, it in sorted(users[user].items())]
    print(format_table(["USER", "MECHANISM", "ITERATIONS"], rows))
    return 0


def run_delete(args: argparse.Namespace) -> int:
    """Delete a user's credentials (of ``--mechanism``, or all); unknown user: exit 1."""
    from streamcore.broker.security.credentials import SCRAM_MECHANISMS

    if args.data_dir is not None:
        with _Offline(args.data_dir) as offline:
            have = sorted(offline.store.users().get(args.name, {}))
            gone = [m for m in have if args.mechanism in (None, m)]
            if not gone:
                raise ToolError(_missing(args))
            try:
                offline.store.apply(deletions=[(args.name, m) for m in gone])
            except OSError as exc:
                raise ToolError(f"{offline.store.path}: cannot be written: {exc.strerror or exc}") from None
    else:
        from streamcore.protocol.messages import (
            AlterUserScramCredentialsRequest,
            AlterUserScramCredentialsRequest_ScramCredentialDeletion,
        )

        if args.mechanism is not None:
            gone = [args.mechanism]
        else:
            gone = sorted(_describe_one(args))
            if not gone:
                raise ToolError(_missing(args))
        # One alteration per user per request (Kafka's rule): one request per mechanism.
        for name in gone:
            deletion = AlterUserScramCredentialsRequest_ScramCredentialDeletion(
                name=args.name, mechanism=SCRAM_MECHANISMS[name].type
            )
            response = _request(args, AlterUserScramCredentialsRequest(deletions=[deletion], upsertions=[]))
            _check(response.results)
    print(f"deleted {', '.join(gone)} credentials of user {args.name}")
    return 0


def _describe_one(args: argparse.Namespace) -> dict[str, int]:
    from streamcore.broker.security.credentials import mechanism_by_type
    from streamcore.errors import ErrorCode
    from streamcore.protocol.messages import (
        DescribeUserScramCredentialsRequest,
        DescribeUserScramCredentialsRequest_UserName,
    )

    response = _request(
        args,
        DescribeUserScramCredentialsRequest(
            users=[DescribeUserScramCredentialsRequest_UserName(name=args.name)]
        ),
    )
    if response.error_code:
        raise ToolError(f"{ErrorCode.from_code(response.error_code).name}: {response.error_message or ''}")
    out: dict[str, int] = {}
    for r in response.results:
        if r.error_code == ErrorCode.RESOURCE_NOT_FOUND.code:
            return {}
        _check([r])
        for info in r.credential_infos:
            mechanism = mechanism_by_type(info.mechanism)
            if mechanism is not None:
                out[mechanism.name] = info.iterations
    return out


def _missing(args: argparse.Namespace) -> str:
    what = f"{args.mechanism} credentials" if args.mechanism else "credentials"
    return f"user {args.name!r} has no {what}"
