"""Schemas of ``/v1/experiments``, one per use; routes never return internal records.

Problem details are ``service/schemas/problems.py``; the probes' ``service/schemas/health.py``.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, Field, StringConstraints, ValidationError

from worker.core.result import ExperimentResult
from worker.core.spec import ExperimentSpec
from worker.jobs.records import MAX_TAGS, TAG_PATTERN, JobRecord, JobStatus, JobSummary

log = logging.getLogger(__name__)

Tag = Annotated[str, StringConstraints(pattern=TAG_PATTERN)]
#: Labels of a job, for listings (``?tag=``): short words, kept once each in the order given.
Tags = Annotated[list[Tag], Field(
    max_length=MAX_TAGS,
    description=f"Labels for listings (?tag=): at most {MAX_TAGS}, each 1-40 characters of "
    "letters, digits and _ . : = + / - (starting with a letter or digit).",
)]
#: The fields of a submission that are the job's, not the design's (not in the spec).
SUBMISSION_FIELDS = frozenset({"callback_url", "tags"})


class ExperimentCreate(ExperimentSpec):
    """The body of ``POST /v1/experiments``: the design spec itself, plus where to report the
    end (optional). ``callback_url`` is not part of the spec: it is stored on the job, not in
    the normalized spec that results echo."""

    callback_url: str | None = Field(
        None, max_length=2048,
        description="POSTed (signed, retried) when the experiment reaches a final state; "
        "must match the server's webhook allowlist.",
    )

    tags: Tags = Field(default_factory=list)

    def spec_json(self) -> str:
        """The normalized spec JSON, without the request-only fields."""
        return self.model_dump_json(exclude=set(SUBMISSION_FIELDS))


class ExperimentLinks(BaseModel):
    self: str


def links_for(job_id: str) -> ExperimentLinks:
    return ExperimentLinks(self=f"/v1/experiments/{job_id}")


class ExperimentAccepted(BaseModel):
    """Answer to a submission: where to poll."""

    id: str
    status: JobStatus
    links: ExperimentLinks


class ExperimentSummary(BaseModel):
    """One experiment in a listing (no spec, no result)."""

    id: str
    status: JobStatus
    name: str | None
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    attempts: int
    links: ExperimentLinks
    tags: list[str] = Field(default_factory=list, description="The job's labels.")
    sweep_id: str | None = Field(None, description="The sweep this experiment is a point of.")
    headline: str | None = Field(
        None, description="The result's verdict in one line (once it has a result)."
    )

    @classmethod
    def from_summary(cls, job: JobSummary) -> ExperimentSummary:
        return cls(
            id=job.id, status=job.status, name=job.name, created_at=job.created_at,
            updated_at=job.updated_at, started_at=job.started_at, finished_at=job.finished_at,
            attempts=job.attempts, links=links_for(job.id), tags=list(job.tags),
            sweep_id=job.sweep_id, headline=job.headline,
        )


class ExperimentPublic(ExperimentSummary):
    """An experiment: its status, latest progress, the spec, and the result once final."""

    progress: dict[str, Any] | None = Field(
        description="Latest progress: step, total_steps, epoch, train_loss, elapsed_s, and "
        "eta_s (seconds left at the pace so far)."
    )
    worker: str | None = Field(description="Celery node that ran the latest attempt.")
    spec: dict[str, Any]
    result: ExperimentResult | None = Field(
        description="The result once final: complete when succeeded, partial when timed out "
        "or cancelled during training."
    )
    error: str | None = Field(description="Why the job failed, timed out or was cancelled "
                              "(while queued again: why its last attempt was lost).")
    cancel_requested: bool = Field(
        False, description="Cancellation was asked; a running job stops at its next check."
    )
    callback_url: str | None = Field(None, description="Where the final state is POSTed.")
    webhook: dict[str, Any] | None = Field(
        None, description="Delivery of the callback: state (retrying, delivered, failed), "
        "attempts, last_status, last_error.",
    )
    mlflow: dict[str, Any] | None = Field(
        None, description="Export to MLflow, where the server has TRAINABILITY_MLFLOW_TRACKING_"
        "URI set: state (queued, retrying, exported, failed, skipped), attempts, run_id and "
        "experiment_id (MLflow's), last_error, updated_at.",
    )

    @classmethod
    def from_record(cls, job: JobRecord) -> ExperimentPublic:
        result, error = _public_result(job), job.error
        if result is None and job.is_final and job.result is not None and error is None:
            error = "the stored result does not match this server's result schema"
        return cls(
            **ExperimentSummary.from_summary(job).model_dump(),
            progress=job.progress,
            worker=job.worker,
            spec=json.loads(job.spec),
            result=result,
            error=error,
            cancel_requested=job.cancel_requested,
            callback_url=job.callback_url,
            webhook=job.webhook,
            mlflow=job.mlflow,
        )


def _public_result(job: JobRecord) -> ExperimentResult | None:
    """The stored result as the documented model; None (logged) when a worker of another
    version wrote a result this server cannot describe, so the job itself stays readable."""
    if not job.is_final or job.result is None:
        return None
    try:
        return ExperimentResult.model_validate(job.result)
    except ValidationError as exc:
        log.warning("job %s: stored result does not match the result schema: %s", job.id, exc)
        return None


class ExperimentsPage(BaseModel):
    data: list[ExperimentSummary]
    next_cursor: str | None = Field(description="Pass as ?cursor= for the next page; null: last.")
