"""When probes run: step 0, every ``every`` steps, the end -- and never more than a budget.

Pure (no torch): the training pipeline runs this schedule and the dry run's memory estimate
counts its snapshots from it. A schedule asking for more probes than ``MAX_PROBES_PER_RUN``
(``diagnostics.every: 1`` over thousands of steps) is decimated to that many, evenly spread
and keeping step 0 and the last step: each probe costs a forward/backward pass and a
snapshot of the weights, and every probe adds to the result's size.
"""

from __future__ import annotations

import math
from typing import Final

#: Probes over a run when ``diagnostics.every`` is not given (plus step 0 and the end).
DEFAULT_PROBES_PER_RUN: Final = 8
#: The most probes one run takes, whatever ``diagnostics.every`` asks.
MAX_PROBES_PER_RUN: Final = 64


def evenly_spaced(n: int, keep: int) -> list[int]:
    """``keep`` indices of ``range(n)``, evenly spread, the first and the last included."""
    if n <= keep:
        return list(range(n))
    if keep <= 1:
        return [n - 1]
    return sorted({round(i * (n - 1) / (keep - 1)) for i in range(keep)})


def probe_steps(total_steps: int, every: int | None, *,
                max_probes: int = MAX_PROBES_PER_RUN) -> list[int]:
    """Steps at which probes run: 0, every k steps, and the last step (at most
    ``max_probes`` of them)."""
    if every is None:
        every = max(1, math.ceil(total_steps / DEFAULT_PROBES_PER_RUN))
    steps = sorted({0, total_steps, *range(every, total_steps, every)})
    return [steps[i] for i in evenly_spaced(len(steps), max_probes)]
