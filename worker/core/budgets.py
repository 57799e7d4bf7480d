"""Server budgets on what one spec may ask for (torch-free; the service checks them on submit,
in the dry run and for every sweep point).

- :func:`estimate_cost` — what a spec costs (``InvalidDesign`` when its layers do not fit).
- :func:`budget_checks` — every budget with the spec's value and whether it is within.
- :func:`budget_violations` — every budget the spec exceeds, as ``BudgetExceeded`` errors.
- :func:`check_budgets` — the cost, or the first ``BudgetExceeded`` raised.
- :func:`spec_problems` — every reason a schema-valid spec is refused: the layer that does not
  fit, every budget exceeded (those that need no layers when the layers do not fit).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pydantic_core

from worker.core.errors import BudgetExceeded, InvalidDesign, InvalidRequest
from worker.core.probe_schedule import probe_steps
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

# Trajectory snapshots: one per probe of the run's schedule (worker/core/probe_schedule.py:
# about 10 by default, at most 64).
#: Activation copies per probe example: forward outputs, their gradients, hooks' copies, slack.
PROBE_COPIES = 4
#: Activation copies per training example: forward outputs kept for backward, their gradients.
TRAIN_COPIES = 2


def data_bytes(spec: ExperimentSpec) -> int:
    """The dataset in memory: float32 inputs and targets (class ids as int64) for both splits."""
    shape = data_shape(spec.data)
    examples = shape.n_train + shape.n_val
    per_input = math.prod(shape.input_shape)
    steps = shape.sequence_length if shape.per_step else 1
    per_target = 8 * (steps or 1) if shape.task == "classification" else 4 * shape.output_dim
    return examples * (4 * per_input + per_target)


def memory_estimate(spec: ExperimentSpec, analysis: Analysis, batch: int) -> dict[str, int]:
    """Peak host (or device) memory of a run, by part, in bytes.

    The parts: the data (generated once, then split and standardized: two copies at the peak),
    weights with their gradients and momentum, the activations of a training batch and of the
    probe batch, and the trajectory snapshots (parameters and gradients at each probe; a random
    projection above ``diagnostics.projection_threshold``). Checked against measured peak RSS
    in ``tests/worker/compute/test_memory_estimate.py``.
    """
    d = spec.diagnostics
    snapshot_floats = (analysis.parameters if analysis.parameters <= d.projection_threshold
                       else d.projection_dim)
    probe_batch = min(spec.probe_batch(), analysis.data.n_train)
    floats = analysis.activation_floats_per_example
    return {
        "data": 2 * data_bytes(spec),
        "model_state": 4 * 3 * analysis.parameters,
        "train_activations": 4 * TRAIN_COPIES * floats * batch,
        "probe_activations": 4 * PROBE_COPIES * floats * probe_batch,
        "snapshots": 4 * 2 * len(probe_steps(total_steps(spec), d.every)) * snapshot_floats,
    }


@dataclass(frozen=True)
class Cost:
    """What a spec will cost, in the units the budgets are written in."""

    parameters: int
    steps: int
    steps_x_batch: int
    batch_size: int  # per step: the spec's batch, capped to the training set
    flops_per_step: int
    memory_bytes: int  # the peak estimate: sum of memory_breakdown
    memory_breakdown: dict[str, int]
    data_bytes: int
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
    breakdown = memory_estimate(spec, analysis, batch)
    return Cost(
        parameters=analysis.parameters,
        steps=steps,
        steps_x_batch=steps * spec.training.batch_size,
        batch_size=batch,
        flops_per_step=analysis.flops_per_step(batch),
        memory_bytes=sum(breakdown.values()),
        memory_breakdown=breakdown,
        data_bytes=data_bytes(spec),
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
    if isinstance(data, CopyData):
        return "data"  # 2 * symbols + length + 1 steps
    return "data.length" if "length" in type(data).model_fields else "data"  # token tasks


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
        BudgetCheck("max_data_bytes", settings.max_data_bytes, data_bytes(spec), "data"),
    ]


def budget_checks(
    spec: ExperimentSpec, settings: Settings, cost: Cost | None = None
) -> list[BudgetCheck]:
    """Every budget with the spec's value; ``InvalidDesign`` when the parameters cannot be
    counted because the layers do not fit."""
    cost = cost or estimate_cost(spec)
    parameters = BudgetCheck("max_parameters", settings.max_parameters, cost.parameters, "model")
    memory = BudgetCheck("max_memory_bytes", settings.max_memory_bytes, cost.memory_bytes,
                         "model")
    return [parameters, *input_checks(spec, settings), memory]


def budget_violations(
    spec: ExperimentSpec, settings: Settings, cost: Cost | None = None
) -> list[BudgetExceeded]:
    """Every budget the spec exceeds (empty: within all); ``InvalidDesign`` as above."""
    return [check.error() for check in budget_checks(spec, settings, cost) if not check.within]


def spec_problems(spec: ExperimentSpec, settings: Settings) -> list[InvalidRequest]:
    """Every problem of a schema-valid spec, in the dry run's order (empty: none)."""
    try:
        cost = estimate_cost(spec)
    except InvalidDesign as exc:
        return [exc, *(c.error() for c in input_checks(spec, settings) if not c.within)]
    return list(budget_violations(spec, settings, cost))


def check_budgets(spec: ExperimentSpec, settings: Settings) -> Cost:
    """The spec's cost, or ``BudgetExceeded`` naming the first limit it breaks."""
    cost = estimate_cost(spec)
    violations = budget_violations(spec, settings, cost)
    if violations:
        raise violations[0]
    return cost
