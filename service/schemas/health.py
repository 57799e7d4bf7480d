"""Schemas of the probes (``/healthz``, ``/readyz``)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel


class Health(BaseModel):
    status: Literal["ok"]


class WorkerPublic(BaseModel):
    hostname: str
    queues: list[str]


class Readiness(BaseModel):
    status: Literal["ready"]
    redis: Literal["ok"]
    workers: list[WorkerPublic]
