"""The shape every diagnostic has: a name, what it needs, and up to three hooks.

- ``at_probe(ctx)`` runs at every probe step (0, on the schedule, the end) and appends a record
  keyed by step to ``records``;
- ``after_update(model, step)`` runs after an optimizer step while ``wants_update`` is set
  (the update-to-weight ratio needs the weights before and after one real update);
- ``at_end(ctx)`` runs once after training and sets ``summary`` (interpolation, alignment).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from torch import Tensor

from worker.compute.diagnostics.capture import ProbeCapture
from worker.compute.model import Net

LossFn = Callable[[Tensor, Tensor], Tensor]


@dataclass
class ProbeContext:
    """What a diagnostic may read at a probe step or at the end of training."""

    model: Net
    loss_fn: LossFn
    x: Tensor  # the fixed probe batch
    y: Tensor
    step: int
    total_steps: int
    lr: float
    momentum: float
    capture: ProbeCapture | None
    train_x: Tensor  # the training inputs (batch-norm statistics re-estimation)
    theta0: Tensor | None  # flattened parameters at initialization (host), when kept


class Diagnostic:
    """Base class: no-op hooks, a record list and a summary."""

    name: ClassVar[str] = ""
    needs_capture: ClassVar[bool] = False
    needs_theta0: ClassVar[bool] = False

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []
        self.summary: dict[str, Any] | None = None
        self.wants_update = False

    def at_probe(self, ctx: ProbeContext) -> None:
        """Measure at a probe step; append a record to ``self.records``."""

    def after_update(self, model: Net, step: int) -> None:
        """Called after optimizer step ``step`` while ``self.wants_update`` is true."""

    def at_end(self, ctx: ProbeContext) -> None:
        """Measure once after training; set ``self.summary``."""
