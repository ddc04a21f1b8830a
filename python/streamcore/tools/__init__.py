"""Kafka-style command-line tools that work against any Kafka-protocol broker.

``streamcore topics``, ``produce``, ``consume`` and ``groups`` use the public
client (:mod:`streamcore.client`) only, so they behave the same against streamcore
and Apache Kafka. ``streamcore log`` (:mod:`streamcore.tools.log`) reads a data
directory's files directly, without a broker; ``streamcore users``
(:mod:`streamcore.tools.users`) manages SCRAM users offline in a data directory or
online through a broker; ``streamcore quotas`` (:mod:`streamcore.tools.quotas`) sets and
shows client quotas through a broker. Each module has one ``add_<name>_command(subparsers)``;
:data:`TOOLS` lists them for ``streamcore.cli``. The options, output formats and
exit statuses scripts may rely on are in :mod:`streamcore.tools._common` and
docs/cli.md.
"""

from __future__ import annotations

from typing import Any

from streamcore.tools.acls import add_acls_command
from streamcore.tools.consume import add_consume_command
from streamcore.tools.groups import add_groups_command
from streamcore.tools.produce import add_produce_command
from streamcore.tools.quotas import add_quotas_command
from streamcore.tools.topics import add_topics_command
from streamcore.tools.users import add_users_command

__all__ = ["TOOLS"]


def add_log_command(subparsers: Any) -> None:
    """Add ``streamcore log``; imported on use, so ``python -m streamcore.tools.log`` runs it
    without the package having imported the module first."""
    from streamcore.tools.log import register

    register(subparsers)


def add_search_command(subparsers: Any) -> None:
    """Add ``streamcore search`` (offline over a data directory; docs/search.md)."""
    from streamcore.tools.search import add_search_command as add

    add(subparsers)


#: The client tools' subcommand adders, in help order.
TOOLS = [
    add_topics_command,
    add_produce_command,
    add_consume_command,
    add_groups_command,
    add_log_command,
    add_users_command,
    add_acls_command,
    add_quotas_command,
    add_search_command,
]
