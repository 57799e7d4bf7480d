"""The Celery app (torch-free): broker config, queue routing, the task name the service sends.

Queues are per device class: a spec asking for ``cpu`` goes to ``cpu``, ``cuda`` to ``gpu``,
and ``auto`` to ``TRAINABILITY_AUTO_QUEUE`` (default ``cpu``: every deployment has CPU
workers; point it at ``gpu`` where GPU workers serve ``auto`` specs). A local worker
consumes every queue (``QUEUES``); a GPU host runs one worker per GPU with ``-Q gpu``.

Workers use the prefork pool with concurrency 1: the child is forked before torch (and CUDA)
is imported, which keeps CUDA working in the child (celery#3402), and prefork is the pool that
enforces time limits. Run ``celery -A worker.celery_app worker -Q cpu,gpu``.
"""

from __future__ import annotations

from typing import Any

from celery import Celery
from celery.signals import after_setup_logger, after_setup_task_logger

from worker.logs import structure_handlers
from worker.settings import QUEUES, WEBHOOK_QUEUE, QueueName, Settings, get_settings
from worker.spec import DeviceRequest

RUN_EXPERIMENT_TASK = "trainability.run_experiment"
DELIVER_WEBHOOK_TASK = "trainability.deliver_webhook"
#: Modules a worker imports at start: the tasks, and the signal handlers of the worker
#: heartbeat and of the reaper (both threads in the worker's main process).
WORKER_MODULES = ("worker.tasks", "worker.heartbeat", "worker.reaper")

__all__ = [
    "DELIVER_WEBHOOK_TASK", "QUEUES", "RUN_EXPERIMENT_TASK", "WEBHOOK_QUEUE", "app",
    "make_celery", "queue_for",
]


def queue_for(device: DeviceRequest, settings: Settings) -> QueueName:
    """The queue a job goes to, from the spec's ``training.device``."""
    if device == "cpu":
        return "cpu"
    if device == "cuda":
        return "gpu"
    return settings.auto_queue


def make_celery(settings: Settings, *, with_tasks: bool = True) -> Celery:
    """A Celery app for ``settings``; the service builds one ``with_tasks=False`` to send."""
    app = Celery("trainability", broker=settings.redis_url,
                 include=list(WORKER_MODULES) if with_tasks else [])
    app.conf.update(
        # JSON only: a spec is data, never code; no pickle anywhere.
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        # The job store holds state and results; Celery's result backend is not used.
        task_ignore_result=True,
        result_backend=None,
        task_default_queue=settings.auto_queue,
        task_routes={DELIVER_WEBHOOK_TASK: {"queue": WEBHOOK_QUEUE}},
        # A job is acknowledged when it ends, so a worker lost mid-job leaves it to redeliver;
        # each worker reserves only the job it runs.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        worker_concurrency=1,
        worker_pool="prefork",
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


@after_setup_logger.connect
@after_setup_task_logger.connect
def _structured_logs(logger: Any, **_: Any) -> None:
    """Worker logs as key=value or JSON lines carrying the job id (``worker/logs.py``)."""
    structure_handlers(logger, get_settings().log_format)


app = make_celery(get_settings())
