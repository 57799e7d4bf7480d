"""The events of ``GET /v1/experiments/{id}/events`` (``service/live/events.py`` sends them).

Each event is ``event: <name>`` with one line of JSON ``data``; these models are that JSON,
and the OpenAPI document describes the stream as one of them per event
(``service/api/openapi.py``).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from worker.jobs.records import JobStatus


class StatusEvent(BaseModel):
    """``event: status``: sent first, then whenever one of these fields changes."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(description="The experiment id.")
    status: JobStatus
    attempts: int = Field(description="Attempts started so far.")
    worker: str | None = Field(description="Celery node of the latest attempt.")
    cancel_requested: bool = Field(description="Cancellation was asked.")
    error: str | None = Field(description="Why the job failed, was cancelled or re-queued.")
    updated_at: str | None = Field(description="Last write of the job (ISO 8601).")


class ProgressEvent(BaseModel):
    """``event: progress``: the latest progress, whenever the worker writes it."""

    model_config = ConfigDict(extra="allow")

    step: int | None = Field(None, description="Optimizer updates taken.")
    total_steps: int | None = Field(None, description="Updates the run will take.")
    epoch: float | None = Field(None, description="Passes over the training set so far.")
    train_loss: float | None = Field(None, description="Latest training loss.")
    elapsed_s: float | None = Field(None, description="Seconds of training so far.")
    eta_s: float | None = Field(None, description="Seconds left at the pace so far.")


class EndEvent(BaseModel):
    """``event: end``: the final state; the stream closes after it."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(description="The experiment id.")
    status: JobStatus
    attempts: int = Field(description="Attempts it took.")
    error: str | None = Field(description="Why it failed, timed out or was cancelled.")
    finished_at: str | None = Field(description="When it ended (ISO 8601).")
    summary: dict[str, Any] | None = Field(description="The result's summary, if any.")


class ErrorEvent(BaseModel):
    """``event: error``: the job disappeared or Redis went away; the stream closes."""

    model_config = ConfigDict(extra="forbid")

    detail: str = Field(description="What happened; reconnect to continue.")


#: event name -> the model of its data.
EVENTS: dict[str, type[BaseModel]] = {
    "status": StatusEvent, "progress": ProgressEvent, "end": EndEvent, "error": ErrorEvent,
}
