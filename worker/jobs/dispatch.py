"""Sending tasks to the workers (a port; Celery over Redis behind it). Torch-free.

Also the one Celery configuration (``make_celery``) and the queue routing, shared by the API,
which only sends, and the worker process (``worker/runtime/app.py``), which builds its app from
it. Importing this module builds no app and connects no signal.

Queues are per device class: a spec asking for ``cpu`` goes to ``cpu``, ``cuda`` to ``gpu``,
and ``auto`` to ``TRAINABILITY_AUTO_QUEUE`` (default ``cpu``: every deployment has CPU
workers; point it at ``gpu`` where GPU workers serve ``auto`` specs). A local worker
consumes every queue (``QUEUES``); a GPU host runs one worker per GPU with ``-Q gpu``.

The API enqueues jobs with it; the reaper (in a worker's main process) re-sends lost ones,
and whoever writes a final status of a job with a ``callback_url`` sends its webhook task
(and, where ``mlflow_tracking_uri`` is set, of a job with a result its MLflow export task).
Tasks are sent by name, so no sender imports the task module (or torch).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import kombu.exceptions
import redis.exceptions
from celery import Celery

from worker.core.errors import BrokerUnavailable
from worker.core.settings import WEBHOOK_QUEUE, QueueName, Settings
from worker.core.spec import DeviceRequest
from worker.jobs.task_message import RUN_EXPERIMENT_TASK

DELIVER_WEBHOOK_TASK = "trainability.deliver_webhook"
EXPORT_MLFLOW_TASK = "trainability.export_mlflow"

_SEND_ERRORS = (kombu.exceptions.OperationalError, redis.exceptions.RedisError, OSError)


def queue_for(device: DeviceRequest, settings: Settings) -> QueueName:
    """The queue a job goes to, from the spec's ``training.device``."""
    if device == "cpu":
        return "cpu"
    if device == "cuda":
        return "gpu"
    return settings.auto_queue


def make_celery(settings: Settings, include: Sequence[str] = ()) -> Celery:
    """A Celery app for ``settings``; the worker passes its task modules in ``include``, a
    sender (the API, the reaper) none."""
    app = Celery("trainability", broker=settings.redis_url, include=list(include))
    app.conf.update(
        # JSON only: a spec is data, never code; no pickle anywhere.
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        # The job store holds state and results; Celery's result backend is not used.
        task_ignore_result=True,
        result_backend=None,
        task_default_queue=settings.auto_queue,
        # Deliveries (webhooks, MLflow exports) are slow I/O: the notifier's queue.
        task_routes={DELIVER_WEBHOOK_TASK: {"queue": WEBHOOK_QUEUE},
                     EXPORT_MLFLOW_TASK: {"queue": WEBHOOK_QUEUE}},
        # A job is acknowledged when it ends, so a worker lost mid-job leaves it to redeliver;
        # each worker reserves only the job it runs.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        worker_concurrency=1,
        worker_pool="prefork",
        # A training process warms up (imports torch, runs a tiny job: worker/runtime/child.py)
        # before it reports for work; Celery's default 4 s kills a child that is still warming
        # up on a busy host, and the pool then never recovers.
        worker_proc_alive_timeout=60.0,
        worker_cancel_long_running_tasks_on_connection_loss=True,
        task_soft_time_limit=settings.job_soft_time_limit_s,
        task_time_limit=settings.job_hard_time_limit_s,
        broker_transport_options={
            # Above the hard limit, or Redis redelivers a long job while it runs (celery#5935).
            "visibility_timeout": settings.broker_visibility_timeout_s,
            "socket_connect_timeout": settings.redis_connect_timeout_s,
            "socket_timeout": settings.redis_socket_timeout_s,
        },
        # Fail fast when Redis is down so the API answers 503 instead of hanging.
        task_publish_retry_policy={
            "max_retries": 2, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.5,
        },
        broker_connection_retry_on_startup=True,
        worker_send_task_events=False,
        task_send_sent_event=False,
        worker_disable_rate_limits=True,
    )
    return app


class JobDispatcher(Protocol):
    def enqueue(self, job_id: str, *, queue: str, cohort: Sequence[str] = ()) -> None:
        """Hand ``job_id`` to a worker consuming ``queue`` (with the job ids of its sweep
        cohort, ``worker/core/cohorts.py``); ``BrokerUnavailable`` on failure."""

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
        return cls(make_celery(settings))

    def enqueue(self, job_id: str, *, queue: str, cohort: Sequence[str] = ()) -> None:
        try:
            self._app.send_task(RUN_EXPERIMENT_TASK, args=[job_id], queue=queue,
                                kwargs={"cohort": list(cohort)} if len(cohort) > 1 else None)
        except _SEND_ERRORS as exc:
            raise BrokerUnavailable(f"could not enqueue the job: {exc}") from exc

    def send_webhook(self, job_id: str) -> None:
        """Queue the delivery of the job's final-state webhook."""
        try:
            self._app.send_task(DELIVER_WEBHOOK_TASK, args=[job_id], queue=WEBHOOK_QUEUE)
        except _SEND_ERRORS as exc:
            raise BrokerUnavailable(f"could not queue the webhook: {exc}") from exc

    def send_mlflow_export(self, job_id: str) -> None:
        """Queue the export of the finished job to MLflow (on the notifier's queue)."""
        try:
            self._app.send_task(EXPORT_MLFLOW_TASK, args=[job_id], queue=WEBHOOK_QUEUE)
        except _SEND_ERRORS as exc:
            raise BrokerUnavailable(f"could not queue the MLflow export: {exc}") from exc

    def close(self) -> None:
        self._app.close()
