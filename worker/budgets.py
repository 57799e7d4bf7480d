"""Server budgets on what one spec may ask for (torch-free; the service checks them on submit)."""

from __future__ import annotations

from dataclasses import dataclass

from worker.errors import BudgetExceeded, InvalidRequest
from worker.settings import Settings
from worker.spec import ExperimentSpec, ShapeError, parameter_count, total_steps


@dataclass(frozen=True)
class Cost:
    """What a spec will cost, in the units the budgets are written in."""

    parameters: int
    steps: int
    steps_x_batch: int


def estimate_cost(spec: ExperimentSpec) -> Cost:
    """The spec's cost; ``InvalidRequest`` (naming the layer) when its shapes do not fit."""
    try:
        parameters = parameter_count(spec)
    except ShapeError as exc:
        field = ".".join(str(part) for part in exc.loc) or "model"
        raise InvalidRequest(exc.message, field=field) from exc
    steps = total_steps(spec)
    return Cost(parameters=parameters, steps=steps, steps_x_batch=steps * spec.training.batch_size)


def check_budgets(spec: ExperimentSpec, settings: Settings) -> Cost:
    """The spec's cost, or ``BudgetExceeded`` naming the first limit it breaks."""
    cost = estimate_cost(spec)
    if cost.parameters > settings.max_parameters:
        raise BudgetExceeded(
            limit="max_parameters", limit_value=settings.max_parameters,
            value=cost.parameters, field="model",
        )
    if cost.steps_x_batch > settings.max_steps_x_batch:
        raise BudgetExceeded(
            limit="max_steps_x_batch", limit_value=settings.max_steps_x_batch,
            value=cost.steps_x_batch, field="training",
        )
    return cost
