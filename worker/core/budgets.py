"""Server budgets on what one spec may ask for (torch-free; the service checks them on submit,
in the dry run and for every sweep point).

- :func:`estimate_cost` — what a spec costs (``InvalidDesign`` when its layers do not fit).
- :func:`budget_checks` — every budget with the spec's value and whether it is within.
- :func:`budget_violations` — every budget the spec exceeds, as ``BudgetExceeded`` errors.
- :func:`check_budgets` — the cost, or the first ``BudgetExceeded`` raised.
"""

from __future__ import annotations

from dataclasses import dataclass

import pydantic_core

from worker.core.errors import BudgetExceeded, InvalidDesign
from worker.core.settings import Settings
from worker.core.spec import (
    AddingData,
    Analysis,
    CopyData,
    ExperimentSpec,
    InlineData,
    ParityData,
    ShapeError,
    analyze,
    data_shape,
    total_steps,
)


@dataclass(frozen=True)
class Cost:
    """What a spec will cost, in the units the budgets are written in."""

    parameters: int
    steps: int
    steps_x_batch: int
    batch_size: int  # per step: the spec's batch, capped to the training set
    flops_per_step: int
    memory_bytes: int
    sequence_length: int | None  # None: the data are not sequences
    inline_bytes: int  # 0: the data are not inline

    @property
    def flops_total(self) -> int:
        return self.flops_per_step * self.steps


@dataclass(frozen=True)
class BudgetCheck:
    """One budget against the spec's value (``field``: the spec part that sets the value)."""

    limit: str
    limit_value: int
    value: int
    field: str

    @property
    def within(self) -> bool:
        return self.value <= self.limit_value

    def error(self) -> BudgetExceeded:
        return BudgetExceeded(
            limit=self.limit, limit_value=self.limit_value, value=self.value, field=self.field
        )


def design_analysis(spec: ExperimentSpec) -> Analysis:
    """The spec's shapes and cost; ``InvalidDesign`` naming the layer that does not fit."""
    try:
        return analyze(spec)
    except ShapeError as exc:
        field = ".".join(str(part) for part in exc.loc) or "model"
        raise InvalidDesign(exc.message, field=field) from exc


def inline_bytes(spec: ExperimentSpec) -> int:
    """Size of inline ``x`` and ``y`` as compact JSON (0 for generated data)."""
    data = spec.data
    if not isinstance(data, InlineData):
        return 0
    return len(pydantic_core.to_json(data.x)) + len(pydantic_core.to_json(data.y))


def cost_of(spec: ExperimentSpec, analysis: Analysis) -> Cost:
    """The cost of a spec whose analysis is already done."""
    steps = total_steps(spec)
    batch = min(spec.training.batch_size, analysis.data.n_train)
    return Cost(
        parameters=analysis.parameters,
        steps=steps,
        steps_x_batch=steps * spec.training.batch_size,
        batch_size=batch,
        flops_per_step=analysis.flops_per_step(batch),
        memory_bytes=analysis.memory_bytes(batch),
        sequence_length=analysis.data.sequence_length,
        inline_bytes=inline_bytes(spec),
    )


def estimate_cost(spec: ExperimentSpec) -> Cost:
    """The spec's cost; ``InvalidDesign`` (naming the layer) when its shapes do not fit."""
    return cost_of(spec, design_analysis(spec))


def _sequence_field(spec: ExperimentSpec) -> str:
    data = spec.data
    if isinstance(data, AddingData):
        return "data.length"
    if isinstance(data, ParityData):
        return "data.n_bits"
    if isinstance(data, InlineData):
        return "data.x"
    assert isinstance(data, CopyData)
    return "data"  # 2 * symbols + length + 1 steps


def input_checks(spec: ExperimentSpec, settings: Settings) -> list[BudgetCheck]:
    """The budgets that do not depend on the model (they hold even when the layers do not
    fit): steps x batch, sequence length, inline data size."""
    shape = data_shape(spec.data)
    return [
        BudgetCheck(
            "max_steps_x_batch", settings.max_steps_x_batch,
            total_steps(spec) * spec.training.batch_size, "training",
        ),
        BudgetCheck(
            "max_sequence_length", settings.max_sequence_length, shape.sequence_length or 0,
            _sequence_field(spec) if shape.sequence_length else "data",
        ),
        BudgetCheck("max_inline_bytes", settings.max_inline_bytes, inline_bytes(spec), "data"),
    ]


def budget_checks(
    spec: ExperimentSpec, settings: Settings, cost: Cost | None = None
) -> list[BudgetCheck]:
    """Every budget with the spec's value; ``InvalidDesign`` when the parameters cannot be
    counted because the layers do not fit."""
    cost = cost or estimate_cost(spec)
    parameters = BudgetCheck("max_parameters", settings.max_parameters, cost.parameters, "model")
    return [parameters, *input_checks(spec, settings)]


def budget_violations(
    spec: ExperimentSpec, settings: Settings, cost: Cost | None = None
) -> list[BudgetExceeded]:
    """Every budget the spec exceeds (empty: within all); ``InvalidDesign`` as above."""
    return [check.error() for check in budget_checks(spec, settings, cost) if not check.within]


def check_budgets(spec: ExperimentSpec, settings: Settings) -> Cost:
    """The spec's cost, or ``BudgetExceeded`` naming the first limit it breaks."""
    cost = estimate_cost(spec)
    violations = budget_violations(spec, settings, cost)
    if violations:
        raise violations[0]
    return cost
