"""SGD with momentum, its learning-rate schedule and optional gradient clipping."""

from __future__ import annotations

import math
from typing import Literal

from pydantic import Field, model_validator

from worker.core.spec.base import StrictModel


class ScheduleSpec(StrictModel):
    """Learning-rate schedule, a multiplier on ``lr`` per step.

    ``constant``: 1. ``step``: gamma ** (step // step_size). ``cosine``: from 1 down to
    ``min_factor`` over the run. Any kind may start with ``warmup_steps`` of linear warmup.
    """

    kind: Literal["constant", "step", "cosine"] = "constant"
    warmup_steps: int = Field(0, ge=0, le=10_000_000)
    step_size: int = Field(1000, ge=1, le=10_000_000)
    gamma: float = Field(0.1, gt=0, le=1)
    min_factor: float = Field(0.0, ge=0, le=1)


class OptimizerSpec(StrictModel):
    """SGD with momentum: v <- momentum * v + g (+ weight_decay * w); w <- w - lr_t * v."""

    name: Literal["sgd"] = "sgd"
    lr: float = Field(0.05, gt=0, le=100)
    momentum: float = Field(0.9, ge=0, lt=1)
    nesterov: bool = False
    weight_decay: float = Field(0.0, ge=0, le=1)
    schedule: ScheduleSpec = ScheduleSpec()
    clip_grad_norm: float | None = Field(
        None, description="Clip the global gradient norm to this value.", gt=0, le=1e6
    )

    @model_validator(mode="after")
    def _nesterov_needs_momentum(self) -> OptimizerSpec:
        if self.nesterov and self.momentum == 0:
            raise ValueError("nesterov requires momentum > 0")
        return self


def lr_factor(schedule: ScheduleSpec, step: int, total_steps: int) -> float:
    """The multiplier on ``lr`` for the update at ``step`` (0-based)."""
    if step < schedule.warmup_steps:
        return (step + 1) / schedule.warmup_steps
    if schedule.kind == "step":
        return float(schedule.gamma ** (step // schedule.step_size))
    if schedule.kind == "cosine":
        span = max(1, total_steps - schedule.warmup_steps)
        progress = min(1.0, (step - schedule.warmup_steps) / span)
        return schedule.min_factor + (1 - schedule.min_factor) * 0.5 * (
            1 + math.cos(math.pi * progress)
        )
    return 1.0
