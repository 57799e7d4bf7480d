"""``trainability ls [--status S] [--tag T ...] [--sweep ID] [--since TIME]``: experiments,
newest first, one line each (id, status, created, name, tags, verdict); ``--json`` prints the
listing's entries as JSON lines. Wired in by ``add_commands`` of ``trainability_client/cli.py``.
"""

from __future__ import annotations

import argparse
import itertools
import json
from collections.abc import Sequence
from typing import Any

from trainability_client.cli import _client
from trainability_client.errors import EXIT_OK

STATUSES = ("queued", "running", "succeeded", "failed", "cancelled", "timed_out")
HEADERS = ("id", "status", "created", "name", "tags", "verdict")


def row(item: dict[str, Any]) -> list[str]:
    created = str(item.get("created_at") or "")[:19].replace("T", " ")
    return [str(item["id"]), str(item["status"]), created, str(item.get("name") or "-"),
            ",".join(item.get("tags") or []) or "-", str(item.get("headline") or "-")]


def format_rows(items: Sequence[dict[str, Any]]) -> str:
    """A plain-text table; the verdict (last column) is not padded."""
    cells = [list(HEADERS), *(row(item) for item in items)]
    widths = [max(len(r[i]) for r in cells) for i in range(len(HEADERS) - 1)]
    return "\n".join("  ".join([*(c.ljust(w) for c, w in zip(r, widths, strict=False)), r[-1]])
                     for r in cells)


def cmd_ls(args: argparse.Namespace) -> int:
    with _client(args) as client:
        found = client.list_experiments(status=args.status, tag=args.tag, sweep=args.sweep,
                                        created_after=args.since,
                                        page_size=min(args.limit, 100))
        items = list(itertools.islice(found, args.limit))
    if args.json:
        for item in items:
            print(json.dumps(item))
    elif items:
        print(format_rows(items))
    return EXIT_OK


def add_ls(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("ls", parents=[common], help="list experiments, newest first")
    p.add_argument("--status", choices=STATUSES, default=None)
    p.add_argument("--tag", action="append", default=None,
                   help="only experiments with this tag (repeatable: with every one)")
    p.add_argument("--sweep", default=None, help="only the experiments of this sweep")
    p.add_argument("--since", default=None, metavar="TIME",
                   help="only experiments created after this ISO 8601 time (UTC if no offset)")
    p.add_argument("--limit", type=int, default=20, help="at most this many (default 20)")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.set_defaults(func=cmd_ls)
