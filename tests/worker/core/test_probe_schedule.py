"""When probes run (``worker/core/probe_schedule.py``): step 0, every k steps, the end, and
never more than ``MAX_PROBES_PER_RUN``.

Found on main: ``diagnostics.every: 1`` over 2,040 steps ran 2,041 probes and made a 6.9 MB
result; the schedule is now decimated to the cap, evenly, keeping the first and last step.
"""

from __future__ import annotations

import pytest

from worker.core.probe_schedule import MAX_PROBES_PER_RUN, probe_steps


@pytest.mark.parametrize(("steps", "every"), [(2040, 1), (100_000, 3), (5000, None)])
def test_hardening_5_probes_are_capped_per_run_evenly_with_both_ends(steps, every):
    """Hardening item 5: every: 1 over 2,040 steps is at most MAX_PROBES_PER_RUN probes."""
    chosen = probe_steps(steps, every)
    assert len(chosen) <= MAX_PROBES_PER_RUN
    assert chosen[0] == 0 and chosen[-1] == steps
    gaps = [b - a for a, b in zip(chosen, chosen[1:], strict=False)]
    assert min(gaps) >= 1 and max(gaps) <= 2 * min(gaps) + 1  # evenly spread


def test_a_schedule_within_the_cap_is_kept_as_asked():
    assert probe_steps(10, 1) == list(range(11))
    assert probe_steps(100, 30) == [0, 30, 60, 90, 100]
