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

import importlib
from collections.abc import Callable
from typing import Any

__all__ = ["TOOLS"]


def _on_use(module: str, adder: str = "") -> Callable[[Any], None]:
    """The subcommand adder ``adder`` of ``streamcore.tools.<module>``, imported when called.

    Importing this package (``streamcore broker`` does, for the shared ``tool_parser``) then
    costs nothing for the tools; the full parser imports each one as it registers it.
    """
    name = adder or f"add_{module}_command"

    def add(subparsers: Any) -> None:
        getattr(importlib.import_module(f"streamcore.tools.{module}"), name)(subparsers)

    add.__name__ = add.__qualname__ = name
    return add


#: The client tools' subcommand adders, in help order. ``log`` is added by its own
#: ``register``, so that ``python -m streamcore.tools.log`` runs it without the package
#: having imported the module first.
TOOLS = [
    _on_use("topics"),
    _on_use("produce"),
    _on_use("consume"),
    _on_use("groups"),
    _on_use("log", "register"),
    _on_use("users"),
    _on_use("acls"),
    _on_use("quotas"),
    _on_use("search"),
]
