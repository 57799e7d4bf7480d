"""Sending tasks to the workers (a port; Celery over Redis behind it). Torch-free.

The API enqueues jobs with it; the reaper (in a worker's main process) re-sends lost ones,
and whoever writes a final status of a job with a ``callback_url`` sends its webhook task.
Tasks are sent by name, so no sender imports the task module (or torch).
"""

from __future__ import annotations

from typing import Protocol

import kombu.exceptions
import redis.exceptions
from celery import Celery

from worker.celery_app import DELIVER_WEBHOOK_TASK, RUN_EXPERIMENT_TASK, make_celery
from worker.errors import BrokerUnavailable
from worker.settings import WEBHOOK_QUEUE, Settings

_SEND_ERRORS = (kombu.exceptions.OperationalError, redis.exceptions.RedisError, OSError)


class JobDispatcher(Protocol):
    def enqueue(self, job_id: str, *, queue: str) -> None:
        """Hand ``job_id`` to a worker consuming ``queue``; ``BrokerUnavailable`` on failure."""

    def send_webhook(self, job_id: str) -> None:
        """Queue the delivery of the job's final-state webhook."""

    def close(self) -> None:
        """Release connections."""


class CeleryDispatcher:
    """Sends the run task (and webhook deliveries) by name."""

    def __init__(self, app: Celery) -> None:
        self._app = app

    @classmethod
    def from_settings(cls, settings: Settings) -> CeleryDispatcher:
        return cls(make_celery(settings, with_tasks=False))

    def enqueue(self, job_id: str, *, queue: str) -> None:
        try:
            self._app.send_task(RUN_EXPERIMENT_TASK, args=[job_id], queue=queue)
        except _SEND_ERRORS as exc:
            raise BrokerUnavailable(f"could not enqueue the job: {exc}") from exc

    def send_webhook(self, job_id: str) -> None:
        """Queue the delivery of the job's final-state webhook."""
        try:
            self._app.send_task(DELIVER_WEBHOOK_TASK, args=[job_id], queue=WEBHOOK_QUEUE)
        except _SEND_ERRORS as exc:
            raise BrokerUnavailable(f"could not queue the webhook: {exc}") from exc

    def close(self) -> None:
        self._app.close()
