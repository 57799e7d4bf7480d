"""Learning-rate schedules (:func:`lr_factor`) against their closed forms.
"""

from __future__ import annotations

import math

import pytest

from worker.core.spec import ScheduleSpec, lr_factor


def test_lr_schedules_match_closed_forms():
    total = 100
    step = ScheduleSpec(kind="step", step_size=30, gamma=0.5)
    assert [lr_factor(step, s, total) for s in (0, 29, 30, 59, 60, 99)] == [
        1,
        1,
        0.5,
        0.5,
        0.25,
        0.125,
    ]

    warm, floor = 10, 0.1
    cosine = ScheduleSpec(kind="cosine", warmup_steps=warm, min_factor=floor)
    for s in range(total):
        if s < warm:
            expected = (s + 1) / warm
        else:
            expected = (
                floor + (1 - floor) * (1 + math.cos(math.pi * (s - warm) / (total - warm))) / 2
            )
        assert lr_factor(cosine, s, total) == pytest.approx(expected, abs=1e-12)
    assert lr_factor(cosine, warm, total) == 1.0
    assert lr_factor(cosine, total, total) == pytest.approx(floor)

    constant = ScheduleSpec(warmup_steps=4)
    assert [lr_factor(constant, s, total) for s in range(6)] == [0.25, 0.5, 0.75, 1, 1, 1]
    warm_step = ScheduleSpec(kind="step", warmup_steps=5, step_size=10, gamma=0.1)
    assert lr_factor(warm_step, 4, total) == 1.0
    assert lr_factor(warm_step, 10, total) == pytest.approx(0.1)  # steps count from 0, not warmup
