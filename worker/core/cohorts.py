"""Cohorts: sweep points one worker trains together as one batched model (torch-free).

Points whose specs differ only in ``COHORT_FIELDS`` (the training seed, the learning rate, the
momentum, the init gain) have the same layers, shapes, batch and step count, so their models
stack into one batched model (``worker/compute/cohort.py``) the way ``training.seeds`` does: a
tiny model is dispatch-bound, and K of them stepped at once pay the per-op overhead once.
Each point keeps its own job, record, progress, cancellation and result; only the training
is shared. The API groups the points of a sweep (``cohorts``) and hands every job of a cohort
the cohort's job ids; whichever of those tasks a worker takes first claims the others
(``worker/runtime/cohort_attempt.py``), and the rest find their jobs taken.

Not grouped: points that train several seeds themselves (``training.seeds``: they batch
already), and points with their own ``training.time_limit_s`` (a cohort's step is slower than
one point's, so the same seconds would buy fewer steps). A cohort needs K times one point's
memory, so it is capped where K points would pass ``max_memory_bytes``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Final

from worker.core.spec import ExperimentSpec

#: The fields points of one cohort may differ in (dotted paths of the spec).
COHORT_FIELDS: Final = ("training.seed", "optimizer.lr", "optimizer.momentum", "init.gain")


def cohort_key(spec: ExperimentSpec) -> str | None:
    """What points of one cohort share: the spec without its name and ``COHORT_FIELDS``
    (None: the point trains alone)."""
    if spec.training.seeds or spec.training.time_limit_s is not None:
        return None
    doc = json.loads(spec.model_dump_json())
    doc.pop("name", None)
    for path in COHORT_FIELDS:
        section, name = path.split(".")
        doc[section].pop(name, None)
    return json.dumps(doc, sort_keys=True, separators=(",", ":"))


def cohorts(specs: Sequence[ExperimentSpec], *, max_size: int,
            memory_bytes: Sequence[int] = (), max_memory_bytes: int | None = None
            ) -> list[list[int]]:
    """The indices of ``specs`` in cohorts of at most ``max_size`` (and, given each point's
    memory estimate, at most ``max_memory_bytes`` together), in order of first appearance;
    a point that trains alone is a cohort of one."""
    groups: dict[str, list[int]] = {}
    alone: list[list[int]] = []
    for i, spec in enumerate(specs):
        key = cohort_key(spec)
        if key is None or max_size <= 1:
            alone.append([i])
        else:
            groups.setdefault(key, []).append(i)
    out = list(alone)
    for members in groups.values():
        size = max_size
        if memory_bytes and max_memory_bytes is not None:
            size = min(size, max(1, max_memory_bytes // max(1, memory_bytes[members[0]])))
        out.extend(members[at:at + size] for at in range(0, len(members), size))
    return sorted(out, key=lambda c: c[0])
