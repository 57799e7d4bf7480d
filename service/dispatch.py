"""Sending a job to the workers (a port; Celery over Redis behind it)."""

from __future__ import annotations

from typing import Protocol

import kombu.exceptions
import redis.exceptions
from celery import Celery

from worker.celery_app import RUN_EXPERIMENT_TASK, make_celery
from worker.errors import BrokerUnavailable
from worker.settings import Settings


class JobDispatcher(Protocol):
    def enqueue(self, job_id: str, *, queue: str) -> None:
        """Hand ``job_id`` to a worker consuming ``queue``; ``BrokerUnavailable`` on failure."""

    def close(self) -> None:
        """Release connections."""


class CeleryDispatcher:
    """Sends the run task by name, so the service never imports the task (or torch)."""

    def __init__(self, app: Celery) -> None:
        self._app = app

    @classmethod
    def from_settings(cls, settings: Settings) -> CeleryDispatcher:
        return cls(make_celery(settings, with_tasks=False))

    def enqueue(self, job_id: str, *, queue: str) -> None:
        try:
            self._app.send_task(RUN_EXPERIMENT_TASK, args=[job_id], queue=queue)
        except (kombu.exceptions.OperationalError, redis.exceptions.RedisError, OSError) as exc:
            raise BrokerUnavailable(f"could not enqueue the job: {exc}") from exc

    def close(self) -> None:
        self._app.close()
