"""The shape every diagnostic has: a name, what it needs, and up to three hooks.

- ``at_probe(ctx)`` runs at every probe step (0, on the schedule, the end) and appends a record
  keyed by step to ``records``;
- ``after_update(model, step)`` runs after an optimizer step while ``wants_update`` is set
  (the update-to-weight ratio needs the weights before and after one real update);
- ``at_end(ctx)`` runs once after training and sets ``summary`` (interpolation, alignment);
- ``report(ctx)`` writes the numbers into the diagnostic's result section (the one its group
  names in ``worker/core/diagnostic_groups.py``); by default the section is
  ``{"probes": records, **summary}``.

Each diagnostic module also has a probe factory, ``build(BuildContext) -> Diagnostic | None``,
which ``registry.py`` maps to the groups the diagnostic serves.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from torch import Tensor

from worker.compute.diagnostics.capture import ProbeCapture
from worker.compute.model import Net
from worker.core.diagnostic_groups import GROUPS_BY_NAME
from worker.core.spec import DiagnosticsSpec, ExperimentSpec

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


@dataclass(frozen=True)
class BuildContext:
    """What a probe factory may read: the spec, the built model and the groups switched on."""

    spec: ExperimentSpec
    model: Net
    groups: frozenset[str]

    @property
    def settings(self) -> DiagnosticsSpec:
        return self.spec.diagnostics

    @property
    def seed(self) -> int:
        return self.spec.training.seed


@dataclass
class ReportContext:
    """The result sections being assembled (by section name), and what a report may read."""

    spec: ExperimentSpec
    model: Net
    sections: dict[str, Any] = field(default_factory=dict)

    @staticmethod
    def _key(group: str) -> str:
        return GROUPS_BY_NAME[group].section.name

    def section(self, group: str) -> dict[str, Any]:
        """The section ``group`` writes into, created empty on first use."""
        section: dict[str, Any] = self.sections.setdefault(self._key(group), {})
        return section

    def existing(self, group: str) -> dict[str, Any] | None:
        """The section ``group`` adds to, when an earlier diagnostic built it (else None)."""
        section: dict[str, Any] | None = self.sections.get(self._key(group))
        return section

    def set_section(self, group: str, value: Any) -> None:
        """Make ``value`` the whole section ``group`` writes into."""
        self.sections[self._key(group)] = value


class Diagnostic:
    """Base class: no-op hooks, a record list, a summary and the default report."""

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

    def records_and_summary(self) -> dict[str, Any]:
        """``{"probes": records, **summary}``: the shape of most result sections."""
        return {"probes": self.records, **(self.summary or {})}

    def report(self, ctx: ReportContext) -> None:
        """Write the numbers into the result section of this diagnostic's group."""
        ctx.set_section(self.name, self.records_and_summary())


class CaptureDiagnostic(Diagnostic):
    """A diagnostic whose record at a probe step is ``compute`` of that step's capture."""

    needs_capture = True

    def at_probe(self, ctx: ProbeContext) -> None:
        assert ctx.capture is not None
        self.records.append(self.compute(ctx.capture))

    def compute(self, cap: ProbeCapture) -> dict[str, Any]:
        """The record of one probe step."""
        raise NotImplementedError


ProbeFactory = Callable[[BuildContext], Diagnostic | None]
