"""JSON paths of pydantic error locations, without the tagged-union steps (torch-free).

Pydantic puts the chosen member of a tagged union into ``loc`` (``data.spirals.arms``,
``model.family.depth``). Which parts are tags is found by walking the document: the reading
that resolves the most parts to real keys wins. Shared by the API's error handler and sweeps.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

_ABSENT = object()


def json_path(loc: Sequence[str | int], doc: Any) -> list[str | int]:
    """``loc`` with the union-tag parts removed, as read against ``doc``."""
    return _best_path(list(loc), doc)[0]


def _best_path(parts: list[str | int], node: Any) -> tuple[list[str | int], float]:
    """(path, cost): cost 1 per part missing from a container, 2 per part under a scalar."""
    if not parts:
        return [], 0.0
    head, rest = parts[0], parts[1:]
    if isinstance(node, dict) and head in node:
        child, cost = node[head], 0.0
    elif isinstance(node, list) and isinstance(head, int) and 0 <= head < len(node):
        child, cost = node[head], 0.0
    else:
        child, cost = _ABSENT, 1.0 if isinstance(node, dict | list) else 2.0
    sub, sub_cost = _best_path(rest, child)
    best = ([head, *sub], cost + sub_cost)
    if isinstance(node, dict) and isinstance(head, str) and rest:
        skipped, skip_cost = _best_path(rest, node)  # read ``head`` as a union tag
        if skip_cost + 0.5 < best[1]:
            best = (skipped, skip_cost + 0.5)
    return best
