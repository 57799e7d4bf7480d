"""The commands other installed parts add to ``trainability`` (the server: api, worker, run).

The client never imports the server: an installed part registers its commands as entry points
in ``COMMANDS_GROUP``; where one cannot be imported (only the client extra is installed), a
stand-in says in one line which extra to install instead of a traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.metadata
import sys
from collections.abc import Collection
from typing import Any

from trainability_client.errors import EXIT_USAGE

#: Entry points through which an installed part adds commands to ``trainability``: each is
#: named after its command and loads to ``add(subparsers)``, which adds that command with a
#: ``func(args) -> exit status`` default. The server registers ``api``, ``worker`` and ``run``.
COMMANDS_GROUP = "trainability.commands"
#: The extras (pyproject.toml) each server command needs: what to install when it is missing.
SERVER_EXTRAS = {"api": "api", "worker": "worker", "run": "api,worker"}


@dataclasses.dataclass(frozen=True)
class NotInstalled:
    """Stands in for a command whose part cannot be imported here: one line, not a traceback."""

    command: str
    reason: str

    @property
    def requirement(self) -> str:
        return f"trainability[{SERVER_EXTRAS.get(self.command, 'api,worker')}]"

    def __call__(self, args: argparse.Namespace) -> int:
        print(f"trainability: `{self.command}` is a server command and the server is not "
              f"installed here ({self.reason}); install it with: pip install "
              f"'{self.requirement}'", file=sys.stderr)
        return EXIT_USAGE


def add_installed_commands(sub: Any, *, skip: Collection[str] = ()) -> None:
    """Add the commands that installed parts register under ``COMMANDS_GROUP`` (not those
    named in ``skip``: the client's own)."""
    seen = set(skip)
    for entry in importlib.metadata.entry_points(group=COMMANDS_GROUP):
        if entry.name in seen:
            continue
        seen.add(entry.name)
        try:
            add = entry.load()
        except ModuleNotFoundError as exc:  # that part's dependencies are not installed
            missing = NotInstalled(entry.name, str(exc))
            placeholder = sub.add_parser(entry.name, add_help=False,
                                         help=f"not installed: pip install '{missing.requirement}'")
            placeholder.set_defaults(func=missing)
        else:
            add(sub)
