"""Request and response schemas of ``/v1/sweeps`` (one per use, like
``service/schemas/experiments.py``)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, create_model

from service.schemas.experiments import Tags
from worker.core.spec import ExperimentSpec
from worker.core.sweeps import COLUMN, RESULT_COLUMNS
from worker.jobs.records import JobStatus

RerunStatus = Literal["failed", "cancelled", "timed_out"]
AXIS_PATH = r"^[A-Za-z_][A-Za-z0-9_]*(\.([A-Za-z_][A-Za-z0-9_]*|[0-9]+))*$"


class SweepCreate(BaseModel):
    """A base spec and the fields to vary: one experiment per point of the sweep."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, max_length=200, description="A label for the sweep.")
    base: ExperimentSpec = Field(
        description="The spec every point starts from (validated like POST /v1/experiments)."
    )
    axes: dict[str, list[JsonValue]] = Field(
        default_factory=dict,
        description="Spec field (dotted path, e.g. model.depth; list items by index) -> the "
        "values it takes. Order matters: in grid mode the last axis varies fastest.",
    )
    variants: dict[str, dict[str, JsonValue]] | None = Field(
        None,
        description="Named bundles of field settings that form one axis, column 'variant' "
        "(e.g. 'relu+residual': {'model.activation': 'relu', 'model.residual': true}).",
    )
    mode: Literal["grid", "zip"] = Field(
        "grid", description="grid: every combination; zip: the i-th value of every axis."
    )
    tags: Tags = Field(default_factory=list)  # every job of the sweep carries them


class RerunRequest(BaseModel):
    """Which points to run again: those whose current job ended in one of these statuses."""

    model_config = ConfigDict(extra="forbid")

    statuses: list[RerunStatus] = Field(
        default_factory=lambda: list[RerunStatus](["failed", "cancelled"]),
        min_length=1,
        description="Re-run points whose current job has one of these statuses.",
    )


class SweepLinks(BaseModel):
    self: str = Field(description="This sweep.")
    report: str = Field(description="The HTML comparison report.")


def sweep_links(sweep_id: str) -> SweepLinks:
    return SweepLinks(self=f"/v1/sweeps/{sweep_id}", report=f"/v1/sweeps/{sweep_id}/report")


class SweepAccepted(BaseModel):
    """Answer to a sweep submission: its id, and one queued job per point."""

    id: str = Field(description="The sweep id.")
    points: int = Field(description="How many points (jobs) the sweep has.")
    job_ids: list[str] = Field(description="The job of each point, in point order.")
    cohorts: list[list[str]] = Field(
        default_factory=list, description="The points sent to be trained together, each as "
        "one batched model by one worker (their job ids; points that differ only in seed, lr, "
        "momentum or init gain); a point in none trains alone.")
    links: SweepLinks = Field(description="Where to poll and where the report is.")


class SweepProgress(BaseModel):
    total: int = Field(description="Points in the sweep.")
    final: int = Field(description="Points whose current job is in a final status.")
    by_status: dict[str, int] = Field(
        description="Points per status of their current job (expired: the job record is gone)."
    )
    done: bool = Field(description="Every point's current job is final.")


class _SweepRowBase(BaseModel):
    point: int = Field(description=COLUMN["point"].description)
    values: dict[str, JsonValue] = Field(description="The varied field -> its value here.")
    job_id: str | None = Field(description=COLUMN["job_id"].description)
    previous_job_ids: list[str] = Field(description="Earlier jobs of this point (re-runs).")
    status: JobStatus | Literal["expired"] = Field(description=COLUMN["status"].description)


if TYPE_CHECKING:
    SweepRow = _SweepRowBase
else:  # the result columns, one nullable field each, from the column list in worker.core.sweeps
    SweepRow = create_model(
        "SweepRow",
        __base__=_SweepRowBase,
        __module__=__name__,
        __doc__="One point of the comparison table. Metric columns are null until the job has "
        "a result.",
        **{c.name: (c.value_type | None, Field(description=c.description))
           for c in RESULT_COLUMNS},
    )


class SweepSummary(BaseModel):
    """One sweep in a listing."""

    id: str = Field(description="The sweep id.")
    name: str | None = Field(description="The sweep's label.")
    mode: Literal["grid", "zip"] = Field(description="How the axes were combined.")
    points: int = Field(description="How many points the sweep has.")
    varied: list[str] = Field(description="The varied columns (variant first, then axes).")
    created_at: datetime = Field(description="When the sweep was created.")
    updated_at: datetime = Field(description="Last change (creation or re-run).")
    links: SweepLinks = Field(description="Where the sweep and its report are.")
    tags: list[str] = Field(default_factory=list, description="Labels every job carries.")


class SweepPublic(SweepSummary):
    """A sweep: its definition, progress, and the comparison table (one row per point)."""

    base: dict[str, Any] = Field(description="The base spec.")
    axes: dict[str, list[JsonValue]] = Field(description="The axes as submitted.")
    variants: dict[str, dict[str, JsonValue]] | None = Field(description="The variants.")
    progress: SweepProgress = Field(description="Counts of points by status.")
    sort: str = Field(description="The column the table is sorted by.")
    order: Literal["asc", "desc"] = Field(description="The sort direction.")
    columns: list[str] = Field(description="Every sortable column: varied ones, then metrics.")
    table: list[SweepRow] = Field(description="The comparison table, one row per point.")


class SweepsPage(BaseModel):
    data: list[SweepSummary] = Field(description="Sweeps, newest first.")
    next_cursor: str | None = Field(description="Pass as ?cursor= for the next page; null: last.")


class SweepCancelled(BaseModel):
    """What a sweep cancellation did."""

    id: str = Field(description="The sweep id.")
    cancelled: list[str] = Field(description="Jobs asked to stop (queued or running).")
    already_final: int = Field(description="Points whose current job had already ended.")


class RerunPoint(BaseModel):
    point: int = Field(description="The point re-run.")
    job_id: str = Field(description="Its new job.")
    previous_job_id: str | None = Field(description="The job it replaces (kept in history).")


class SweepRerun(BaseModel):
    """What a re-run did: the points that got a new job."""

    id: str = Field(description="The sweep id.")
    rerun: list[RerunPoint] = Field(description="One entry per point that was re-run.")
