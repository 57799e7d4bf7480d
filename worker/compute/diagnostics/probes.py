"""The probe schedule and the set of diagnostics that run on it.

Probes run at step 0 (initialization), every ``every`` steps, and at the end, always on the same
fixed probe batch so numbers are comparable across steps. One instrumented forward/backward
(the capture) is shared by every diagnostic that needs it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field

import torch
from torch import Tensor
from torch.nn.utils import parameters_to_vector

from worker.compute.diagnostics.attention_trace import TracedDiagnostic
from worker.compute.diagnostics.base import Diagnostic, LossFn, ProbeContext
from worker.compute.diagnostics.capture import capture
from worker.compute.model import Net
from worker.core.probe_schedule import DEFAULT_PROBES_PER_RUN, MAX_PROBES_PER_RUN, probe_steps

# The schedule (step 0, every k steps, the end; capped at MAX_PROBES_PER_RUN) is pure:
# worker/core/probe_schedule.py, shared with the dry run's memory estimate.
__all__ = ["DEFAULT_PROBES_PER_RUN", "MAX_PROBES_PER_RUN", "ProbeSet", "probe_steps"]

END_RESERVE_PROBES = 4.0  # the end of a run costs about this many step-0 probes


@dataclass
class ProbeSet:
    """Diagnostics, their schedule and the fixed probe batch."""

    diagnostics: list[Diagnostic]
    steps: list[int]
    x: Tensor
    y: Tensor
    loss_fn: LossFn
    train_x: Tensor
    total_steps: int
    lr: float
    momentum: float
    theta0: Tensor | None = field(default=None, init=False)
    last_step: int | None = field(default=None, init=False)
    spent_s: float = field(default=0.0, init=False)  # wall time inside the diagnostics

    def __post_init__(self) -> None:
        self._step_set = frozenset(self.steps)
        self._needs_capture = any(d.needs_capture for d in self.diagnostics)
        self._needs_theta0 = any(d.needs_theta0 for d in self.diagnostics)
        # The attention diagnostics' observed pass rides on the capture's forward.
        self._tracer = next((d.tracer for d in self.diagnostics
                             if isinstance(d, TracedDiagnostic)), None)

    @contextmanager
    def _timed(self) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.spent_s += time.perf_counter() - start

    def due(self, step: int) -> bool:
        return step in self._step_set

    @property
    def wants_update(self) -> bool:
        return any(d.wants_update for d in self.diagnostics)

    def context(self, model: Net, step: int, lr: float | None = None) -> ProbeContext:
        return ProbeContext(
            model=model,
            loss_fn=self.loss_fn,
            x=self.x,
            y=self.y,
            step=step,
            total_steps=self.total_steps,
            lr=self.lr if lr is None else lr,
            momentum=self.momentum,
            capture=None,
            train_x=self.train_x,
            theta0=self.theta0,
        )

    def run(self, model: Net, step: int, lr: float | None = None) -> None:
        """One capture on the probe batch (if any diagnostic needs it), then each diagnostic."""
        with self._timed():
            self._run(model, step, lr)

    def _run(self, model: Net, step: int, lr: float | None) -> None:
        if step == 0 and self._needs_theta0:
            with torch.no_grad():
                self.theta0 = parameters_to_vector(model.parameters()).detach().cpu().clone()
        self.last_step = step
        ctx = self.context(model, step, lr)
        if self._needs_capture:
            with nullcontext() if self._tracer is None else self._tracer.observing(model, step):
                ctx.capture = capture(model, self.loss_fn, self.x, self.y, step)
        for diagnostic in self.diagnostics:
            diagnostic.at_probe(ctx)

    def after_update(self, model: Net, step: int) -> None:
        with self._timed():
            for diagnostic in self.diagnostics:
                if diagnostic.wants_update:
                    diagnostic.after_update(model, step)

    def end_reserve_s(self) -> float:
        """Seconds to keep before a deadline for the end of the run (the last probe, the
        end-of-run analyses), estimated after the step-0 probe from what it cost: those
        analyses are a few probes' worth of forward passes."""
        return END_RESERVE_PROBES * self.spent_s

    def finish(self, model: Net, step: int, deadline: float | None = None) -> list[str]:
        """End-of-training analyses (interpolation, alignment, ...); those that would start
        past ``deadline`` (``time.monotonic()``) are skipped, and their names returned."""
        skipped: list[str] = []
        with self._timed():
            ctx = self.context(model, step)
            for diagnostic in self.diagnostics:
                has_end = type(diagnostic).at_end is not Diagnostic.at_end
                if has_end and deadline is not None and time.monotonic() > deadline:
                    skipped.append(diagnostic.name)
                    continue
                diagnostic.at_end(ctx)
        return skipped
