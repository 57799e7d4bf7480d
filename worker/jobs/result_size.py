"""A result that fits ``max_result_bytes``: decimated with a note when it is larger, never lost.

The job store calls ``fit_result`` before it writes a result (``RedisJobStore.finish``). A
result within the limit is stored as it is. A larger one (a long run probed often, a wide
model) is cut in steps until it fits, each step recorded in ``result.truncated``:

1. every long list in ``curves`` and in the diagnostic sections is decimated to at most
   ``keep`` evenly spaced entries, the first and the last kept (``keep`` halves from 512 down
   to 2). Lists that belong together (``curves.step`` and ``curves.train_loss``, a section's
   ``probe_steps`` and its ``probes``) have the same length, so they keep the same entries;
2. then diagnostic sections are left out, largest first (``dropped_sections``).

``summary``, ``findings``, ``headline``, ``environment`` and the model echo are never cut:
the verdict and what it rests on survive whatever the size.
"""

from __future__ import annotations

from typing import Any, Final

from worker.core.probe_schedule import evenly_spaced
from worker.core.result import RESULT_PARTS
from worker.jobs import codec

#: Parts that are stored whole, whatever the size.
KEEP_WHOLE: Final = frozenset({"summary", "findings", "headline", "environment", "model",
                               "truncated"})
#: Parts the result model requires: decimated, never dropped.
REQUIRED: Final = frozenset({"summary", "curves", "model", "environment", "findings"})
FIRST_KEEP: Final = 512


def size_of(value: Any) -> int:
    """Bytes of ``value`` as the store writes it (compact JSON, UTF-8)."""
    return len(codec.dumps(value).encode())


def decimate(node: Any, keep: int) -> Any:
    """``node`` with every list longer than ``keep`` cut to ``keep`` evenly spaced entries."""
    if isinstance(node, dict):
        return {key: decimate(value, keep) for key, value in node.items()}
    if isinstance(node, list):
        chosen = node if len(node) <= keep else [node[i] for i in
                                                 evenly_spaced(len(node), keep)]
        return [decimate(item, keep) for item in chosen]
    return node


def _note(limit: int, original: int, keep: int | None, dropped: list[str]) -> dict[str, Any]:
    what = [f"long lists decimated to at most {keep} entries"] if keep else []
    if dropped:
        what.append(f"left out: {', '.join(dropped)}")
    return {
        "max_result_bytes": limit, "original_bytes": original, "lists_kept_at_most": keep,
        "dropped_sections": list(dropped),
        "note": f"the result ({original:,} bytes) was over max_result_bytes ({limit:,}); "
                + "; ".join(what),
    }


def fit_result(result: dict[str, Any], max_bytes: int) -> dict[str, Any]:
    """``result`` if it fits in ``max_bytes``, else a cut copy with ``truncated`` set."""
    original = size_of(result)
    if original <= max_bytes:
        return result
    cuttable = [k for k in result if k not in KEEP_WHOLE]
    keep = FIRST_KEEP
    trimmed = dict(result)
    while keep >= 2:
        trimmed = {k: decimate(v, keep) if k in cuttable else v for k, v in result.items()}
        trimmed["truncated"] = _note(max_bytes, original, keep, [])
        if size_of(trimmed) <= max_bytes:
            return trimmed
        keep //= 2
    keep = 2
    dropped: list[str] = []
    optional = [k for k in cuttable if k not in REQUIRED and k in RESULT_PARTS
                and trimmed.get(k) is not None]
    for name in sorted(optional, key=lambda k: size_of(trimmed[k]), reverse=True):
        trimmed[name] = None
        dropped.append(name)
        trimmed["truncated"] = _note(max_bytes, original, keep, dropped)
        if size_of(trimmed) <= max_bytes:
            break
    return trimmed
