"""Schemas of the probes (``/healthz``, ``/readyz``)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class Health(BaseModel):
    status: Literal["ok"]


class WorkerPublic(BaseModel):
    hostname: str = Field(description="The worker's Celery node name.")
    queues: list[str] = Field(description="The queues it consumes.")


class Readiness(BaseModel):
    """A summary for everyone; the worker list only for an operator key."""

    status: Literal["ready"]
    redis: Literal["ok"]
    workers: int = Field(description="Workers with a recent heartbeat.")
    worker_details: list[WorkerPublic] | None = Field(
        None, description="Each live worker and its queues: only with an operator key "
        "(\"operator\": true in TRAINABILITY_API_KEYS)."
    )
