"""Response schemas of ``POST /v1/specs/validate`` (the dry run)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from service.usecases.dry_run import DryRun
from worker.core.spec import Layer, LayersModel, TaskType


class DataSummary(BaseModel):
    """What the data imply for the model (shapes exclude the batch)."""

    input_shape: list[int] = Field(
        description="(features,), (steps, features) or (channels, height, width)."
    )
    output_dim: int = Field(description="Classes, or regression outputs.")
    task: TaskType
    n_train: int
    n_val: int
    per_step: bool = Field(description="The task predicts at every sequence step.")
    sequence_length: int | None = Field(description="Steps per example; null: not sequences.")


class CostEstimate(BaseModel):
    """What the run will cost (estimates from the layer shapes, not measurements)."""

    parameters: int = Field(description="Trainable parameters, head included.")
    total_steps: int = Field(description="Optimizer updates (epochs converted).")
    batch_size: int = Field(description="Examples per step (capped to the training set).")
    steps_x_batch: int = Field(description="Steps times the spec's batch size.")
    flops_per_example: int = Field(description="Forward-pass FLOPs for one example.")
    flops_per_step: int = Field(description="Forward, backward and update for one batch.")
    flops_total: int = Field(description="flops_per_step times total_steps (no probes).")
    memory_bytes: int = Field(
        description="Peak memory estimate of the run: the sum of memory_breakdown."
    )
    memory_breakdown: dict[str, int] = Field(
        description="Bytes by part: data (two copies at the peak), model_state (weights, "
        "gradients, momentum), train_activations, probe_activations, snapshots."
    )
    data_bytes: int = Field(description="The dataset in memory (float32, both splits).")
    sequence_length: int | None
    inline_bytes: int = Field(description="Inline x and y as compact JSON; 0: not inline.")


class BudgetStatus(BaseModel):
    """One server budget against the spec's value."""

    limit: str = Field(description="Setting name, e.g. max_parameters.")
    limit_value: int
    value: int = Field(description="What the spec requires (0: not applicable).")
    field: str = Field(description="The spec part that sets the value.")
    within: bool


class SpecValidation(BaseModel):
    """A valid spec, normalized, with what it compiles to and what it will cost."""

    valid: Literal[True] = True
    spec: dict[str, Any] = Field(
        description="The spec with every default filled in (what a submission would store)."
    )
    model_form: Literal["family", "layers"]
    layers: list[Layer] = Field(
        description="The normalized layer list: family compiled, the linear head last."
    )
    shapes: list[dict[str, Any]] = Field(
        description="Per layer (head last): type, input and output shape; residual layers "
        "list their body's layers under body."
    )
    output_shape: list[int]
    data: DataSummary
    cost: CostEstimate
    budgets: list[BudgetStatus] = Field(description="Every spec budget, all within.")

    @classmethod
    def from_dry_run(cls, run: DryRun) -> SpecValidation:
        a, c = run.analysis, run.cost
        return cls(
            spec=run.spec.model_dump(mode="json"),
            model_form="layers" if isinstance(run.spec.model, LayersModel) else "family",
            layers=[*a.layers, a.head],
            shapes=a.layer_shapes,
            output_shape=list(a.output_shape),
            data=DataSummary(
                input_shape=list(a.data.input_shape), output_dim=a.data.output_dim,
                task=a.data.task, n_train=a.data.n_train, n_val=a.data.n_val,
                per_step=a.data.per_step, sequence_length=a.data.sequence_length,
            ),
            cost=CostEstimate(
                parameters=c.parameters, total_steps=c.steps, batch_size=c.batch_size,
                steps_x_batch=c.steps_x_batch, flops_per_example=a.flops_per_example,
                flops_per_step=c.flops_per_step, flops_total=c.flops_total,
                memory_bytes=c.memory_bytes, memory_breakdown=c.memory_breakdown,
                data_bytes=c.data_bytes, sequence_length=c.sequence_length,
                inline_bytes=c.inline_bytes,
            ),
            budgets=[
                BudgetStatus(limit=b.limit, limit_value=b.limit_value, value=b.value,
                             field=b.field, within=b.within)
                for b in run.budgets
            ],
        )
