"""Celery tasks: thin wrappers that hand a job id to ``worker.runtime.attempt``,
``worker.runtime.webhook_delivery`` and ``worker.runtime.mlflow_delivery``.

torch is imported inside the task body, in the prefork child, never at module import: the
worker's main process (which forks the children) must not initialize CUDA (celery#3402).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from celery import Task

from worker.core.errors import StoreUnavailable, TrainabilityError
from worker.core.logs import job_context
from worker.core.settings import get_settings
from worker.core.spec import ExperimentSpec
from worker.jobs.dispatch import (
    DELIVER_WEBHOOK_TASK,
    EXPORT_MLFLOW_TASK,
    CeleryDispatcher,
)
from worker.jobs.redis_store import RedisJobStore, store_from_settings
from worker.jobs.task_message import RUN_EXPERIMENT_TASK
from worker.runtime.app import app
from worker.runtime.attempt import AttemptKnobs, ProgressFn, StopFn, execute_with
from worker.runtime.cohort_attempt import CohortResultFn, execute_cohort
from worker.runtime.mlflow_delivery import announce_export, export_job
from worker.runtime.webhook_delivery import deliver_webhook

_settings = get_settings()


@lru_cache(maxsize=1)
def job_store() -> RedisJobStore:
    """One store (and connection pool) per process, created after the fork."""
    return store_from_settings(get_settings())


def announce_final(job_id: str, status: str) -> None:
    """After a final status: queue the webhook when the job has a callback_url, and the
    MLflow export when one is due (each on its own: one failing to queue leaves the other be;
    the reaper re-sends either from its outbox)."""
    job = job_store().get(job_id)
    dispatcher = CeleryDispatcher(app)
    failed: list[TrainabilityError] = []
    if job.callback_url:
        try:
            dispatcher.send_webhook(job_id)
        except TrainabilityError as exc:
            failed.append(exc)
    try:
        announce_export(job_store(), job, get_settings(), dispatcher)
    except TrainabilityError as exc:
        failed.append(exc)
    if failed:
        raise failed[0]


def run_with_torch(spec: ExperimentSpec, on_progress: ProgressFn,
                   should_stop: StopFn) -> dict[str, Any]:
    """The compute side (imports torch on first use, in the worker child)."""
    import torch

    from worker.compute.pipeline import RunHooks, run_experiment

    settings = get_settings()
    if settings.torch_threads is not None:
        torch.set_num_threads(settings.torch_threads)
    hooks = RunHooks(on_progress=on_progress, should_stop=should_stop,
                     time_limit_s=settings.job_time_limit_s)
    return run_experiment(spec, hooks)


def run_cohort_with_torch(specs: list[ExperimentSpec], progress: list[ProgressFn],
                          stops: list[StopFn], on_result: CohortResultFn) -> None:
    """A sweep cohort's compute side (``worker/compute/cohort.py``)."""
    import torch

    from worker.compute.cohort import run_cohort
    from worker.compute.pipeline import RunHooks

    settings = get_settings()
    if settings.torch_threads is not None:
        torch.set_num_threads(settings.torch_threads)
    run_cohort(specs, [RunHooks(on_progress=p, should_stop=s,
                                time_limit_s=settings.job_time_limit_s)
                       for p, s in zip(progress, stops, strict=True)], on_result)


def batch_reason_with_torch(spec: ExperimentSpec) -> str | None:
    from worker.compute.cohort import cohort_batch_reason

    return cohort_batch_reason(spec)


# Redis blips while recording are retried (the job restarts as a new attempt); failures of
# the run itself are recorded on the job by execute_job and never reach Celery.
@app.task(name=RUN_EXPERIMENT_TASK, bind=True, autoretry_for=(StoreUnavailable,),
          retry_backoff=2, retry_backoff_max=60, max_retries=5)
def run_experiment_task(self: Task[[str, list[str] | None], None], job_id: str,
                        cohort: list[str] | None = None) -> None:
    """Run the experiment recorded under ``job_id`` (with the queued jobs of its sweep
    cohort, ``cohort``: their ids, when it has one)."""
    settings = get_settings()
    how = AttemptKnobs(
        worker=self.request.hostname or "unknown",
        run=run_with_torch,
        progress_interval_s=settings.progress_interval_s,
        time_limit_s=settings.job_soft_time_limit_s,
        max_attempts=settings.max_attempts,
        lease_interval_s=settings.lease_renew_interval_s,
        lease_ttl_s=settings.lease_ttl_s,
        cancel_check_interval_s=settings.cancel_check_interval_s,
        on_final=announce_final,
    )
    if cohort and len(cohort) > 1:
        execute_cohort(job_store(), job_id, cohort, how, run_cohort=run_cohort_with_torch,
                       batch_reason=batch_reason_with_torch)
    else:
        with job_context(job_id):
            execute_with(job_store(), job_id, how)


class RetryDelivery(Exception):
    """The receiver did not take the webhook (network error, 408, 429, 5xx): try again."""


@app.task(name=DELIVER_WEBHOOK_TASK, bind=True, acks_late=True,
          autoretry_for=(RetryDelivery, StoreUnavailable),
          retry_backoff=_settings.webhook_retry_backoff_s,
          retry_backoff_max=_settings.webhook_retry_backoff_max_s, retry_jitter=True,
          max_retries=_settings.webhook_max_retries)
def deliver_webhook_task(self: Task[[str], None], job_id: str) -> None:
    """POST the final state of ``job_id`` to its callback_url (signed; see worker/webhooks)."""
    with job_context(job_id):
        retries = self.request.retries
        outcome = deliver_webhook(
            job_store(), job_id, get_settings(), attempt=retries + 1,
            last_attempt=retries >= (self.max_retries or 0),
        )
    if outcome == "retry":
        raise RetryDelivery(f"webhook of job {job_id} not taken (attempt {retries + 1})")


class RetryExport(Exception):
    """The tracking server did not take the run (unreachable, 5xx, store not writable)."""


@app.task(name=EXPORT_MLFLOW_TASK, bind=True, acks_late=True,
          autoretry_for=(RetryExport, StoreUnavailable),
          retry_backoff=_settings.webhook_retry_backoff_s,
          retry_backoff_max=_settings.webhook_retry_backoff_max_s, retry_jitter=True,
          max_retries=_settings.webhook_max_retries)
def export_mlflow_task(self: Task[[str], None], job_id: str) -> None:
    """Log the finished job ``job_id`` as an MLflow run (see worker/runtime/mlflow_delivery)."""
    with job_context(job_id):
        retries = self.request.retries
        outcome = export_job(
            job_store(), job_id, get_settings(), attempt=retries + 1,
            last_attempt=retries >= (self.max_retries or 0),
        )
    if outcome == "retry":
        raise RetryExport(f"MLflow export of job {job_id} failed (attempt {retries + 1})")
