"""The probe schedule and the set of diagnostics that run on it.

Probes run at step 0 (initialization), every ``every`` steps, and at the end, always on the same
fixed probe batch so numbers are comparable across steps. Each diagnostic is a small object with
a ``name`` and ``compute(capture) -> dict``; results are kept per diagnostic, keyed by step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import Tensor

from worker.diagnostics.capture import LossFn, ProbeCapture, capture
from worker.model import Net

DEFAULT_PROBES_PER_RUN = 8


class Diagnostic(Protocol):
    """A probe diagnostic: reads one capture, returns a JSON-safe dict for that step."""

    @property
    def name(self) -> str: ...

    def compute(self, cap: ProbeCapture) -> dict[str, Any]: ...


def probe_steps(total_steps: int, every: int | None) -> list[int]:
    """Steps at which probes run: 0, every k steps, and the last step."""
    if every is None:
        every = max(1, math.ceil(total_steps / DEFAULT_PROBES_PER_RUN))
    return sorted({0, total_steps, *range(every, total_steps, every)})


@dataclass
class ProbeSet:
    """Diagnostics, their schedule and the fixed probe batch; collects results by step."""

    diagnostics: list[Diagnostic]
    steps: list[int]
    x: Tensor
    y: Tensor
    loss_fn: LossFn
    results: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def due(self, step: int) -> bool:
        return step in self._step_set

    def __post_init__(self) -> None:
        self._step_set = frozenset(self.steps)

    def run(self, model: Net, step: int) -> None:
        """One capture on the probe batch, then every diagnostic on it."""
        cap = capture(model, self.loss_fn, self.x, self.y, step)
        with torch.no_grad():
            for diagnostic in self.diagnostics:
                self.results.setdefault(diagnostic.name, []).append(diagnostic.compute(cap))
